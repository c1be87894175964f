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
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill

from ..findings import Severity
from . import finding_row, neutralise, text_of

FIXED_TIME = dt.datetime(2000, 1, 1)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# Widths (characters) chosen so the whole row prints one page wide in landscape at a readable size.
QUERY_COLUMNS = (("id", "Query id", 13), ("severity", "Severity", 9), ("rule", "Rule", 9), ("site", "Site", 5),
                 ("subject", "Subject", 8), ("visit", "Visit", 6), ("sheet", "Sheet", 12), ("cell", "Cell", 6),
                 ("field", "Field", 9), ("row", "Log row", 5), ("value", "Value found", 12), ("expected", "Expected", 15),
                 ("message", "Query", 44), ("file", "File", 14))
ANSWER_COLUMNS = (("Site answer", 26), ("Corrected value", 11), ("Answered by", 10), ("Date answered", 10))
BODY_POINTS = 9  # body font size; row heights are computed for it
LINE_POINTS = 11.6  # one wrapped line at 9 pt in LibreOffice and Excel
CHARS_PER_WIDTH = 1.3  # characters of 9 pt text per unit of column width (LibreOffice fits about 1.5), kept low for wide letters
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
    sites = sorted({f.site for f in result.findings if f.site} | {s.site for s in result.subjects if s.site})
    return listing_workbook(QUERY_COLUMNS, rows, about, page=PageHeader(result.study, sites, result.generated))


@dataclass(frozen=True)
class PageHeader:
    """What every printed page of a listing names: the study, the site(s), when the listing was made."""

    study: Any
    sites: Sequence[str]
    generated: Optional[str] = None


def listing_workbook(columns: Sequence[tuple[str, str, int]], rows: Iterable[dict[str, Any]], about: Sequence[tuple[str, str]],
                     freeze: str = "A2", page: Optional[PageHeader] = None) -> bytes:
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
            _text_cell(ws, r, col, neutralise(_shown(key, text_of(row[key])))[:32000])
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
    for col in range(1, len(headers) + 1):
        ws.cell(row=1, column=col).alignment = wrap
    fit_rows(ws, widths)
    if page is not None:
        print_setup(ws, page)
    sheet = wb.create_sheet("About")
    for i, (k, v) in enumerate(about, start=1):
        _text_cell(sheet, i, 1, k)
        _text_cell(sheet, i, 2, neutralise(v))
    sheet.column_dimensions["A"].width = 18
    sheet.column_dimensions["B"].width = 90
    for i, (_, v) in enumerate(about, start=1):
        sheet.cell(row=i, column=2).alignment = Alignment(wrap_text=True, vertical="top")
        sheet.row_dimensions[i].height = _row_height([str(v)], [90])
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    wb.properties.creator = "open-ecrf"
    wb.properties.created = FIXED_TIME
    wb.properties.modified = FIXED_TIME
    buf = io.BytesIO()
    wb.save(buf)
    return _deterministic_zip(buf.getvalue())


def _shown(key: str, text: str) -> str:
    # the file's name is what a site recognises; its folder on the data manager's disk is noise on paper
    return text.replace("\\", "/").rsplit("/", 1)[-1] if key == "file" else text


def _row_height(texts: list[str], widths: list[int]) -> float:
    """Points needed by the tallest wrapped cell of a row (an estimate erring on the tall side)."""
    lines = 1
    for text, width in zip(texts, widths):
        per_line = max(1, int(width * CHARS_PER_WIDTH))
        lines = max(lines, sum(max(1, -(-len(part) // per_line)) for part in text.split("\n")))
    return round(lines * LINE_POINTS + 3, 1)


def fit_rows(ws: Any, widths: list[int]) -> None:
    """Body font and a row height for each row's wrapped text (LibreOffice keeps one line for rows written
    by openpyxl, and the text then prints over the next row)."""
    body_font = Font(size=BODY_POINTS)
    for r, row in enumerate(ws.iter_rows(), start=1):
        ws.row_dimensions[r].height = _row_height([str(c.value or "") for c in row], widths)
        if r > 1:
            for c in row:
                c.font = body_font


def print_setup(ws: Any, page: PageHeader) -> None:
    """Landscape, one page wide, header row on every page; study, site(s) and date in every page's margins."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0  # as many pages down as needed
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_title_rows = "1:1"
    ws.print_options.gridLines = True
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.page_margins.top = ws.page_margins.bottom = 0.6
    ws.page_margins.header = ws.page_margins.footer = 0.25
    sites = list(page.sites)
    site_text = ("Site " if len(sites) == 1 else "Sites ") + ", ".join(sites) if sites else "All sites"
    study = page.study
    ws.oddHeader.left.text = _header_text(f"{study.id} · protocol {study.protocol_version} · CRF version {study.form_version}")
    ws.oddHeader.center.text = "Query listing"
    ws.oddHeader.right.text = _header_text(site_text)
    stamp = _header_text(f"Generated {page.generated} · ") if page.generated else ""
    ws.oddFooter.left.text = f"{stamp}printed &D"
    ws.oddFooter.right.text = "Page &P of &N"
    for part in (ws.oddHeader.left, ws.oddHeader.center, ws.oddHeader.right, ws.oddFooter.left, ws.oddFooter.right):
        part.size = 9


def _header_text(text: str) -> str:
    return text.replace("&", "&&")  # & starts a header code (&P, &D)


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
