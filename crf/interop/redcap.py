"""REDCap data dictionaries: read one (both header styles), import it as a study, convert its records.

A dictionary is a CSV of one row per field (docs/interop.md lists the columns). `read_dictionary` parses it
strictly: a choices cell that does not parse, a duplicate or malformed field name, a row with the wrong number
of cells refuse the import, each named by file, row and column. Everything else that cannot be carried over
exactly (descriptive fields, file uploads, branching logic beyond one field's codes, calculations outside the
expression language, action tags) is imported as far as it goes and noted, row and column included.

Events (`event.csv`/`events.csv` beside the dictionary) become visits; which instruments an event collects and
which instruments repeat are read from the records export (`data.csv`/`records.csv`) when it is there, since a
dictionary does not say. `records_to_documents` turns that export into subject documents (crf.subject).
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .. import expressions
from ..loader import _code_key
from ..model import Study
from .studywriter import DraftForm, DraftInstance, DraftLog, DraftStudy, DraftVisit, ImportRefused, Note, identifier

COLUMNS = ("field_name", "form_name", "section_header", "field_type", "field_label", "select_choices_or_calculations",
           "field_note", "text_validation_type_or_show_slider_number", "text_validation_min", "text_validation_max",
           "identifier", "branching_logic", "required_field", "custom_alignment", "question_number", "matrix_group_name",
           "matrix_ranking", "field_annotation")
DISPLAY_HEADERS = ("Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
                   "Choices, Calculations, OR Slider Labels", "Field Note", "Text Validation Type OR Show Slider Number",
                   "Text Validation Min", "Text Validation Max", "Identifier?", "Branching Logic (Show field only if...)",
                   "Required Field?", "Custom Alignment", "Question Number (surveys only)", "Matrix Group Name",
                   "Matrix Ranking?", "Field Annotation")
LETTERS = "ABCDEFGHIJKLMNOPQR"  # the spreadsheet column of each of the 18 columns, for messages
FIELD_TYPES = ("text", "notes", "dropdown", "radio", "checkbox", "yesno", "truefalse", "calc", "file", "slider", "descriptive", "sql")
NOTES_LENGTH = 2000
DEFAULT_LOG_ROWS = 10
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# REDCap's own patterns for its text validation types (what REDCap accepts; dates and numbers are typed items here)
PATTERNS = {
    "email": r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
    "phone": r"^\(?\d{3}\)?[-. ]?\d{3}[-. ]?\d{4}$",
    "phone_australia": r"^(\(0[2-8]\)|0[2-8])?[ ]?\d{4}[ ]?\d{4}$",
    "zipcode": r"^\d{5}(-\d{4})?$",
    "postalcode_australia": r"^\d{4}$",
    "postalcode_canada": r"^[ABCEGHJKLMNPRSTVXY]\d[A-Z] ?\d[A-Z]\d$",
    "postalcode_french": r"^\d{5}$",
    "postalcode_germany": r"^\d{5}$",
    "ssn": r"^\d{3}-\d\d-\d{4}$",
    "mrn_10d": r"^\d{10}$",
    "mrn_generic": r"^[A-Za-z0-9-_.]+$",
    "vmrn": r"^[0-9]{4,9}$",
    "alpha_only": r"^[A-Za-z]+$",
    "time_mm_ss": r"^[0-5]\d:[0-5]\d$",
    "time_hh_mm_ss": r"^([01]\d|2[0-3]):[0-5]\d:[0-5]\d$",
    "datetime": r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})?$",
}
DATE_TYPES = ("date_ymd", "date_mdy", "date_dmy")
DATETIME_TYPES = ("datetime_ymd", "datetime_mdy", "datetime_dmy", "datetime_seconds_ymd", "datetime_seconds_mdy", "datetime_seconds_dmy")
NUMBER_DECIMALS = {"number": 2, "number_comma_decimal": 2, **{f"number_{n}dp": n for n in range(1, 5)},
                   **{f"number_{n}dp_comma_decimal": n for n in range(1, 5)}}
YESNO = ("YN10", {"1": "Yes", "0": "No"})
TRUEFALSE = ("TF10", {"1": "True", "0": "False"})


@dataclass(frozen=True)
class Field:
    row: int  # spreadsheet row (the header is row 1)
    name: str
    form: str
    section: str
    type: str
    label: str
    choices: str
    note: str
    validation: str
    minimum: str
    maximum: str
    identifier: bool
    branching: str
    required: bool
    alignment: str
    question_number: str
    matrix: str
    matrix_ranking: bool
    annotation: str


@dataclass
class Dictionary:
    path: Path
    fields: list[Field]
    header_style: str  # "display" or "api"
    choices: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # field name -> [(code, label)]

    @property
    def record_id(self) -> str:
        return self.fields[0].name

    def forms(self) -> list[str]:
        seen: list[str] = []
        for f in self.fields:
            if f.form not in seen:
                seen.append(f.form)
        return seen


def _where(path: Path, row: Optional[int] = None, column: Optional[int] = None) -> str:
    text = str(path)
    if row is not None:
        text += f", row {row}"
    if column is not None:
        text += f", column {LETTERS[column]} ({DISPLAY_HEADERS[column]})"
    return text


def _normalise(header: str) -> str:
    return re.sub(r"[^a-z]", "", header.lower())


def _decode(raw: bytes, path: Path, notes: list[Note]) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        notes.append(Note("warning", _where(path, line), f"byte {raw[exc.start:exc.start + 1]!r} is not UTF-8; it was replaced by \ufffd (save the dictionary as UTF-8)"))
        return raw.decode("utf-8-sig", errors="replace")


def parse_choices(text: str) -> list[tuple[str, str]]:
    """`1, Yes | 2, No` -> [("1", "Yes"), ("2", "No")]; the code is everything before the first comma."""
    out: list[tuple[str, str]] = []
    for part in text.split("|"):
        part = part.strip()
        if not part:
            raise ValueError("an empty choice between two '|'")
        code, comma, label = part.partition(",")
        if not comma:
            raise ValueError(f"choice {part!r} has no 'code, label' comma")
        code, label = code.strip(), label.strip()
        if not code:
            raise ValueError(f"choice {part!r} has no code before the comma")
        if any(c == code for c, _ in out):
            raise ValueError(f"code {code!r} is given twice")
        out.append((code, label or code))
    return out


def read_dictionary(path: Path) -> tuple[Dictionary, list[Note]]:
    """Parse a data dictionary CSV; raise ImportRefused listing every cell that makes it unreadable."""
    path = Path(path)
    notes: list[Note] = []
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportRefused([Note("refused", str(path), f"cannot be read: {exc.strerror}")])
    text = _decode(raw, path, notes)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        raise ImportRefused([Note("refused", str(path), "the file is empty; a REDCap data dictionary has a header row and one row per field")])
    header = [h.strip() for h in rows[0]]
    normalised = [_normalise(h) for h in header]
    if normalised[:len(COLUMNS)] == [_normalise(c) for c in COLUMNS]:
        style = "api"
    elif normalised[:len(COLUMNS)] == [_normalise(c) for c in DISPLAY_HEADERS] or (len(header) >= 18 and normalised[0] in ("variablefieldname", "fieldname")):
        style = "display"
    else:
        raise ImportRefused([Note("refused", _where(path, 1), "the header is not a REDCap data dictionary's (18 columns from 'Variable / Field Name' or 'field_name' to 'Field Annotation')")])
    body = rows[1:]
    # R writes the literal NA in every empty cell; the flag columns can only be "y" or blank, so NA there gives it away
    na_mode = any(r[c].strip() == "NA" for r in body for c in (10, 12, 16) if len(r) > c)
    if na_mode:
        notes.append(Note("approximate", str(path), "the file writes NA in empty cells (an R export); every cell that is exactly NA is read as empty"))
    problems: list[Note] = []
    fields: list[Field] = []
    seen: dict[str, int] = {}
    for index, row in enumerate(body, start=2):
        if not any(c.strip() for c in row):
            continue  # REDCap's trailing blank line
        if len(row) < 18:
            row = row + [""] * (18 - len(row))
        if len(row) > 18 and any(c.strip() for c in row[18:]):
            problems.append(Note("refused", _where(path, index), f"the row has {len(row)} cells, not 18 (an unquoted comma in a label?)"))
            continue
        cells = [("" if na_mode and c.strip() == "NA" else c) for c in row[:18]]
        for column, cell in enumerate(cells):
            if "\ufffd" in cell:
                notes.append(Note("warning", _where(path, index, column), f"the text {cell.strip()[:60]!r} holds the replacement character \ufffd: "
                                  "characters were lost before this file was written; retype them in the study folder"))
        name, form, ftype = cells[0].strip(), cells[1].strip(), cells[3].strip().lower()
        if not _NAME.match(name):
            problems.append(Note("refused", _where(path, index, 0), f"field name {name!r} is not a REDCap variable name (lower-case letters, digits and _, starting with a letter)"))
            continue
        if name in seen:
            problems.append(Note("refused", _where(path, index, 0), f"field {name} is defined twice (first on row {seen[name]})"))
            continue
        seen[name] = index
        if not _NAME.match(form):
            problems.append(Note("refused", _where(path, index, 1), f"form name {form!r} is not a REDCap instrument name"))
            continue
        if ftype not in FIELD_TYPES:
            problems.append(Note("refused", _where(path, index, 3), f"field type {cells[3]!r} is not a REDCap field type ({', '.join(FIELD_TYPES)})"))
            continue
        fields.append(Field(index, name, form, cells[2].strip(), ftype, cells[4].strip(), cells[5].strip(), cells[6].strip(),
                            cells[7].strip(), cells[8].strip(), cells[9].strip(), cells[10].strip().lower() == "y", cells[11].strip(),
                            cells[12].strip().lower() == "y", cells[13].strip(), cells[14].strip(), cells[15].strip(),
                            cells[16].strip().lower() == "y", cells[17].strip()))
    dictionary = Dictionary(path, fields, style)
    for f in fields:
        if f.type in ("dropdown", "radio", "checkbox"):
            try:
                dictionary.choices[f.name] = parse_choices(f.choices)
            except ValueError as exc:
                problems.append(Note("refused", _where(path, f.row, 5), f"the choices of {f.name} do not parse: {exc}; write them as 'code, label | code, label'"))
    if not fields and not problems:
        problems.append(Note("refused", str(path), "the dictionary has no field rows"))
    if problems:
        raise ImportRefused(problems)
    return dictionary, notes


# -- branching logic and calculations -------------------------------------------------------
_COMPARISON = re.compile(r"^\[(?P<var>[a-z][a-z0-9_]*)\]\s*(?P<op>=|<>|!=)\s*(?:'(?P<v1>[^']*)'|\"(?P<v2>[^\"]*)\"|(?P<v3>-?\d+(?:\.\d+)?))$")


def _strip_parens(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


def translate_branching(text: str, codes_of: dict[str, Optional[list[str]]]) -> tuple[str, list[str]] | str:
    """`[sex] = '0' or [sex] = '2'` -> ("sex", ["0", "2"]); or the reason it cannot be one field's codes.

    `codes_of` gives the codes of each field of the same form (None: a field without a code list).
    """
    body = _strip_parens(" ".join(text.split()))
    if re.search(r"\band\b", body, re.IGNORECASE):
        return "it combines conditions on several fields with 'and'"
    parts = [_strip_parens(p) for p in re.split(r"\bor\b", body, flags=re.IGNORECASE)]
    var: Optional[str] = None
    values: list[str] = []
    for part in parts:
        if re.match(r"^\[[a-z0-9_]+\]\[", part):
            return "it refers to a field of another event ([event][field])"
        if re.match(r"^\[[a-z0-9_]+\([^)]*\)\]", part):
            return "it tests a checkbox option ([field(code)]); conditions here test one choice field"
        m = _COMPARISON.match(part)
        if not m:
            return f"{part!r} is not a comparison of a field with a value"
        name = m["var"]
        if var is not None and name != var:
            return f"it tests several fields ({var}, {name}) with 'or'"
        var = name
        if name not in codes_of:
            return f"[{name}] is not a field of the same form"
        value = next(v for v in (m["v1"], m["v2"], m["v3"]) if v is not None)
        codes = codes_of[name]
        if m["op"] == "=":
            if codes is not None and value not in codes:
                return f"{value!r} is not a code of {name}"
            values.append(value)
        else:
            if codes is None:
                return f"'{part}' needs the list of {name}'s answers, but {name} has no code list"
            values.extend(c for c in codes if c != value)
    assert var is not None
    return var, list(dict.fromkeys(values))


_CALC_TOKEN = re.compile(r"\[(?P<var>[a-z][a-z0-9_]*)\](?P<bad>\[|\()?|(?P<op><>|!=|<=|>=|=|\^)|(?P<str>'[^']*'|\"[^\"]*\")|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<other>.)", re.S)
CALC_FUNCTIONS = {"round": "round", "abs": "abs", "min": "min", "max": "max", "rounddown": "floor"}


def translate_calculation(text: str, names: dict[str, str]) -> str:
    """A REDCap calculation -> an expression of the study language; ValueError saying why it cannot be.

    `names` maps the REDCap fields of the same form to item ids.
    """
    out: list[str] = []
    for m in _CALC_TOKEN.finditer(text):
        if m["var"]:
            if m["bad"]:
                raise ValueError(f"[{m['var']}]{m['bad']}... refers to another event or a checkbox option")
            if m["var"] not in names:
                raise ValueError(f"[{m['var']}] is not a field of the same form")
            out.append(names[m["var"]])
        elif m["op"]:
            out.append({"=": "==", "<>": "!=", "^": "**"}.get(m["op"], m["op"]))
        elif m["str"]:
            raise ValueError(f"it uses the text {m['str']} ('today', a date unit...): only arithmetic on the form's fields is translated")
        elif m["word"]:
            word = m["word"]
            if word.lower() in ("and", "or", "not"):
                out.append(f" {word.lower()} ")
            elif word in CALC_FUNCTIONS:
                out.append(CALC_FUNCTIONS[word])
            else:
                raise ValueError(f"function {word}() has no equivalent in the expression language")
        else:
            out.append(m["other"])
    expression = "".join(out)
    if "floor" in expression and re.search(r"floor\([^()]*,", expression):
        raise ValueError("rounddown(x, n) with decimals has no equivalent")
    try:
        expressions.parse(expression)
    except expressions.ExpressionError as exc:
        raise ValueError(f"the translation {expression!r} does not parse: {exc}")
    return expression


# -- the import -------------------------------------------------------------------------------
@dataclass
class Records:
    """The records export beside a dictionary: which instrument each event collects, which instruments repeat."""

    path: Path
    rows: list[dict[str, str]]
    header: list[str]

    def events(self) -> list[str]:
        return list(dict.fromkeys(r.get("redcap_event_name", "") for r in self.rows if r.get("redcap_event_name")))

    def repeating(self) -> list[str]:
        return list(dict.fromkeys(r["redcap_repeat_instrument"] for r in self.rows if r.get("redcap_repeat_instrument")))


def read_records(path: Path) -> Records:
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = [r for r in reader if any((v or "").strip() for v in r.values())]
    return Records(path, rows, list(reader.fieldnames or []))


@dataclass
class RedcapImport:
    """A dictionary read into a draft study, with the maps the records conversion needs."""

    dictionary: Dictionary
    draft: DraftStudy
    form_ids: dict[str, str]  # instrument -> form id
    item_ids: dict[str, str]  # field -> item id
    visit_ids: dict[str, str]  # unique event name -> visit id ("" for a classic project's single visit)
    logs: dict[str, str]  # repeating instrument -> log id
    kinds: dict[str, str]  # field -> "integer", "number", "comma-number", "choice-int", "choice", "checkbox", "text", "dropped"


def _title(name: str) -> str:
    return name.replace("_", " ").strip().capitalize() or name


def _find_beside(path: Path, names: tuple[str, ...]) -> Optional[Path]:
    for name in names:
        candidate = path.parent / name
        if candidate.is_file():
            return candidate
    return None


def read_redcap(path: Path, events: Optional[Path] = None, records: Optional[Path] = None, mapping: Optional[Path] = None) -> RedcapImport:
    path = Path(path)
    dictionary, notes = read_dictionary(path)
    events = events or _find_beside(path, ("event.csv", "events.csv"))
    records = records or _find_beside(path, ("data.csv", "records.csv"))
    draft = DraftStudy(id=identifier(path.parent.name if path.stem in ("dictionary", "metadata") else path.stem, 40, set(), fallback="S").replace("_", "-"),
                       title=f"{_title(path.parent.name if path.stem in ('dictionary', 'metadata') else path.stem)} (imported from a REDCap data dictionary)",
                       protocol_version="1", form_version="1", source=f"{path.name} (REDCap data dictionary, {dictionary.header_style} headers)")
    draft.notes.extend(notes)
    imp = RedcapImport(dictionary, draft, {}, {}, {}, {}, {})
    _Builder(imp, read_records(records) if records else None, events, mapping).build()
    return imp


class _Builder:
    def __init__(self, imp: RedcapImport, records: Optional[Records], events: Optional[Path], mapping: Optional[Path]):
        self.imp, self.d, self.draft = imp, imp.dictionary, imp.draft
        self.records, self.events, self.mapping = records, events, mapping
        self.codelists: dict[tuple[tuple[str, str], ...], str] = {}
        self.taken_codelists: set[str] = set()
        self.summary: dict[str, list[str]] = {}

    def where(self, f: Field, column: Optional[int] = None) -> str:
        return _where(self.d.path, f.row, column)

    def note(self, kind: str, where: str, message: str) -> None:
        self.draft.note(kind, where, message)

    def tally(self, what: str, name: str) -> None:
        self.summary.setdefault(what, []).append(name)

    def build(self) -> None:
        record_id = self.d.record_id
        self.note("kept", self.where(self.d.fields[0]), f"the first field, {record_id}, is the record id: it becomes the subject number, not an item")
        form_taken: set[str] = set()
        repeating = self.records.repeating() if self.records else []
        for form_name in self.d.forms():
            fields = [f for f in self.d.fields if f.form == form_name and f.name != record_id]
            form_id = identifier(form_name, 10, form_taken, allow_underscore=False, fallback="F", min_length=2)
            form = self.form(form_id, form_name, fields)
            if form is None:
                first = next(f for f in self.d.fields if f.form == form_name)
                self.note("dropped", self.where(first, 1), f"instrument {form_name} has no field that collects data here; it was not imported")
                continue
            self.draft.forms[form_id] = form
            self.imp.form_ids[form_name] = form_id
        log_taken: set[str] = set()
        for instrument in repeating:
            if instrument in self.imp.form_ids:
                log_id = identifier(instrument, 10, log_taken, allow_underscore=False, fallback="L", min_length=2)
                rows = max(DEFAULT_LOG_ROWS, max(int(r.get("redcap_repeat_instance") or 0) for r in self.records.rows if r.get("redcap_repeat_instrument") == instrument))  # type: ignore[union-attr]  # records: only instruments seen in the records export repeat
                self.draft.logs.append(DraftLog(log_id, _title(instrument), self.imp.form_ids[instrument], rows))
                self.imp.logs[instrument] = log_id
                self.note("approximate", str(self.records.path), f"instrument {instrument} repeats (redcap_repeat_instrument): it becomes running log {log_id} with {rows} rows; its rows are not tied to an event")  # type: ignore[union-attr]  # records: as above
        self.schedule()
        for what, names in self.summary.items():
            shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
            kind, message = what.split("|", 1)
            self.note(kind, str(self.d.path), f"{message} ({len(names)}): {shown}")

    # -- instruments and fields ------------------------------------------------------------
    def form(self, form_id: str, form_name: str, fields: list[Field]) -> Optional[DraftForm]:
        form = DraftForm(form_id, _title(form_name), {})
        item_taken: set[str] = set()
        names: dict[str, str] = {}
        for f in fields:
            if f.type in ("descriptive",):
                self.tally("dropped|descriptive fields (display text, no data) are not imported", f"{f.name} (row {f.row})")
                self.imp.kinds[f.name] = "dropped"
                continue
            if f.type in ("file", "sql"):
                what = "signature" if f.validation == "signature" else f.type
                self.note("dropped", self.where(f, 3), f"field {f.name} is a {what} field ({'an upload' if f.type == 'file' else 'a database query'}); paper and workbook forms cannot collect it")
                self.imp.kinds[f.name] = "dropped"
                continue
            item_id = identifier(f.name, 32, item_taken, fallback="I")
            names[f.name] = item_id
            self.imp.item_ids[f.name] = item_id
        codes_of = {f.name: self.codes(f) for f in fields if f.name in names}
        for f in fields:
            if f.name not in names:
                continue
            item = self.item(f, names, form)
            if item is None:
                names.pop(f.name)
                continue
            form.items[names[f.name]] = item
            if f.required and "x-derived" not in item and not f.branching:
                form.required.append(names[f.name])
            if f.branching:
                self.branching(f, form, names, codes_of)
            if f.section:
                self.tally("dropped|section headers are not printed (forms here have no sections)", f"{f.name} (row {f.row})")
            if f.identifier:
                self.tally("approximate|identifier flags: the items are kept and marked NOT SUBMITTED, but the forms do not mark identifiers", f.name)
            if f.matrix:
                self.tally("approximate|matrix group rows become one item each, printed in turn (no grid)", f"{f.name} ({f.matrix})")
            if f.annotation:
                self.tally("dropped|field annotations and action tags (@DEFAULT, @TODAY, @HIDDEN...) are not carried over", f"{f.name} (row {f.row}): {f.annotation[:40]}")
            if f.alignment or f.question_number or f.matrix_ranking:
                self.tally("dropped|layout settings (custom alignment, survey question numbers, matrix ranking)", f.name)
        return form if form.items else None

    def codes(self, f: Field) -> Optional[list[str]]:
        if f.type in ("dropdown", "radio"):
            return [c for c, _ in self.d.choices[f.name]]
        if f.type in ("yesno", "truefalse"):
            return ["1", "0"]
        return None

    def codelist(self, f: Field, pairs: list[tuple[str, str]], fixed_id: Optional[str] = None) -> tuple[str, bool]:
        """The code list id for these choices (identical choices share one) and whether its codes are integers."""
        integer = all(re.fullmatch(r"-?\d+", c) and (c == "0" or not c.startswith(("0", "-0"))) for c, _ in pairs)
        key = tuple(pairs)
        if key not in self.codelists:
            ident = fixed_id if fixed_id and fixed_id not in self.taken_codelists else identifier(f.name, 40, self.taken_codelists, fallback="CL")
            self.taken_codelists.add(ident)
            codes: list[Any] = [int(c) if integer else c for c, _ in pairs]
            self.draft.codelists[ident] = {"x-codelist": {"id": ident}, "type": "integer" if integer else "string", "enum": codes,
                                           "x-labels": {_code_key(int(c) if integer else c): " ".join(label.split()) for c, label in pairs}}
            self.codelists[key] = ident
        return self.codelists[key], integer

    def item(self, f: Field, names: dict[str, str], form: DraftForm) -> Optional[dict[str, Any]]:
        label = " ".join(re.sub(r"<[^>]+>", " ", f.label).split()) or f.name
        spec: dict[str, Any] = {"title": label}
        if f.note:
            spec["description"] = " ".join(f.note.split())
        kind = "text"
        if f.type in ("dropdown", "radio", "checkbox", "yesno", "truefalse"):
            if f.type == "yesno":
                ident, integer = self.codelist(f, list(YESNO[1].items()), YESNO[0])
            elif f.type == "truefalse":
                ident, integer = self.codelist(f, list(TRUEFALSE[1].items()), TRUEFALSE[0])
            else:
                ident, integer = self.codelist(f, self.d.choices[f.name])
            ref = {"$ref": f"../codelists.json#/$defs/{ident}"}
            if f.type == "checkbox":
                spec.update({"type": "array", "items": ref, "uniqueItems": True})
                kind = "checkbox"
            else:
                spec.update(ref)
                kind = "choice-int" if integer else "choice"
            if f.validation == "autocomplete":
                self.tally("dropped|dropdown autocomplete (a search box in REDCap) is not offered", f.name)
        elif f.type == "slider":
            top = int(f.maximum) if re.fullmatch(r"-?\d+", f.maximum) else 100
            bottom = int(f.minimum) if re.fullmatch(r"-?\d+", f.minimum) else 0
            anchors = [a.strip() for a in f.choices.split("|")] if f.choices else []
            spec.update({"type": "integer", "minimum": bottom, "maximum": top})
            if any(anchors):
                spec["description"] = ((spec.get("description", "") + " ") if "description" in spec else "") + f"Scale {bottom} to {top}: " + " / ".join(a or "-" for a in anchors)
            self.note("approximate", self.where(f, 3), f"slider {f.name} is a whole number from {bottom} to {top}" + (" with its anchor labels as help text" if any(anchors) else ""))
            kind = "integer"
        elif f.type == "calc":
            spec.update({"type": "number", "x-decimals": 2})
            kind = "number"
            try:
                spec["x-derived"] = translate_calculation(f.choices, names)
                self.note("kept", self.where(f, 5), f"calculation of {f.name} {f.choices!r} is the derived item {spec['x-derived']!r}")
            except ValueError as exc:
                self.note("dropped", self.where(f, 5), f"calculation of {f.name} {f.choices!r} cannot be translated: {exc}; {names[f.name]} is an entry field for the computed value")
        elif f.type == "notes":
            spec.update({"type": "string", "maxLength": NOTES_LENGTH})
        else:  # text
            kind = self.text_item(f, spec)
        if kind in ("integer", "number", "comma-number"):
            self.limits(f, spec, kind)
        elif f.minimum or f.maximum:
            self.note("dropped", self.where(f, 8), f"min/max {f.minimum or '-'} .. {f.maximum or '-'} of {f.name} ({f.validation}): limits apply to number items only here")
        spec["x-sdtm"] = "NOT SUBMITTED"
        self.imp.kinds[f.name] = kind
        return spec

    def text_item(self, f: Field, spec: dict[str, Any]) -> str:
        v = f.validation
        if f.choices.upper().startswith("BIOPORTAL:"):
            self.note("dropped", self.where(f, 5), f"{f.name} looks terms up in {f.choices} (an ontology search); it is free text here")
        if not v:
            spec.update({"type": "string", "maxLength": 200})
            return "text"
        if v in DATE_TYPES:
            spec.update({"type": "string", "format": "date"})
            if v != "date_ymd":
                self.tally("kept|dates entered as D-M-Y or M-D-Y in REDCap are YYYY-MM-DD here (REDCap stores and exports them so)", f.name)
            return "date"
        if v in DATETIME_TYPES:
            spec.update({"type": "string", "pattern": PATTERNS["datetime"], "maxLength": 19})
            self.tally("approximate|date-and-time fields are text checked as YYYY-MM-DD HH:MM[:SS] (the forms have no date-time box)", f.name)
            return "text"
        if v == "time":
            spec.update({"type": "string", "format": "time-hm"})
            return "time"
        if v in ("integer", "int"):
            spec["type"] = "integer"
            return "integer"
        if v in NUMBER_DECIMALS or v == "float":
            spec.update({"type": "number", "x-decimals": NUMBER_DECIMALS.get(v, 2)})
            if v in ("number", "float", "number_comma_decimal"):
                self.tally(f"approximate|'number' fields allow any decimals in REDCap; here {NUMBER_DECIMALS['number']} decimals are printed", f.name)
            if "comma" in v:
                self.tally("approximate|comma-decimal numbers (1,5) are numbers with a decimal point here; records are converted", f.name)
                return "comma-number"
            return "number"
        if v in PATTERNS:
            spec.update({"type": "string", "pattern": PATTERNS[v], "maxLength": 200})
            return "text"
        self.note("warning", self.where(f, 7), f"validation type {v!r} of {f.name} is not one REDCap ships (a site-defined type?); {f.name} is free text")
        spec.update({"type": "string", "maxLength": 200})
        return "text"

    def limits(self, f: Field, spec: dict[str, Any], kind: str) -> None:
        bounds: dict[str, float] = {}
        for column, key, text in ((8, "minimum", f.minimum), (9, "maximum", f.maximum)):
            if not text or f.type == "slider":
                continue
            value = text.replace(",", ".") if kind == "comma-number" or re.fullmatch(r"-?\d+,\d+", text) else text
            try:
                number = float(value)
            except ValueError:
                self.note("dropped", self.where(f, column), f"{key} {text!r} of {f.name} is not a number; it was dropped")
                continue
            bounds[key] = int(number) if number.is_integer() and spec.get("type") == "integer" else number
        if bounds.get("minimum") is not None and bounds.get("maximum") is not None and bounds["minimum"] > bounds["maximum"]:
            self.note("dropped", self.where(f, 8), f"min {f.minimum} is above max {f.maximum} for {f.name}; both were dropped")
            return
        if bounds:
            # REDCap's min/max are soft: a value outside is allowed after confirmation (its own ODM export says so)
            spec["x-soft"] = bounds  # no message: REDCap's own wording is not in the dictionary, and an invented one would be printed
            self.tally("kept|REDCap min/max are soft limits here too (a query, not an error)", f.name)

    def branching(self, f: Field, form: DraftForm, names: dict[str, str], codes_of: dict[str, Optional[list[str]]]) -> None:
        translated = translate_branching(f.branching, {n: c for n, c in codes_of.items() if n in names})
        if isinstance(translated, str):
            self.note("dropped", self.where(f, 11), f"branching logic of {f.name} {f.branching!r} cannot be translated: {translated}; "
                      f"{names[f.name]} is always shown{' and required' if f.required else ' and optional'}")
            if f.required:
                form.required.append(names[f.name])
            return
        trigger, values = translated
        if trigger == f.name:
            self.note("dropped", self.where(f, 11), f"branching logic of {f.name} depends on the field itself")
            return
        typed: list[Any] = [int(v) if self.imp.kinds.get(trigger) == "choice-int" or codes_of.get(trigger) == ["1", "0"] else v for v in values]
        if self.imp.kinds.get(trigger) in ("integer",):
            typed = [int(v) for v in values]
        if not f.required:
            self.tally("approximate|fields shown by branching logic are required when shown here (REDCap: shown, not required)", f.name)
        target = names[trigger]
        for existing in form.conditions:
            if existing[0] == target and existing[1] == typed:
                existing[2].append(names[f.name])
                return
        form.conditions.append((target, typed, [names[f.name]]))

    # -- events -> visits --------------------------------------------------------------------
    def schedule(self) -> None:
        visit_forms = [name for name in self.imp.form_ids if name not in self.imp.logs]
        events = self.read_events()
        if not events:
            if visit_forms:
                self.draft.visits.append(DraftVisit("V1", "Record", "scheduled", None, [DraftInstance(self.imp.form_ids[n], self.imp.form_ids[n]) for n in visit_forms]))
                self.imp.visit_ids[""] = "V1"
                self.note("approximate", str(self.d.path), "a classic (non-longitudinal) project: every instrument is collected at one visit V1 'Record'")
            else:
                self.one_visit_for_logs()
            return
        used = self.designated() if self.mapping else self.forms_by_event()
        taken: set[str] = set()
        arms = {e["arm"] for e in events}
        last_day: Optional[int] = None
        timed = False
        for e in events:
            unique, label, arm = e["unique"], e["label"], e["arm"]
            custom = e["custom"]
            if re.fullmatch(r"[A-Z][A-Z0-9]{0,7}", custom) and custom not in taken:
                visit_id = custom  # our own export writes the visit id as the custom event label
                taken.add(custom)
            else:
                visit_id = identifier(label if len(arms) == 1 else f"{label} {arm}", 8, taken, allow_underscore=False, fallback="V")
            day = e["day"]
            if day is not None and last_day is not None and day <= last_day:
                self.note("dropped", str(self.events), f"event {unique}: day offset {day} is not after the previous event's {last_day}; its day was dropped")
                day = None
            if day is not None:
                last_day, timed = day, True
            if used is None:
                forms = visit_forms
            else:
                forms = [n for n in visit_forms if n in used.get(unique, set())]
            if not forms:
                self.note("dropped", str(self.events), f"event {unique} collects no (non-repeating) instrument in {self.records.path.name if self.records else 'the records'}; it was not imported")
                continue
            self.imp.visit_ids[unique] = visit_id
            self.draft.visits.append(DraftVisit(visit_id, label + (f" (arm {arm})" if len(arms) > 1 else ""), "scheduled" if day is not None or not e["has_days"] else "unscheduled", day,
                                                [DraftInstance(self.imp.form_ids[n], self.imp.form_ids[n]) for n in forms],
                                                before=e["before"] if day is not None else 0, after=e["after"] if day is not None else 0))
        if len(arms) > 1:
            self.note("approximate", str(self.events), f"{len(arms)} arms: their events are one list of visits here (a subject's arm is not modelled)")
        if self.mapping:
            self.note("kept", str(self.mapping), "the instruments of each event are the instrument-event mapping's")
        elif used is None:
            self.note("approximate", str(self.events), "the instrument-event mapping is not in a data dictionary and there is no records export beside it: every instrument is offered at every event")
        else:
            self.note("approximate", str(self.records.path), "which instruments each event collects is read from the records export (an instrument with data or a status at an event); check it against the project's instrument designation")  # type: ignore[union-attr]  # records: this branch runs only with a records export
        if not timed:
            self.note("dropped", str(self.events), "the events file has no day offsets: visit days and windows are empty; set them in study.json")
        if not self.draft.visits:
            self.one_visit_for_logs()

    def one_visit_for_logs(self) -> None:
        raise ImportRefused([Note("refused", str(self.d.path), "no instrument is collected at a visit (all are repeating or empty); the study needs at least one visit form")])

    def read_events(self) -> list[dict[str, Any]]:
        if self.events is None:
            return []
        rows = [r for r in read_records(self.events).rows if r.get("unique_event_name")]
        has_days = any((r.get("day_offset") or "").strip() for r in rows)

        def number(text: Optional[str]) -> Optional[int]:
            try:
                return int(float(text)) if text and text.strip() else None
            except ValueError:
                return None

        return [{"unique": r["unique_event_name"], "label": (r.get("event_name") or r["unique_event_name"]).strip(), "arm": r.get("arm_num", "1"),
                 "custom": (r.get("custom_event_label") or "").strip(), "day": number(r.get("day_offset")), "has_days": has_days,
                 "before": number(r.get("offset_min")) or 0, "after": number(r.get("offset_max")) or 0} for r in rows]

    def designated(self) -> dict[str, set[str]]:
        assert self.mapping is not None
        used: dict[str, set[str]] = {}
        for r in read_records(self.mapping).rows:
            used.setdefault(r.get("unique_event_name", ""), set()).add(r.get("form", ""))
        return used

    def forms_by_event(self) -> Optional[dict[str, set[str]]]:
        if self.records is None or "redcap_event_name" not in self.records.header:
            return None
        by_form: dict[str, list[str]] = {}
        for f in self.d.fields:
            by_form.setdefault(f.form, []).append(f.name)
        used: dict[str, set[str]] = {}
        for row in self.records.rows:
            event = row.get("redcap_event_name", "")
            if row.get("redcap_repeat_instrument"):
                continue
            for form, names in by_form.items():
                columns = [f"{form}_complete"] + [c for c in self.records.header if c.split("___")[0] in names and c != self.d.record_id]
                if any((row.get(c) or "").strip() for c in columns):
                    used.setdefault(event, set()).add(form)
        return used


# -- records -> subject documents ---------------------------------------------------------------
def records_to_documents(imp: RedcapImport, study: Study, records: Path) -> tuple[list[dict[str, Any]], list[Note]]:
    """The records export of the project -> one subject document per record (crf.subject's JSON form)."""
    data = read_records(Path(records))
    notes: list[Note] = []
    by_form: dict[str, list[Field]] = {}
    for f in imp.dictionary.fields:
        by_form.setdefault(f.form, []).append(f)
    record_id = imp.dictionary.record_id
    docs: dict[str, dict[str, Any]] = {}
    checkbox_columns: dict[str, dict[str, str]] = {}  # field -> {lower-case code: code}
    for name, pairs in imp.dictionary.choices.items():
        checkbox_columns[name] = {c.lower(): c for c, _ in pairs}
    known = {f.name for f in imp.dictionary.fields}
    unknown = [c for c in data.header if c not in known and c.split("___")[0] not in known
               and c not in ("redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance", "redcap_data_access_group", "redcap_survey_identifier")
               and not c.endswith("_complete") and not c.endswith("_timestamp")]
    for c in unknown:
        notes.append(Note("warning", f"{data.path}, row 1", f"column {c} is not a field of the dictionary; ignored"))
    logical: set[str] = set()  # fields whose 0/1 codes the file writes as FALSE/TRUE
    for index, row in enumerate(data.rows, start=2):
        subject = (row.get(record_id) or "").strip()
        if not subject:
            notes.append(Note("warning", f"{data.path}, row {index}", f"no {record_id}: the row was skipped"))
            continue
        doc = docs.setdefault(subject, {"study": study.id, "form_version": study.form_version, "definition_hash": study.definition_hash,
                                        "site": (row.get("redcap_data_access_group") or "").strip(), "subject": subject, "visits": {}, "logs": {}})
        instrument = (row.get("redcap_repeat_instrument") or "").strip()
        if instrument:
            log_id = imp.logs.get(instrument)
            if log_id is None:
                continue
            values = _values(imp, by_form.get(instrument, []), row, checkbox_columns, logical)
            if values:
                doc["logs"].setdefault(log_id, []).append(values)
            continue
        event = (row.get("redcap_event_name") or "").strip()
        visit_id = imp.visit_ids.get(event)
        if visit_id is None:
            notes.append(Note("warning", f"{data.path}, row {index}", f"event {event!r} is not a visit of the imported study; the row was skipped"))
            continue
        visit = study.visit(visit_id)
        for form_name, fields in by_form.items():
            form_id = imp.form_ids.get(form_name)
            if form_id is None or form_name in imp.logs or not visit.has(form_id):
                continue
            values = _values(imp, fields, row, checkbox_columns, logical)
            if values:
                doc["visits"].setdefault(visit_id, {})[form_id] = values
    if logical:
        notes.append(Note("approximate", str(data.path), f"TRUE/FALSE (R logicals) read as the codes 1/0 of {', '.join(sorted(logical))}"))
    return list(docs.values()), notes


def _values(imp: RedcapImport, fields: list[Field], row: dict[str, str], checkbox_columns: dict[str, dict[str, str]], logical: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields:
        item = imp.item_ids.get(f.name)
        kind = imp.kinds.get(f.name)
        if item is None or kind in (None, "dropped") or f.name == imp.dictionary.record_id:
            continue
        if kind == "checkbox":
            ticked = []
            for column, value in row.items():
                base, sep, code = (column or "").partition("___")
                if sep and base == f.name and (value or "").strip() == "1":
                    ticked.append(checkbox_columns[f.name].get(code.lower(), code))
            order = [c for c, _ in imp.dictionary.choices[f.name]]
            codes: list[Any] = sorted(ticked, key=order.index)
            if imp.draft.codelists and all(re.fullmatch(r"-?\d+", c) for c in order):
                codes = [int(c) for c in codes]
            if codes:
                out[item] = codes
            continue
        raw = (row.get(f.name) or "").strip()
        if raw == "":
            continue
        if raw in ("TRUE", "FALSE") and kind == "choice-int" and {"0", "1"} <= {c for c, _ in imp.dictionary.choices.get(f.name, [("1", ""), ("0", "")])}:
            raw = "1" if raw == "TRUE" else "0"  # a 0/1 code written by R as a logical (REDCapR's test data)
            if f.name not in logical:
                logical.add(f.name)
        out[item] = _typed(raw, kind or "")
    return out


def _typed(raw: str, kind: str) -> Any:
    try:
        if kind in ("integer", "choice-int"):
            return int(raw)
        if kind in ("number", "comma-number"):
            number = float(raw.replace(",", ".") if kind == "comma-number" else raw)
            return int(number) if number.is_integer() and "." not in raw and "," not in raw else number
    except ValueError:
        return raw  # the validator reports it, at its field
    return raw

