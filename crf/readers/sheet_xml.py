"""A bounded look at a worksheet's XML before python-calamine sees it.

calamine keeps a sheet as a dense grid from its first to its last cell: one cell at XFD3051 costs 50
million grid cells (1.9 GB), and a reference such as D99999999999 makes it ask for hundreds of GB
and abort the process. So the real cell references are read here first: an impossible reference and
a cell far outside the sheet's form area are taken out of the XML handed to calamine and reported
where they are; memory then follows the sheet's real content, not its extremes.

A value calamine cannot read (a shared-string index past the table, a boolean holding `x`, an
unknown error value, a non-finite number in a date cell, which makes it panic) would lose the whole
sheet; when calamine fails on a sheet, `bad_values` finds those cells, they are taken out the same
way and reported on their cell, and the rest of the sheet is read.

The common case costs a few byte counts and two short regular-expression scans per sheet.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Optional

from .convert import safe_text

MAX_ROWS = 1_048_576
MAX_COLUMNS = 16_384  # XFD
GRID_BUDGET = 1_000_000  # cells of dense grid one sheet may cost (~40 MB in calamine and Python together)
ERROR_VALUES = frozenset({"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA", "#SPILL!",
                          "#CALC!", "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!"})
_CALAMINE_ERRORS = frozenset({"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA"})

_UNUSUAL_CELL = re.compile(rb'<c[ >](?!r="[A-Z][1-9]\d{0,3}")')  # a cell outside A1:Z9999, or without its reference first
_ERROR_CELL = re.compile(rb'<c r="([A-Z]+\d+)"[^>]*?\bt="e"[^>]*>(?:<f\b[^>]*?(?:/>|>[^<]*</f>))?<v>([^<]*)</v>')
# the full walk (only for a sheet that needs it): every row and cell start tag, any namespace prefix
_TAG = re.compile(rb'<(/?)(?:[A-Za-z_][\w.-]*:)?(row|c|sheetData)\b([^>]*?)(/?)>')
_ATTR_R = re.compile(rb'(?:^|\s)r\s*=\s*["\']([^"\']*)["\']')
_ATTR_T = re.compile(rb'(?:^|\s)t\s*=\s*["\']([^"\']*)["\']')
_VALUE = re.compile(rb'<(?:[\w.-]+:)?v>([^<]*)</(?:[\w.-]+:)?v>')
_TEXT = re.compile(rb'<(?:[\w.-]+:)?t(?:\s[^>]*)?>([^<]*)</(?:[\w.-]+:)?t>')
_CELL_END = re.compile(rb'</(?:[A-Za-z_][\w.-]*:)?c\s*>')
_REF = re.compile(r"^([A-Z]{1,3})([1-9]\d{0,6})$")


def column_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


def column_letters(col: int) -> str:
    letters = ""
    col += 1
    while col:
        col, rem = divmod(col - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


@dataclass
class Dropped:
    """A cell taken out of the XML before calamine reads it."""

    cell: str  # as it can be shown: "XFD3051", or the impossible reference as written (cut to 24 characters)
    reason: str  # "far" (outside the grid budget), "reference" (impossible), "value" (unreadable value)
    detail: str  # what the cell holds ("'note'"), or for "value" what is wrong with it
    value: str = ""  # the value as written in the XML, for "value"


@dataclass
class SheetScan:
    xml: Optional[bytes] = None  # the XML to hand to calamine instead of the original, when cells were taken out
    dropped: list[Dropped] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # cell -> Excel error value (#NUM!), which calamine reads as blank


def _ref_parts(ref: str) -> Optional[tuple[int, int]]:
    """(row from 1, column from 0) of a reference within the sheet's grid, else None."""
    m = _REF.match(ref)
    if not m:
        return None
    row, col = int(m[2]), column_index(m[1])
    if row > MAX_ROWS or col >= MAX_COLUMNS:
        return None
    return row, col


def prescan(xml: bytes, form_extent: tuple[int, int] = (0, 0), budget: int = GRID_BUDGET) -> SheetScan:
    """What calamine may be given of this sheet; `form_extent`: the (rows, columns) the study's own cells use."""
    scan = SheetScan()
    if b't="e"' in xml:
        scan.errors = {m[1].decode(): safe_text(m[2].decode("utf-8", "replace")) for m in _ERROR_CELL.finditer(xml)}
    # Excel, LibreOffice and our writer give every cell its reference first; when each is within A1:Z9999
    # the grid is at most 260,000 cells, whatever else the sheet says
    if b"<sheetData" in xml and _UNUSUAL_CELL.search(xml) is None:
        return scan
    return _walk(xml, form_extent, budget, scan)


def _limits(form_extent: tuple[int, int], budget: int) -> tuple[int, int]:
    """The box kept for calamine: the form's columns and some more, then as many rows as the budget allows."""
    columns = min(MAX_COLUMNS, max(form_extent[1] + 26, 52))
    rows = min(MAX_ROWS, max(budget // columns, form_extent[0] + 1000))
    return rows, columns


def _preview(inner: bytes, kind: str) -> str:
    text = _TEXT.findall(inner)
    if text:
        shown = b"".join(text).decode("utf-8", "replace")
    else:
        value = _VALUE.search(inner)
        shown = value[1].decode("utf-8", "replace") if value else ""
        if kind == "s" and shown:
            return "a text (shared string)"
    shown = safe_text(shown.strip())  # shown in reports and on a terminal
    return f"'{shown[:60]}'" if shown else "an empty value"


def _walk(xml: bytes, form_extent: tuple[int, int], budget: int, scan: SheetScan,
          bad: Optional[dict[int, tuple[str, str]]] = None) -> SheetScan:
    """Every cell's real position (explicit or implied); cells outside the kept box are cut out of the XML.

    `bad`: start offsets of cells to cut because their value is unreadable (from `bad_values`), with why.
    """
    keep_rows, keep_columns = _limits(form_extent, budget)
    pieces: list[bytes] = []
    at = 0
    row = 0
    col = -1
    pos = 0
    while True:
        m = _TAG.search(xml, pos)
        if m is None:
            break
        closing, name, attrs, empty = m[1], m[2], m[3], m[4]
        pos = m.end()
        if name == b"sheetData" or closing:
            continue
        if name == b"row":
            r = _ATTR_R.search(attrs)
            row = int(r[1]) if r and r[1].isdigit() and len(r[1]) <= 8 else row + 1
            col = -1
            continue
        # a cell: its extent is its start tag (and its content up to </c> unless it is empty)
        if empty:
            end = m.end()
            inner = b""
        else:
            close = _CELL_END.search(xml, m.end())
            end = close.end() if close else len(xml)
            inner = xml[m.end():close.start() if close else len(xml)]
        pos = end
        r = _ATTR_R.search(attrs)
        written = safe_text(r[1].decode("utf-8", "replace")) if r else ""
        place = _ref_parts(written) if r else None
        if r is not None and place is None:
            scan.dropped.append(Dropped(written[:24], "reference", _preview(inner, _kind(attrs))))
            pieces.append(xml[at:m.start()])
            at = end
            continue
        if place is None:
            place = (row, col + 1)
        cell_row, cell_col = place
        row, col = cell_row, cell_col
        cell = f"{column_letters(cell_col)}{cell_row}"
        reason = ""
        if bad is not None and m.start() in bad:
            reason = "value"
        elif cell_row > keep_rows or cell_col >= keep_columns:
            reason = "far"
        if reason == "value" and bad is not None:
            value, problem = bad[m.start()]
            scan.dropped.append(Dropped(cell, reason, problem, value))
        elif reason and (_TEXT.search(inner) or _VALUE.search(inner)):  # an empty far cell (formatting only) is no loss
            scan.dropped.append(Dropped(cell, reason, _preview(inner, _kind(attrs))))
        if reason:
            pieces.append(xml[at:m.start()])
            at = end
            continue
        if r is None:  # a cell without its reference is given one, so that cutting others cannot move it
            pieces.append(xml[at:m.end(2)])
            pieces.append(f' r="{cell}"'.encode())
            at = m.end(2)
    if at:
        pieces.append(xml[at:])
        scan.xml = _without_dimension(b"".join(pieces))
    return scan


def _kind(attrs: bytes) -> str:
    t = _ATTR_T.search(attrs)
    return t[1].decode("ascii", "replace") if t else "n"


_DIMENSION = re.compile(rb'<(?:[\w.-]+:)?dimension\b[^>]*/>')


def _without_dimension(xml: bytes) -> bytes:
    """The declared dimension may still name the far cell; calamine may size its grid from it."""
    return _DIMENSION.sub(b"", xml, count=1)


def prescan_without(xml: bytes, bad: dict[int, tuple[str, str]], form_extent: tuple[int, int] = (0, 0),
                    budget: int = GRID_BUDGET) -> SheetScan:
    """`xml` with the cells of `bad` (from `bad_values` on the same bytes) taken out, and the rest as `prescan` keeps it."""
    return _walk(xml, form_extent, budget, SheetScan(), bad)


def bad_values(xml: bytes, strings: int) -> dict[int, tuple[str, str]]:
    """Cells whose value calamine cannot read, by the start offset of the cell: (the value as written, what is wrong)."""
    out: dict[int, tuple[str, str]] = {}
    pos = 0
    while True:
        m = _TAG.search(xml, pos)
        if m is None:
            break
        pos = m.end()
        if m[2] != b"c" or m[1] or m[4]:
            continue
        close = _CELL_END.search(xml, m.end())
        inner = xml[m.end():close.start() if close else len(xml)]
        value_match = _VALUE.search(inner)
        value = value_match[1].decode("utf-8", "replace").strip() if value_match else None
        kind = _kind(m[3])
        problem = ""
        if kind == "b" and value is not None and value not in ("0", "1", "true", "false"):
            problem = "is not a value: the cell is a yes/no (boolean) cell"
        elif kind == "e" and value is not None and value not in _CALAMINE_ERRORS:
            problem = "is not a value: it is marked as an error value, but not one Excel knows"
        elif kind == "s" and value is not None and (not value.isdigit() or int(value) >= strings):
            problem = "cannot be read: the cell refers to a text that is not in the workbook's table of texts (the file is damaged)"
        elif kind in ("n", "d") and value:
            try:
                number = float(value)
            except ValueError:
                number = 0.0
            if not math.isfinite(number):
                problem = "is too large to be a number"
        if problem:
            out[m.start()] = (safe_text((value or "")[:60]), problem)
        pos = close.end() if close else len(xml)
    return out


def shared_string_count(xml: bytes) -> int:
    """Entries in xl/sharedStrings.xml (its <si> elements, with or without a namespace prefix)."""
    return len(re.findall(rb"<(?:[\w.-]+:)?si\b", xml))
