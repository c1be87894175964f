"""The workbook's presentation: fills, fonts, borders, alignments, cell protection, and a cache that styles a
cell with them fast. Colours and fonts are not part of the contract with the readers (docs/workbook-format.md)."""
from __future__ import annotations

from copy import copy
from typing import Any

from openpyxl.styles import Alignment, Border, Font, PatternFill, Protection, Side

REQUIRED_FILL = PatternFill("solid", fgColor="DDEBF7")  # light blue: required input
OPTIONAL_FILL = PatternFill("solid", fgColor="FFFFFF")
READONLY_FILL = PatternFill("solid", fgColor="D9D9D9")  # grey: formula, fixed value, label
MANUAL_FILL = PatternFill("lightGray", fgColor="A6A6A6", bgColor="D9D9D9")  # hatched grey: data manager
SECTION_FILL = PatternFill("solid", fgColor="1F4E78")
HEADER_FILL = PatternFill("solid", fgColor="BDD7EE")
AMBER_FILL = PatternFill("solid", fgColor="FFC000", bgColor="FFC000")  # soft limit: please confirm
ALERT_FILL = PatternFill("solid", fgColor="F4B084", bgColor="F4B084")
THIN = Side(style="thin", color="808080")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
BOLD = Font(bold=True)
TITLE = Font(bold=True, size=14)
WHITE_BOLD = Font(bold=True, color="FFFFFF")
SMALL_GREY = Font(size=8, color="595959")
ITALIC_GREY = Font(italic=True, color="595959")
HELP_FONT = Font(size=9, color="404040")
HEADER_FONT = Font(bold=True, size=9)
RED_BOLD = Font(bold=True, color="C00000")
WRAP = Alignment(wrap_text=True, vertical="top")
TOP = Alignment(vertical="top")
CENTER = Alignment(horizontal="center", vertical="top")
UNLOCKED = Protection(locked=False)
LOCKED = Protection(locked=True)


class CellStyles:
    """Styles a cell through a cache of style arrays: openpyxl hashes every style object otherwise."""

    def __init__(self) -> None:
        self.cache: dict[tuple, Any] = {}

    def __call__(self, cell, font=None, fill=None, border=None, alignment=None, protection=None, number_format=None) -> None:
        key = (id(font), id(fill), id(border), id(alignment), id(protection), number_format)
        cached = self.cache.get(key)
        if cached is not None:
            cell._style = copy(cached)
            return
        if font is not None:
            cell.font = font
        if fill is not None:
            cell.fill = fill
        if border is not None:
            cell.border = border
        if alignment is not None:
            cell.alignment = alignment
        if protection is not None:
            cell.protection = protection
        if number_format is not None:
            cell.number_format = number_format
        self.cache[key] = copy(cell._style)
