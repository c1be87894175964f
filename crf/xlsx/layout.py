"""The layout of a subject's workbook: the instructions, the visit calendar, one sheet per visit (one per
instance of a repeating visit) and one per log, the hidden code lists and _meta; which cell each input is in
and the defined name it carries (crf.fieldmap), its style, and the validations collected per (sheet, rule) while
cells are placed, then added once (a few hundred shared objects instead of one per cell).
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional

from openpyxl import Workbook
from openpyxl.formatting.rule import FormulaRule
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter, quote_sheetname
from openpyxl.worksheet.cell_range import MultiCellRange
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.properties import PageSetupProperties

from .. import __version__, schedule
from ..contract import (CALENDAR_SHEET, DATE_FORMAT, FORMAT_VERSION, INSTRUCTIONS_SHEET, LISTS_SHEET, META_SHEET,
                        MULTI_SEPARATOR, TIME_FORMAT)
from ..fieldmap import FieldPath, defined_name
from ..model import CodeList, Item, ItemKind, Log, Study, Visit, split_visit_key
from ..ooxml_zip import FIXED_TIME
from ..subject import SubjectRecord
from ..xlsx_formula import Untranslatable, constant_value, translate
from . import ooxml, texts
from .styles import (ALERT_FILL, AMBER_FILL, BOLD, BOX, CENTER, HEADER_FILL, HEADER_FONT, HELP_FONT, ITALIC_GREY, LOCKED,
                     MANUAL_FILL, OPTIONAL_FILL, READONLY_FILL, RED_BOLD, REQUIRED_FILL, SECTION_FILL, SMALL_GREY, TITLE,
                     TOP, UNLOCKED, WHITE_BOLD, WRAP, CellStyles)
from .texts import log_sheet_text, sheet_title, visit_sheet_text
from .validations import EARLIEST_DATE, Rule, list_name, rule_for, soft_formula
from .values import excel_value, number_format

INSTRUCTIONS, CALENDAR, LISTS, META = INSTRUCTIONS_SHEET, CALENDAR_SHEET, LISTS_SHEET, META_SHEET


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


class Builder:
    def __init__(self, study: Study, site: Optional[str], subject: Optional[str], record: Optional[SubjectRecord]):
        self.study = study
        self.site = site or ""
        self.subject = subject or ""
        self.record = record
        self.wb = Workbook()
        self.cells: list[_Cell] = []
        self.st = CellStyles()
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
        rewrite = {self.meta_part: lambda xml: ooxml.fill_sheet_data(xml, self.meta_rows)}
        names_xml = "".join(f'<definedName name="{n}">{ooxml.xml_text(self.names[n])}</definedName>' for n in sorted(self.names))
        rewrite["xl/workbook.xml"] = lambda xml: ooxml.add_defined_names(xml, names_xml)
        # the big sheets' cells are serialised here (openpyxl's writer takes ~30 us a cell)
        for index, ws in enumerate(wb.worksheets, start=1):
            if ws.title in self.fast_sheets:
                rewrite[f"xl/worksheets/sheet{index}.xml"] = ooxml.detach_sheet_data(ws)
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
        return ooxml.save(wb, rewrite)

    # -- helpers
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
                    note = f"{texts.derived_words(item)}. The workbook calculates it."
                    self.st(c, ITALIC_GREY, READONLY_FILL, BOX, TOP, LOCKED, fmt)
                except Untranslatable:
                    role = "manual"
                    note = f"{texts.derived_words(item)}. Calculated by the data manager; leave blank."
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
        window = texts.window_text(visit)
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
                path = str(FieldPath.visit(key, inst.name, item.id))
                value = self.record.value(key, inst.name, item.id) if self.record else None
                self.st(ws.cell(r, 1, item.id), SMALL_GREY, None, None, TOP)
                self.st(ws.cell(r, 2, item.question), None, None, None, WRAP)
                mark = texts.req_mark(item)
                if mark:
                    self.st(ws.cell(r, 3, mark), RED_BOLD, None, None, CENTER)
                if item.unit:
                    self.st(ws.cell(r, 5, item.unit), None, None, None, TOP)
                role, note = self.place_item(ws, sheet, coord, "D", item, path, name, resolve, value, item.required)
                help_text = texts.help_text(item, role, note)
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
            mark = texts.req_mark(item)
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
            hint = ws.cell(hint_row, j, texts.short_hint(item))
            hint.font = SMALL_GREY
            hint.alignment = WRAP
            hint.fill = HEADER_FILL
            hint.border = BOX
        ws.row_dimensions[q_row].height = min(13 * max_lines + 4, 160)
        hint_lines = max(_lines(texts.short_hint(it), _log_width(it) - 1) for it in items) if items else 1
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
                path = str(FieldPath.log(log.id, row, item.id))
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
            window = "" if days is not None else (f" ({texts.window_text(v)})" if texts.window_text(v) else "")
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
            f"Multiple choice: type every code that applies separated by '{MULTI_SEPARATOR}'{texts.multi_example(self.study)}.",
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
