"""The workbook's OOXML, written without openpyxl where openpyxl is slow: the visit and log sheets' cells (as
openpyxl would write them: inline strings, its style ids), the hidden _meta sheet's rows, the defined names; and
the saved package rewritten (crf.ooxml_zip) so that the same inputs give the same bytes."""
from __future__ import annotations

import io
import re
from collections import defaultdict

from openpyxl.compat import safe_string
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import to_excel

from ..ooxml_zip import rewrite_package

_SHEET_DATA = re.compile(r"<sheetData\s*/>|<sheetData>\s*</sheetData>")


def xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fill_sheet_data(xml: bytes, rows: list[list[str]]) -> bytes:
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
            cells.append(f'<c r="{ref}" t="inlineStr"><is><t{space}>{xml_text(value)}</t></is></c>')
        out.append(f'<row r="{r}">{"".join(cells)}</row>')
    out.append("</sheetData>")
    text = xml.decode("utf-8")
    data = "".join(out)
    text = _SHEET_DATA.sub(lambda _m: data, text, count=1)
    text = re.sub(r'<dimension ref="[^"]*"', f'<dimension ref="A1:{get_column_letter(width)}{len(rows)}"', text, count=1)
    return text.encode("utf-8")


def add_defined_names(xml: bytes, names_xml: str) -> bytes:
    text = xml.decode("utf-8")
    if "<definedNames>" in text:
        text = text.replace("<definedNames>", "<definedNames>" + names_xml, 1)
    else:
        text = text.replace("</sheets>", "</sheets><definedNames>" + names_xml + "</definedNames>", 1)
    return text.encode("utf-8")


def _attr(text: str) -> str:
    return xml_text(text).replace('"', "&quot;")


def detach_sheet_data(ws):
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
                out.append(f'{head} t="inlineStr"><is><t{space}>{xml_text(value)}</t></is></c>')
            elif dtype == "f":
                out.append(f"{head}><f>{xml_text(value[1:])}</f><v></v></c>")
            elif dtype == "d":
                out.append(f'{head} t="n"><v>{safe_string(to_excel(value, wb.epoch))}</v></c>')
            else:
                out.append(f'{head} t="{dtype}"><v>{xml_text(safe_string(value))}</v></c>')
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


def save(wb, rewrite: dict) -> bytes:
    """The workbook saved by openpyxl, its parts in `rewrite` passed through their functions, made deterministic."""
    buf = io.BytesIO()
    wb.save(buf)
    return rewrite_package(buf.getvalue(), rewrite)
