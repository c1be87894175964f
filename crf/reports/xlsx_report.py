"""The Excel query listing for sites: one row per finding to answer, with columns for the site's answer.

Every cell is written as text (never a formula): values starting with = + - @, tab, CR or LF are
prefixed with an apostrophe. The package's XML is written here directly, streamed row by row into the
zip entry (a listing of a million rows is never in memory) by crf.ooxml_zip, as the CRF workbook is (fixed
timestamps, permissions and system), in a fixed part order, so that the same findings give the same bytes.
The parts are the ones openpyxl 3.1.5 writes for this workbook, byte for byte (the listings before this
writer are the reference: tests/fixtures/reports/, where only the zip's 'made by' byte has changed since);
openpyxl is not imported because it takes longer to import (it pulls in numpy) than writing a listing of
a thousand findings. Each row's height is computed for its wrapped text (LibreOffice keeps one line for
rows without a height, and the text then prints over the next row).
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Optional, Sequence

from ..findings import Severity
from ..ooxml_zip import FIXED_STAMP, open_package, open_part, write_part
from . import finding_row, neutralise, text_of

# Widths (characters) chosen so the whole row prints one page wide in landscape at a readable size.
QUERY_COLUMNS = (("id", "Query id", 13), ("severity", "Severity", 9), ("rule", "Rule", 9), ("site", "Site", 5),
                 ("subject", "Subject", 8), ("visit", "Visit", 6), ("sheet", "Sheet", 12), ("cell", "Cell", 6),
                 ("field", "Field", 9), ("row", "Log row", 5), ("value", "Value found", 12), ("expected", "Expected", 15),
                 ("message", "Query", 44), ("file", "File", 14))
ANSWER_COLUMNS = (("Site answer", 26), ("Corrected value", 11), ("Answered by", 10), ("Date answered", 10))
BODY_POINTS = 9  # body font size; row heights are computed for it
LINE_POINTS = 11.6  # one wrapped line at 9 pt in LibreOffice and Excel
CHARS_PER_WIDTH = 1.3  # characters of 9 pt text per unit of column width (LibreOffice fits about 1.5), kept low for wide letters
HEADER_FILL = "BDD7EE"
ANSWER_FILL = "FFF2CC"
# What XML 1.0 cannot hold (the characters openpyxl refuses).
ILLEGAL_CHARACTERS_RE = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")


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


def write_listing_workbook(out: BinaryIO, columns: Sequence[tuple[str, str, int]], rows: Iterable[dict[str, Any]],
                           about: Sequence[tuple[str, str]], freeze: str = "A2", page: Optional[PageHeader] = None,
                           count: int = 0) -> None:
    """listing_workbook streamed to `out`, one block of rows in memory at a time; `count` is the number of `rows`
    (the sheet's dimension and filter are written before them)."""
    if page is None:
        raise ValueError("a query listing names its study and sites on every printed page: pass page=PageHeader(...)")
    headers = [h for _, h, _ in columns] + [h for h, _ in ANSWER_COLUMNS]
    widths = [w for _, _, w in columns] + [w for _, w in ANSWER_COLUMNS]
    last_column = column_letter(len(headers))
    last = f"{last_column}{count + 1}"
    with open_package(out) as package:
        for name, content in _fixed_parts(bool(count), f"$A$1:${last_column}${count + 1}" if count else None):
            write_part(package, name, content)
        with open_part(package, "xl/worksheets/sheet1.xml") as sheet:
            sheet.write(_queries_head(headers, widths, last, freeze))
            written = _write_rows(sheet, columns, rows, widths) if count else 0
            sheet.write(_queries_tail(last if count else None, page))
        if written != count:
            raise ValueError(f"listing_workbook: {written} rows written, {count} announced")
        write_part(package, "xl/worksheets/sheet2.xml", _about_sheet(about, about_style=4 if count else 2))


# Cell styles, in the order openpyxl registered them: 1 the header, then (only when there are rows) 2 the body and
# 3 the answer cells, then the About sheet's values (4, or 2 without rows).
HEADER_STYLE, BODY_STYLE, ANSWER_STYLE = 1, 2, 3


def _write_rows(out: Any, columns: Sequence[tuple[str, str, int]], rows: Iterable[dict[str, Any]], widths: list[int]) -> int:
    """The body rows as the sheet's XML: inline strings, ASCII with character references, xml:space="preserve" when
    the text has outer spaces, each row's height for its wrapped text."""
    letters = [column_letter(c) for c in range(1, len(widths) + 1)]
    text_letters = letters[:len(columns)]
    answer_cells = "".join(f'<c r="{letter}{{r}}" s="{ANSWER_STYLE}" t="n"></c>' for letter in letters[len(columns):])
    per_line = [max(1, int(width * CHARS_PER_WIDTH)) for width in widths[:len(columns)]]  # answer cells are empty: 1 line
    keys = [key for key, _, _ in columns]
    file_column = keys.index("file") if "file" in keys else None
    block: list[str] = []
    r = 1
    for row in rows:
        r += 1
        texts = [v if v.__class__ is str else text_of(v) for v in map(row.__getitem__, keys)]
        if file_column is not None:
            texts[file_column] = _shown("file", texts[file_column])
        texts = [neutralise(t)[:32000] for t in texts]  # after _shown: a file named =x.xlsx in a folder is neutralised too
        if ILLEGAL_CHARACTERS_RE.search("".join(texts)):
            texts = [_legal(t) for t in texts]
        cells = [f'<row r="{r}" ht="{_points(_height(texts, per_line))}" customHeight="1">']
        for letter, text in zip(text_letters, texts):  # _text_cell, inline: this runs for every cell of the listing
            if not text:
                cells.append(f'<c r="{letter}{r}" s="{BODY_STYLE}" t="inlineStr"></c>')
            else:
                space = ' xml:space="preserve"' if text != text.strip() else ""
                cells.append(f'<c r="{letter}{r}" s="{BODY_STYLE}" t="inlineStr"><is><t{space}>{_escape(text)}</t></is></c>')
        cells.append(answer_cells.replace("{r}", str(r)))
        cells.append("</row>")
        block.append("".join(cells))
        if len(block) >= 500:
            out.write("".join(block).encode("ascii", "xmlcharrefreplace"))
            block.clear()
    out.write("".join(block).encode("ascii", "xmlcharrefreplace"))
    return r - 1


def _text_cell(ref: str, text: str, style: int) -> str:
    s = f' s="{style}"' if style else ""
    if not text:
        return f'<c r="{ref}"{s} t="inlineStr"></c>'
    space = ' xml:space="preserve"' if text != text.strip() else ""
    return f'<c r="{ref}"{s} t="inlineStr"><is><t{space}>{_escape(text)}</t></is></c>'


def _escape(text: str) -> str:
    """Character data as libxml2 writes it (openpyxl's writer): & < > escaped, carriage return as a reference."""
    if "&" in text or "<" in text or ">" in text or "\r" in text:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    return text


def _legal(text: str) -> str:
    """Control characters XML cannot hold shown as U+FFFD instead of failing the listing."""
    return ILLEGAL_CHARACTERS_RE.sub("\ufffd", text)


def _points(value: float) -> str:
    return "%.16g" % value  # as openpyxl writes a float: 26.2, 61


def column_letter(index: int) -> str:
    letters = ""
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


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


MAIN_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
SHEET_PROPERTIES = '<sheetPr><outlinePr summaryBelow="1" summaryRight="1"/><pageSetUpPr fitToPage="1"/></sheetPr>'
SHEET_FORMAT = '<sheetFormatPr baseColWidth="8" defaultRowHeight="15"/>'
LANDSCAPE_A4_ONE_PAGE_WIDE = '<pageSetup orientation="landscape" paperSize="9" fitToHeight="0" fitToWidth="1"/>'
# The frozen panes a listing uses: the header row, or the header row and the query id column.
FROZEN_PANES = {
    "A2": '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
          '<selection pane="bottomLeft" activeCell="A1" sqref="A1"/>',
    "B2": '<pane xSplit="1" ySplit="1" topLeftCell="B2" activePane="bottomRight" state="frozen"/>'
          '<selection pane="topRight"/><selection pane="bottomLeft"/><selection pane="bottomRight" activeCell="A1" sqref="A1"/>',
}


def _columns(widths: Sequence[int]) -> str:
    return "<cols>" + "".join(f'<col width="{_points(w)}" customWidth="1" min="{i}" max="{i}"/>'
                              for i, w in enumerate(widths, start=1)) + "</cols>"


def _queries_head(headers: Sequence[str], widths: Sequence[int], last: str, freeze: str) -> bytes:
    if freeze not in FROZEN_PANES:
        raise ValueError(f"freeze={freeze!r}: a listing freezes {' or '.join(FROZEN_PANES)}")
    header = "".join(_text_cell(f"{column_letter(c)}1", h, HEADER_STYLE) for c, h in enumerate(headers, start=1))
    return (f'<worksheet {MAIN_NS}>{SHEET_PROPERTIES}<dimension ref="A1:{last}"/><sheetViews><sheetView workbookViewId="0">'
            f'{FROZEN_PANES[freeze]}</sheetView></sheetViews>{SHEET_FORMAT}{_columns(widths)}<sheetData>'
            f'<row r="1" ht="{_points(_row_height(headers, widths))}" customHeight="1">{header}</row>').encode("ascii", "xmlcharrefreplace")


def _queries_tail(filtered: Optional[str], page: PageHeader) -> bytes:
    """After the rows: the filter, then the print setup: landscape, one page wide, gridlines, narrow margins; study,
    site(s) and date in every page's margins (the header row repeats: the workbook's Print_Titles)."""
    sites = list(page.sites)
    site_text = ("Site " if len(sites) == 1 else "Sites ") + ", ".join(sites) if sites else "All sites"
    study = page.study
    stamp = _header_text(f"Generated {page.generated} · ") if page.generated else ""
    odd_header = (f"&L&9 {_header_text(f'{study.id} · protocol {study.protocol_version} · CRF version {study.form_version}')}"
                  f"&C&9 Query listing&R&9 {_header_text(site_text)}")
    odd_footer = f"&L&9 {stamp}printed &D&R&9 Page &P of &N"
    autofilter = f'<autoFilter ref="A1:{filtered}"/>' if filtered else ""
    return (f'</sheetData>{autofilter}<printOptions gridLines="1"/>'
            '<pageMargins left="0.4" right="0.4" top="0.6" bottom="0.6" header="0.25" footer="0.25"/>'
            f'{LANDSCAPE_A4_ONE_PAGE_WIDE}<headerFooter><oddHeader>{_escape(_legal(odd_header))}</oddHeader>'
            f'<oddFooter>{_escape(_legal(odd_footer))}</oddFooter><evenHeader></evenHeader><evenFooter></evenFooter>'
            '<firstHeader></firstHeader><firstFooter></firstFooter></headerFooter></worksheet>').encode("ascii", "xmlcharrefreplace")


def _header_text(text: str) -> str:
    return text.replace("&", "&&")  # & starts a header code (&P, &D)


def _about_sheet(about: Sequence[tuple[str, str]], about_style: int) -> bytes:
    rows = []
    for i, (key, value) in enumerate(about, start=1):
        rows.append(f'<row r="{i}" ht="{_points(_row_height([str(value)], [90]))}" customHeight="1">'
                    f'{_text_cell(f"A{i}", _legal(key), 0)}{_text_cell(f"B{i}", _legal(neutralise(value)), about_style)}</row>')
    return (f'<worksheet {MAIN_NS}>{SHEET_PROPERTIES}<dimension ref="A1:B{len(about)}"/><sheetViews><sheetView workbookViewId="0">'
            f'<selection activeCell="A1" sqref="A1"/></sheetView></sheetViews>{SHEET_FORMAT}{_columns([18, 90])}'
            f'<sheetData>{"".join(rows)}</sheetData>'
            '<pageMargins left="0.75" right="0.75" top="1" bottom="1" header="0.5" footer="0.5"/>'
            f'{LANDSCAPE_A4_ONE_PAGE_WIDE}</worksheet>').encode("ascii", "xmlcharrefreplace")


PACKAGE_NS = "http://schemas.openxmlformats.org/package/2006"
DOCUMENT_NS = "http://schemas.openxmlformats.org/officeDocument/2006"
OOXML_TYPE = "application/vnd.openxmlformats-officedocument"
CONTENT_TYPES = (
    f'<Types xmlns="{PACKAGE_NS}/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    f'<Override PartName="/xl/styles.xml" ContentType="{OOXML_TYPE}.spreadsheetml.styles+xml"/>'
    f'<Override PartName="/xl/theme/theme1.xml" ContentType="{OOXML_TYPE}.theme+xml"/>'
    '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
    f'<Override PartName="/docProps/app.xml" ContentType="{OOXML_TYPE}.extended-properties+xml"/>'
    f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{OOXML_TYPE}.spreadsheetml.worksheet+xml"/>'
    f'<Override PartName="/xl/worksheets/sheet2.xml" ContentType="{OOXML_TYPE}.spreadsheetml.worksheet+xml"/>'
    f'<Override PartName="/xl/workbook.xml" ContentType="{OOXML_TYPE}.spreadsheetml.sheet.main+xml"/></Types>')
PACKAGE_RELS = (
    f'<Relationships xmlns="{PACKAGE_NS}/relationships">'
    f'<Relationship Type="{DOCUMENT_NS}/relationships/officeDocument" Target="xl/workbook.xml" Id="rId1"/>'
    f'<Relationship Type="{PACKAGE_NS}/relationships/metadata/core-properties" Target="docProps/core.xml" Id="rId2"/>'
    f'<Relationship Type="{DOCUMENT_NS}/relationships/extended-properties" Target="docProps/app.xml" Id="rId3"/></Relationships>')
# The application name openpyxl writes, kept so that listings keep their bytes across this writer's change.
APP_PROPERTIES = (f'<Properties xmlns="{DOCUMENT_NS}/extended-properties"><Application>Microsoft Excel Compatible / Openpyxl 3.1.5'
                  '</Application><AppVersion>3.1</AppVersion></Properties>')
W3CDTF = ('xmlns:dcterms="http://purl.org/dc/terms/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
          'xsi:type="dcterms:W3CDTF"')
CORE_PROPERTIES = (
    f'<cp:coreProperties xmlns:cp="{PACKAGE_NS}/metadata/core-properties"><dc:creator xmlns:dc="http://purl.org/dc/elements/1.1/">'
    f'open-ecrf</dc:creator><dcterms:created {W3CDTF}>{FIXED_STAMP}</dcterms:created>'
    f'<dcterms:modified {W3CDTF}>{FIXED_STAMP}</dcterms:modified></cp:coreProperties>')
WORKBOOK_RELS = (
    f'<Relationships xmlns="{PACKAGE_NS}/relationships">'
    f'<Relationship Type="{DOCUMENT_NS}/relationships/worksheet" Target="/xl/worksheets/sheet1.xml" Id="rId1"/>'
    f'<Relationship Type="{DOCUMENT_NS}/relationships/worksheet" Target="/xl/worksheets/sheet2.xml" Id="rId2"/>'
    f'<Relationship Type="{DOCUMENT_NS}/relationships/styles" Target="styles.xml" Id="rId3"/>'
    f'<Relationship Type="{DOCUMENT_NS}/relationships/theme" Target="theme/theme1.xml" Id="rId4"/></Relationships>')
# The legacy indexed palette, as every openpyxl workbook carries it.
INDEXED_COLORS = (
    "00000000 00FFFFFF 00FF0000 0000FF00 000000FF 00FFFF00 00FF00FF 0000FFFF 00000000 00FFFFFF 00FF0000 0000FF00 000000FF "
    "00FFFF00 00FF00FF 0000FFFF 00800000 00008000 00000080 00808000 00800080 00008080 00C0C0C0 00808080 009999FF 00993366 "
    "00FFFFCC 00CCFFFF 00660066 00FF8080 000066CC 00CCCCFF 00000080 00FF00FF 00FFFF00 0000FFFF 00800080 00800000 00008080 "
    "000000FF 0000CCFF 00CCFFFF 00CCFFCC 00FFFF99 0099CCFF 00FF99CC 00CC99FF 00FFCC99 003366FF 0033CCCC 0099CC00 00FFCC00 "
    "00FF9900 00FF6600 00666699 00969696 00003366 00339966 00003300 00333300 00993300 00993366 00333399 00333333").split()
XF = 'pivotButton="0" quotePrefix="0" xfId="0"'
WRAP_TOP = '<alignment vertical="top" wrapText="1"/>'


def _styles(with_rows: bool) -> str:
    fonts = ['<font><name val="Calibri"/><family val="2"/><color theme="1"/><sz val="11"/><scheme val="minor"/></font>',
             '<font><b val="1"/></font>'] + (['<font><sz val="9"/></font>'] if with_rows else [])
    fills = ['<fill><patternFill/></fill>', '<fill><patternFill patternType="gray125"/></fill>',
             f'<fill><patternFill patternType="solid"><fgColor rgb="00{HEADER_FILL}"/></patternFill></fill>']
    xfs = [f'<xf numFmtId="0" fontId="0" fillId="0" borderId="0" {XF}/>',
           f'<xf numFmtId="0" fontId="1" fillId="2" borderId="0" applyAlignment="1" {XF}>{WRAP_TOP}</xf>']
    if with_rows:
        fills.append(f'<fill><patternFill patternType="solid"><fgColor rgb="00{ANSWER_FILL}"/></patternFill></fill>')
        xfs += [f'<xf numFmtId="0" fontId="2" fillId="0" borderId="0" applyAlignment="1" {XF}>{WRAP_TOP}</xf>',
                f'<xf numFmtId="49" fontId="2" fillId="3" borderId="0" {XF}/>']  # 49: text, so an answer is never a number
    xfs.append(f'<xf numFmtId="0" fontId="0" fillId="0" borderId="0" applyAlignment="1" {XF}>{WRAP_TOP}</xf>')
    return (f'<styleSheet {MAIN_NS}><numFmts count="0"/><fonts count="{len(fonts)}">{"".join(fonts)}</fonts>'
            f'<fills count="{len(fills)}">{"".join(fills)}</fills>'
            '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
            '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
            f'<cellXfs count="{len(xfs)}">{"".join(xfs)}</cellXfs>'
            '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0" hidden="0"/></cellStyles>'
            '<tableStyles count="0" defaultTableStyle="TableStyleMedium9" defaultPivotStyle="PivotStyleLight16"/>'
            '<colors><indexedColors>' + "".join(f'<rgbColor rgb="{c}"/>' for c in INDEXED_COLORS) + '</indexedColors></colors></styleSheet>')


def _workbook(filtered: Optional[str]) -> str:
    rel = f'xmlns:r="{DOCUMENT_NS}/relationships"'
    names = f'<definedName name="_xlnm._FilterDatabase" localSheetId="0" hidden="1">\'Queries\'!{filtered}</definedName>' if filtered else ""
    return (f'<workbook {MAIN_NS}><workbookPr/><workbookProtection/><bookViews><workbookView visibility="visible" minimized="0" '
            'showHorizontalScroll="1" showVerticalScroll="1" showSheetTabs="1" tabRatio="600" firstSheet="0" activeTab="0" '
            f'autoFilterDateGrouping="1"/></bookViews><sheets><sheet {rel} name="Queries" sheetId="1" state="visible" r:id="rId1"/>'
            f'<sheet {rel} name="About" sheetId="2" state="visible" r:id="rId2"/></sheets><definedNames>{names}'
            '<definedName name="_xlnm.Print_Titles" localSheetId="0">\'Queries\'!$1:$1</definedName></definedNames>'
            '<calcPr calcId="124519" fullCalcOnLoad="1"/></workbook>')


def _fixed_parts(with_rows: bool, filtered: Optional[str]) -> list[tuple[str, bytes]]:
    """Every part but the two sheets, in the package's order ([Content_Types].xml first, then by name); `filtered`: the
    auto-filter's absolute range ($A$1:$R$12), None when there are no rows."""
    theme = (Path(__file__).parent / "theme1.xml").read_bytes()  # Office's default theme, as openpyxl writes it
    return [("[Content_Types].xml", CONTENT_TYPES.encode()), ("_rels/.rels", PACKAGE_RELS.encode()),
            ("docProps/app.xml", APP_PROPERTIES.encode()), ("docProps/core.xml", CORE_PROPERTIES.encode()),
            ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS.encode()), ("xl/styles.xml", _styles(with_rows).encode()),
            ("xl/theme/theme1.xml", theme), ("xl/workbook.xml", _workbook(filtered).encode())]
