"""The Excel query listing for sites: one row per finding to answer, with columns for the site's answer.

Every cell is written as text (never a formula): values starting with = + - @, tab, CR or LF are
prefixed with an apostrophe. The package is rewritten with fixed timestamps so that the same
findings give the same bytes.
"""
from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from typing import Any, Iterable, Sequence

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.worksheet.datavalidation import DataValidation

from ..findings import Severity
from . import finding_row, neutralise, text_of

FIXED_TIME = dt.datetime(2000, 1, 1)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
QUERY_COLUMNS = (("id", "Query id", 14), ("severity", "Severity", 12), ("rule", "Rule", 16), ("site", "Site", 6),
                 ("subject", "Subject", 10), ("visit", "Visit", 7), ("sheet", "Sheet", 22), ("cell", "Cell", 7),
                 ("field", "Field", 10), ("row", "Log row", 7), ("value", "Value found", 18), ("expected", "Expected", 22),
                 ("message", "Query", 70), ("file", "File", 24))
ANSWER_COLUMNS = (("Site answer", 40), ("Corrected value", 16), ("Answered by", 14), ("Date answered", 13))
HEADER_FILL = PatternFill("solid", fgColor="BDD7EE")
ANSWER_FILL = PatternFill("solid", fgColor="FFF2CC")


def _text_cell(ws: Any, row: int, col: int, value: str) -> None:
    cell = ws.cell(row=row, column=col)
    cell.value = value
    cell.data_type = "s"  # text, even when it looks like a formula or a number


def render_xlsx(result: Any) -> bytes:
    about = [("Study", result.study.id), ("Protocol version", result.study.protocol_version),
             ("Form version", result.study.form_version), ("Definition hash", result.study.definition_hash),
             ("Tool version", result.tool_version), ("Generated", result.generated or ""),
             ("How to answer", "For each query, write your answer in 'Site answer' (and the corrected value, if any), "
                               "correct the subject's workbook, and send both back to the data manager.")]
    rows = (finding_row(f) for f in result.findings if f.severity is not Severity.WARNING)  # warnings: nothing for a site to answer
    return listing_workbook(QUERY_COLUMNS, rows, about)


def listing_workbook(columns: Sequence[tuple[str, str, int]], rows: Iterable[dict[str, Any]], about: Sequence[tuple[str, str]],
                     freeze: str = "A2") -> bytes:
    """A query listing: a Queries sheet of `columns` (key, heading, width) then the site's answer columns, and an About
    sheet of (key, value) lines. The study store's per-site listing uses it too (crf.store.reports)."""
    wb = Workbook()
    ws = wb.active
    ws.title = "Queries"
    headers = [h for _, h, _ in columns] + [h for h, _ in ANSWER_COLUMNS]
    for col, header in enumerate(headers, start=1):
        _text_cell(ws, 1, col, header)
        ws.cell(row=1, column=col).font = Font(bold=True)
        ws.cell(row=1, column=col).fill = HEADER_FILL
    wrap = Alignment(wrap_text=True, vertical="top")
    r = 1
    for row in rows:
        r += 1
        for col, (key, _, _) in enumerate(columns, start=1):
            _text_cell(ws, r, col, neutralise(text_of(row[key]))[:32000])
            ws.cell(row=r, column=col).alignment = wrap
        for col in range(len(columns) + 1, len(headers) + 1):
            ws.cell(row=r, column=col).fill = ANSWER_FILL
            ws.cell(row=r, column=col).number_format = "@"
    widths = [w for _, _, w in columns] + [w for _, w in ANSWER_COLUMNS]
    for col, width in enumerate(widths, start=1):
        ws.column_dimensions[ws.cell(row=1, column=col).column_letter].width = width
    ws.freeze_panes = freeze
    if r > 1:
        ws.auto_filter.ref = f"A1:{ws.cell(row=r, column=len(headers)).coordinate}"
    sheet = wb.create_sheet("About")
    for i, (k, v) in enumerate(about, start=1):
        _text_cell(sheet, i, 1, k)
        _text_cell(sheet, i, 2, neutralise(v))
    sheet.column_dimensions["A"].width = 18
    sheet.column_dimensions["B"].width = 90
    wb.properties.creator = "open-ecrf"
    wb.properties.created = FIXED_TIME
    wb.properties.modified = FIXED_TIME
    buf = io.BytesIO()
    wb.save(buf)
    return _deterministic_zip(buf.getvalue())


def _deterministic_zip(data: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        names = src.namelist()
        for name in [n for n in names if n == "[Content_Types].xml"] + sorted(n for n in names if n != "[Content_Types].xml"):
            content = src.read(name)
            if name == "docProps/core.xml":
                content = re.sub(rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)", rb"\g<1>" + stamp.encode() + rb"\g<3>", content)
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            dst.writestr(info, content)
    return out.getvalue()
