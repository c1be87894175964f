"""Filling one form from its schema: typical values come from the study definition, not from Python.

For every item the generator takes the schema's `default`, else one of its `examples`, else a value inside
its soft limits (and reference range), else a code of its code list. A form may carry object `examples`:
coherent partial rows (an AE term with its relationship, a medicine with its dose and route) used for log rows.
"""
from __future__ import annotations

import copy
import datetime as dt
import random
from typing import Any, Optional, Sequence

from ..model import Item, ItemKind, Limits, Study

FIRST_DAY0 = dt.date(2023, 1, 9)  # Day 0 of generated subjects falls in the 18 months after this date
VALUE_JITTER = 0.04  # other repeated measurements vary by +/-4% of their typical range around the subject's own value
FALLBACK_TEXT = "See source documents"


def schema_node(study: Study, item: Item) -> dict[str, Any]:
    """The item's raw JSON Schema node (where `default` and `examples` live)."""
    file, _, pointer = item.pointer.partition("#")
    node: Any = study.schemas.registry.contents(study.schemas.base_uri + file)
    for part in pointer.strip("/").split("/"):
        if part:
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node if isinstance(node, dict) else {}


def form_examples(study: Study, source: str) -> list[dict[str, Any]]:
    """Object `examples` of a form schema: coherent partial rows."""
    doc = study.schemas.registry.contents(study.schemas.base_uri + source)
    return [e for e in doc.get("examples", []) if isinstance(e, dict)]


def typical_range(item: Item) -> tuple[float, float]:
    """Where ordinary values lie: inside the hard and soft limits and the reference range."""
    lows = [b for b in (item.hard.low, item.soft.low if item.soft else None,
                        item.reference_range.low if item.reference_range else None) if b is not None]
    highs = [b for b in (item.hard.high, item.soft.high if item.soft else None,
                         item.reference_range.high if item.reference_range else None) if b is not None]
    step = 10 ** -item.decimals
    lo, hi = _close_open_ends(max(lows) if lows else None, min(highs) if highs else None)
    for limits in (item.hard, item.soft or Limits()):  # exclusive bounds: one step inside
        if limits.exclusive_minimum is not None and lo <= limits.exclusive_minimum:
            lo = limits.exclusive_minimum + step
        if limits.exclusive_maximum is not None and hi >= limits.exclusive_maximum:
            hi = limits.exclusive_maximum - step
    return float(lo), float(max(lo, hi))


def _close_open_ends(lo: Optional[float], hi: Optional[float]) -> tuple[float, float]:
    """A range with a missing end (or both) made finite, around the end that is given."""
    if lo is not None and hi is not None:
        return lo, hi
    if lo is not None:
        return lo, lo * 1.5 + 10
    if hi is not None:
        return (hi / 2 if hi > 0 else hi - 10), hi
    return 1.0, 100.0


def as_number(item: Item, value: float) -> int | float:
    if item.value_type == "integer" or item.kind == ItemKind.INTEGER or item.decimals == 0:
        return int(round(value))
    return round(value, item.decimals)


def item_codes(item: Item) -> tuple[Any, ...]:
    return item.codelist.values if item.codelist else ()


def iso(day: dt.date) -> str:
    return day.isoformat()


class Clock:
    """Times within a visit: increasing in the printed order of the forms."""

    def __init__(self, rng: random.Random):
        self.minutes = 8 * 60 + 15 + rng.randrange(0, 75)
        self.rng = rng

    def next(self, low: int = 3, high: int = 10) -> str:
        self.minutes += self.rng.randint(low, high)
        return self.text(self.minutes)

    @staticmethod
    def text(minutes: int) -> str:
        return f"{minutes // 60 % 24:02d}:{minutes % 60:02d}"


def fill_form(study: Study, items: Sequence[Item], rng: random.Random, day: dt.date, clock: Optional[Clock],
              values: Optional[dict[str, Any]] = None, example: Optional[dict[str, Any]] = None,
              typical: Optional[dict[str, Any]] = None, typical_key: str = "", source: str = "") -> dict[str, Any]:
    """Fill every required and applicable item (and optional ones the schema gives a typical value for).
    `source` (the form schema) lets it avoid answers that would require an item this instance omits."""
    out = dict(values or {})
    by_id = {it.id: it for it in items}
    for it in items:
        if it.fixed is not None:
            out[it.id] = it.fixed
    avoid = _omitted_triggers(study, items, source) if source else {}
    changed = True
    while changed:  # a condition may name an item filled later in the form
        changed = False
        for it in items:
            if it.id in out or it.derived or not _applicable(study, it, out, example):
                continue
            value = pick(study, it, rng, day, clock, example, typical, typical_key)
            if value in avoid.get(it.id, ()):
                value = next((c for c in item_codes(it) if c not in avoid[it.id]), None)
            if value is not None:
                out[it.id] = value
                changed = True
    _local_ranges(items, out, rng, typical)
    return {k: out[k] for k in by_id if out.get(k) is not None}  # None in `values`: leave blank


LOCAL_LAB_SHARE = 0.5  # subjects whose site laboratory prints its own reference ranges
LOCAL_RANGE_SHIFT = 0.08  # how far a local range lies from the central one (fraction, either way)


def _local_ranges(items: Sequence[Item], out: dict[str, Any], rng: random.Random, typical: Optional[dict[str, Any]]) -> None:
    """Half the subjects' laboratories give their own reference range with every result (x-local-range):
    the central range moved a little, the same for all of that subject's results."""
    if typical is None:
        return
    if "_local_lab" not in typical:
        # a generator of its own, seeded from the subject's, so that the subject's other values stay as they were
        own = random.Random(hash(rng.getstate()[1][:8]))
        typical["_local_lab"] = own.random() < LOCAL_LAB_SHARE
        typical["_local_shift"] = own.uniform(-LOCAL_RANGE_SHIFT, LOCAL_RANGE_SHIFT)
    if not typical["_local_lab"]:
        return
    by_id = {it.id: it for it in items}
    for it in items:
        central = it.reference_range
        if it.local_range is None or central is None or out.get(it.id) is None:
            continue
        for end, companion in zip((central.low, central.high), it.local_range):
            if end is not None and companion in by_id:
                out[companion] = as_number(by_id[companion], end * (1 + typical["_local_shift"]))
        low, high = (out.get(c) for c in it.local_range)
        if low is not None and high is not None and low >= high:  # a narrow range rounded to nothing
            out.pop(it.local_range[0]), out.pop(it.local_range[1])


def _omitted_triggers(study: Study, items: Sequence[Item], source: str) -> dict[str, set[Any]]:
    """Answers whose conditional requirement names an item left out of this instance (x-omit)."""
    present = {it.id for it in items}
    doc = study.schemas.registry.contents(study.schemas.base_uri + source)
    avoid: dict[str, set[Any]] = {}
    for clause in doc.get("allOf", []) + ([doc] if "if" in doc else []):
        try:
            (trigger, test), = clause["if"]["properties"].items()
            required = clause["then"]["required"]
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        if any(name not in present for name in required):
            avoid.setdefault(trigger, set()).update([test["const"]] if "const" in test else test.get("enum", []))
    return avoid


def _applicable(study: Study, item: Item, values: dict[str, Any], example: Optional[dict[str, Any]]) -> bool:
    if item.condition:
        return values.get(item.condition.item) in item.condition.values
    if item.required or any(values.get(t) is not None for t in item.required_with):
        return True
    if item.required_with:
        return False
    node = schema_node(study, item)
    return "default" in node or "examples" in node or bool(example and item.id in example)


def pick(study: Study, item: Item, rng: random.Random, day: dt.date, clock: Optional[Clock],
          example: Optional[dict[str, Any]] = None, typical: Optional[dict[str, Any]] = None, typical_key: str = "") -> Any:
    """default, else an example, else a typical value of the item's kind. Repeated items of a visit form
    keep the subject's own value (numbers vary a little around it)."""
    if example and item.id in example:
        return copy.deepcopy(example[item.id])
    node = schema_node(study, item)
    if "default" in node:
        return copy.deepcopy(node["default"])
    key = f"{typical_key}.{item.id}"
    if item.kind in (ItemKind.DATE, ItemKind.PARTIAL_DATE):
        return iso(day)
    if item.kind == ItemKind.TIME:
        return clock.next() if clock else f"{rng.randint(8, 17):02d}:{rng.choice((0, 15, 30, 45)):02d}"
    if typical is not None and key in typical:
        base = typical[key]
    elif node.get("examples"):
        base = copy.deepcopy(rng.choice(node["examples"]))
    elif item.kind == ItemKind.CHOICE and item.codelist:
        base = rng.choice(item.codelist.values)
    elif item.kind == ItemKind.MULTI_CHOICE and item.codelist:
        base = [rng.choice(item.codelist.values)]
    elif item.is_number:
        lo, hi = typical_range(item)
        base = rng.uniform(lo + (hi - lo) * 0.2, hi - (hi - lo) * 0.2)
    elif item.kind == ItemKind.TEXT:
        if item.pattern:
            return None
        base = FALLBACK_TEXT[: item.max_length or None]
    else:
        return None
    if typical is not None:
        typical[key] = base
    if item.is_number and not item.codelist and isinstance(base, (int, float)):
        lo, hi = typical_range(item)
        lo, hi = min(lo, base), max(hi, base)
        return as_number(item, min(hi, max(lo, base + (hi - lo) * rng.uniform(-VALUE_JITTER, VALUE_JITTER))))
    return base
