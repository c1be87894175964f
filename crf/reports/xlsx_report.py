"""The Excel query listing for sites: one row per finding to answer, with columns for the site's answer.

Every cell is written as text (never a formula): values starting with = + - @, tab, CR or LF are
prefixed with an apostrophe. The package is rewritten with fixed timestamps so that the same
findings give the same bytes. Written in openpyxl's write-only mode, one row at a time, with each row's
height computed for its wrapped text (LibreOffice keeps one line for rows written by openpyxl, and the
text then prints over the next row).
"""
from __future__ import annotations

import datetime as dt
import io
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Optional, Sequence

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.dimensions import RowDimension
from openpyxl.worksheet.worksheet import Worksheet

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


def write_xlsx(result: Any, out: BinaryIO, path: Optional[Path] = None) -> None:
    about = [("Study", result.study.id), ("Protocol version", result.study.protocol_version),
             ("Form version", result.study.form_version), ("Definition hash", result.study.definition_hash),
             ("Tool version", result.tool_version), ("Generated", result.generated or ""),
             ("How to answer", "For each query, write your answer in 'Site answer' (and the corrected value, if any), "
                               "correct the subject's workbook, and send both back to the data manager.")]
    counts = result.counts()
    count = sum(counts.values()) - counts[Severity.WARNING.value]  # warnings: nothing for a site to answer
    rows = (finding_row(f) for f in result.findings if f.severity is not Severity.WARNING)
    sites = sorted({f.site for f in result.findings if f.site} | {s.site for s in result.subjects if s.site})
    write_listing_workbook(out, QUERY_COLUMNS, rows, about, page=PageHeader(result.study, sites, result.generated), count=count)


def render_xlsx(result: Any) -> bytes:
    buf = io.BytesIO()
    write_xlsx(result, buf)
    return buf.getvalue()


@dataclass(frozen=True)
class PageHeader:
    """What every printed page of a listing names: the study, the site(s), when the listing was made."""

    study: Any
    sites: Sequence[str]
    generated: Optional[str] = None


def listing_workbook(columns: Sequence[tuple[str, str, int]], rows: Sequence[dict[str, Any]], about: Sequence[tuple[str, str]],
                     freeze: str = "A2", page: Optional[PageHeader] = None) -> bytes:
    """A query listing: a Queries sheet of `columns` (key, heading, width) then the site's answer columns, and an About
    sheet of (key, value) lines. The study store's per-site listing uses it too (crf.store.reports)."""
    buf = io.BytesIO()
    write_listing_workbook(buf, columns, rows, about, freeze, page, count=len(rows))
    return buf.getvalue()


def _text_cell(ws: Any, value: Optional[str], style: dict[str, Any]) -> WriteOnlyCell:
    cell = WriteOnlyCell(ws, value)
    if value is not None:
        cell.data_type = "s"  # text, even when it looks like a formula or a number
    for name, style_value in style.items():
        setattr(cell, name, style_value)
    return cell


def write_listing_workbook(out: BinaryIO, columns: Sequence[tuple[str, str, int]], rows: Iterable[dict[str, Any]],
                           about: Sequence[tuple[str, str]], freeze: str = "A2", page: Optional[PageHeader] = None,
                           count: int = 0) -> None:
    """listing_workbook streamed to `out` (a seekable file): openpyxl's write-only mode, one row in memory at a
    time; `count` is the number of `rows` (the sheet's dimension is written before them)."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Queries")
    headers = [h for _, h, _ in columns] + [h for h, _ in ANSWER_COLUMNS]
    widths = [w for _, _, w in columns] + [w for _, w in ANSWER_COLUMNS]
    for col, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(col)].width = width
    last_col = get_column_letter(len(headers))
    ws.calculate_dimension = lambda: f"A1:{last_col}{count + 1}"  # as openpyxl's normal mode writes it
    ws.freeze_panes = freeze
    if count:
        ws.auto_filter.ref = f"A1:{last_col}{count + 1}"
    if page is not None:
        print_setup(ws, page)
    wrap = Alignment(wrap_text=True, vertical="top")
    body_font = Font(size=BODY_POINTS)
    header_style = {"font": Font(bold=True), "fill": HEADER_FILL, "alignment": wrap}
    body_style = {"alignment": wrap, "font": body_font}
    answer_style = {"fill": ANSWER_FILL, "number_format": "@", "font": body_font}
    ws.row_dimensions[1].height = _row_height(headers, widths)
    ws.append([_text_cell(ws, h, header_style) for h in headers])
    with tempfile.TemporaryDirectory(prefix="open-ecrf-listing-") as tmp:
        body_rows = Path(tmp) / "rows.xml"
        with body_rows.open("wb") as rows_out:
            written = _write_rows(ws, rows_out, columns, rows, widths, body_style, answer_style) if count else 0
        if written != count:
            raise ValueError(f"listing_workbook: {written} rows written, {count} announced")
        _about_sheet(wb, about)
        wb.properties.creator = "open-ecrf"
        wb.properties.created = FIXED_TIME
        wb.properties.modified = FIXED_TIME
        saved = Path(tmp) / "listing.xlsx"
        wb.save(saved)
        _deterministic_zip(saved, out, {"xl/worksheets/sheet1.xml": body_rows} if count else {})


def _write_rows(ws: Any, out: BinaryIO, columns: Sequence[tuple[str, str, int]], rows: Iterable[dict[str, Any]], widths: list[int],
                body_style: dict[str, Any], answer_style: dict[str, Any]) -> int:
    """The body rows as the sheet's XML, exactly as openpyxl writes them (inline strings, ASCII with character
    references, xml:space="preserve" when the text has outer spaces), at a fraction of its cost per cell; spliced
    into the sheet when the package is rewritten. The styles are registered here, after the header's, as openpyxl would."""
    body = _text_cell(ws, "", body_style).style_id
    answer = _text_cell(ws, None, answer_style).style_id
    letters = [get_column_letter(c) for c in range(1, len(widths) + 1)]
    text_letters = letters[:len(columns)]
    answer_cells = "".join(f'<c r="{letter}{{r}}" s="{answer}" t="n"></c>' for letter in letters[len(columns):])
    heights: dict[float, str] = {}
    per_line = [max(1, int(width * CHARS_PER_WIDTH)) for width in widths[:len(columns)]]  # answer cells are empty: 1 line
    keys = [key for key, _, _ in columns]
    block: list[str] = []
    r = 1
    for row in rows:
        r += 1
        texts = [neutralise(_shown(key, v if v.__class__ is str else text_of(v)))[:32000] for key, v in zip(keys, map(row.__getitem__, keys))]
        if ILLEGAL_CHARACTERS_RE.search("".join(texts)):
            texts = [_legal(t) for t in texts]
        height = _height(texts, per_line)
        attrs = heights.get(height)
        if attrs is None:
            attrs = heights[height] = "".join(f' {k}="{v}"' for k, v in dict(RowDimension(ws, index=1, ht=height)).items())
        cells = [f'<row r="{r}"{attrs}>']
        for letter, text in zip(text_letters, texts):
            if not text:
                cells.append(f'<c r="{letter}{r}" s="{body}" t="inlineStr"></c>')
            else:
                space = ' xml:space="preserve"' if text != text.strip() else ""
                cells.append(f'<c r="{letter}{r}" s="{body}" t="inlineStr"><is><t{space}>{_escape(text)}</t></is></c>')
        cells.append(answer_cells.replace("{r}", str(r)))
        cells.append("</row>")
        block.append("".join(cells))
        if len(block) >= 500:
            out.write("".join(block).encode("ascii", "xmlcharrefreplace"))
            block.clear()
    out.write("".join(block).encode("ascii", "xmlcharrefreplace"))
    return r - 1


def _escape(text: str) -> str:
    """Character data as libxml2 writes it (openpyxl's writer): & < > escaped, carriage return as a reference."""
    if "&" in text or "<" in text or ">" in text or "\r" in text:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    return text


def _legal(text: str) -> str:
    """Control characters XML cannot hold (openpyxl refuses them) shown as U+FFFD instead of failing the listing."""
    return ILLEGAL_CHARACTERS_RE.sub("\ufffd", text)


def _about_sheet(wb: Any, about: Sequence[tuple[str, str]]) -> None:
    sheet = wb.create_sheet("About")
    sheet.column_dimensions["A"].width = 18
    sheet.column_dimensions["B"].width = 90
    sheet.calculate_dimension = lambda: f"A1:B{len(about)}"
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = Worksheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    about_style = {"alignment": Alignment(wrap_text=True, vertical="top")}
    for i, (k, v) in enumerate(about, start=1):
        sheet.row_dimensions[i].height = _row_height([str(v)], [90])
        sheet.append([_text_cell(sheet, k, {}), _text_cell(sheet, neutralise(v), about_style)])


def _shown(key: str, text: str) -> str:
    # the file's name is what a site recognises; its folder on the data manager's disk is noise on paper
    return text.replace("\\", "/").rsplit("/", 1)[-1] if key == "file" else text


def _row_height(texts: Sequence[str], widths: Sequence[int]) -> float:
    """Points needed by the tallest wrapped cell of a row (an estimate erring on the tall side)."""
    return _height(texts, [max(1, int(width * CHARS_PER_WIDTH)) for width in widths])


def _height(texts: Sequence[str], per_line: Sequence[int]) -> float:
    lines = 1
    for text, chars in zip(texts, per_line):
        if len(text) <= chars and "\n" not in text:  # one line: most cells
            continue
        lines = max(lines, sum(max(1, -(-len(part) // chars)) for part in text.split("\n")))
    return round(lines * LINE_POINTS + 3, 1)


def print_setup(ws: Any, page: PageHeader) -> None:
    """Landscape, one page wide, header row on every page; study, site(s) and date in every page's margins."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = Worksheet.PAPERSIZE_A4
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


def _deterministic_zip(source: Path, out: BinaryIO, splice: Optional[dict[str, Path]] = None) -> None:
    """The package rewritten part by part (streamed: a sheet of a million rows is never in memory) with fixed
    timestamps and a fixed part order; splice: rows (a file of XML) put at the end of a sheet's sheetData."""
    splice = splice or {}
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        names = src.namelist()
        for name in [n for n in names if n == "[Content_Types].xml"] + sorted(n for n in names if n != "[Content_Types].xml"):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            if name == "docProps/core.xml":
                content = re.sub(rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)", rb"\g<1>" + stamp.encode() + rb"\g<3>",
                                 src.read(name))
                dst.writestr(info, content)
                continue
            with dst.open(info, "w") as target:
                if name in splice:  # a sheet written by openpyxl with its header only: small
                    head, tail = src.read(name).rsplit(b"</sheetData>", 1)
                    target.write(head)
                    with splice[name].open("rb") as rows:
                        shutil.copyfileobj(rows, target, 1 << 20)
                    target.write(b"</sheetData>" + tail)
                else:
                    with src.open(name) as part:
                        shutil.copyfileobj(part, target, 1 << 20)
