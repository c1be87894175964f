"""The catalogue of structural finding codes: every code the readers and field checks report.

Like pyxform's ErrorCode and frictionless's error classes: one entry per code with its severity,
category, title (when it is reported), the problem's message template and what to do. Producers
emit a code plus context (`emit` fills the templates); `crf.messages.render` writes every message in
one shape. Edit checks and deviations (EC-xx, PD-xx) are not here: the study's rules files define them.

docs/report-format.md's table of codes is generated from this module (`python build_crf.py codes-doc`),
and a test fails when a code is emitted that is not catalogued, or when the table is stale.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from .findings import Severity

E, Q, W = Severity.ERROR, Severity.QUERY, Severity.WARNING


@dataclass(frozen=True)
class FindingCode:
    code: str
    severity: Severity
    category: str
    title: str  # when it is reported (the documentation's table)
    problem: str  # message template: what is wrong, {placeholders} from the producer's context
    fix: str  # what to do (a producer may give a more specific one)
    other_severities: tuple[Severity, ...] = ()  # a producer may also report it as one of these

    @property
    def severities(self) -> tuple[Severity, ...]:
        return (self.severity, *self.other_severities)


def _c(code: str, severity: Severity, category: str, title: str, problem: str, fix: str, *others: Severity) -> FindingCode:
    return FindingCode(code, severity, category, title, problem, fix, tuple(others))


_FILE_FIX = "Send the workbook you were given for this subject (.xlsx), saved by Excel or LibreOffice"
CODES: tuple[FindingCode, ...] = (
    # -- the file ------------------------------------------------------------------------------------------
    _c("FILE-TYPE", E, "file", "not .xlsx, .xlsm, .pdf or .json", "{problem}", "Send the subject's workbook (.xlsx), fillable PDF or JSON document"),
    _c("FILE-TOO-LARGE", E, "file", "a workbook over 100 MB, or a JSON document far larger than one subject's data", "{problem}",
       "Send only this subject's file"),
    _c("FILE-UNREADABLE", E, "file", "the file cannot be opened or read (any other read failure)", "{problem}",
       "Send the file again; if this persists, send it to the data manager"),
    _c("FILE-NOT-XLSX", E, "file", "not a zip package, a zip that is not a workbook, a legacy .xls, an empty file", "{problem}", _FILE_FIX),
    _c("FILE-DAMAGED", E, "file", "truncated or corrupt package, or a PDF that qpdf cannot read or has to repair", "{problem}",
       "Open it in Excel, save it again as .xlsx and send that copy"),
    _c("PASSWORD-PROTECTED", E, "file", "encrypted or password-protected workbook", "{problem}", "Remove the password and send it again"),
    _c("ZIP-BOMB", E, "file", "more than 2,000 parts, over 200 MB unpacked, a part over 1 MB compressed more than 200 times, "
       "or a part larger than its directory entry says", "{problem}", _FILE_FIX),
    _c("XML-UNSAFE", E, "file", "a DOCTYPE / entity declaration in any XML part (billion laughs); parsed with defusedxml", "{problem}", _FILE_FIX),
    _c("NOT-A-CRF-WORKBOOK", E, "file", "no `_meta` sheet: not a workbook made for this study", "{problem}", _FILE_FIX),
    _c("NOT-A-CRF-PDF", E, "file", "a PDF without form fields (another document, or a fillable CRF printed, scanned or flattened to PDF), "
       "or without the hidden `_meta` field of a study's fillable CRF", "{problem}",
       "Fill in the fillable PDF the study sent for this subject in a PDF reader, save it and send that file"),
    _c("FILE-NOT-REGULAR", E, "file", "an input that is a named pipe (FIFO), a device (/dev/zero) or a socket, or a link to one: "
       "refused without reading", "this is {what}, not a file", "Give the path of the returned file itself"),
    _c("READER-CRASHED", E, "file", "reading the file stopped the process that read it (the workbook library aborted, ran out of its "
       "memory limit or failed); the other files are still checked", "the file could not be read: {detail}",
       "Open it in Excel, save it again as .xlsx and send that copy; if this persists, send the file to the data manager"),
    _c("READER-FAILED", E, "internal", "the reader failed on a file in a way no check foresaw: a fault of the validator, not of the file "
       "(the other files are still checked)", "the reader stopped on this file ({detail}); this is a fault of the validator",
       "Send the file and this message to the data manager; nothing needs to change in the file"),
    _c("READER-TIMEOUT", E, "file", "reading and checking the file took longer than the time limit (3 minutes); it was stopped, the other "
       "files are still checked", "the file could not be read: {detail}",
       "Open it in Excel, save it again as .xlsx and send that copy; if this persists, send the file to the data manager"),
    _c("FILE-NOT-JSON", E, "file", "a .json file that is not UTF-8 JSON, or nested too deeply", "{problem}", "Export the subject document again as UTF-8 JSON"),
    _c("FILE-NOT-SUBJECT", E, "file", "JSON that is not one subject document", "{problem}", "Export one subject document per file"),
    # -- which study and subject -----------------------------------------------------------------------------
    _c("WRONG-STUDY", E, "identity", "`_meta` or document study id differs from the study's (one finding; nothing else is checked)", "{problem}",
       "Send the workbook of this study"),
    _c("FORM-VERSION", E, "identity", "form version differs from the study's (one finding; nothing else is checked)", "{problem}",
       "Ask the data manager for a workbook of the current form version"),
    _c("DEFINITION-CHANGED", W, "identity", "same form version, different study-definition hash", "{problem}",
       "Nothing to do; the data manager checks the differences"),
    _c("SUBJECT-MISSING", E, "identity", "no subject number", "{problem}", "Enter the subject number and send it again"),
    _c("SUBJECT-CHANGED", E, "identity", "the subject number typed on the Instructions sheet differs from the one issued", "{problem}",
       "Use the workbook issued for the subject"),
    _c("DUPLICATE-SUBJECT", E, "identity", "one subject in several files (all files are still checked)",
       "subject {subject} (site {site}) is in {count} files, {detail}: {files}",
       "Keep one workbook per subject: send only the current one and tell the data manager which to use"),
    # -- the workbook's structure ------------------------------------------------------------------------------
    _c("SHEET-MISSING", E, "structure", "a visit or log sheet is missing (one finding per sheet; its fields are not checked further)",
       "{problem}", "Send the complete workbook"),
    _c("CELL-REFERENCE-INVALID", E, "structure", "a cell whose reference is outside any sheet (D99999999999): not read, one finding per "
       "sheet; the rest of the sheet is read", "{problem}", "Open it in Excel, save it again as .xlsx and send that copy"),
    _c("SHEET-DAMAGED", E, "structure", "a sheet that cannot be read (one finding; its fields are not checked further)", "{problem}",
       "Open it in Excel, save it again as .xlsx and send that copy"),
    _c("SHEET-RENAMED", W, "structure", "a renamed sheet, read through the defined names; nothing lost", "{problem}", "Please do not rename sheets"),
    _c("NAME-MISSING", W, "structure", "a defined name deleted: read through the `_meta` field map (warning), or not found at all (error)",
       "{problem}", "Please do not delete or rename cells' names", E),
    _c("PDF-FIELD-MISSING", E, "structure", "fields of a fillable PDF deleted (one finding per file; those fields are not checked)",
       "{problem}", "Send the fillable PDF the study issued, filled in and saved"),
    _c("VALUE-OUTSIDE-FORM", E, "structure", "a value typed on a visit or log sheet outside every input cell (a note, an inserted column); one per sheet, not read",
       "{problem}", "Type each value in its input cell of the form; anything else goes to the data manager as a note"),
    _c("SHEET-COPIED", E, "structure", "a visit or log sheet copied within the workbook: error when values typed on the copy were not read, warning otherwise",
       "{problem}", "Type the values on the original sheet and delete the copy", W),
    _c("UNKNOWN-VISIT", E, "structure", "a JSON document with a visit the study does not have", "{problem}", "Fix the export"),
    _c("UNKNOWN-LOG", E, "structure", "a JSON document with a log the study does not have", "{problem}", "Fix the export"),
    _c("JSON-STRUCTURE", E, "structure", "a JSON document whose visits or logs are not objects / lists", "{problem}", "Fix the export"),
    _c("FORM-UNKNOWN", E, "structure", "a form that is not a form of the visit", "'{form}' is not a form of this visit",
       "Remove it, or put its data in the right visit"),
    _c("FIELD-UNKNOWN", E, "structure", "an item that is not on the form", "{detail}", "Remove items that are not on the form"),
    _c("LOG-STRUCTURE", E, "structure", "a log that is not a list of rows, or has too many rows", "{detail}", "Tell the data manager"),
    # -- a value that could not be read -------------------------------------------------------------------------
    _c("NOT-A-NUMBER", E, "format", "text that is not a number (decimal commas, spaces and the item's unit are accepted)",
       "{value} {detail}", "Enter a number"),
    _c("NOT-AN-INTEGER", E, "format", "a number with decimals where a whole number is asked", "{value} {detail}", "Enter a whole number"),
    _c("DATE-AMBIGUOUS", E, "date", "03/04/2025 (day and month could swap), two-digit years: never guessed", "{value} {detail}",
       "Enter the date as YYYY-MM-DD"),
    _c("DATE-INVALID", E, "date", "a date that does not exist (2025-02-30)", "{value} {detail}", "Enter a real date as YYYY-MM-DD"),
    _c("DATE-FORMAT", E, "date", "a date written in a form that cannot be read", "{value} {detail}", "Enter the date as YYYY-MM-DD"),
    _c("TIME-INVALID", E, "format", "a time that cannot be read or does not exist", "{value} {detail}", "Enter the time as HH:MM (24-hour)"),
    _c("CELL-ERROR", E, "format", "an input cell holding an Excel error value (#NUM!, #VALUE!, #N/A...), not read as blank",
       "{value} {detail}", "Type the value itself into the cell"),
    _c("CELL-UNREADABLE", E, "format", "a cell whose value cannot be read (a shared-string index past the table, a boolean cell holding "
       "text, an unknown error value, a number too large): reported on its cell, the rest of the sheet is read", "{value} {detail}",
       "Type the value into the cell again, save and send the workbook again"),
    _c("FORMULA-NO-VALUE", E, "format", "an input cell holds a formula without a cached value", "the cell {detail}",
       "Type the value itself instead of a formula"),
    _c("DERIVED-MISMATCH", E, "derived", "a calculated item sent with a value its calculation does not give (a formula typed over, or a "
       "JSON document that disagrees); the value sent is kept for the rules",
       "{sent} is recorded, but this item is calculated from the other answers and the calculation gives {computed}",
       "Do not type over a calculated cell: correct the answers it is calculated from, or clear the cell so that its formula is "
       "restored (ask the data manager for a fresh workbook if it is lost)"),
    # -- the form's own checks (JSON Schema) ------------------------------------------------------------------------
    _c("FIELD-REQUIRED", E, "missing data", "a blank required item (conditions and dependencies are explained); nothing ticked in a "
       "required multiple choice", "{detail}", "Enter it"),
    _c("FORM-MISSING", E, "missing data", "a required form entirely blank",
       "the form '{form_title}' is blank, but it is required at this visit", "Fill it in, or tell the data manager why it was not done"),
    _c("FIELD-RANGE", E, "range", "outside the hard limits (an impossible value)", "{value} is impossible: the value must be {limits}",
       "Check the source document and correct the value"),
    _c("SOFT-LIMIT", Q, "range", "outside the soft limits (`x-soft`), inside the hard ones", "{value} is unusual (expected {limits})",
       "Confirm it against the source document, or correct it"),
    _c("FIELD-CHOICE", E, "format", "not one of the item's codes, or a choice given twice", "{value} is not one of the choices",
       "Choose a value from the list"),
    _c("FIELD-TOO-LONG", E, "format", "text longer than the item allows",
       "the text is {length} characters long; at most {maximum} are allowed", "Shorten it (put details in the source document)"),
    _c("FIELD-FORMAT", E, "format", "text that does not match the item's pattern", "{value} does not have the expected form ({form})",
       "Enter it as described on the form"),
    _c("FIELD-TYPE", E, "format", "a value of the wrong type (a JSON document)", "{value} is not {expected}", "Enter {expected}"),
    _c("FIELD-INVALID", E, "format", "any other schema error", "{value}: {detail}", "Correct the value"),
    # -- the validator itself ---------------------------------------------------------------------------------------
    _c("CHECK-FAILED", W, "internal", "a check stage failed on one subject (a bug; the other stages ran)",
       "the {stage} checks stopped on this subject ({detail})", "Report this to the data manager with the file; the other checks ran"),
    # -- the site's answered query listing (recorded by the study store, docs/store.md) ---------------------
    _c("LISTING-WRONG-STUDY", E, "listing", "an answered query listing of another study", "{problem}",
       "Send it to that study's data manager; answer this study's own listing"),
    _c("LISTING-ID-DAMAGED", E, "listing", "a query id in the listing that is not an id this study issues (edited or damaged)",
       "{problem}", "Copy the row's id back from the listing you received; the answer was not recorded"),
    _c("LISTING-UNKNOWN-QUERY", E, "listing", "a well-formed query id that was never issued (with --store)", "{problem}",
       "Copy the row's id back from the listing you received; the answer was not recorded"),
    _c("LISTING-ID-MISMATCH", E, "listing", "the id of another query: the row's subject, rule, visit or field disagree with it (with --store)",
       "{problem}", "Answer in the listing as issued; the answer was not recorded"),
    _c("LISTING-OTHER-SITE", E, "listing", "a row or query of another site than the listing's", "{problem}",
       "Answer each site's queries in that site's own listing; the answer was not recorded"),
)
CATALOGUE: Mapping[str, FindingCode] = {c.code: c for c in CODES}
CODE_PATTERN = re.compile(r"^[A-Z]+(?:-[A-Z]+)+$")  # FIELD-REQUIRED; rule ids (EC-01) have digits


def code(name: str) -> FindingCode:
    """The catalogue entry of a structural code; KeyError names a code that is not catalogued (a bug)."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise KeyError(f"finding code {name!r} is not in crf/catalogue.py") from None


class _Context(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "?"


def problem_text(name: str, **context: Any) -> str:
    """The problem of a code, its template filled from the producer's context."""
    return code(name).problem.format_map(_Context(context)).strip()


def markdown_table() -> str:
    """The table of docs/report-format.md ('Structural finding codes')."""
    rows = ["| code | severity | category | when | what the site is asked to do |", "|---|---|---|---|---|"]
    for c in CODES:
        severities = " / ".join(s.value for s in c.severities)
        rows.append(f"| {c.code} | {severities} | {c.category} | {c.title} | {c.fix.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


BEGIN, END = "<!-- finding codes: generated from crf/catalogue.py by `python build_crf.py codes-doc` -->", "<!-- end of finding codes -->"


def with_table(document: str) -> str:
    """`document` (docs/report-format.md) with the table between its markers replaced by the catalogue's."""
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the document has no section between {BEGIN!r} and {END!r}")
    return document[: start + len(BEGIN)] + "\n" + markdown_table() + document[end:]
