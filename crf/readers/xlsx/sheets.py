"""The sheets of one workbook as rows of cells: python-calamine behind crf.readers.sheet_xml's pre-scan.

Cell values are calamine's (cached values; formulas and macros are never evaluated). What calamine
could not survive (a far stray cell, an impossible reference, an unreadable value) is taken out of the
sheet's XML first and reported where it is; each sheet is read at most once.
"""
from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import python_calamine

from .. import sheet_xml
from ..convert import ValueIssue, show_value
from .locate import CellRef, parse_reference
from .package import _Package

_CELL_REF = re.compile(rb'\br="([A-Z]{1,3}\d+)"')


class _SheetDamaged(Exception):
    def __init__(self, sheet: str, detail: str):
        super().__init__(sheet, detail)  # both in args: the exception must survive pickling between processes
        self.sheet = sheet
        self.detail = detail



_EXTENTS: dict[bytes, dict[str, tuple[int, int]]] = {}  # workbook key -> sheet -> (rows, columns) its named cells use


class Sheets:
    """The sheets of a package, read on demand through the pre-scan."""

    def __init__(self, package: _Package, book: Any):
        self.package = package
        self.book = book
        self.sheet_names: list[str] = list(book.sheet_names)

    _cache: dict[str, list[list[Any]]]

    def rows(self, sheet: str) -> list[list[Any]]:
        cache = self.__dict__.setdefault("_cache", {})
        if sheet not in cache:
            cache[sheet] = self._read_rows(sheet)
        return cache[sheet]

    def _read_rows(self, sheet: str) -> list[list[Any]]:
        """The sheet's cells, through crf.readers.sheet_xml first: what calamine could not survive is taken out and reported."""
        part = self.package.sheet_parts.get(sheet, "")
        xml = self.package.sheet_xml.get(part)
        if xml is None:
            return self._calamine_rows(self.book, sheet)
        scan = sheet_xml.prescan(xml, self._form_extent(sheet))
        self.scans[sheet] = scan
        book = self._book_with(part, scan.xml) if scan.xml is not None else self.book
        try:
            return self._calamine_rows(book, sheet)
        except _SheetDamaged:
            current = scan.xml if scan.xml is not None else xml
            bad = sheet_xml.bad_values(current, sheet_xml.shared_string_count(self.package.shared_strings))
            if not bad:
                raise
            retry = sheet_xml.prescan_without(current, bad, self._form_extent(sheet))
            scan.dropped.extend(retry.dropped)
            return self._calamine_rows(self._book_with(part, retry.xml or current), sheet)

    def _calamine_rows(self, book: Any, sheet: str) -> list[list[Any]]:
        try:
            return book.get_sheet_by_name(sheet).to_python(skip_empty_area=False)  # calamine: lists of cells
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except BaseException as exc:  # a damaged sheet part; a Rust panic (pyo3 PanicException) is a BaseException
            raise _SheetDamaged(sheet, f"{type(exc).__name__}: {str(exc)[:120]}")

    @property
    def scans(self) -> dict[str, sheet_xml.SheetScan]:
        return self.__dict__.setdefault("_scans", {})  # sheet -> its pre-scan

    def _form_extent(self, sheet: str) -> tuple[int, int]:
        """(rows, columns) the study's named cells use on `sheet`: what is kept of it however far a stray cell lies."""
        extents = _EXTENTS.get(self.package.key)  # a function of the defined names, so of workbook.xml (its digest is the key)
        if extents is None:
            extents = {}
            for text in self.package.names.values():
                ref = parse_reference(text)
                if ref is not None:
                    rows, cols = extents.get(ref.sheet, (0, 0))
                    extents[ref.sheet] = (max(rows, ref.row + 1), max(cols, ref.col + 1))
            _EXTENTS[self.package.key] = extents
            while len(_EXTENTS) > 8:
                _EXTENTS.pop(next(iter(_EXTENTS)))
        return extents.get(sheet, (0, 0))

    def _book_with(self, part: str, xml: bytes) -> Any:
        """A calamine workbook of the same package with `part` replaced (parts stored, not compressed: read once, in memory)."""
        replaced: dict[str, bytes] = self.__dict__.setdefault("_replaced", {})
        replaced[part] = xml
        source = zipfile.ZipFile(io.BytesIO(self.package.data))
        out = io.BytesIO()
        with source, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
            for info in source.infolist():
                if info.filename.endswith("/"):
                    continue
                target.writestr(info.filename, replaced.get(info.filename) or source.read(info.filename))
        old = self.__dict__.get("_sanitised")
        if old is not None:
            old.close()
        book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(out.getvalue()))
        self.__dict__["_sanitised"] = book
        return book

    def cell_value(self, ref: CellRef) -> Any:
        rows = self.rows(ref.sheet)
        if ref.row < len(rows):
            row = rows[ref.row]
            if ref.col < len(row):
                return row[ref.col]
        return ""

    def formula_cells_without_value(self, sheet: str) -> set[str]:
        """Cells of `sheet` holding a formula but no cached value (written by a program that does not calculate)."""
        cache: dict[str, set[str]] = self.__dict__.setdefault("_formulas", {})
        found = cache.get(sheet)
        if found is None:
            found = set()
            xml = self.package.sheet_xml.get(self.package.sheet_parts.get(sheet, ""), b"")
            limit = xml.find(b"</sheetData>")
            stop = limit if limit != -1 else len(xml)
            # linear whatever the XML: each look back starts where the last one ended, and the next </c> is found once
            # (40,000 empty <f/> elements took 35 s when every one looked back and forth over the sheet)
            behind = 0
            close = -1
            at = xml.find(b"<f", 0, stop)
            while at != -1:
                if xml[at + 2:at + 3] not in (b">", b" ", b"/"):
                    at = xml.find(b"<f", at + 2, stop)
                    continue  # formulas are few: walk from each to its enclosing cell
                start = xml.rfind(b"<c ", behind, at)
                if close < at:
                    close = xml.find(b"</c>", at, stop)
                    if close == -1:
                        close = stop  # no cell closes after this point
                end = close if close < stop else -1
                behind = at
                if start == -1 or end == -1 or xml.find(b"</c>", start, at) != -1:
                    at = xml.find(b"<f", at + 2, stop)  # not inside a cell
                    continue
                inner = xml[start:end]
                if b"<v>" not in inner or b"<v></v>" in inner:
                    ref = _CELL_REF.search(inner[: inner.find(b">") + 1])
                    if ref:
                        found.add(ref[1].decode())
                at = xml.find(b"<f", end, stop)
            cache[sheet] = found
        return found

    def cell_issues(self, sheet: str) -> dict[str, ValueIssue]:
        """Cells of `sheet` whose value could not be read (taken out by crf.readers.sheet_xml) or hold an Excel error value."""
        scan = self.scans.get(sheet)
        if scan is None or not (scan.errors or scan.dropped):
            return {}
        out: dict[str, ValueIssue] = {}
        for cell, error in scan.errors.items():
            out[cell] = ValueIssue("CELL-ERROR", error, f"{show_value(error)} is an Excel error value (a formula or a paste that "
                                   "failed), not a value", "Type the value itself into the cell", "a value")
        for cut in scan.dropped:
            if cut.reason == "value":
                out[cut.cell] = ValueIssue("CELL-UNREADABLE", cut.value, f"{show_value(cut.value)} {cut.detail}",
                                           "Type the value into the cell again, save and send the workbook again", "a value")
        return out
