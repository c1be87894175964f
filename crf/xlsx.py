"""Excel CRF workbooks for sites: one workbook per subject, written with openpyxl.

The layout contract with the readers (validator, test-data generator) is docs/workbook-format.md:
every input cell carries the workbook-level defined name of crf.fieldmap, and the hidden `_meta`
sheet repeats the identity of the workbook and the field map. Everything else (colours, widths,
instructions) is presentation and may change.

Building one workbook: lay out the sheets (instructions, visit calendar, one sheet per visit, one per
log), collect data validations and conditional formats per (sheet, rule) while placing cells, then
add them once (a few hundred shared objects instead of one per cell), then save and rewrite the zip
so that the same inputs give the same bytes.
"""
from __future__ import annotations

import datetime as dt
from copy import copy
import io
import math
import re
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from openpyxl import Workbook
from openpyxl.compat import safe_string
from openpyxl.utils.datetime import to_excel
from openpyxl.formatting.rule import FormulaRule
from openpyxl.styles import Alignment, Border, Font, PatternFill, Protection, Side
from openpyxl.utils import get_column_letter, quote_sheetname
from openpyxl.worksheet.cell_range import MultiCellRange
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.properties import PageSetupProperties

from . import __version__
from .fieldmap import defined_name
from .model import CodeList, Item, ItemKind, Limits, Log, Study, Visit, split_visit_key
from .subject import SubjectRecord
from . import schedule
from .contract import (CALENDAR_SHEET, DATE_FORMAT, FORMAT_VERSION, INSTRUCTIONS_SHEET, LISTS_SHEET, META_SHEET,
                       MULTI_SEPARATOR, TIME_FORMAT)
from .xlsx_formula import Untranslatable, constant_value, translate

FIXED_TIME = dt.datetime(2000, 1, 1, 0, 0, 0)  # docProps created/modified: same inputs, same bytes
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
INLINE_LIST_LIMIT = 255  # Excel's limit on an in-formula list "A,B,C"
EARLIEST_DATE = "DATE(1900,1,1)"

INSTRUCTIONS, CALENDAR, LISTS, META = INSTRUCTIONS_SHEET, CALENDAR_SHEET, LISTS_SHEET, META_SHEET

# -- presentation --------------------------------------------------------------------------
REQUIRED_FILL = PatternFill("solid", fgColor="DDEBF7")  # light blue: required input
OPTIONAL_FILL = PatternFill("solid", fgColor="FFFFFF")
READONLY_FILL = PatternFill("solid", fgColor="D9D9D9")  # grey: formula, fixed value, label
MANUAL_FILL = PatternFill("lightGray", fgColor="A6A6A6", bgColor="D9D9D9")  # hatched grey: data manager
SECTION_FILL = PatternFill("solid", fgColor="1F4E78")
HEADER_FILL = PatternFill("solid", fgColor="BDD7EE")
AMBER_FILL = PatternFill("solid", fgColor="FFC000", bgColor="FFC000")  # soft limit: please confirm
ALERT_FILL = PatternFill("solid", fgColor="F4B084", bgColor="F4B084")
THIN = Side(style="thin", color="808080")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
BOLD = Font(bold=True)
TITLE = Font(bold=True, size=14)
WHITE_BOLD = Font(bold=True, color="FFFFFF")
SMALL_GREY = Font(size=8, color="595959")
ITALIC_GREY = Font(italic=True, color="595959")
HELP_FONT = Font(size=9, color="404040")
HEADER_FONT = Font(bold=True, size=9)
RED_BOLD = Font(bold=True, color="C00000")
WRAP = Alignment(wrap_text=True, vertical="top")
TOP = Alignment(vertical="top")
CENTER = Alignment(horizontal="center", vertical="top")
UNLOCKED = Protection(locked=False)
LOCKED = Protection(locked=True)


# -- public API ----------------------------------------------------------------------------
def workbook_name(study: Study, subject: Optional[str]) -> str:
    tail = "template" if not subject else re.sub(r"[^A-Za-z0-9._-]", "_", subject)
    return f"{study.id}_{tail}.xlsx"


def build_workbooks(study: Study, out_dir: Path, site: Optional[str] = None, subjects: tuple[str, ...] = ()) -> list[Path]:
    """One workbook per subject in `out_dir` (created), or one blank template without subjects."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not subjects:
        return [write_workbook(study, out_dir / workbook_name(study, None), site, None)]
    written = []
    for subject in subjects:
        subject_site = site
        prefix = subject.rpartition("-")[0]
        if site and prefix and prefix != site:
            raise ValueError(f"subject {subject} does not belong to site {site} (subject numbers start with the site number)")
        if not subject_site and prefix:
            subject_site = prefix
        written.append(write_workbook(study, out_dir / workbook_name(study, subject), subject_site, subject))
    return written


def write_workbook(study: Study, path: Path, site: Optional[str], subject: Optional[str],
                   record: Optional[SubjectRecord] = None) -> Path:
    """Write one subject workbook (a blank template when subject is None); pre-fill it from `record`."""
    if record is not None:
        subject = subject or record.subject or None
        site = site or record.site or None
    data = _Builder(study, site, subject, record).build()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def workbook_bytes(study: Study, site: Optional[str], subject: Optional[str], record: Optional[SubjectRecord] = None) -> bytes:
    return _Builder(study, site, subject, record).build()


# -- sheet names ---------------------------------------------------------------------------
_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


def sheet_title(text: str, taken: set[str]) -> str:
    """A valid, unique Excel sheet name: at most 31 characters, none of []:*?/\\, not quoted."""
    name = _FORBIDDEN.sub("-", text).strip().strip("'")
    if len(name) > 31:
        cut = name[:31]
        name = cut.rsplit(" ", 1)[0] if " " in cut[10:] else cut
    base, n = name, 2
    while name.lower() in taken or name.lower() == "history":
        suffix = f" ({n})"
        name = base[: 31 - len(suffix)] + suffix
        n += 1
    taken.add(name.lower())
    return name


def visit_sheet_text(visit: Visit, key: Optional[str] = None) -> str:
    repeat = split_visit_key(key)[1] if key else None
    if repeat is not None:
        return f"{visit.id} {repeat} {visit.label}"  # "ATT 2 Attack visit": one blank sheet per instance of a repeating visit
    if visit.day is not None and visit.kind != "screening":
        return f"{visit.id} Day {visit.day}"
    return f"{visit.id} {visit.label}"


def log_sheet_text(log: Log) -> str:
    return f"Log {log.id} {log.label}"


# -- rules -----------------------------------------------------------------------------------
def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _fmt(v: float, decimals: int = 0) -> str:
    return f"{v:.{decimals}f}" if decimals else _num(v)


def inline_list(codelist: CodeList) -> Optional[str]:
    """The in-formula list '"A,B,C"' when Excel accepts it, else None (use the lists sheet)."""
    codes = codelist.values
    if not all(isinstance(c, str) and c and "," not in c and '"' not in c for c in codes):
        return None
    joined = ",".join(str(c) for c in codes)
    if len(joined) > INLINE_LIST_LIMIT:
        return None
    return f'"{joined}"'


def list_name(codelist: CodeList) -> str:
    return "LST_" + re.sub(r"[^A-Za-z0-9_]", "_", codelist.id)


def number_format(item: Item) -> str:
    if item.kind == ItemKind.DATE:
        return DATE_FORMAT
    if item.kind == ItemKind.DECIMAL:
        return "0." + "0" * item.decimals if item.decimals else "0"
    if item.kind == ItemKind.INTEGER:
        return "0"
    if item.kind == ItemKind.CHOICE and item.codelist and not all(isinstance(c, str) for c in item.codelist.values):
        return "General"
    return "@"  # text, codes, times, partial dates, multi-selects: stored as typed, never converted


def _whole_bounds(lim: Limits) -> tuple[Optional[int], Optional[int]]:
    lo = hi = None
    if lim.minimum is not None:
        lo = math.ceil(lim.minimum)
    if lim.exclusive_minimum is not None:
        lo = math.floor(lim.exclusive_minimum) + 1
    if lim.maximum is not None:
        hi = math.floor(lim.maximum)
    if lim.exclusive_maximum is not None:
        hi = math.ceil(lim.exclusive_maximum) - 1
    return lo, hi


def describe_range(item: Item) -> str:
    lim = item.hard
    if lim.is_empty:
        return ""
    unit = f" {item.unit}" if item.unit else ""
    if item.kind == ItemKind.INTEGER:
        lo, hi = _whole_bounds(lim)
        if lo is not None and hi is not None:
            return f"{lo} to {hi}{unit}"
        return (f">= {lo}" if lo is not None else f"<= {hi}") + unit
    return lim.describe() + unit


def describe_soft(item: Item) -> str:
    if not item.soft or item.soft.is_empty:
        return ""
    s = item.soft
    unit = f" {item.unit}" if item.unit else ""
    if s.low is not None and s.high is not None and s.minimum is not None and s.maximum is not None:
        return f"{_num(s.minimum)}-{_num(s.maximum)}{unit}"
    return s.describe() + unit


def codes_text(codelist: CodeList, limit: int = 10_000) -> str:
    text = "; ".join(f"{c.code} = {c.label}" if str(c.code) != c.label else str(c.code) for c in codelist.codes)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Rule:
    """A data validation shared by every cell with the same rule on one sheet."""

    type: str
    operator: Optional[str] = None
    formula1: Optional[str] = None
    formula2: Optional[str] = None
    prompt_title: str = ""
    prompt: str = ""
    error: str = ""
    relative: bool = False  # formula refers to the cell itself ({cell}); one rule per column


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def rule_for(item: Item) -> Optional[Rule]:
    """The data validation of one input item, or None when none applies."""
    unit = f" ({item.unit})" if item.unit else ""
    soft = describe_soft(item)
    soft_txt = f" Expected {soft}; outside it the cell turns amber: check and confirm." if soft else ""
    k = item.kind
    if k in (ItemKind.INTEGER, ItemKind.DECIMAL):
        lim = item.hard
        if k == ItemKind.INTEGER:
            typ, what = "whole", "a whole number"
            lo, hi = _whole_bounds(lim)
            los, his = (str(lo) if lo is not None else None), (str(hi) if hi is not None else None)
            lo_op, hi_op = "greaterThanOrEqual", "lessThanOrEqual"
            mixed = False
        else:
            typ = "decimal"
            what = f"a number with {item.decimals} decimal{'s' if item.decimals != 1 else ''}" if item.decimals else "a whole number"
            los = _num(lim.low) if lim.low is not None else None
            his = _num(lim.high) if lim.high is not None else None
            lo_op = "greaterThan" if lim.minimum is None and lim.exclusive_minimum is not None else "greaterThanOrEqual"
            hi_op = "lessThan" if lim.maximum is None and lim.exclusive_maximum is not None else "lessThanOrEqual"
            mixed = los is not None and his is not None and (lo_op, hi_op) != ("greaterThanOrEqual", "lessThanOrEqual")
        rng = describe_range(item)
        prompt = f"Enter {what}{unit}" + (f", {rng}." if rng else ".") + soft_txt
        error = f"Not allowed: enter {what}" + (f", {rng}" if rng else "") + "."
        title = _clip(f"Number{unit}", 32)
        if mixed:
            lo_c = ">" if lo_op == "greaterThan" else ">="
            hi_c = "<" if hi_op == "lessThan" else "<="
            return Rule("custom", None, f"AND(ISNUMBER({{cell}}),{{cell}}{lo_c}{los},{{cell}}{hi_c}{his})",
                        None, title, prompt, error, relative=True)
        if los is not None and his is not None:
            return Rule(typ, "between", los, his, title, prompt, error)
        if los is not None:
            return Rule(typ, lo_op, los, None, title, prompt, error)
        if his is not None:
            return Rule(typ, hi_op, his, None, title, prompt, error)
        return Rule(typ, "between", "-1000000000", "1000000000", title, prompt, error)
    if k == ItemKind.DATE:
        return Rule("date", "between", EARLIEST_DATE, "TODAY()", "Date (DD-MMM-YYYY)",
                    "Enter a date, e.g. 05-Mar-2025 or 2025-03-05; from 01-Jan-1900 to today. Shown as DD-MMM-YYYY.",
                    "Not a date between 01-Jan-1900 and today. Type e.g. 2025-03-05.")
    if k == ItemKind.TIME:
        f = ('AND(LEN({cell})=5,MID({cell},3,1)=":",ISNUMBER(FIND(MID({cell},1,1),"012")),'
             'ISNUMBER(FIND(MID({cell},2,1),"0123456789")),LEFT({cell},2)<"24",'
             'ISNUMBER(FIND(MID({cell},4,1),"012345")),ISNUMBER(FIND(MID({cell},5,1),"0123456789")))')
        return Rule("custom", None, f, None, "Time (HH:MM, 24 h)",
                    "Enter the time as HH:MM on the 24-hour clock, e.g. 09:05 or 14:30. It is kept as text.",
                    "Not a time: type HH:MM on the 24-hour clock, e.g. 09:05 or 14:30.", relative=True)
    if k == ItemKind.PARTIAL_DATE:
        f = ('AND(OR(LEN({cell})=4,LEN({cell})=7,LEN({cell})=10),ISERROR(SEARCH("e",{cell})),'
             'ISNUMBER(-LEFT({cell},4)),LEFT({cell},4)>="1900",LEFT({cell},4)<="2100",'
             'OR(LEN({cell})=4,AND(MID({cell},5,1)="-",MID({cell},6,2)>="01",MID({cell},6,2)<="12")),'
             'OR(LEN({cell})<10,ISNUMBER(DATEVALUE({cell}))))')
        return Rule("custom", None, f, None, "Partial date",
                    "Enter YYYY, YYYY-MM or YYYY-MM-DD (e.g. 2019, 2019-06 or 2019-06-14): leave out the day or "
                    "month when unknown. Kept as text.",
                    "Not a (partial) date: type YYYY, YYYY-MM or YYYY-MM-DD, e.g. 2019-06.", relative=True)
    if k == ItemKind.CHOICE and item.codelist:
        cl = item.codelist
        inline = inline_list(cl)
        return Rule("list", None, inline or list_name(cl), None, "Choose from the list",
                    _clip("Choose from the dropdown: " + codes_text(cl), 255),
                    _clip("Not in the code list. Choose one of: " + ", ".join(map(str, cl.values)), 255))
    if k == ItemKind.MULTI_CHOICE and item.codelist:
        cl = item.codelist
        limit = sum(len(str(c)) for c in cl.values) + len(MULTI_SEPARATOR) * (len(cl.values) - 1)
        return Rule("textLength", "lessThanOrEqual", str(limit), None, "Several codes allowed",
                    _clip("Type every code that applies, separated by '; ' (e.g. A; B). Codes: "
                          + ", ".join(map(str, cl.values)), 255),
                    "Too long for a list of these codes: type codes separated by '; '.")
    if k == ItemKind.TEXT:
        n = item.max_length or 200
        extra = f" Format: {item.pattern.strip('^$')}." if item.pattern else ""
        return Rule("textLength", "lessThanOrEqual", str(n), None, "Text",
                    _clip(f"Free text, at most {n} characters.{extra}", 255), f"At most {n} characters.")
    return None


def soft_formula(item: Item) -> Optional[str]:
    """Conditional-format test (over {cell}) that is true outside the soft limits."""
    s = item.soft
    if not s or s.is_empty or not item.is_number:
        return None
    tests = []
    if s.minimum is not None:
        tests.append(f"{{cell}}<{_num(s.minimum)}")
    if s.exclusive_minimum is not None:
        tests.append(f"{{cell}}<={_num(s.exclusive_minimum)}")
    if s.maximum is not None:
        tests.append(f"{{cell}}>{_num(s.maximum)}")
    if s.exclusive_maximum is not None:
        tests.append(f"{{cell}}>={_num(s.exclusive_maximum)}")
    return f"AND(ISNUMBER({{cell}}),OR({','.join(tests)}))"


# -- values ----------------------------------------------------------------------------------
def excel_value(item: Item, value: Any) -> Any:
    """A record's JSON value as written into the cell (dates as dates, multi-selects joined)."""
    if value is None:
        return None
    if item.kind == ItemKind.DATE and isinstance(value, str):
        try:
            return dt.date.fromisoformat(value) if len(value) == 10 else value
        except ValueError:
            return value  # an impossible date is written as the text the record holds
    if item.kind == ItemKind.MULTI_CHOICE and isinstance(value, (list, tuple)):
        return MULTI_SEPARATOR.join(str(v) for v in value)
    if isinstance(value, (list, tuple, dict)):
        return str(value)
    if isinstance(value, bool):
        return str(value)
    return value


# -- builder ---------------------------------------------------------------------------------
@dataclass
class _Cell:
    path: str
    name: str
    sheet: str
    cell: str
    kind: str
    role: str  # input, fixed, derived, manual
    item: str


@dataclass
class _SheetRules:
    dv: dict[tuple, list[str]] = field(default_factory=lambda: defaultdict(list))
    cf: dict[tuple, list[str]] = field(default_factory=lambda: defaultdict(list))


class _Builder:
    def __init__(self, study: Study, site: Optional[str], subject: Optional[str], record: Optional[SubjectRecord]):
        self.study = study
        self.site = site or ""
        self.subject = subject or ""
        self.record = record
        self.wb = Workbook()
        self.cells: list[_Cell] = []
        self.styles: dict[tuple, Any] = {}
        self.meta_rows: list[list[str]] = []
        self.meta_part = ""
        self.names: dict[str, str] = {}  # defined name -> "'Sheet'!$D$5"
        self.rules: dict[str, _SheetRules] = defaultdict(_SheetRules)
        self.lists: dict[str, CodeList] = {}
        self.taken: set[str] = set()
        self.visit_sheets = {key: sheet_title(visit_sheet_text(v, key), self.taken) for v in study.visits for key in v.workbook_keys}
        self.log_sheets = {lg.id: sheet_title(log_sheet_text(lg), self.taken) for lg in study.logs}
        for reserved in (INSTRUCTIONS, CALENDAR, LISTS, META):
            self.taken.add(reserved.lower())
        self.day0_ref = self._day0_source()
        self.fast_sheets = set(self.visit_sheets.values()) | set(self.log_sheets.values())

    # identification strings
    @property
    def who(self) -> str:
        subject = self.subject or "__________"
        site = self.site or "____"
        return f"Subject {subject}   Site {site}"

    def _day0_source(self) -> Optional[str]:
        """Defined name of the cell where Day 0 is recorded (the schedule service's day0_field)."""
        found = schedule.day0_field(self.study)
        return defined_name(found[0].id, found[1], found[2]) if found else None

    def visit_date_name(self, visit: Visit, key: str) -> Optional[str]:
        """Defined name of the visit's date (the schedule's visit_date), else of its first date input; `key` is
        the visit key of the sheet (ATT#2 for a repeat)."""
        found = schedule.visit_date_field(self.study, visit)
        if found is not None:
            return defined_name(key, *found)
        first = next(((inst.name, it.id) for inst in visit.forms for it in inst.items if it.kind == ItemKind.DATE and it.is_input), None)
        return defined_name(key, *first) if first else None

    # -- entry point
    def build(self) -> bytes:
        wb = self.wb
        ins = wb.active
        ins.title = INSTRUCTIONS
        cal = wb.create_sheet(CALENDAR)
        for visit in self.study.visits:
            for key in visit.workbook_keys:
                self.visit_sheet(visit, key)
        for log in self.study.logs:
            self.log_sheet(log)
        self.calendar(cal)
        self.instructions(ins)
        if self.lists:
            self.lists_sheet()
        self.meta_sheet()
        self.apply_rules()
        rewrite = {self.meta_part: lambda xml: _fill_sheet_data(xml, self.meta_rows)}
        names_xml = "".join(f'<definedName name="{n}">{_xml_text(self.names[n])}</definedName>' for n in sorted(self.names))
        rewrite["xl/workbook.xml"] = lambda xml: _add_defined_names(xml, names_xml)
        # the big sheets' cells are serialised here (openpyxl's writer takes ~30 us a cell)
        for index, ws in enumerate(wb.worksheets, start=1):
            if ws.title in self.fast_sheets:
                rewrite[f"xl/worksheets/sheet{index}.xml"] = _detach_sheet_data(ws)
        for ws in wb.worksheets:
            ws.protection.sheet = True
            ws.protection.formatColumns = False  # allowed: sites may widen columns and rows
            ws.protection.formatRows = False
            ws.protection.insertRows = False  # allowed: input cells are found by their defined names
        wb.active = 0
        props = wb.properties
        props.creator = "open-ecrf"
        props.lastModifiedBy = "open-ecrf"
        props.title = f"{self.study.id} CRF workbook {self.subject or 'template'}"
        props.subject = f"{self.study.id} protocol {self.study.protocol_version} form version {self.study.form_version}"
        props.created = FIXED_TIME
        props.modified = FIXED_TIME
        buf = io.BytesIO()
        wb.save(buf)
        return _deterministic_zip(buf.getvalue(), rewrite)

    # -- helpers
    def st(self, cell, font=None, fill=None, border=None, alignment=None, protection=None, number_format=None) -> None:
        """Style a cell through a cache of style arrays: openpyxl hashes every style object otherwise."""
        key = (id(font), id(fill), id(border), id(alignment), id(protection), number_format)
        cached = self.styles.get(key)
        if cached is not None:
            cell._style = copy(cached)
            return
        if font is not None:
            cell.font = font
        if fill is not None:
            cell.fill = fill
        if border is not None:
            cell.border = border
        if alignment is not None:
            cell.alignment = alignment
        if protection is not None:
            cell.protection = protection
        if number_format is not None:
            cell.number_format = number_format
        self.styles[key] = copy(cell._style)

    def _repeat_steps(self) -> list[str]:
        """What to do with the blank sheets of repeating visits (attack visits, unscheduled visits)."""
        out = []
        for v in self.study.visits:
            if not v.repeating:
                continue
            sheets = [self.visit_sheets[k] for k in v.workbook_keys]
            text = (f"{v.label}s: this workbook has {len(sheets)} blank sheets ('{sheets[0]}' to '{sheets[-1]}'). Use one sheet per "
                    f"{v.label.lower()}, in date order, the first blank one each time; leave the unused ones blank.")
            if v.link is not None:
                text += f" On each, give the number of its row in the {self.study.log(v.link.log).label} log ({v.link.item})."
            text += (" If you need more, do not copy a sheet: ask the data manager for a workbook with more, "
                     "and copy your entries into it.")
            out.append(text)
        return out

    def name_cell(self, name: str, sheet: str, coord: str) -> None:
        col, row = re.match(r"([A-Z]+)(\d+)", coord).groups()  # type: ignore[union-attr]  # coord is a cell reference we wrote
        self.names[name] = f"{quote_sheetname(sheet)}!${col}${row}"

    def add_rule(self, sheet: str, item: Item, coord: str, column: str) -> None:
        rule = rule_for(item)
        if rule is not None:
            key = (rule, column if rule.relative else "")
            self.rules[sheet].dv[key].append(coord)
            if rule.type == "list" and rule.formula1 and not rule.formula1.startswith('"') and item.codelist:
                self.lists[item.codelist.id] = item.codelist
        soft = soft_formula(item)
        if soft:
            self.rules[sheet].cf[(soft, column)].append(coord)

    def resolver(self, visit: Optional[Visit], form: Optional[str], log: Optional[Log], row: Optional[int], key: Optional[str] = None):
        study = self.study
        here = key or (visit.id if visit is not None else "")

        def resolve(dotted: str) -> str:
            parts = dotted.split(".")
            if dotted == "DAY0":
                return "CAL_DAY0"
            if log is not None and len(parts) == 1:
                if log.form.has(parts[0]):
                    return defined_name(log.id, log.form.id, parts[0], row)
                raise Untranslatable(f"{dotted} is not in log {log.id}")
            if visit is not None and len(parts) == 1 and visit.form(form).form.has(parts[0]):  # type: ignore[arg-type]  # form is set whenever visit is
                return defined_name(here, form, parts[0])  # type: ignore[arg-type]  # as above
            if visit is not None and len(parts) == 2 and visit.has(parts[0]) and visit.form(parts[0]).form.has(parts[1]):
                return defined_name(here, parts[0], parts[1])
            if len(parts) == 3:
                try:
                    v = study.visit(parts[0])
                    if not v.repeating and v.form(parts[1]).form.has(parts[2]):
                        return defined_name(v.id, parts[1], parts[2])
                except KeyError:
                    pass
            raise Untranslatable(f"cannot place {dotted}")

        return resolve

    def place_item(self, ws, sheet: str, coord: str, column: str, item: Item, path: str, name: str,
                   resolve, value: Any, required: bool) -> tuple[str, str]:
        """Write one item's cell; returns (role, note for the help column)."""
        c = ws[coord]
        fmt = number_format(item)
        note = ""
        if item.fixed is not None:
            role = "fixed"
            c.value = excel_value(item, item.fixed)
            self.st(c, None, READONLY_FILL, BOX, TOP, LOCKED, fmt)
            note = "Fixed for this form."
        elif item.derived is not None:
            const = constant_value(item.derived)
            if const is not None:
                role = "derived"
                c.value = const
                note = "Set by the form."
                self.st(c, None, READONLY_FILL, BOX, TOP, LOCKED, fmt)
            else:
                try:
                    c.value = translate(item.derived, resolve)
                    role = "derived"
                    note = f"{_derived_words(item)}. The workbook calculates it."
                    self.st(c, ITALIC_GREY, READONLY_FILL, BOX, TOP, LOCKED, fmt)
                except Untranslatable:
                    role = "manual"
                    note = f"{_derived_words(item)}. Calculated by the data manager; leave blank."
                    self.st(c, None, MANUAL_FILL, BOX, TOP, LOCKED, fmt)
        else:
            role = "input"
            self.st(c, None, REQUIRED_FILL if required else OPTIONAL_FILL, BOX, TOP, UNLOCKED, fmt)
            if value is not None:
                c.value = excel_value(item, value)
            self.add_rule(sheet, item, coord, column)
        self.name_cell(name, sheet, coord)
        self.cells.append(_Cell(path, name, sheet, coord, item.kind.value, role, item.id))
        return role, note

    # -- visit sheets
    def visit_sheet(self, visit: Visit, key: str) -> None:
        sheet = self.visit_sheets[key]
        repeat = split_visit_key(key)[1]
        ws = self.wb.create_sheet(sheet)
        widths = {"A": 11, "B": 52, "C": 5, "D": 20, "E": 11, "F": 58}
        for col, w in widths.items():
            ws.column_dimensions[col].width = w
        ws["A1"] = f"{visit.label}" if repeat is None else f"{visit.label} {repeat} ({key})"
        ws["A1"].font = TITLE
        ws["A2"] = f"{self.study.id}   {self.who}   Protocol {self.study.protocol_version}   Form version {self.study.form_version}"
        ws["A2"].font = BOLD
        window = _window_text(visit)
        ws["A3"] = (f"Visit {key}" + (f", protocol day {visit.day}" if visit.day is not None else "")
                    + (f", window {window}" if window else "") + ". "
                    + (f"One sheet per {visit.label.lower()}: fill in the next blank one (1, 2, 3 ...) each time; leave the others blank. "
                       if repeat is not None else "")
                    + "Blue = required, white = optional, "
                    "grey = read-only, amber = outside the expected range: check and confirm. See Instructions.")
        ws["A3"].font = SMALL_GREY
        headers = ["Item", "Question", "Req", "Entry", "Unit", "Allowed values / help"]
        hr = 5
        for i, h in enumerate(headers, 1):
            cell = ws.cell(hr, i, h)
            cell.font = BOLD
            cell.fill = HEADER_FILL
            cell.border = BOX
        r = hr + 1
        for inst in visit.forms:
            title = inst.title or inst.form.title
            code = f" ({inst.form.code})" if inst.form.code else ""
            for column in range(1, 7):
                self.st(ws.cell(r, column), WHITE_BOLD, SECTION_FILL)
            ws.cell(r, 1, f"{inst.name}")
            ws.cell(r, 2, f"{title}{code}")
            r += 1
            if inst.form.description:
                ws.cell(r, 2, inst.form.description).alignment = WRAP
                ws.cell(r, 2).font = ITALIC_GREY
                ws.row_dimensions[r].height = 15 * _lines(inst.form.description, 52)
                r += 1
            resolve = self.resolver(visit, inst.name, None, None, key)
            for item in inst.items:
                coord = f"D{r}"
                name = defined_name(key, inst.name, item.id)
                path = f"/visits/{key}/{inst.name}/{item.id}"
                value = self.record.value(key, inst.name, item.id) if self.record else None
                self.st(ws.cell(r, 1, item.id), SMALL_GREY, None, None, TOP)
                self.st(ws.cell(r, 2, item.question), None, None, None, WRAP)
                mark = _req_mark(item)
                if mark:
                    self.st(ws.cell(r, 3, mark), RED_BOLD, None, None, CENTER)
                if item.unit:
                    self.st(ws.cell(r, 5, item.unit), None, None, None, TOP)
                role, note = self.place_item(ws, sheet, coord, "D", item, path, name, resolve, value, item.required)
                help_text = _help_text(item, role, note)
                self.st(ws.cell(r, 6, help_text), HELP_FONT, None, None, WRAP)
                lines = max(_lines(item.question, 50), _lines(help_text, 78))
                if lines > 1:
                    ws.row_dimensions[r].height = 13 * lines + 2
                r += 1
            r += 1
        last = r - 1
        ws.freeze_panes = f"A{hr + 1}"
        self.print_setup(ws, f"A1:F{last}", landscape=False, title_rows=f"{hr}:{hr}", what=visit.label)

    # -- log sheets
    def log_sheet(self, log: Log) -> None:
        sheet = self.log_sheets[log.id]
        ws = self.wb.create_sheet(sheet)
        items = log.form.items
        ws["A1"] = f"{log.label} (log {log.id})"
        ws["A1"].font = TITLE
        ws["A2"] = f"{self.study.id}   {self.who}   Protocol {self.study.protocol_version}   Form version {self.study.form_version}"
        ws["A2"].font = BOLD
        ws["A3"] = (f"One row per entry, up to {log.rows} rows" + (f"; collected from {log.starts}" if log.starts else "")
                    + ". * = required in every used row, (*) = required when the condition in the row below the header "
                    "holds. Blue/white = input, grey = calculated. Click a cell to see what it accepts.")
        ws["A3"].font = SMALL_GREY
        if log.form.description:
            ws["A4"] = log.form.description
            ws["A4"].font = ITALIC_GREY
        q_row, id_row, hint_row = 5, 6, 7
        first = hint_row + 1
        ws.column_dimensions["A"].width = 5
        for r in (q_row, id_row, hint_row):
            c = ws.cell(r, 1, {q_row: "Row", id_row: "", hint_row: ""}[r])
            c.fill = HEADER_FILL
            c.border = BOX
            c.font = BOLD
        max_lines = 1
        for j, item in enumerate(items, start=2):
            col = get_column_letter(j)
            width = _log_width(item)
            ws.column_dimensions[col].width = width
            mark = _req_mark(item)
            q = ws.cell(q_row, j, item.question + (f" {mark}" if mark else ""))
            q.font = HEADER_FONT
            q.alignment = WRAP
            q.fill = HEADER_FILL
            q.border = BOX
            max_lines = max(max_lines, _lines(q.value, width * 1.1 - 1))
            i = ws.cell(id_row, j, item.id)
            i.font = SMALL_GREY
            i.fill = HEADER_FILL
            i.border = BOX
            hint = ws.cell(hint_row, j, _short_hint(item))
            hint.font = SMALL_GREY
            hint.alignment = WRAP
            hint.fill = HEADER_FILL
            hint.border = BOX
        ws.row_dimensions[q_row].height = min(13 * max_lines + 4, 160)
        hint_lines = max(_lines(_short_hint(it), _log_width(it) - 1) for it in items) if items else 1
        ws.row_dimensions[hint_row].height = min(11 * hint_lines + 4, 120)
        rows = self.record.logs.get(log.id, []) if self.record else []
        for row in range(log.rows):
            r = first + row
            self.st(ws.cell(r, 1, row + 1), SMALL_GREY, None, None, CENTER)
            resolve = self.resolver(None, None, log, row)
            data = rows[row] if row < len(rows) and isinstance(rows[row], dict) else {}
            for j, item in enumerate(items, start=2):
                col = get_column_letter(j)
                coord = f"{col}{r}"
                name = defined_name(log.id, log.form.id, item.id, row)
                path = f"/logs/{log.id}/{row}/{item.id}"
                self.place_item(ws, sheet, coord, col, item, path, name, resolve, data.get(item.id), False)
        last_row = first + log.rows - 1
        last_col = get_column_letter(len(items) + 1)
        ws.freeze_panes = f"B{first}"
        self.print_setup(ws, f"A1:{last_col}{last_row}", landscape=True, title_rows=f"{q_row}:{hint_row}", what=log.label)

    # -- calendar
    def calendar(self, ws) -> None:
        ws["A1"] = "Visit calendar"
        ws["A1"].font = TITLE
        ws["A2"] = f"{self.study.id}   {self.who}"
        ws["A2"].font = BOLD
        ws["A3"] = ("Target dates and windows count from Day 0, the date of the first infusion. Before it is entered on "
                    f"the {self.visit_sheets.get(next((v.id for v in self.study.visits if v.day == 0), ''), 'Day 0')} sheet, "
                    "type a planned Day 0 below to plan the visits (not part of the CRF data).")
        ws["A3"].font = SMALL_GREY
        rows = [("Planned Day 0 (for planning only)", "CAL_DAY0_PLANNED", None),
                ("Actual Day 0 (first infusion date, from the visit sheet)", "CAL_DAY0",
                 f'=IF({self.day0_ref}="","",{self.day0_ref})' if self.day0_ref else '=""'),
                ("Day 0 used for the calendar", "CAL_DAY0_USED", '=IF(CAL_DAY0<>"",CAL_DAY0,CAL_DAY0_PLANNED)')]
        for i, (label, name, formula) in enumerate(rows):
            r = 5 + i
            ws.cell(r, 1, label).font = BOLD
            c = ws.cell(r, 5)
            c.number_format = DATE_FORMAT
            c.border = BOX
            if formula is None:
                c.protection = UNLOCKED
                c.fill = OPTIONAL_FILL
                self.rules[CALENDAR].dv[(Rule("date", "between", EARLIEST_DATE, "DATE(2100,12,31)", "Planned Day 0",
                                              "Planned date of the first infusion (DD-MMM-YYYY), for planning only.",
                                              "Not a date."), "")].append(f"E{r}")
            else:
                c.value = formula
                c.fill = READONLY_FILL
                c.protection = LOCKED
            self.name_cell(name, CALENDAR, f"E{r}")
        hr = 9
        headers = ["Visit", "Label", "Week", "Day", "Target date", "Window opens", "Window closes", "Infusion",
                   "Actual visit date", "Days from target", "Status"]
        widths = [7, 50, 7, 7, 14, 14, 14, 9, 16, 10, 18]
        for j, (h, w) in enumerate(zip(headers, widths), start=1):
            c = ws.cell(hr, j, h)
            c.font = BOLD
            c.fill = HEADER_FILL
            c.border = BOX
            c.alignment = WRAP
            ws.column_dimensions[get_column_letter(j)].width = w
        ws.column_dimensions["A"].width = 9  # the Day 0 labels spill over A:D
        ws.row_dimensions[hr].height = 30
        r = hr + 1
        for v, key in ((v, key) for v in self.study.visits for key in v.workbook_keys):
            ws.cell(r, 1, key).font = BOLD
            days = schedule.day_window(v)
            window = "" if days is not None else (f" ({_window_text(v)})" if _window_text(v) else "")
            repeat = split_visit_key(key)[1]
            ws.cell(r, 2, v.label + ("" if repeat is None else f" {repeat}") + window).alignment = WRAP
            ws.cell(r, 3, v.week)
            ws.cell(r, 4, v.day)
            ws.cell(r, 8, v.infusion)
            actual = self.visit_date_name(v, key)
            if days is not None:  # the window checks' arithmetic (crf.schedule), as live formulas from Day 0
                ws.cell(r, 5, f'=IF(CAL_DAY0_USED="","",CAL_DAY0_USED+{v.day})')
                ws.cell(r, 6, f'=IF(E{r}="","",E{r}-{v.window.before})')
                ws.cell(r, 7, f'=IF(E{r}="","",E{r}+{v.window.after})')
                if actual:
                    ws.cell(r, 10, f'=IF(OR(I{r}="",E{r}=""),"",I{r}-E{r})')
                    ws.cell(r, 11, f'=IF(OR(I{r}="",E{r}=""),"",IF(AND(I{r}>=F{r},I{r}<=G{r}),"in window","OUT OF WINDOW"))')
            if actual:
                ws.cell(r, 9, f'=IF({actual}="","",{actual})')
            for j in range(1, 12):
                c = ws.cell(r, j)
                c.border = BOX
                c.protection = LOCKED
                if j in (5, 6, 7, 9):
                    c.number_format = DATE_FORMAT
            r += 1
        last = r - 1
        ws.conditional_formatting.add(f"K{hr + 1}:K{last}", FormulaRule(formula=[f'K{hr + 1}="OUT OF WINDOW"'], fill=ALERT_FILL))
        self.print_setup(ws, f"A1:K{last}", landscape=True, title_rows=None, what="Visit calendar")

    # -- instructions
    def instructions(self, ws) -> None:
        s = self.study
        ws.column_dimensions["A"].width = 26
        ws.column_dimensions["B"].width = 30
        ws.column_dimensions["C"].width = 70
        ws["A1"] = f"{s.id}: case report form workbook"
        ws["A1"].font = TITLE
        ws["A2"] = s.title
        ws["A2"].alignment = Alignment(wrap_text=False)
        info = [("Study", s.id), ("Registry", s.registry_id or ""), ("Protocol version", s.protocol_version),
                ("Form version", s.form_version), ("Definition hash", s.definition_hash[:16]),
                ("Site", self.site), ("Subject", self.subject)]
        r = 4
        for label, value in info:
            ws.cell(r, 1, label).font = BOLD
            c = ws.cell(r, 2, value)
            c.number_format = "@"
            c.border = BOX
            c.fill = READONLY_FILL
            if label in ("Site", "Subject"):
                self.name_cell("SITE_ID" if label == "Site" else "SUBJECT_ID", INSTRUCTIONS, f"B{r}")
                if not value:  # a blank template: the site writes them in
                    c.fill = REQUIRED_FILL
                    c.protection = UNLOCKED
                    self.rules[INSTRUCTIONS].dv[(Rule("textLength", "between", "1", "20", label,
                                                      f"{label} number, e.g. {'01' if label == 'Site' else '01-001'}.",
                                                      "1 to 20 characters."), "")].append(f"B{r}")
            r += 1
        r += 1
        ws.cell(r, 1, "How to fill in this workbook").font = BOLD
        r += 1
        steps = [
            "One workbook holds one subject's CRF: the visit calendar, one sheet per visit in schedule order, and one sheet per log.",
            "Type only into the input cells (blue or white). Labels, calculated values and fixed values are locked.",
            "Click an input cell to see what it accepts (unit, allowed range, codes). Impossible values are refused.",
            "Dates: type e.g. 2025-03-05 or 05-Mar-2025; they are shown as DD-MMM-YYYY.",
            "Times: HH:MM on the 24-hour clock, e.g. 09:05 (kept as text).",
            "Partial dates (history only): YYYY, YYYY-MM or YYYY-MM-DD: leave out what is unknown.",
            f"Multiple choice: type every code that applies separated by '{MULTI_SEPARATOR}'{_multi_example(self.study)}.",
            "Choices: pick the code from the dropdown; the codes and their meaning are listed beside the cell.",
            "An amber cell holds a value outside the expected range: check it against the source and keep it if it is right "
            "(the data manager may query it).",
            "Leave a cell blank when the item was not done or does not apply; do not type 'NA' into number or date cells.",
            "Do not rename, delete or reorder sheets; rows may be inserted (input cells are found by their names).",
            *self._repeat_steps(),
            "Sheet protection has no password: it only prevents accidental edits of labels and formulas.",
            "Return the saved .xlsx file to the data manager; keep the file name.",
        ]
        for i, text in enumerate(steps, 1):
            ws.cell(r, 1, f"{i}.").alignment = Alignment(horizontal="right", vertical="top")
            c = ws.cell(r, 2, text)
            c.alignment = Alignment(wrap_text=True, vertical="top")
            ws.merge_cells(start_row=r, start_column=2, end_row=r, end_column=3)
            ws.row_dimensions[r].height = 15 * _lines(text, 110)
            r += 1
        r += 1
        ws.cell(r, 1, "Legend").font = BOLD
        r += 1
        legend = [
            (REQUIRED_FILL, "", "Required input: must be filled in."),
            (OPTIONAL_FILL, "", "Optional or conditional input."),
            (AMBER_FILL, "", "Value outside the expected (soft) range: check and confirm."),
            (READONLY_FILL, "", "Read-only: label, fixed value or value calculated by a formula."),
            (MANUAL_FILL, "", "Calculated later by the data manager: leave blank."),
            (None, "*", "Required item (in a log: required in every row used)."),
            (None, "(*)", "Required when a condition holds (written beside the item)."),
        ]
        for fill, mark, text in legend:
            c = ws.cell(r, 1, mark)
            c.border = BOX
            c.alignment = CENTER
            if fill is not None:
                c.fill = fill
            else:
                c.font = RED_BOLD
            ws.cell(r, 2, text)
            r += 1
        r += 1
        ws.cell(r, 1, "Sheets").font = BOLD
        r += 1
        for title in [CALENDAR, *self.visit_sheets.values(), *self.log_sheets.values()]:
            c = ws.cell(r, 2, title)
            c.hyperlink = f"#{quote_sheetname(title)}!A1"
            c.font = Font(color="0563C1", underline="single")
            r += 1
        self.print_setup(ws, f"A1:C{r - 1}", landscape=False, title_rows=None, what="Instructions")

    # -- hidden sheets
    def lists_sheet(self) -> None:
        ws = self.wb.create_sheet(LISTS)
        ws.sheet_state = "hidden"
        for j, cid in enumerate(sorted(self.lists), start=1):
            cl = self.lists[cid]
            col = get_column_letter(j)
            ws.cell(1, j, cid).font = BOLD
            for i, code in enumerate(cl.codes, start=2):
                c = ws.cell(i, j, code.code)
                if isinstance(code.code, str):
                    c.number_format = "@"
            self.names[list_name(cl)] = f"{quote_sheetname(LISTS)}!${col}$2:${col}${len(cl.codes) + 1}"

    def meta_sheet(self) -> None:
        ws = self.wb.create_sheet(META)
        ws.sheet_state = "hidden"
        s = self.study
        keys = [("study_id", s.id), ("protocol_version", s.protocol_version), ("form_version", s.form_version),
                ("definition_hash", s.definition_hash), ("site", self.site), ("subject", self.subject),
                ("tool_version", __version__), ("format_version", FORMAT_VERSION),
                ("multi_separator", MULTI_SEPARATOR), ("time_format", TIME_FORMAT),
                ("partial_date_format", "text YYYY, YYYY-MM or YYYY-MM-DD"), ("fields", str(len(self.cells)))]
        rows: list[list[str]] = [["key", "value"], *([k, str(v)] for k, v in keys), [],
                                 ["path", "defined_name", "sheet", "cell", "kind", "role", "item"]]
        rows += [[c.path, c.name, c.sheet, c.cell, c.kind, c.role, c.item] for c in self.cells]
        # ~3000 rows: written as XML directly into the saved package (openpyxl would take a second)
        self.meta_rows = rows
        self.meta_part = f"xl/worksheets/sheet{self.wb.worksheets.index(ws) + 1}.xml"
        for col, w in zip("ABCDEFG", (34, 34, 30, 7, 13, 8, 10)):
            ws.column_dimensions[col].width = w

    # -- validations, conditional formats, printing
    def apply_rules(self) -> None:
        for sheet, rules in self.rules.items():
            ws = self.wb[sheet]
            for (rule, _col), coords in rules.dv.items():
                first = coords[0]
                f1 = rule.formula1.replace("{cell}", first) if rule.formula1 else None
                dv = DataValidation(type=rule.type, operator=rule.operator, formula1=f1, formula2=rule.formula2,
                                    allow_blank=True, showErrorMessage=True, showInputMessage=True,
                                    errorStyle="stop", errorTitle="Value not allowed", error=rule.error,
                                    promptTitle=rule.prompt_title, prompt=rule.prompt)
                dv.sqref = MultiCellRange(" ".join(_ranges(coords)))
                ws.add_data_validation(dv)
            for (formula, _col), coords in rules.cf.items():
                first = coords[0]
                ws.conditional_formatting.add(" ".join(_ranges(coords)),
                                              FormulaRule(formula=[formula.replace("{cell}", first)], fill=AMBER_FILL))

    def print_setup(self, ws, area: str, landscape: bool, title_rows: Optional[str], what: str) -> None:
        ws.print_area = area
        ws.page_setup.orientation = "landscape" if landscape else "portrait"
        ws.page_setup.paperSize = ws.PAPERSIZE_A4
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
        ws.print_options.gridLines = False
        if title_rows:
            ws.print_title_rows = title_rows
        esc = lambda t: t.replace("&", "&&")  # noqa: E731
        ws.oddHeader.left.text = esc(f"{self.study.id}  {self.who}")
        ws.oddHeader.center.text = esc(what)
        ws.oddHeader.right.text = esc(f"Form version {self.study.form_version}")
        ws.oddFooter.left.text = esc(f"{self.study.id} protocol {self.study.protocol_version}")
        ws.oddFooter.center.text = esc(f"{self.who}   {what}")
        ws.oddFooter.right.text = "Page &P of &N"
        ws.page_margins.top = 0.8
        ws.page_margins.bottom = 0.8
        ws.page_margins.header = 0.3
        ws.page_margins.footer = 0.3


# -- small helpers ---------------------------------------------------------------------------
def _multi_example(study: Study) -> str:
    """', e.g. A; B' from the study's first multiple-choice item with two codes (none: no example)."""
    items = [it for v in study.visits for inst in v.forms for it in inst.items]
    items += [it for lg in study.logs for it in lg.form.items]
    for it in items:
        if it.kind is ItemKind.MULTI_CHOICE and it.codelist is not None and len(it.codelist.values) >= 2:
            return ", e.g. " + MULTI_SEPARATOR.join(str(c) for c in it.codelist.values[:2])
    return ""


def _window_text(v: Visit) -> str:
    w = v.window
    if v.day is None and w.anchor == "day0":
        return ""  # off the schedule with nothing to count from: any day
    if v.day is None:
        if w.before == 0:
            return f"<= {w.after} d after {w.anchor}"
        return f"-{w.before}/+{w.after} d around {w.anchor}"
    if w.before == 0 and w.after == 0:
        return "Day 0 (anchor)" if v.day == 0 and w.anchor == "day0" else "on the day"
    if v.kind == "screening":
        return f"Day {v.day - w.before} to Day {v.day + w.after}"
    return f"-{w.before}/+{w.after} d"


def _req_mark(item: Item) -> str:
    if not item.is_input:
        return ""
    if item.required:
        return "*"
    if item.condition or item.required_with:
        return "(*)"
    return ""


def _help_text(item: Item, role: str, note: str) -> str:
    parts = []
    if item.condition:
        vals = ", ".join(map(str, item.condition.values))
        parts.append(f"Required if {item.condition.item} = {vals}.")
    if item.required_with:
        parts.append(f"Required when {', '.join(item.required_with)} is filled.")
    if role == "input":
        k = item.kind
        if k in (ItemKind.INTEGER, ItemKind.DECIMAL):
            rng = describe_range(item)
            if rng:
                parts.append(f"Allowed {rng}.")
            soft = describe_soft(item)
            if soft:
                parts.append(f"Expected {soft}.")
            if item.reference_range and not item.reference_range.is_empty:
                parts.append(f"Normal range {item.reference_range.describe()}.")
        elif k == ItemKind.DATE:
            parts.append("Date DD-MMM-YYYY.")
        elif k == ItemKind.TIME:
            parts.append("HH:MM (24 h).")
        elif k == ItemKind.PARTIAL_DATE:
            parts.append("YYYY, YYYY-MM or YYYY-MM-DD.")
        elif k == ItemKind.CHOICE and item.codelist:
            parts.append(codes_text(item.codelist, 400) + ".")
        elif k == ItemKind.MULTI_CHOICE and item.codelist:
            parts.append(f"All that apply, separated by '{MULTI_SEPARATOR}': {codes_text(item.codelist, 400)}.")
        elif k == ItemKind.TEXT and item.pattern:
            parts.append(f"Format {item.pattern.strip('^$')}.")
    if note:
        parts.append(note)
    if item.help:
        parts.append(item.help)
    return " ".join(parts)


def _derived_words(item: Item) -> str:
    """What a calculated item is, in the study's words (x-derived-label), never its expression."""
    return (item.derived_label or "Calculated").rstrip(". ")


def _short_hint(item: Item) -> str:
    k = item.kind
    if not item.is_input:
        if item.derived is not None:
            return "calculated" if _translatable(item) else "data manager"
        return "fixed"
    cond = f"if {item.condition.item}={'/'.join(map(str, item.condition.values))}; " if item.condition else ""
    if k in (ItemKind.INTEGER, ItemKind.DECIMAL):
        return cond + (describe_range(item) or (item.unit or "number"))
    if k == ItemKind.DATE:
        return cond + "DD-MMM-YYYY"
    if k == ItemKind.TIME:
        return cond + "HH:MM"
    if k == ItemKind.PARTIAL_DATE:
        return cond + "YYYY[-MM[-DD]]"
    if k == ItemKind.CHOICE:
        return cond + "list"
    if k == ItemKind.MULTI_CHOICE:
        return cond + "codes; codes"
    return cond + f"text <= {item.max_length or 200}"


def _translatable(item: Item) -> bool:
    if item.derived is None:
        return False
    if constant_value(item.derived) is not None:
        return True
    try:
        translate(item.derived, lambda d: d)
        return True
    except Untranslatable:
        return False


def _log_width(item: Item) -> float:
    k = item.kind
    if k == ItemKind.DATE:
        return 13
    if k == ItemKind.TIME:
        return 8
    if k in (ItemKind.INTEGER, ItemKind.DECIMAL):
        return 10
    if k == ItemKind.PARTIAL_DATE:
        return 12
    if k == ItemKind.CHOICE and item.codelist:
        return max(11, min(28, max(len(str(c)) for c in item.codelist.values) + 3))
    if k == ItemKind.MULTI_CHOICE:
        return 30
    return 30 if (item.max_length or 200) > 40 else 16


def _lines(text: Optional[str], width: float) -> int:
    if not text:
        return 1
    total = 0
    for para in str(text).split("\n"):
        total += max(1, math.ceil(len(para) / max(width, 1)))
    return total


def _ranges(coords: list[str]) -> list[str]:
    """Cell coordinates merged into column runs: D5 D6 D7 D9 -> D5:D7 D9 (order kept)."""
    out: list[str] = []
    start = prev = None
    col0 = ""
    for coord in coords:
        col, row = re.match(r"([A-Z]+)(\d+)", coord).groups()  # type: ignore[union-attr]  # coord is a cell reference we wrote
        row = int(row)
        if prev is not None and col == col0 and row == prev + 1:
            prev = row
            continue
        if start is not None:
            out.append(f"{col0}{start}" if start == prev else f"{col0}{start}:{col0}{prev}")
        start = prev = row
        col0 = col
    if start is not None:
        out.append(f"{col0}{start}" if start == prev else f"{col0}{start}:{col0}{prev}")
    return out


_SHEET_DATA = re.compile(r"<sheetData\s*/>|<sheetData>\s*</sheetData>")


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fill_sheet_data(xml: bytes, rows: list[list[str]]) -> bytes:
    """Put rows of text (inline strings) into an empty worksheet part written by openpyxl."""
    out = ["<sheetData>"]
    width = 1
    for r, row in enumerate(rows, start=1):
        if not row:
            continue
        width = max(width, len(row))
        cells = []
        for j, value in enumerate(row):
            if value == "":
                continue
            ref = f"{get_column_letter(j + 1)}{r}"
            space = ' xml:space="preserve"' if value != value.strip() else ""
            cells.append(f'<c r="{ref}" t="inlineStr"><is><t{space}>{_xml_text(value)}</t></is></c>')
        out.append(f'<row r="{r}">{"".join(cells)}</row>')
    out.append("</sheetData>")
    text = xml.decode("utf-8")
    data = "".join(out)
    text = _SHEET_DATA.sub(lambda _m: data, text, count=1)
    text = re.sub(r'<dimension ref="[^"]*"', f'<dimension ref="A1:{get_column_letter(width)}{len(rows)}"', text, count=1)
    return text.encode("utf-8")


def _add_defined_names(xml: bytes, names_xml: str) -> bytes:
    text = xml.decode("utf-8")
    if "<definedNames>" in text:
        text = text.replace("<definedNames>", "<definedNames>" + names_xml, 1)
    else:
        text = text.replace("</sheets>", "</sheets><definedNames>" + names_xml + "</definedNames>", 1)
    return text.encode("utf-8")


def _attr(text: str) -> str:
    return _xml_text(text).replace('"', "&quot;")


def _detach_sheet_data(ws):
    """Serialise a worksheet's cells and rows as openpyxl would (inline strings, style ids), then
    remove them from the sheet; returns the function that puts them into the saved part."""
    wb = ws.parent
    styles = wb._cell_styles
    rows: dict[int, list] = defaultdict(list)
    for (r, _c), cell in sorted(ws._cells.items()):
        rows[r].append(cell)
    for r in ws.row_dimensions.keys() - rows.keys():
        rows[r] = []
    dimension = ws.calculate_dimension()
    out = ["<sheetData>"]
    for r in sorted(rows):
        attrs = {"r": str(r)}
        dim = ws.row_dimensions.get(r)
        if dim is not None:
            attrs.update(dict(dim))
        out.append("<row " + " ".join(f'{k}="{_attr(str(v))}"' for k, v in attrs.items()) + ">")
        for cell in rows[r]:
            styled = cell.has_style
            value = cell._value
            if value is None and not styled:
                continue
            head = f'<c r="{cell.coordinate}"' + (f' s="{styles.add(cell._style)}"' if styled else "")
            dtype = cell.data_type
            if value is None or value == "":
                out.append(head + (f' t="{dtype}"' if dtype not in ("s", "f") else ' t="inlineStr"' if dtype == "s" else "") + "/>")
            elif dtype == "s":
                space = ' xml:space="preserve"' if value.strip() and value != value.strip() else ""
                out.append(f'{head} t="inlineStr"><is><t{space}>{_xml_text(value)}</t></is></c>')
            elif dtype == "f":
                out.append(f"{head}><f>{_xml_text(value[1:])}</f><v></v></c>")
            elif dtype == "d":
                out.append(f'{head} t="n"><v>{safe_string(to_excel(value, wb.epoch))}</v></c>')
            else:
                out.append(f'{head} t="{dtype}"><v>{_xml_text(safe_string(value))}</v></c>')
        out.append("</row>")
    out.append("</sheetData>")
    xml_data = "".join(out)
    ws._cells.clear()
    for r in list(ws.row_dimensions.keys()):
        del ws.row_dimensions[r]

    def put(xml: bytes) -> bytes:
        text = xml.decode("utf-8")
        text = _SHEET_DATA.sub(lambda _m: xml_data, text, count=1)
        text = re.sub(r'<dimension ref="[^"]*"', f'<dimension ref="{dimension}"', text, count=1)
        return text.encode("utf-8")

    return put


def _deterministic_zip(data: bytes, rewrite: Optional[dict] = None) -> bytes:
    """Rewrite the package with fixed timestamps and document properties, entries in a stable order."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as dst:
        names = src.namelist()
        for name in names:  # openpyxl's order, which depends only on the workbook's content
            content = src.read(name)
            if rewrite and name in rewrite:
                content = rewrite[name](content)
            if name == "docProps/core.xml":
                text = content.decode("utf-8")
                text = re.sub(r"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)", rf"\g<1>{stamp}\g<3>", text)
                content = text.encode("utf-8")
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            info.create_system = 0
            dst.writestr(info, content, compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
    return out.getvalue()
