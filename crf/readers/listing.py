"""The site's answered query listing (written by `validate.py --format xlsx` or `validate.py queries listing`).

A listing comes back with the site's answers in its yellow columns. It is recognised by its two
sheets (Queries with a 'Query id' and a 'Site answer' column, About with the study) and read into a
QueryListing; the study store records the answers (crf.store.ingest), after checking each row's id
against the query it was issued for. What can be told from the file alone is a finding here: a
listing of another study, a damaged or edited id, a row of another site than the listing's.
"""
from __future__ import annotations

import dataclasses
import io
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import python_calamine

from ..findings import Finding, Severity
from ..model import Study
from .base import file_finding
from .convert import safe_text
from .sheet_xml import column_letters

QUERIES_SHEET = "Queries"
ABOUT_SHEET = "About"
ID_HEADER = "Query id"
ANSWER_HEADER = "Site answer"
QUERY_ID = re.compile(r"^[0-9a-f]{12}$")
HEADERS = {"Query id": "id", "Site": "site", "Subject": "subject", "Rule": "rule", "Visit": "visit", "Field": "field",
           "Log row": "row", "Site answer": "answer", "Corrected value": "corrected", "Answered by": "by",
           "Date answered": "date"}
MAX_ROWS = 20_000


@dataclass(frozen=True)
class ListingRow:
    number: int  # the worksheet row, from 1
    query_id: str
    site: str
    subject: str
    rule: str
    visit: str
    field: str
    log_row: Optional[int]
    answer: str
    corrected_value: str
    answered_by: str
    answered_on: str
    id_cell: str  # e.g. A7

    @property
    def answered(self) -> bool:
        return bool(self.answer or self.corrected_value)


@dataclass
class QueryListing:
    file: str
    study: str
    site: str  # the site the listing was issued to ('' for a listing of several sites)
    rows: list[ListingRow] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()[:10]
    text = safe_text(str(value).strip())  # a site's answer reaches the store and every report: control characters made visible
    return text[1:] if text.startswith("'") else text  # the listing writer's formula guard


def read_listing(data: bytes, display: str, study: Study) -> Optional[QueryListing]:
    """The listing in `data`, or None when the workbook is not a query listing (then it is just not a CRF)."""
    try:
        book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    except Exception:
        return None
    try:
        if QUERIES_SHEET not in book.sheet_names or ABOUT_SHEET not in book.sheet_names:
            return None
        rows = book.get_sheet_by_name(QUERIES_SHEET).to_python(skip_empty_area=False, nrows=MAX_ROWS + 1)
        about_rows = book.get_sheet_by_name(ABOUT_SHEET).to_python(skip_empty_area=False, nrows=50)
    except Exception:
        return None
    finally:
        book.close()
    header = [_text(v) for v in rows[0]] if rows else []
    if ID_HEADER not in header or ANSWER_HEADER not in header:
        return None
    about = {_text(r[0]): _text(r[1]) for r in about_rows if len(r) >= 2 and _text(r[0])}
    listing = QueryListing(display, about.get("Study", ""), about.get("Site", ""))
    if listing.study != study.id:
        listing.findings.append(file_finding(
            display, "LISTING-WRONG-STUDY", f"this query listing belongs to study '{listing.study or 'unknown'}', not to {study.id}",
            f"Its answers were not recorded; send it to that study's data manager, and for {study.id} answer the {study.id} listing",
            sheet=ABOUT_SHEET, cell="B1", site=listing.site, category="listing"))
        return listing
    columns = {HEADERS[h]: i for i, h in enumerate(header) if h in HEADERS}
    id_col = columns["id"]
    for number, raw in enumerate(rows[1:], start=2):
        cells = {key: _text(raw[i]) if i < len(raw) else "" for key, i in columns.items()}
        if not any(cells.values()):
            continue
        id_cell = f"{column_letters(id_col)}{number}"
        qid = cells["id"].lower()
        if not QUERY_ID.match(qid):
            listing.findings.append(file_finding(
                display, "LISTING-ID-DAMAGED", f"the query id '{cells['id'][:40]}' is not an id this study issued (12 letters and digits)",
                "Query ids must stay as issued: copy this row's id back from the listing you received and send it again; "
                "this row's answer was not recorded", sheet=QUERIES_SHEET, cell=id_cell, site=listing.site or cells.get("site", ""),
                category="listing", value=cells["id"][:40]))
            continue
        if listing.site and cells.get("site") and cells["site"] != listing.site:
            listing.findings.append(file_finding(
                display, "LISTING-OTHER-SITE", f"row {number} is a query of site {cells['site']}, but this listing was issued to site {listing.site}",
                "Answer each site's queries in that site's own listing; this row's answer was not recorded",
                sheet=QUERIES_SHEET, cell=id_cell, site=listing.site, category="listing", value=cells["site"]))
            continue
        log_row = int(cells["row"]) if cells.get("row", "").isdigit() else None
        listing.rows.append(ListingRow(number, qid, cells.get("site", ""), cells.get("subject", ""), cells.get("rule", ""),
                                       cells.get("visit", ""), cells.get("field", ""), log_row, cells.get("answer", ""),
                                       cells.get("corrected", ""), cells.get("by", ""), cells.get("date", ""), id_cell))
    # one finding per row: the cell tells them apart (file-level finding ids otherwise depend only on rule and file)
    listing.findings = [dataclasses.replace(f, extra_key=f.cell) for f in listing.findings]
    return listing


__all__ = ["QueryListing", "ListingRow", "read_listing", "Severity"]
