"""What the PDF templates draw, computed from the study model: item rows, entry areas, log pages.

The templates only place what is computed here, so every decision a form makes (how many digit
boxes, where a conditional item goes, how a log is cut into pages) is testable without rendering.
Anything the templates cannot show raises `PdfBuildError` naming the item.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Optional

from .model import Form, FormInstance, Item, ItemKind, Log, Scalar, Study, Visit

DEFAULT_INTEGER_DIGITS = 5  # an input number with no upper limit
TEXT_CHARS_PER_LINE = 70
MAX_TEXT_LINES = 4

# SDTM domain names (SDTMIG 3.4) printed in the annotated CRF's domain boxes ("DM = Demographics").
DOMAIN_NAMES = {
    "AE": "Adverse Events", "AG": "Procedure Agents", "BE": "Biospecimen Events", "BS": "Biospecimen Findings",
    "CE": "Clinical Events", "CM": "Concomitant/Prior Medications", "CO": "Comments", "CP": "Cell Phenotype Findings",
    "CV": "Cardiovascular System Findings", "DA": "Product Accountability", "DD": "Death Details", "DM": "Demographics",
    "DS": "Disposition", "DV": "Protocol Deviations", "EC": "Exposure as Collected", "EG": "ECG Test Results",
    "EX": "Exposure", "FA": "Findings About Events or Interventions", "FT": "Functional Tests", "GF": "Genomics Findings",
    "HO": "Healthcare Encounters", "IE": "Inclusion/Exclusion Criteria Not Met", "IS": "Immunogenicity Specimen Assessments",
    "LB": "Laboratory Test Results", "MB": "Microbiology Specimen", "MH": "Medical History", "MI": "Microscopic Findings",
    "MK": "Musculoskeletal System Findings", "ML": "Meal Data", "MS": "Microbiology Susceptibility",
    "NV": "Nervous System Findings", "OE": "Ophthalmic Examinations", "PC": "Pharmacokinetics Concentrations",
    "PE": "Physical Examination", "PP": "Pharmacokinetics Parameters", "PR": "Procedures", "QS": "Questionnaires",
    "RE": "Respiratory System Findings", "RP": "Reproductive System Findings", "RS": "Disease Response and Clin Classification",
    "SC": "Subject Characteristics", "SE": "Subject Elements", "SM": "Subject Disease Milestones", "SR": "Skin Response",
    "SS": "Subject Status", "SU": "Substance Use", "SV": "Subject Visits", "TR": "Tumor/Lesion Results",
    "TU": "Tumor/Lesion Identification", "UR": "Urinary System Findings", "VS": "Vital Signs",
}
# One colour per domain, assigned in sorted domain order so the same study always gets the same colours.
DOMAIN_PALETTE = (
    "#cfe2ff", "#ffe0b2", "#d4f0d4", "#f8d0e0", "#e6dcf7", "#fff3b0", "#cdeff2", "#f3d9c7",
    "#dde8c0", "#f0d0d0", "#d8dcf0", "#e0f0e8", "#f5e6c8", "#e8d8e8", "#d0e8f8", "#eeeecc",
)


class PdfBuildError(Exception):
    """The study holds something the printed forms cannot show; the message names the item."""


@dataclass(frozen=True)
class PageGeometry:
    name: str  # CSS page size keyword
    width_mm: float
    height_mm: float

    @property
    def landscape(self) -> "PageGeometry":
        return PageGeometry(self.name + " landscape", self.height_mm, self.width_mm)


PAGE_SIZES = {"A4": PageGeometry("A4", 210.0, 297.0), "Letter": PageGeometry("letter", 215.9, 279.4)}
# Page margins (mm), shared with the stylesheet through template variables.
MARGIN_TOP, MARGIN_BOTTOM, MARGIN_SIDE = 31.0, 17.0, 13.0


# -- entry areas -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Option:
    code: str
    label: str
    fixed: bool = False


@dataclass(frozen=True)
class Entry:
    """The entry area of one item. `kind` selects the template macro."""

    kind: str  # number, date, partial-date, time, choice, multi-choice, text, calculated, fixed
    int_digits: int = 0
    decimals: int = 0
    signed: bool = False
    unit: Optional[str] = None
    options: tuple[Option, ...] = ()
    text_lines: int = 1
    text_width_pct: int = 100
    text: str = ""  # calculated expression or pre-filled value


def _num(value: Optional[float]) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _code_text(code: Scalar) -> str:
    if isinstance(code, float) and code.is_integer():
        return f"{code:.1f}"
    return str(code)


def integer_digits(item: Item) -> int:
    bounds = [b for b in (item.hard.low, item.hard.high) if b is not None]
    if item.hard.high is None:
        return DEFAULT_INTEGER_DIGITS
    return max(1, max(len(str(int(abs(b)))) for b in bounds))


def _literal(expr: str) -> Optional[str]:
    match = re.fullmatch(r'\s*"([^"]*)"\s*', expr)
    return match.group(1) if match else None


def entry_for(item: Item) -> Entry:
    if item.fixed is not None:
        label = item.codelist.label(item.fixed) if item.codelist else str(item.fixed)
        return Entry("fixed", unit=item.unit, text=label)
    if item.derived is not None:
        literal = _literal(item.derived)
        if literal is not None:
            shown = item.codelist.label(literal) if item.codelist else literal
            return Entry("calculated", unit=item.unit, text=f"pre-set: {shown}")
        # the study's words (x-derived-label), never the expression: the site cannot read code
        return Entry("calculated", unit=item.unit, text=(item.derived_label or "Calculated").rstrip(". "))
    kind = item.kind
    if kind in (ItemKind.INTEGER, ItemKind.DECIMAL):
        low = item.hard.low
        return Entry("number", int_digits=integer_digits(item), decimals=item.decimals if kind == ItemKind.DECIMAL else 0,
                     signed=low is None or low < 0, unit=item.unit)
    if kind in (ItemKind.DATE, ItemKind.PARTIAL_DATE, ItemKind.TIME):
        return Entry(kind.value)
    if kind in (ItemKind.CHOICE, ItemKind.MULTI_CHOICE):
        if item.codelist is None:
            raise PdfBuildError(f"item {item.id} ({item.pointer}) is a {kind.value} item without a code list; the form cannot print its options")
        return Entry(kind.value, unit=item.unit, options=tuple(Option(_code_text(c.code), c.label) for c in item.codelist.codes))
    if kind == ItemKind.TEXT:
        length = item.max_length or 200
        lines = min(MAX_TEXT_LINES, max(1, math.ceil(length / TEXT_CHARS_PER_LINE)))
        width = 100 if lines > 1 else max(25, min(100, round(length * 100 / TEXT_CHARS_PER_LINE)))
        return Entry("text", unit=item.unit, text_lines=lines, text_width_pct=width)
    raise PdfBuildError(f"item {item.id} ({item.pointer}) has kind {kind!r}, which the PDF forms cannot show; use one of {', '.join(k.value for k in ItemKind)}")


def hint_for(item: Item) -> list[str]:
    """Small-print lines under the question: help, soft range, hard range, dependencies."""
    lines: list[str] = []
    if item.help:
        lines.append(item.help)
    unit = f" {item.unit}" if item.unit else ""
    if item.is_input and item.soft is not None and not item.soft.is_empty:
        text = f"Expected {item.soft.describe()}{unit}"
        text += f": {item.soft_message}" if item.soft_message else "; otherwise confirm the value"
        lines.append(text)
    if item.is_input and item.is_number and not item.hard.is_empty:
        lines.append(f"Allowed {item.hard.describe()}{unit}")
    if item.reference_range is not None and not item.reference_range.is_empty:
        ref = item.reference_range
        text = f"{_num(ref.low)} to {_num(ref.high)}" if ref.low is not None and ref.high is not None else ref.describe()
        lines.append(f"Normal range {text}{unit}")
    if item.required_with:
        lines.append("Required when " + " or ".join(item.required_with) + " is filled")
    if item.kind == ItemKind.PARTIAL_DATE and item.is_input:
        lines.append("Unknown day: UN; unknown month: UNK")
    return [line.rstrip(". ") for line in lines]


# -- annotated CRF -------------------------------------------------------------------------

def parent_domain(domain: str) -> str:
    return domain[4:] if domain.startswith("SUPP") and len(domain) > 4 else domain


def annotation_text(item: Item) -> str:
    if not item.sdtm.submitted:
        return "[NOT SUBMITTED]"  # in brackets, as the Metadata Submission Guidelines write it
    text = item.sdtm.annotation()
    if item.sdtm.submitted and item.sdtm.variable == "QVAL" and item.sdtm.domain:
        text += f" in {item.sdtm.domain}"
    if item.sdtm.variable == "LBORRES" and item.unit:  # the unit is printed, not collected: LBORRESU comes from it
        text += f"; LBORRESU = \"{item.unit}\""
    return text


def domain_colours(study: Study) -> dict[str, str]:
    domains = sorted({parent_domain(it.sdtm.domain) for _, _, it in study.iter_fields() if it.sdtm.domain})
    return {d: DOMAIN_PALETTE[i % len(DOMAIN_PALETTE)] for i, d in enumerate(domains)}


@dataclass(frozen=True)
class DomainBox:
    domain: str
    name: str
    colour: str
    supplements: tuple[str, ...]


def domain_boxes(form: Form, colours: dict[str, str]) -> tuple[DomainBox, ...]:
    found: dict[str, set[str]] = {}
    for it in form.items:
        if it.sdtm.domain:
            parent = parent_domain(it.sdtm.domain)
            found.setdefault(parent, set())
            if it.sdtm.domain != parent:
                found[parent].add(it.sdtm.domain)
    unnamed = sorted(d for d in found if d not in DOMAIN_NAMES)
    if unnamed:
        raise PdfBuildError(f"form {form.id}: SDTM domain {', '.join(unnamed)} is not an SDTMIG domain, so its aCRF box cannot name it "
                            f"(a box reads \"DM = Demographics\"); use one of {', '.join(sorted(DOMAIN_NAMES))}")
    return tuple(DomainBox(d, DOMAIN_NAMES[d], colours.get(d, "#eeeeee"), tuple(sorted(found[d]))) for d in sorted(found))


# -- form rows -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    item: Item
    depth: int
    caption: Optional[str]  # "If Yes:" above the first item of a conditional group
    entry: Entry
    hints: tuple[str, ...]
    annotation: str
    domain_colour: str


def condition_caption(form: Form, item: Item) -> str:
    cond = item.condition
    assert cond is not None
    if form.has(cond.item):
        parent = form.item(cond.item)
        labels = [parent.codelist.label(v) if parent.codelist else str(v) for v in cond.values]
        return "If " + " or ".join(labels) + ":"
    return f"If {cond.item} is " + " or ".join(str(v) for v in cond.values) + ":"


def form_rows(form: Form, colours: dict[str, str]) -> tuple[Row, ...]:
    """Items in printed order, each conditional item set under the item it depends on."""
    children: dict[str, list[Item]] = {}
    top: list[Item] = []
    for it in form.items:
        if it.condition and form.has(it.condition.item) and it.condition.item != it.id:
            children.setdefault(it.condition.item, []).append(it)
        else:
            top.append(it)
    rows: list[Row] = []
    placed: set[str] = set()

    def emit(item: Item, depth: int, caption: Optional[str]) -> None:
        if item.id in placed:  # a condition cycle; the loader forbids it, print once regardless
            return
        placed.add(item.id)
        rows.append(Row(item, depth, caption, entry_for(item), tuple(hint_for(item)), annotation_text(item),
                        colours.get(parent_domain(item.sdtm.domain), "#eeeeee") if item.sdtm.domain else "#e4e4e4"))
        previous: Optional[tuple] = None
        for child in children.get(item.id, ()):
            assert child.condition is not None
            key = child.condition.values
            own_if = child.question.lower().startswith("if ")
            caption_here = None if (key == previous or own_if) else condition_caption(form, child)
            previous = key
            emit(child, depth + 1, caption_here)

    for it in top:
        caption = condition_caption(form, it) if it.condition and not it.question.lower().startswith("if ") else None
        emit(it, 0, caption)
    for it in form.items:  # items only reachable through a cycle
        if it.id not in placed:
            emit(it, 0, None)
    return tuple(rows)


@dataclass(frozen=True)
class FormView:
    anchor: str
    name: str
    title: str
    form: Form
    rows: tuple[Row, ...]
    domains: tuple[DomainBox, ...]
    visits: tuple[str, ...] = ()  # annotated CRF: visits collecting this form instance
    new_page: bool = True  # False: shares the page of the form before (a short form)
    footer: str = ""  # form id(s) and version(s) printed in the footer of its pages

    @property
    def tail_start(self) -> int:
        """Index of the first of the rows kept on one page with the form's end (and signature)."""
        return max(0, len(self.rows) - TAIL_ROWS)

    @property
    def version_label(self) -> str:
        return f"{self.label} {self.name} v{self.form.version}" if self.name != self.form.id else f"{self.label} v{self.form.version}"

    @property
    def label(self) -> str:
        code = f"{self.form.code} " if self.form.code else ""
        return f"{code}{self.form.id}"


def form_view(anchor: str, inst: FormInstance, colours: dict[str, str], visits: tuple[str, ...] = ()) -> FormView:
    return FormView(anchor, inst.name, inst.title, inst.form, form_rows(inst.form, colours), domain_boxes(inst.form, colours), visits)


TAIL_ROWS = 4  # a form's last rows break together, so a page never holds one item alone
COMPACT_ROWS = 4  # a form this short lets the next form start on its page
PAGE_ROWS = 20  # ... as long as the page then holds no more rows than this


def paginate(forms: list[FormView]) -> list[FormView]:
    """Start each form on a new page, except after a short form; the footer names every form on the page."""
    groups: list[list[FormView]] = []
    for f in forms:
        group_rows = sum(len(g.rows) for g in groups[-1]) if groups else 0
        if groups and group_rows <= COMPACT_ROWS and group_rows + len(f.rows) <= PAGE_ROWS:
            groups[-1].append(f)
        else:
            groups.append([f])
    out = []
    for n, group in enumerate(groups):
        footer = ("Form " if len(group) == 1 else "Forms ") + " + ".join(g.version_label for g in group)
        for i, f in enumerate(group):
            out.append(replace(f, new_page=(i == 0 and n > 0), footer=footer))
    return out


def visit_caption(visit: Visit) -> str:
    """Week, day, window and infusion, leaving out what the visit label already says."""
    parts = []
    if visit.week is not None:
        parts.append(f"Week {visit.week}")
    if visit.day is not None:
        parts.append(f"Day {visit.day}")
    w = visit.window
    if visit.day is not None and (w.before or w.after):
        parts.append(f"window -{w.before}/+{w.after} d")
    if visit.infusion:
        parts.append(f"infusion {visit.infusion}")
    if visit.repeating:  # one printed copy of these pages per attack / unscheduled visit, numbered 1, 2 ...
        parts.append(f"a copy each time ({visit.id}#1, #2 ...)")
    label = visit.label.lower()
    return ", ".join(p for p in parts if p.lower() not in label)


def unique_instances(study: Study) -> list[tuple[FormInstance, tuple[str, ...]]]:
    """Each distinct form instance once (same form, items and fixed values), with the visits collecting it."""
    order: list[tuple] = []
    found: dict[tuple, tuple[FormInstance, list[str]]] = {}
    for visit in study.visits:
        for inst in visit.forms:
            key = (inst.form.id, inst.title, tuple((it.id, repr(it.fixed), it.required, it.condition) for it in inst.items))
            if key not in found:
                found[key] = (inst, [])
                order.append(key)
            found[key][1].append(visit.id)
    return [(found[k][0], tuple(found[k][1])) for k in order]


# -- logs ------------------------------------------------------------------------------------

LOG_ROW_NUMBER_MM = 8.0
LOG_BOX_MM = 3.7  # digit box width in log cells
LOG_MIN_TEXT_MM = 42.0
LOG_BAND_MM = 9.0  # one band of one record
LOG_HEADER_BAND_MM = 10.5
LOG_TITLE_MM = 11.0
LOG_LEGEND_LINE_MM = 3.3
LOG_SAFETY_MM = 3.0
TICK_MAX_CODES = 3


@dataclass(frozen=True)
class LogCell:
    item: Item
    width_pct: float
    mode: str  # number, date, partial-date, time, ticks, key, keys, text, calculated
    entry: Entry
    caption: Optional[str]
    annotation: str
    domain_colour: str


@dataclass(frozen=True)
class LegendEntry:
    item_id: str
    question: str
    keys: tuple[tuple[str, str], ...]  # (number or code, label)
    note: str = ""  # a calculated cell: what it is, too long for the cell


@dataclass(frozen=True)
class LogPage:
    first_row: int
    rows: tuple[int, ...]


@dataclass(frozen=True)
class LogView:
    anchor: str
    log: Log
    bands: tuple[tuple[LogCell, ...], ...]
    legend: tuple[LegendEntry, ...]
    pages: tuple[LogPage, ...]
    domains: tuple[DomainBox, ...]


def _log_cell_width(item: Item, entry: Entry) -> tuple[float, str]:
    box = LOG_BOX_MM
    if entry.kind == "calculated" or entry.kind == "fixed":
        return 30.0, entry.kind
    if entry.kind == "number":
        n = entry.int_digits + entry.decimals + (1 if entry.signed else 0)
        unit = len(entry.unit or "") * 1.6
        return max(18.0, n * box + (2.0 if entry.decimals else 0) + unit + 4), "number"
    if entry.kind in ("date", "partial-date"):
        return 9 * box + 10, entry.kind
    if entry.kind == "time":
        return 4 * box + 10, "time"
    if entry.kind == "choice" and len(entry.options) <= TICK_MAX_CODES:
        return max(20.0, sum(len(_short(o)) * 1.7 + box + 3 for o in entry.options) + 3), "ticks"
    if entry.kind == "choice":
        return 18.0, "key"
    if entry.kind == "multi-choice":
        return 34.0, "keys"
    return LOG_MIN_TEXT_MM, "text"


def _short(option: Option) -> str:
    return option.label if len(option.label) <= 10 else option.code


def log_view(anchor: str, log: Log, page: PageGeometry, colours: dict[str, str]) -> LogView:
    """Cut a log into ruled pages: each record is a few bands of cells; as many records per page as fit."""
    sheet = page.landscape
    usable = sheet.width_mm - 2 * MARGIN_SIDE - LOG_ROW_NUMBER_MM - 1
    cells: list[tuple[Item, float, str, Entry]] = []
    legend: list[LegendEntry] = []
    for it in log.form.items:
        entry = entry_for(it)
        width, mode = _log_cell_width(it, entry)
        cells.append((it, width, mode, entry))
        if mode == "calculated" and not entry.text.startswith("pre-set"):
            legend.append(LegendEntry(it.id, it.question, (), entry.text))
        elif mode in ("key", "keys"):
            legend.append(LegendEntry(it.id, it.question, tuple((str(n), o.label) for n, o in enumerate(entry.options, 1))))
        elif mode == "ticks" and any(_short(o) != o.label for o in entry.options):
            legend.append(LegendEntry(it.id, it.question, tuple((o.code, o.label) for o in entry.options)))
    bands: list[list[tuple[Item, float, str, Entry]]] = [[]]
    used = 0.0
    for cell in cells:
        if bands[-1] and used + cell[1] > usable:
            bands.append([])
            used = 0.0
        bands[-1].append(cell)
        used += cell[1]
    out_bands = []
    for band in bands:
        total = sum(c[1] for c in band)
        spare = usable - total
        flexible = [c for c in band if c[2] == "text"] or band
        flex_total = sum(c[1] for c in flexible)
        band_cells = []
        for it, width, mode, entry in band:
            if any(c[0] is it for c in flexible):
                width += spare * width / flex_total
            caption = None
            if it.condition and not it.question.lower().startswith("if "):
                caption = condition_caption(log.form, it)
            # rounded down: widths adding up to 100.001% push the last cell under the next band
            band_cells.append(LogCell(it, math.floor(width * 100_000 / usable) / 1000, mode, entry, caption, annotation_text(it),
                                      colours.get(parent_domain(it.sdtm.domain), "#eeeeee") if it.sdtm.domain else "#e4e4e4"))
        out_bands.append(tuple(band_cells))
    legend_chars_per_line = usable / 1.15
    legend_lines = sum(math.ceil((len(e.question) + len(e.note) + sum(len(k) + len(v) + 4 for k, v in e.keys)) / legend_chars_per_line) for e in legend)
    available = (sheet.height_mm - MARGIN_TOP - MARGIN_BOTTOM - LOG_TITLE_MM - LOG_SAFETY_MM
                 - len(out_bands) * LOG_HEADER_BAND_MM - legend_lines * LOG_LEGEND_LINE_MM)
    per_page = max(1, int(available // (len(out_bands) * LOG_BAND_MM + 0.6)))
    pages = tuple(LogPage(start + 1, tuple(range(start + 1, min(log.rows, start + per_page) + 1)))
                  for start in range(0, log.rows, per_page))
    return LogView(anchor, log, tuple(out_bands), tuple(legend), pages, domain_boxes(log.form, colours))


# -- schedule of assessments -----------------------------------------------------------------

@dataclass(frozen=True)
class ScheduleRow:
    label: str
    marks: tuple[str, ...]  # per visit: "" or the instance names collected ("VS_PRE, VS_POST")


def schedule_matrix(study: Study) -> tuple[ScheduleRow, ...]:
    """Forms x visits: one row per form definition, in first-use order."""
    forms: dict[str, str] = {}
    for visit in study.visits:
        for inst in visit.forms:
            forms.setdefault(inst.form.id, inst.form.title)
    rows = []
    for form_id, title in forms.items():
        marks = []
        for visit in study.visits:
            names = [i.name for i in visit.forms if i.form.id == form_id]
            marks.append("X" if names == [form_id] else " ".join(n.replace(form_id + "_", "") for n in names))
        rows.append(ScheduleRow(f"{title} ({form_id})", tuple(marks)))
    return tuple(rows)


@dataclass
class TocEntry:
    label: str
    anchor: str
    page: int = 0
    level: int = 1
    children: list["TocEntry"] = field(default_factory=list)
