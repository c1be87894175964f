"""How a record's value is written into a cell: the value itself (dates as dates, multi-selects joined) and the
cell's number format (text stays text: codes, times and partial dates are never converted by Excel)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from ..contract import DATE_FORMAT, MULTI_SEPARATOR
from ..model import Item, ItemKind


def number_format(item: Item) -> str:
    if item.kind == ItemKind.DATE:
        return DATE_FORMAT
    if item.kind == ItemKind.DECIMAL:
        return "0." + "0" * item.decimals if item.decimals else "0"
    if item.kind == ItemKind.INTEGER:
        return "0"
    if item.kind == ItemKind.CHOICE and item.codelist and not all(isinstance(c, str) for c in item.codelist.values):
        return "General"
    return "@"  # text, codes, times, partial dates, multi-selects: stored as typed, never converted


def excel_value(item: Item, value: Any) -> Any:
    """A record's JSON value as written into the cell (dates as dates, multi-selects joined)."""
    if value is None:
        return None
    if item.kind == ItemKind.DATE and isinstance(value, str):
        try:
            return dt.date.fromisoformat(value) if len(value) == 10 else value
        except ValueError:
            return value  # an impossible date is written as the text the record holds
    if item.kind == ItemKind.MULTI_CHOICE and isinstance(value, (list, tuple)):
        return MULTI_SEPARATOR.join(str(v) for v in value)
    if isinstance(value, (list, tuple, dict)):
        return str(value)
    if isinstance(value, bool):
        return str(value)
    return value
