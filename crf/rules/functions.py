"""Functions the rule expressions (and x-derived items) call, and the registered Python rules.

Two registries:

- `FUNCTIONS`: every function of the expression language with its argument kinds, result and description
  (crf.expressions.Function): the builtins, and here those that need the subject (rows of a log, forms
  across visits, Day 0...). `functions_of(study)` adds the study's own (the plug-in module its folder
  names, crf/plugin.py): the engine's load-time checks, `crf.loader` (x-derived items) and the
  generated function table all read that.
- `PYTHON_RULES`: rules that are not single expressions (schedule, limits, missed doses). A rule file
  names one with `"kind": "python", "function": "<name>"`; it yields `Hit`s and the engine turns
  them into Findings with the rule's id, severity, category and message templates.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field as dc_field
from typing import Any, Callable, Iterator, Mapping, Optional, TYPE_CHECKING

from ..expressions import BUILTIN_FUNCTIONS, MISSING, Function, Thunk, lazy
from ..model import Item, Study
from .context import typed

if TYPE_CHECKING:
    from .context import Frame, SubjectContext, _ChildFrame
    from .engine import Rule

ContextFunction = Callable[..., Any]


@dataclass
class Hit:
    """What a Python rule found; the engine adds rule id, severity, category and the message."""

    visit: str = ""
    form: str = ""
    field: str = ""
    row: Optional[int] = None  # log row index (from 0)
    values: dict[str, Any] = dc_field(default_factory=dict)  # placeholders of the message template
    message: str = "default"  # key of the rule's `messages` (or its `message`)
    severity: Optional[str] = None  # overrides the rule's severity: error, query, major, minor
    key: str = ""  # tells two hits of one rule on one field apart
    value: Any = None


PythonRule = Callable[["SubjectContext", "Rule"], Iterator[Hit]]
PYTHON_RULES: dict[str, PythonRule] = {}


def python_rule(name: str) -> Callable[[PythonRule], PythonRule]:
    def register(fn: PythonRule) -> PythonRule:
        PYTHON_RULES[name] = fn
        return fn
    return register


# -- iteration over logs and forms ------------------------------------------------------------------

def _units(frame: "Frame", target: Thunk) -> list["_ChildFrame"]:
    name = target.name or ""
    ctx = frame.ctx
    if name in ctx.layout.log_items:
        return [f.child(frame) for f in ctx.row_frames(name)]
    return [f.child(frame) for f in ctx.form_frames(name)]


def _matching(frame: "Frame", target: Thunk, condition: Optional[Thunk]) -> Iterator["_ChildFrame"]:
    for unit in _units(frame, target):
        if condition is None or bool(condition(unit)):
            yield unit


@lazy
def _count(frame: "Frame", target: Thunk, condition: Optional[Thunk] = None) -> int:
    return sum(1 for _ in _matching(frame, target, condition))


@lazy
def _any(frame: "Frame", target: Thunk, condition: Optional[Thunk] = None) -> bool:
    return any(True for _ in _matching(frame, target, condition))


@lazy
def _none(frame: "Frame", target: Thunk, condition: Optional[Thunk] = None) -> bool:
    return not any(True for _ in _matching(frame, target, condition))


@lazy
def _value_in(frame: "Frame", target: Thunk, item: Thunk, condition: Optional[Thunk] = None) -> Any:
    """The first non-blank value of `item` in the rows of a log or the forms of that id, in schedule order."""
    for unit in _matching(frame, target, condition):
        value = item(unit)
        if value is not MISSING:
            return value
    return MISSING


@lazy
def _computed(frame: "Frame", item: Thunk) -> Any:
    """A derived item's value computed from its x-derived expression, ignoring what was recorded."""
    name = item.name or ""
    model = frame.items.get(name)
    return frame.compute(model) if model is not None else MISSING


@lazy
def _blank_items(frame: "Frame", *items: Thunk) -> list[str]:
    return [t.name or t.text for t in items if t(frame) is MISSING]


@lazy
def _items_with(frame: "Frame", wanted: Thunk, *items: Thunk) -> list[str]:
    value = wanted(frame)
    return [t.name or t.text for t in items if t(frame) == value]


def reference_bound(item: Item, data: Mapping[str, Any], end: str) -> Optional[float]:
    """The range limit that judges this result: the site laboratory's when entered (x-local-range), else the central one."""
    if item.local_range is not None:
        local = _number(data.get(item.local_range[1] if end == "high" else item.local_range[0]))
        if local is not None:
            return local
    rng = item.reference_range
    if rng is None:
        return None
    return rng.high if end == "high" else rng.low


def _reference(frame: "Frame", item: Thunk, end: str) -> Any:
    model = frame.items.get(item.name or "")
    bound = reference_bound(model, frame.data, end) if model is not None else None
    return MISSING if bound is None else bound


@lazy
def _uln(frame: "Frame", item: Thunk) -> Any:
    return _reference(frame, item, "high")


@lazy
def _lln(frame: "Frame", item: Thunk) -> Any:
    return _reference(frame, item, "low")


# -- dates of the subject ------------------------------------------------------------------------

@lazy
def _last_dose_date(frame: "Frame") -> Any:
    dates = [d for _, _, d in frame.ctx.infusions if isinstance(d, dt.date)]
    return max(dates) if dates else MISSING


@lazy
def _first_dose_date(frame: "Frame") -> Any:
    return frame.ctx.day0


@lazy
def _study_end(frame: "Frame") -> Any:
    """The end-of-study date, or today while the subject is still in the study."""
    ctx = frame.ctx
    eos = ctx.end_of_study
    if eos is not None:
        date = eos.resolve(ctx.study.schedule.end_of_study_date) if ctx.study.schedule.end_of_study_date else MISSING
        if isinstance(date, dt.date):
            return date
    return ctx.today


def _visit_arg(frame: "Frame", visit: Thunk) -> Any:
    name = visit.name or ""
    return frame.ctx.layout.visits.get(name)


@lazy
def _target_date(frame: "Frame", visit: Thunk) -> Any:
    v = _visit_arg(frame, visit)
    day0 = frame.ctx.day0
    if v is None or v.day is None or day0 is MISSING:
        return MISSING
    return day0 + dt.timedelta(days=v.day)


@lazy
def _window_end(frame: "Frame", visit: Thunk) -> Any:
    v = _visit_arg(frame, visit)
    target = _target_date(frame, visit)
    return MISSING if target is MISSING else target + dt.timedelta(days=v.window.after)


@lazy
def _visit_in_window(frame: "Frame", visit: Thunk) -> Any:
    from .schedule import analyse

    timing = analyse(frame.ctx).visits.get(visit.name or "")
    return MISSING if timing is None or timing.in_window is None else timing.in_window


@lazy
def _study_day(frame: "Frame", date: Thunk) -> Any:
    d, day0 = date(frame), frame.ctx.day0
    if not isinstance(d, dt.date) or day0 is MISSING:
        return MISSING
    return (d - day0).days


def _overlap_bounds(start: Any, end: Any) -> tuple[Any, Any, Any, Any]:
    from ..expressions import _partial_bounds

    s_lo, s_hi = _partial_bounds(start)
    if end is MISSING or end is None:
        e_lo, e_hi = dt.date.max, dt.date.max  # ongoing
    else:
        e_lo, e_hi = _partial_bounds(end)
    return s_lo, s_hi, e_lo, e_hi


def _may_overlap(start: Any, end: Any, first: Any, last: Any) -> bool:
    """The period start..end (partial dates allowed; blank end = ongoing) can overlap first..last."""
    s_lo, _, _, e_hi = _overlap_bounds(start, end)
    if s_lo is MISSING or e_hi is MISSING or not isinstance(first, dt.date) or not isinstance(last, dt.date):
        return False
    return s_lo <= last and e_hi >= first


def _must_overlap(start: Any, end: Any, first: Any, last: Any) -> bool:
    """Every date the partial dates could stand for makes start..end overlap first..last."""
    _, s_hi, e_lo, _ = _overlap_bounds(start, end)
    if s_hi is MISSING or e_lo is MISSING or not isinstance(first, dt.date) or not isinstance(last, dt.date):
        return False
    return s_hi <= last and e_lo >= first


# The functions that need the subject, registered with what the engine checks at load time: a log or form
# id first makes a function iterate over that log's rows or those forms; a visit id first is checked.
CONTEXT_FUNCTION_SPECS: tuple[Function, ...] = (
    Function("count", _count, ("container log", "condition condition?"), "integer", "the rows of a log (or forms of that id) meeting the condition"),
    Function("any_row", _any, ("container log", "condition condition?"), "boolean", "some row of the log meets the condition"),
    Function("no_row", _none, ("container log", "condition condition?"), "boolean", "no row of the log meets the condition"),
    Function("count_forms", _count, ("container form", "condition condition?"), "integer", "the forms of that id, at every visit, meeting the condition"),
    Function("any_form", _any, ("container form", "condition condition?"), "boolean", "some form of that id meets the condition"),
    Function("no_form", _none, ("container form", "condition condition?"), "boolean", "no form of that id meets the condition"),
    Function("value_in", _value_in, ("container log", "item item", "condition condition?"), "any",
             "the first value of the item given in the rows of a log, or the forms of that id in schedule order"),
    Function("computed", _computed, ("item item",), "any", "a calculated item's value from its x-derived expression, whatever was recorded"),
    Function("blank_items", _blank_items, ("item item*",), "list", "the ids of the given items left blank here"),
    Function("items_with", _items_with, ("value answer", "item item*"), "list", "the ids of the given items answered with answer"),
    Function("uln", _uln, ("item result",), "number", "the upper limit of normal of a lab result: the local laboratory's when given, else the central one"),
    Function("lln", _lln, ("item result",), "number", "the lower limit of normal of a lab result, likewise"),
    Function("last_dose_date", _last_dose_date, (), "date", "the date of the last infusion given"),
    Function("first_dose_date", _first_dose_date, (), "date", "Day 0: the date of the first infusion"),
    Function("study_end", _study_end, (), "date", "the end-of-study date, or today while the subject is still in the study"),
    Function("target_date", _target_date, ("visit visit",), "date", "the visit's planned date from Day 0"),
    Function("window_end", _window_end, ("visit visit",), "date", "the last day of the visit's window"),
    Function("visit_in_window", _visit_in_window, ("visit visit",), "boolean", "the visit's date is inside its window"),
    Function("study_day", _study_day, ("value date",), "integer", "the study day of a date (Day 0 is day 0)"),
    Function("may_overlap", _may_overlap, ("value start", "value end", "value first", "value last"), "boolean",
             "the period start..end (partial dates allowed; a blank end is ongoing) can overlap first..last"),
    Function("must_overlap", _must_overlap, ("value start", "value end", "value first", "value last"), "boolean",
             "the period start..end surely overlaps first..last, whatever days its partial dates stand for"),
)
CONTEXT_FUNCTIONS: dict[str, ContextFunction] = {f.name: f.fn for f in CONTEXT_FUNCTION_SPECS}
FUNCTIONS: dict[str, Function] = {f.name: f for f in (*BUILTIN_FUNCTIONS, *CONTEXT_FUNCTION_SPECS)}


def known_function_names() -> frozenset[str]:
    """The language's own functions (a study's plug-in may not reuse these names)."""
    return frozenset(FUNCTIONS)


def functions_of(study: "Study") -> dict[str, Function]:
    """Every function a study's expressions may call: the language's and the study's own."""
    own = study.functions.by_name()
    return {**FUNCTIONS, **own} if own else FUNCTIONS


# -- Python rules: limits from the schemas ----------------------------------------------------------------

def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _fmt_limits(text: str) -> str:
    return text.replace(" and ", ", ") or "none"


@dataclass(frozen=True)
class _Limited:
    item: Item
    hard: Optional[Any]  # Limits, or None when the item has no hard limits
    soft: Optional[Any]
    reference: Optional[Any]


_LIMITED: dict[int, tuple[Any, list[_Limited]]] = {}


def _limited_items(frame: "Frame") -> list[_Limited]:
    """The frame's numeric input items that have limits (computed once per form instance)."""
    cached = _LIMITED.get(id(frame.items))
    if cached is None or cached[0] is not frame.items:
        cached = (frame.items, [_Limited(it, None if it.hard.is_empty else it.hard, it.soft, it.reference_range)
                                for it in frame.items.values() if it.is_number and it.is_input
                                and (not it.hard.is_empty or it.soft is not None or it.reference_range is not None)])
        _LIMITED[id(frame.items)] = cached
    return cached[1]


@python_rule("item_limits")
def item_limits(ctx: "SubjectContext", rule: "Rule") -> Iterator[Hit]:
    """Each numeric item of the given forms against its hard limits (error) and soft limits (query).

    params: forms (form ids), items (optional subset), bounds: "hard", "soft" or "both".
    """
    params = rule.params
    bounds = params.get("bounds", "both")
    check_hard, check_soft = bounds in ("hard", "both"), bounds in ("soft", "both")
    wanted = set(params.get("items", ()))
    for form_id in params.get("forms", ()):
        for frame in ctx.form_frames(form_id):
            data = frame.data
            for lim in _limited_items(frame):
                item = lim.item
                raw = data.get(item.id)
                if raw is None or (wanted and item.id not in wanted):
                    continue
                value = _number(typed(item, raw))
                if value is None:
                    continue
                inside_hard = lim.hard is None or lim.hard.contains(value)
                if check_hard and lim.hard is not None and not inside_hard:
                    yield Hit(frame.visit or "", frame.instance or "", item.id, message="hard", severity="error", key="hard", value=raw,
                              values={"item": item.id, "question": item.question, "value": raw, "unit": item.unit or "",
                                      "limits": _fmt_limits(lim.hard.describe())})
                elif check_soft and inside_hard and lim.soft is not None and not lim.soft.contains(value):
                    yield Hit(frame.visit or "", frame.instance or "", item.id, message="soft", severity="query", key="soft", value=raw,
                              values={"item": item.id, "question": item.question, "value": raw, "unit": item.unit or "",
                                      "limits": _fmt_limits(lim.soft.describe()), "note": item.soft_message or ""})


@python_rule("lab_values")
def lab_values(ctx: "SubjectContext", rule: "Rule") -> Iterator[Hit]:
    """Lab values: outside hard limits (error); outside the reference range with the clinical-significance
    item (params.significance_item) blank (error)."""
    significance = rule.params.get("significance_item", "")
    for form_id in rule.params.get("forms", ()):
        for frame in ctx.form_frames(form_id):
            abnormal = []
            for lim in _limited_items(frame):
                item = lim.item
                raw = frame.data.get(item.id)
                if raw is None:
                    continue
                value = _number(typed(item, raw))
                if value is None:
                    continue
                if lim.hard is not None and not lim.hard.contains(value):
                    yield Hit(frame.visit or "", frame.instance or "", item.id, message="hard", severity="error", key="hard",
                              values={"item": item.id, "question": item.question, "value": frame.data.get(item.id),
                                      "unit": item.unit or "", "limits": _fmt_limits(item.hard.describe())},
                              value=frame.data.get(item.id))
                    continue
                if item.local_range is not None:
                    yield from _local_range_problems(frame, item)
                low, high = reference_bound(item, frame.data, "low"), reference_bound(item, frame.data, "high")
                if (low is not None and value < low) or (high is not None and value > high):
                    local = item.local_range is not None and any(_number(frame.data.get(i)) is not None for i in item.local_range)
                    shown = f"{_fmt_bound(low)}-{_fmt_bound(high)}"
                    abnormal.append(f"{item.id} {frame.data.get(item.id)} ({'local' if local else 'central'} range {shown})")
            sig = frame.items.get(significance)
            if abnormal and sig is not None and frame.resolve(significance) is MISSING:
                yield Hit(frame.visit or "", frame.instance or "", significance, message="significance", severity="error", key="significance",
                          values={"abnormal": ", ".join(abnormal)})


def _title(visit: Any, instance: str) -> str:
    return visit.form(instance).title if visit.has(instance) else instance


def _fmt_bound(value: Optional[float]) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else str(value)


def _local_range_problems(frame: "Frame", item: Item) -> Iterator[Hit]:
    """A local range with one end only, or with low not below high (EC-23)."""
    low_id, high_id = item.local_range  # type: ignore[misc]  # called only for items with a local range
    low, high = _number(frame.data.get(low_id)), _number(frame.data.get(high_id))
    values = {"item": item.id, "question": item.question, "unit": item.unit or "", "low": _fmt_bound(low), "high": _fmt_bound(high)}
    central = item.reference_range
    two_sided = central is None or (central.low is not None and central.high is not None)
    if (low is None) != (high is None) and two_sided:  # eGFR-like tests have a one-sided range anyway
        blank_id = low_id if low is None else high_id
        yield Hit(frame.visit or "", frame.instance or "", blank_id, message="range_incomplete", severity="error",
                  key=f"range-{item.id}", values=values)
    elif low is not None and high is not None and low >= high:
        yield Hit(frame.visit or "", frame.instance or "", low_id, message="range_reversed", severity="error",
                  key=f"range-{item.id}", value=frame.data.get(low_id), values=values)


@python_rule("procedures_before_consent")
def procedures_before_consent(ctx: "SubjectContext", rule: "Rule") -> Iterator[Hit]:
    """Study procedures dated before consent. params: consent (VISIT.FORM.ITEM), dates ({form id: date
    item}), per: "form" (one finding per dated form, EC-02) or "visit" (one per visit, PD-01)."""
    params = rule.params
    consent = ctx.subject_frame().resolve(params.get("consent", ""))
    if not isinstance(consent, dt.date):
        return
    per_visit: dict[str, list[tuple[str, str, dt.date]]] = {}
    for form_id, item in params.get("dates", {}).items():
        for frame in ctx.form_frames(form_id):
            d = frame.resolve(item)
            if isinstance(d, dt.date) and d < consent:
                per_visit.setdefault(frame.visit or "", []).append((frame.instance or "", item, d))
    for visit_id, visit in ctx.study.visit_keys(per_visit):
        found = per_visit[visit_id]
        label = ctx.layout.label(visit_id)
        if params.get("per", "form") == "visit":
            instance, item, d = min(found, key=lambda t: t[2])  # ties: the visit date first (params order)
            forms = ", ".join(f"{_title(visit, i)} {dd.isoformat()}" for i, _, dd in found)
            yield Hit(visit_id, instance, item, value=d.isoformat(), values={
                "label": label, "consent": consent, "first": d, "forms": forms, "count": len(found)})
        else:
            for instance, item, d in found:
                yield Hit(visit_id, instance, item, value=d.isoformat(), values={"label": label, "consent": consent, "date": d, "form": instance})
