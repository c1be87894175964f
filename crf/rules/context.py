"""A subject seen by the rules: frames that resolve names, typed values, and per-subject caches.

A *frame* is where an expression is evaluated: the subject, one form instance at one visit, or one
row of a log. Names resolve from the inside out:

- `ITEM`            an item of the frame's own form (or row); else of the enclosing frame;
- `FORM.ITEM`       a form instance of the same visit (`VS_PRE.WEIGHT`);
- `VISIT.FORM.ITEM` anywhere (`SCR.IC.DSSTDAT`);
- lower-case names  the rules files' constants (`prohibited_biologics`);
- `DAY0`, `TODAY`, `VISIT`, `VISIT_LABEL`, `VISIT_DAY`, `INFUSION`, `ROW`, `DOSE_MG_PER_KG`, `DOSE_WEIGHT`.

Values are typed on the way in: full dates become `datetime.date` (so that comparisons and
`days_between` work), partial dates stay text (compare them with `earliest()`/`latest()`), numbers
given as text become numbers, blanks become MISSING. A blank derived item is computed from its
`x-derived` expression; a fixed item (`x-fixed`) gives its fixed value.
"""
from __future__ import annotations

import datetime as dt
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional

from ..expressions import MISSING, Compiled, ExpressionError, compile_expression, parse
from ..fieldmap import FieldPath
from ..model import Item, ItemKind, Study
from ..subject import SubjectRecord

if TYPE_CHECKING:  # engine imports this module at run time
    from .engine import StudyLayout

SPECIAL_NAMES = frozenset({"DAY0", "TODAY", "VISIT", "VISIT_LABEL", "VISIT_DAY", "INFUSION", "ROW", "DOSE_MG_PER_KG", "DOSE_WEIGHT"})

_OWN_SPECIALS = frozenset({"VISIT", "VISIT_LABEL", "VISIT_DAY", "INFUSION", "ROW"})  # of the inner frame inside count() & co.

_derived_cache: dict[str, Compiled] = {}


def _derived(text: str) -> Compiled:
    fn = _derived_cache.get(text)
    if fn is None:
        fn = _derived_cache[text] = compile_expression(parse(text))
    return fn


def _to_date(raw: Any) -> Any:
    if isinstance(raw, dt.date):
        return raw
    try:
        return dt.date.fromisoformat(raw) if isinstance(raw, str) and len(raw) == 10 else MISSING
    except ValueError:
        return MISSING


def _to_partial_date(raw: Any) -> Any:
    if isinstance(raw, str) and len(raw) == 10:
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            return raw
    return raw


def _to_number(raw: Any) -> Any:
    if isinstance(raw, bool):
        return MISSING
    if isinstance(raw, (int, float)):
        return raw
    try:
        return float(raw) if "." in str(raw) else int(raw)
    except (TypeError, ValueError):
        return MISSING


def _as_is(raw: Any) -> Any:
    return raw


_CONVERTERS: dict[int, tuple[Item, Callable[[Any], Any]]] = {}


def _converter(item: Item) -> Callable[[Any], Any]:
    found = _CONVERTERS.get(id(item))
    if found is not None and found[0] is item:
        return found[1]
    kind = item.kind
    if kind == ItemKind.DATE:
        fn = _to_date
    elif kind == ItemKind.PARTIAL_DATE:
        fn = _to_partial_date
    elif kind in (ItemKind.INTEGER, ItemKind.DECIMAL) or (kind == ItemKind.CHOICE and item.value_type in ("number", "integer")):
        fn = _to_number
    else:
        fn = _as_is
    _CONVERTERS[id(item)] = (item, fn)
    return fn


def typed(item: Item, raw: Any) -> Any:
    """A raw JSON value as the expressions see it (MISSING for blank or malformed)."""
    if raw is None or raw == "" or raw == []:
        return MISSING
    return _converter(item)(raw)


class Frame:
    """Scope of one evaluation unit; implements the expression Scope protocol (resolve, functions)."""

    __slots__ = ("ctx", "items", "data", "visit", "instance", "log", "row", "parent", "cache", "functions", "computing")

    def __init__(self, ctx: "SubjectContext", items: Mapping[str, Item], data: Mapping[str, Any], *,
                 visit: Optional[str] = None, instance: Optional[str] = None, log: Optional[str] = None,
                 row: Optional[int] = None, parent: Optional["Frame"] = None):
        self.ctx = ctx
        self.items = items
        self.data = data
        self.visit = visit
        self.instance = instance
        self.log = log
        self.row = row
        self.parent = parent
        self.cache: dict[str, Any] = {}
        self.functions = ctx.functions
        self.computing: set[str] = set()

    def resolve(self, name: str) -> Any:
        try:
            return self.cache[name]
        except KeyError:
            pass
        value = self._lookup(name)
        self.cache[name] = value
        return value

    def _lookup(self, name: str) -> Any:
        if "." not in name:
            item = self.items.get(name)
            if item is not None:
                return self.item_value(item)
            if self.parent is not None:
                return self.parent.resolve(name)
            return self.ctx.special(name, self)
        parts = name.split(".")
        if len(parts) == 2 and self.visit is not None:
            return self.ctx.field_value(self.visit, parts[0], parts[1])
        if len(parts) == 3:
            return self.ctx.field_value(*parts)
        if self.parent is not None:
            return self.parent.resolve(name)
        return MISSING

    def item_value(self, item: Item) -> Any:
        value = typed(item, self.data.get(item.id))
        if value is not MISSING:
            return value
        if item.fixed is not None:
            return typed(item, item.fixed)
        if item.derived:
            return self.compute(item)
        return MISSING

    def compute(self, item: Item) -> Any:
        """The item's x-derived value in this frame, whatever was recorded."""
        if not item.derived or item.id in self.computing:
            return MISSING
        self.computing.add(item.id)
        try:
            return typed(item, _derived(item.derived)(self))
        except (ExpressionError, TypeError, ValueError, ArithmeticError):
            return MISSING
        finally:
            self.computing.discard(item.id)

    def child(self, parent: "Frame") -> "_ChildFrame":
        """This frame's own items, falling back to `parent` for any other name (rows inside count())."""
        return _ChildFrame(self, parent)

    @property
    def visit_id(self) -> Optional[str]:
        frame: Optional[Frame] = self
        while frame is not None:
            if frame.visit is not None:
                return frame.visit
            frame = frame.parent
        return None

    def path(self, field: str) -> tuple[str, str, str, Optional[int], str]:
        """(visit, form, item, row index, record path) of a field named as seen from this frame."""
        parts = field.split(".")
        if len(parts) == 3:
            return parts[0], parts[1], parts[2], None, str(FieldPath.visit(parts[0], parts[1], parts[2]))
        if len(parts) == 2 and self.visit_id is not None:
            v = self.visit_id
            return v, parts[0], parts[1], None, str(FieldPath.visit(v, parts[0], parts[1]))
        if self.log is not None and self.row is not None:
            return "", self.log, field, self.row, str(FieldPath.log(self.log, self.row, field))
        if self.visit is not None and self.instance is not None:
            return self.visit, self.instance, field, None, str(FieldPath.visit(self.visit, self.instance, field))
        if self.parent is not None:
            return self.parent.path(field)
        return "", "", field, None, ""


class _ChildFrame:
    """A row or form seen from inside count() & co.: its own items first, then the enclosing frame's names."""

    __slots__ = ("base", "parent")

    def __init__(self, base: Frame, parent: Frame):
        self.base = base
        self.parent = parent

    ctx = property(lambda self: self.base.ctx)
    items = property(lambda self: self.base.items)
    data = property(lambda self: self.base.data)
    visit = property(lambda self: self.base.visit)
    instance = property(lambda self: self.base.instance)
    log = property(lambda self: self.base.log)
    row = property(lambda self: self.base.row)
    functions = property(lambda self: self.base.functions)

    def resolve(self, name: str) -> Any:
        base = self.base
        if name in base.items:
            return base.resolve(name)
        if name in _OWN_SPECIALS:
            return base.ctx.special(name, self)
        if name.count(".") == 1 and base.visit is not None:
            form, item = name.split(".")
            return base.ctx.field_value(base.visit, form, item)
        return self.parent.resolve(name)

    def compute(self, item: Item) -> Any:
        return self.base.compute(item)

    def child(self, parent: Any) -> "_ChildFrame":
        return _ChildFrame(self.base, parent)

    @property
    def visit_id(self) -> Optional[str]:
        return self.base.visit or self.parent.visit_id

    def path(self, field: str) -> tuple[str, str, str, Optional[int], str]:
        return self.base.path(field)


class SubjectContext:
    """Everything the rules need about one subject, computed at most once."""

    def __init__(self, study: Study, record: SubjectRecord, today: dt.date, constants: Mapping[str, Any],
                 functions: Mapping[str, Callable[..., Any]], layout: "StudyLayout"):
        self.study = study
        self.record = record
        self.today = today
        self.constants = constants
        self.layout = layout
        self.functions = functions
        self._form_frames: dict[tuple[str, str], Optional[Frame]] = {}
        self._row_frames: dict[tuple[str, int], Frame] = {}
        self.memo: dict[str, Any] = {}  # per-subject results of context functions

    # -- frames ----------------------------------------------------------------------------
    def form_frame(self, visit: str, instance: str) -> Optional[Frame]:
        """The frame of form `instance` at visit key `visit` (V1, ATT#2), None when the record has not that form."""
        key = (visit, instance)
        if key not in self._form_frames:
            items = self.layout.instance_items.get((self.layout.base(visit), instance))
            data = self.record.visits.get(visit, {}).get(instance)
            self._form_frames[key] = None if items is None or not isinstance(data, dict) else Frame(self, items, data, visit=visit, instance=instance)
        return self._form_frames[key]

    def row_frame(self, log: str, index: int) -> Frame:
        key = (log, index)
        frame = self._row_frames.get(key)
        if frame is None:
            row = self.rows(log)[index]
            frame = self._row_frames[key] = Frame(self, self.layout.log_items.get(log, {}), row, log=log, row=index)
        return frame

    def subject_frame(self) -> Frame:
        frame = self.memo.get("subject-frame")
        if frame is None:
            frame = self.memo["subject-frame"] = Frame(self, {}, {})
        return frame

    def rows(self, log: str) -> list[dict[str, Any]]:
        rows = self.record.logs.get(log)
        if not isinstance(rows, list):
            return []
        return [r if isinstance(r, dict) else {} for r in rows]

    def row_frames(self, log: str) -> Iterator[Frame]:
        for i, row in enumerate(self.rows(log)):
            if any(v not in (None, "", []) for v in row.values()):
                yield self.row_frame(log, i)

    def form_frames(self, form_id: str, visits: Optional[frozenset[str]] = None) -> list[Frame]:
        """Frames of every instance of form `form_id` (form definition id) the record has, in schedule order."""
        key = f"forms:{form_id}:{sorted(visits) if visits else ''}"
        cached = self.memo.get(key)
        if cached is None:
            cached = []
            for visit, instance in self.layout.instances_of_form.get(form_id, ()):
                if visits and visit not in visits:
                    continue
                for visit_key in self.visit_keys(visit):  # not `key`: the memo's key (it was stored under the last visit key, never found)
                    frame = self.form_frame(visit_key, instance)
                    if frame is not None and any(v not in (None, "", []) for v in frame.data.values()):
                        cached.append(frame)
            self.memo[key] = cached
        return cached

    def visit_keys(self, visit_id: str) -> tuple[str, ...]:
        """The record's keys of visit `visit_id`: itself, or each instance of a repeating visit (ATT#1, ATT#2 ...) by number."""
        keys = self.memo.get("visit-keys")
        if keys is None:
            grouped: dict[str, list[str]] = {}
            for key, visit in self.study.visit_keys(self.record.visits):
                grouped.setdefault(visit.id, []).append(key)
            keys = self.memo["visit-keys"] = {k: tuple(v) for k, v in grouped.items()}
        return keys.get(visit_id, ())

    def linked_keys(self, log: str, row_value: Any) -> tuple[str, ...]:
        """Keys of the repeating-visit instances linked (study.json `repeating.link`) to the log row whose link item is `row_value`."""
        found = []
        for visit in self.study.visits:
            link = visit.link
            if link is None or link.log != log:
                continue
            for key in self.visit_keys(visit.id):
                value = self.field_value(key, link.form, link.item)
                if value is not MISSING and value == row_value:
                    found.append(key)
        return tuple(found)

    def field_value(self, visit: str, instance: str, item_id: str) -> Any:
        frame = self.form_frame(visit, instance)
        if frame is None or item_id not in frame.items:
            return MISSING
        return frame.resolve(item_id)

    # -- names -----------------------------------------------------------------------------
    def special(self, name: str, frame: Any) -> Any:
        if name in self.constants:
            return self.constants[name]
        if name == "DAY0":
            return self.day0
        if name == "TODAY":
            return self.today
        dosing = self.study.dosing
        if name == "DOSE_MG_PER_KG":
            return dosing.dose_mg_per_kg if dosing else MISSING
        if name == "DOSE_WEIGHT":
            source = dosing.weight_source if dosing else None
            return frame.resolve(source) if source and frame.visit_id else MISSING
        if name == "ROW":
            f: Any = frame
            while f is not None and f.row is None:
                f = f.parent
            return f.row + 1 if f is not None and f.row is not None else MISSING
        visit = frame.visit_id
        if name == "VISIT":
            return visit or MISSING
        if name == "VISIT_LABEL":
            return self.layout.label(visit) if visit is not None and self.layout.visit(visit) is not None else MISSING
        if name in ("VISIT_DAY", "INFUSION"):
            v = self.layout.visit(visit) if visit is not None else None
            if v is None:
                return MISSING
            value = v.day if name == "VISIT_DAY" else v.infusion
            return MISSING if value is None else value
        return MISSING

    # -- study-wide facts --------------------------------------------------------------------
    @cached_property
    def infusions(self) -> list[tuple[str, Frame, Any]]:
        """(visit id, infusion-form frame, start date) of every infusion given, in date order."""
        sched = self.study.schedule
        given = _derived(sched.infusion_given)
        date_item = sched.infusion_date
        out = []
        for frame in self.form_frames(sched.infusion_form):
            if bool(given(frame)):
                out.append((frame.visit or "", frame, frame.resolve(date_item)))
        out.sort(key=lambda t: (t[2] if isinstance(t[2], dt.date) else dt.date.max))
        return out

    @cached_property
    def day0(self) -> Any:
        dates = [d for _, _, d in self.infusions if isinstance(d, dt.date)]
        return min(dates) if dates else MISSING

    def visit_date(self, visit: str) -> Any:
        ref = self.study.schedule.visit_date
        return self.field_value(visit, ref.form, ref.item) if ref else MISSING

    @cached_property
    def end_of_study(self) -> Optional[Frame]:
        """The end-of-study form (at the week-52 or early-termination visit), if returned."""
        frames = self.form_frames(self.study.schedule.end_of_study_form)
        return frames[0] if frames else None
