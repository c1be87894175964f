"""Hostile and damaged returns (issue 11), made at test time from a hand-written subject's workbook.

Each maker edits the package as an attacker or a careless tool would and returns the new bytes.
The base is the study's own workbook filled with tests/fixtures/subjects/01-901.json (hand-written
from the spec), never a synthetic subject.
"""
from __future__ import annotations

import re
from typing import Callable

from . import pack, parts, sheet_part

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
