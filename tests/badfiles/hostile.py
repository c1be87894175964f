"""Hostile and damaged returns (issue 11), made at test time from a hand-written subject's workbook.

Each maker edits the package as an attacker or a careless tool would and returns the new bytes.
The base is the study's own workbook filled with tests/fixtures/subjects/01-901.json (hand-written
from the spec), never a synthetic subject.
"""
from __future__ import annotations

import re
from typing import Callable

from . import name_ref, pack, parts, sheet_part

VISIT_SHEET = "V1 Day 0"


def edit_sheet(good: bytes, sheet: str, change: Callable[[str], str]) -> bytes:
    files = parts(good)
    part = sheet_part(files, sheet)
    before = files[part].decode()
    after = change(before)
    assert after != before, f"the edit of {sheet} changed nothing"
    files[part] = after.encode()
    return pack(files)


def first_cell(xml: str, column: str) -> str:
    """The first `<c r="D..."` of a column (its attribute text, to replace)."""
    m = re.search(r'<c r="' + column + r'(\d+)"', xml)
    assert m, column
    return m[0]


def huge_reference(good: bytes) -> bytes:
    """A cell reference D99999999999: the workbook library would allocate hundreds of GB and abort."""
    return edit_sheet(good, VISIT_SHEET, lambda x: x.replace(first_cell(x, "D"), '<c r="D99999999999"', 1))


def last_row_first(good: bytes) -> bytes:
    """A row r="1048576" with a cell at XFD placed before the other rows (a check of the sheet's end misses it)."""
    return edit_sheet(good, VISIT_SHEET, lambda x: x.replace(
        "<sheetData>", '<sheetData><row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>far</t></is></c></row>', 1))


def stray_far_cell(good: bytes, sheet: str = VISIT_SHEET) -> bytes:
    """One value at XFD3051 (after the form's rows): 50 million cells of grid for one value."""
    return edit_sheet(good, sheet, lambda x: x.replace(
        "</sheetData>", '<row r="3051"><c r="XFD3051" t="inlineStr"><is><t>note</t></is></c></row></sheetData>', 1))


def set_named_cell(good: bytes, name: str, cell_xml: Callable[[str], str]) -> bytes:
    """Replace the cell behind defined name `name` with `cell_xml(reference)` (its style kept)."""
    files = parts(good)
    sheet, cell = name_ref(files, name)
    part = sheet_part(files, sheet)
    xml = files[part].decode()
    pattern = re.compile(r'<c r="' + cell + r'"(?: [^>]*?)?(?:/>|>.*?</c>)', re.S)
    style = re.search(r'<c r="' + cell + r'"[^>]*?( s="\d+")', xml)
    new = cell_xml(cell).replace(f'<c r="{cell}"', f'<c r="{cell}"{style[1] if style else ""}', 1)
    xml, n = pattern.subn(new, xml, count=1)
    assert n == 1, (name, cell)
    files[part] = xml.encode()
    return pack(files)


# a defined name of an input on the Day 0 sheet, one of a date, one of an optional text
WEIGHT = "F_V1__VS_PRE__WEIGHT"
VISIT_DATE = "F_V2__SV__SVSTDAT"


def unreadable_values(good: bytes) -> dict[str, bytes]:
    """One workbook per value the workbook library cannot read: each would lose its whole sheet."""
    return {
        "boolean-holding-x": set_named_cell(good, WEIGHT, lambda c: f'<c r="{c}" t="b"><v>x</v></c>'),
        "unknown-error-value": set_named_cell(good, WEIGHT, lambda c: f'<c r="{c}" t="e"><v>#BOGUS!</v></c>'),
        "shared-string-past-table": set_named_cell(good, WEIGHT, lambda c: f'<c r="{c}" t="s"><v>99999</v></c>'),
        "date-minus-1e309": set_named_cell(good, VISIT_DATE, lambda c: f'<c r="{c}"><v>-1e309</v></c>'),
    }


def meta_says_renamed(good: bytes) -> bytes:
    """The _meta field map names another sheet for the first field of 'SCR Screening' (the workbook itself unchanged)."""
    files = parts(good)
    part = sheet_part(files, "_meta")
    xml = files[part].decode()
    row = re.search(r'<row r="(\d+)"><c r="A\d+" t="inlineStr"><is><t>/visits/SCR/SV/SVSTDAT</t>', xml)
    assert row
    cell = f'<c r="C{row[1]}" t="inlineStr"><is><t>SCR Screening</t></is></c>'
    assert cell in xml
    files[part] = xml.replace(cell, cell.replace("SCR Screening", "Screening"), 1).encode()
    return pack(files)


def text_value(good: bytes, text: str, name: str = "L_AE__R001__AETERM") -> bytes:
    """`text` in a text input, written as Excel escapes characters XML cannot hold (_x001B_ for ESC)."""
    escaped = "".join(f"_x{ord(ch):04X}_" if ord(ch) < 0x20 and ch not in "\t\n" else ch for ch in text)
    escaped = escaped.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return set_named_cell(good, name, lambda c: f'<c r="{c}" t="inlineStr"><is><t xml:space="preserve">{escaped}</t></is></c>')


def number_cell(good: bytes, text: str, name: str = WEIGHT) -> bytes:
    return set_named_cell(good, name, lambda c: f'<c r="{c}"><v>{text}</v></c>')


def meta_not_utf8(good: bytes) -> bytes:
    """A byte that is not UTF-8 inside a _meta value."""
    files = parts(good)
    part = sheet_part(files, "_meta")
    xml = files[part]
    at = xml.index(b"<t>site</t>")
    value = xml.index(b"<t>", at + 5) + 3
    files[part] = xml[:value] + b"\xff\xfe" + xml[value:]
    return pack(files)


def many_empty_formulas(good: bytes, count: int = 40_000) -> bytes:
    return edit_sheet(good, VISIT_SHEET, lambda x: x.replace(
        "</sheetData>", '<row r="900"><c r="A900">' + "<f/>" * count + '</c></row><row r="901">' + "<f/>" * count + "</row></sheetData>", 1))
