"""What the sheets say beside the cells: sheet names, the required marks, help texts, short hints of a log's
columns, visit windows in words, and the instructions' example; pure functions of the study."""
from __future__ import annotations

import re
from typing import Optional

from ..contract import MULTI_SEPARATOR
from ..model import Item, ItemKind, Log, Study, Visit, split_visit_key
from ..xlsx_formula import Untranslatable, constant_value, translate
from .validations import codes_text, describe_range, describe_soft

_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


def sheet_title(text: str, taken: set[str]) -> str:
    """A valid, unique Excel sheet name: at most 31 characters, none of []:*?/\\, not quoted."""
    name = _FORBIDDEN.sub("-", text).strip().strip("'")
    if len(name) > 31:
        cut = name[:31]
        name = cut.rsplit(" ", 1)[0] if " " in cut[10:] else cut
    base, n = name, 2
    while name.lower() in taken or name.lower() == "history":
        suffix = f" ({n})"
        name = base[: 31 - len(suffix)] + suffix
        n += 1
    taken.add(name.lower())
    return name


def visit_sheet_text(visit: Visit, key: Optional[str] = None) -> str:
    repeat = split_visit_key(key)[1] if key else None
    if repeat is not None:
        return f"{visit.id} {repeat} {visit.label}"  # "ATT 2 Attack visit": one blank sheet per instance of a repeating visit
    if visit.day is not None and visit.kind != "screening":
        return f"{visit.id} Day {visit.day}"
    return f"{visit.id} {visit.label}"


def log_sheet_text(log: Log) -> str:
    return f"Log {log.id} {log.label}"

def multi_example(study: Study) -> str:
    """', e.g. A; B' from the study's first multiple-choice item with two codes (none: no example)."""
    items = [it for v in study.visits for inst in v.forms for it in inst.items]
    items += [it for lg in study.logs for it in lg.form.items]
    for it in items:
        if it.kind is ItemKind.MULTI_CHOICE and it.codelist is not None and len(it.codelist.values) >= 2:
            return ", e.g. " + MULTI_SEPARATOR.join(str(c) for c in it.codelist.values[:2])
    return ""


def window_text(v: Visit) -> str:
    w = v.window
    if v.day is None and w.anchor == "day0":
        return ""  # off the schedule with nothing to count from: any day
    if v.day is None:
        if w.before == 0:
            return f"<= {w.after} d after {w.anchor}"
        return f"-{w.before}/+{w.after} d around {w.anchor}"
    if w.before == 0 and w.after == 0:
        return "Day 0 (anchor)" if v.day == 0 and w.anchor == "day0" else "on the day"
    if v.kind == "screening":
        return f"Day {v.day - w.before} to Day {v.day + w.after}"
    return f"-{w.before}/+{w.after} d"


def req_mark(item: Item) -> str:
    if not item.is_input:
        return ""
    if item.required:
        return "*"
    if item.condition or item.required_with:
        return "(*)"
    return ""


def help_text(item: Item, role: str, note: str) -> str:
    parts = []
    if item.condition:
        vals = ", ".join(map(str, item.condition.values))
        parts.append(f"Required if {item.condition.item} = {vals}.")
    if item.required_with:
        parts.append(f"Required when {', '.join(item.required_with)} is filled.")
    if role == "input":
        k = item.kind
        if k in (ItemKind.INTEGER, ItemKind.DECIMAL):
            rng = describe_range(item)
            if rng:
                parts.append(f"Allowed {rng}.")
            soft = describe_soft(item)
            if soft:
                parts.append(f"Expected {soft}.")
            if item.reference_range and not item.reference_range.is_empty:
                parts.append(f"Normal range {item.reference_range.describe()}.")
        elif k == ItemKind.DATE:
            parts.append("Date DD-MMM-YYYY.")
        elif k == ItemKind.TIME:
            parts.append("HH:MM (24 h).")
        elif k == ItemKind.PARTIAL_DATE:
            parts.append("YYYY, YYYY-MM or YYYY-MM-DD.")
        elif k == ItemKind.CHOICE and item.codelist:
            parts.append(codes_text(item.codelist, 400) + ".")
        elif k == ItemKind.MULTI_CHOICE and item.codelist:
            parts.append(f"All that apply, separated by '{MULTI_SEPARATOR}': {codes_text(item.codelist, 400)}.")
        elif k == ItemKind.TEXT and item.pattern:
            parts.append(f"Format {item.pattern.strip('^$')}.")
    if note:
        parts.append(note)
    if item.help:
        parts.append(item.help)
    return " ".join(parts)


def derived_words(item: Item) -> str:
    """What a calculated item is, in the study's words (x-derived-label), never its expression."""
    return (item.derived_label or "Calculated").rstrip(". ")


def short_hint(item: Item) -> str:
    k = item.kind
    if not item.is_input:
        if item.derived is not None:
            return "calculated" if translatable(item) else "data manager"
        return "fixed"
    cond = f"if {item.condition.item}={'/'.join(map(str, item.condition.values))}; " if item.condition else ""
    if k in (ItemKind.INTEGER, ItemKind.DECIMAL):
        return cond + (describe_range(item) or (item.unit or "number"))
    if k == ItemKind.DATE:
        return cond + "DD-MMM-YYYY"
    if k == ItemKind.TIME:
        return cond + "HH:MM"
    if k == ItemKind.PARTIAL_DATE:
        return cond + "YYYY[-MM[-DD]]"
    if k == ItemKind.CHOICE:
        return cond + "list"
    if k == ItemKind.MULTI_CHOICE:
        return cond + "codes; codes"
    return cond + f"text <= {item.max_length or 200}"


def translatable(item: Item) -> bool:
    if item.derived is None:
        return False
    if constant_value(item.derived) is not None:
        return True
    try:
        translate(item.derived, lambda d: d)
        return True
    except Untranslatable:
        return False
