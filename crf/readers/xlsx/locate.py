"""Where each field of the study is in a workbook: its defined name, or the `_meta` field map as fallback.

Labels and row positions are never used. A workbook whose defined names are intact never reads the field map.
"""
from __future__ import annotations

import re
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Optional

from ...fieldmap import iter_fields
from ...findings import Finding, Severity
from ...model import Study
from ..base import file_finding
from ..sheet_xml import column_index
from .package import _INLINE_TEXT, _META_CELL, xml_text

_REF = re.compile(r"^(?:'((?:[^']|'')+)'|([^'!]+))!\$?([A-Z]{1,3})\$?(\d+)$")
_CELL = re.compile(r"^([A-Z]{1,3})(\d+)$")
_ROW_START = re.compile(rb'<row r="(\d+)"')


@dataclass(frozen=True)
class CellRef:
    sheet: str
    cell: str
    row: int  # from 0
    col: int  # from 0



def cell_ref(sheet: str, cell: str) -> Optional[CellRef]:
    m = _CELL.match(cell.replace("$", ""))
    if not m:
        return None
    return CellRef(sheet, f"{m[1]}{m[2]}", int(m[2]) - 1, column_index(m[1]))


@lru_cache(maxsize=65536)  # workbooks from one study repeat the same names
def parse_reference(text: str) -> Optional[CellRef]:
    """"'V3 Day 28'!$D$12" -> CellRef; None for #REF!, ranges and anything else."""
    m = _REF.match(text.strip())
    if not m:
        return None
    sheet = m[1].replace("''", "'") if m[1] is not None else m[2]
    if sheet.startswith("#REF"):  # Excel's mark for a name whose sheet was deleted
        return None
    return CellRef(sheet, f"{m[3]}{m[4]}", int(m[4]) - 1, column_index(m[3]))


@dataclass(eq=False, slots=True)  # not frozen: 4,000 of them are made for a study's first file, and a frozen __init__ costs 3x
class _Spec:
    """A field with its path and defined name computed once per study (never changed after)."""

    path: str
    defined_name: str
    item: Any  # crf.model.Item
    container: str
    form: str
    row: Optional[int]
    index: int  # position in crf.fieldmap order
    mode: int = field(init=False, default=0)  # INPUT, FIXED or DERIVED: what the cell loop does with the cell, worked out once

    def __post_init__(self) -> None:
        item = self.item
        self.mode = INPUT if item.is_input else DERIVED if item.derived is not None else FIXED

    @property
    def is_log(self) -> bool:
        return self.row is not None


INPUT, FIXED, DERIVED = 0, 1, 2  # _Spec.mode: typed by the site; fixed by the study; calculated (a formula with its cached value)


_TABLES: dict[tuple[int, str], list[_Spec]] = {}


def field_table(study: Study) -> list[_Spec]:
    key = (id(study), study.definition_hash)
    if key not in _TABLES:
        _TABLES[key] = [_Spec(f.path, f.defined_name, f.item, f.container, f.form, f.row, i) for i, f in enumerate(iter_fields(study, inputs_only=False))]
    return _TABLES[key]


class _FieldMap:
    """The `_meta` field map (path -> sheet and cell), read and parsed only when it is needed.

    It holds a row per field (3,000 for the shipped study): reading it with calamine costs more
    than every visit sheet together, and a workbook whose defined names are intact never needs it.
    """

    def __init__(self, load_rows: Callable[[], list[list[Any]]], start: int, xml: bytes = b""):
        self._load_rows = load_rows
        self._loaded: Optional[list[list[Any]]] = None
        self._start = start
        self._map: Optional[dict[str, CellRef]] = None
        self._xml = xml  # the sheet as the study writes it (inline strings): one row can be read without calamine
        self.used = False  # consulted at all: what was located then depends on this workbook's _meta, not only its names
        self._row_starts: Optional[dict[bytes, int]] = None  # row number as written -> offset

    def _xml_row(self, i: int) -> Optional[list[str]]:
        if self._row_starts is None:  # one pass: where each row number first starts (a search from the start per row took 10 ms a file)
            self._row_starts = {}
            for m in _ROW_START.finditer(self._xml):
                self._row_starts.setdefault(m[1], m.start())
        at = self._row_starts.get(b"%d" % (i + 1), -1)
        if at < 0:
            return None
        end = self._xml.find(b"</row>", at)
        texts: dict[bytes, str] = {}
        for column, _, inner in _META_CELL.findall(self._xml[at:end if end > 0 else len(self._xml)]):
            found = _INLINE_TEXT.match(inner)
            if found is None:
                return None
            try:
                texts[column] = xml_text(found.group(1).decode("utf-8"))
            except UnicodeDecodeError:
                return None
        return [texts.get(c, "") for c in (b"A", b"B", b"C", b"D")]

    @property
    def _rows(self) -> list[list[Any]]:
        if self._loaded is None:
            self._loaded = self._load_rows()
        return self._loaded

    def _parsed(self) -> dict[str, CellRef]:
        if self._map is None:
            self._map = {}
            for row in self._rows[self._start:]:
                if len(row) >= 4 and isinstance(row[0], str) and row[0].startswith("/"):
                    ref = cell_ref(str(row[2]), str(row[3]))
                    if ref:
                        self._map[row[0]] = ref
        return self._map

    def get(self, path: str, index: Optional[int] = None) -> Optional[CellRef]:
        """`index`: the field's position in crf.fieldmap order, which the writer keeps (checked)."""
        self.used = True
        if index is not None and self._map is None and self._loaded is None and self._xml:
            row = self._xml_row(self._start + index)
            if row is not None and row[0] == path:
                return cell_ref(row[2], row[3])
        if index is not None and self._map is None:
            i = self._start + index
            if i < len(self._rows):
                row = self._rows[i]
                if len(row) >= 4 and row[0] == path:
                    return cell_ref(str(row[2]), str(row[3]))
        return self._parsed().get(path)

    def sheets(self) -> set[str]:
        self.used = True
        return {ref.sheet for ref in self._parsed().values()}


_LOCATED: "OrderedDict[tuple[bytes, int], dict[str, CellRef]]" = OrderedDict()


@dataclass(frozen=True)
class Where:
    """The file and subject a reader's findings name."""

    display: str
    site: str
    subject: str


def locate(package_key: bytes, names: dict[str, str], sheet_names: list[str], fields: list[_Spec], fieldmap: _FieldMap,
           where: Where) -> tuple[dict[str, CellRef], list[Finding]]:
    """Where each field is, and the findings of names lost; the same defined names (byte-identical workbook.xml) give the same answer."""
    key = (package_key, id(fields))
    cached = _LOCATED.get(key)
    if cached is not None:
        return cached, []
    located, findings = _locate(names, sheet_names, fields, fieldmap, where)
    if not findings and not fieldmap.used and all(f.path in located for f in fields if f.item.is_input):
        _LOCATED[key] = located  # only the plain case: every field found by its name, so the names (in the key) decide it all
        while len(_LOCATED) > 8:
            _LOCATED.popitem(last=False)
    return located, findings


def _locate(names: dict[str, str], sheet_names: list[str], fields: list[_Spec], fieldmap: _FieldMap,
            where: Where) -> tuple[dict[str, CellRef], list[Finding]]:
    findings: list[Finding] = []
    located: dict[str, CellRef] = {}
    broken: dict[str, list[_Spec]] = defaultdict(list)  # sheet -> inputs whose name is gone
    unplaced: list[_Spec] = []
    for f in fields:
        ref = parse_reference(names[f.defined_name]) if f.defined_name in names else None
        if ref is None and f.item.is_input:
            fallback = fieldmap.get(f.path)
            if fallback is not None:
                broken[fallback.sheet].append(f)
                located[f.path] = fallback
            else:
                unplaced.append(f)
            continue
        if ref is None:
            fallback = fieldmap.get(f.path)
            if fallback is not None:
                located[f.path] = fallback
            continue
        located[f.path] = ref
    # names deleted (or turned into #REF! by deleting their sheet): one finding per sheet
    for sheet, lost in sorted(broken.items()):
        if sheet not in sheet_names:
            continue  # reported as a missing sheet
        first = lost[0]
        ref = located[first.path]
        if len(lost) == 1:
            problem = f"the cell name {first.defined_name} ({first.item.question}) was deleted"
        else:
            problem = f"the cell names of {len(lost)} fields were deleted (first: {first.defined_name})"
        findings.append(file_finding(
            where.display, "NAME-MISSING", problem, "The values were read from the cells the study placed them in; "
            "please do not delete or rename cell names (Formulas > Name Manager)", severity=Severity.WARNING,
            sheet=sheet, cell=ref.cell, site=where.site, subject=where.subject, category="structure"))
    if unplaced:
        first = unplaced[0]
        findings.append(file_finding(
            where.display, "NAME-MISSING", f"{len(unplaced)} field(s) cannot be found, neither by cell name nor in the field map "
            f"(first: {first.defined_name}, {first.item.question})", "These fields were not checked; send the workbook the study issued",
            sheet="", site=where.site, subject=where.subject, category="structure"))
    return located, findings

