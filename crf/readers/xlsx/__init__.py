"""Read a returned subject workbook (.xlsx, .xlsm as data only) into a SubjectRecord.

Every field is found through its workbook-level defined name (crf.fieldmap), with the `_meta` field
map as fallback; labels and row positions are never used. Before any parser sees the package it is
checked by crf.readers.safety; the file is read once into memory and never opened for writing.
Cell values come from python-calamine (cached values; formulas and macros are never evaluated).

By layer: package.py (the package, its guards, xl/workbook.xml, `_meta`), locate.py (where each
field is), sheets.py (rows of cells through crf.readers.sheet_xml), cells.py (the cell loop and
conversion), reader.py (identity, sheet findings, the whole read).
"""
from __future__ import annotations

from .locate import CellRef, cell_ref, field_table, parse_reference
from .package import FIX_SEND_ORIGINAL, _open_package
from .reader import _Reader, read_workbook
from .sheets import _SheetDamaged

__all__ = ["CellRef", "cell_ref", "field_table", "parse_reference", "FIX_SEND_ORIGINAL", "read_workbook", "_open_package", "_Reader",
           "_SheetDamaged"]
