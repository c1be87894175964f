"""Complete a record before it is checked: fixed values from the model, derived values computed.

Fixed and derived items are not inputs, so a site is never asked for them. Derived values are
computed with crf.expressions where every function is known; otherwise the formula's cached value
from the workbook is kept; otherwise the item stays blank (it is never reported as missing).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from .. import expressions
from ..expressions import MISSING, Expression, ExpressionError, Scope
from ..model import ItemKind, Study, Visit
from ..subject import SubjectRecord


def day0_date(study: Study, record: SubjectRecord) -> Any:
    """Date of the first infusion: the study-drug date of the Day 0 visit, else its visit date."""
    visit = next((v for v in study.visits if v.day == 0), None)
    if visit is None or visit.id not in record.visits:
        return MISSING
    fallback = MISSING
    for inst in visit.forms:
        for item in inst.items:
            if item.kind is ItemKind.DATE and item.is_input:
                value = record.value(visit.id, inst.name, item.id)
                if value is None:
                    continue
                if item.sdtm.domain == "EX":
                    return value
                if fallback is MISSING:
                    fallback = value
    return fallback


class _Context:
    def __init__(self, study: Study, record: SubjectRecord):
        self.study = study
        self.record = record
        self.day0 = day0_date(study, record)
        self.log_ids = {lg.id for lg in study.logs}
        self.visit_ids = {v.id for v in study.visits}

    def resolver(self, visit: Optional[str], form: Optional[str], row: Optional[dict[str, Any]]) -> Callable[[str], Any]:
        record = self.record

        def resolve(name: str) -> Any:
            if name == "DAY0":
                return self.day0
            parts = name.split(".")
            value: Any = None
            if len(parts) == 1:
                if row is not None:
                    value = row.get(parts[0])
                elif visit and form:
                    value = record.value(visit, form, parts[0])
            elif len(parts) == 2 and visit:
                value = record.value(visit, parts[0], parts[1])
            elif len(parts) == 3:
                value = record.value(parts[0], parts[1], parts[2])
            return MISSING if value is None or value == "" else value
        return resolve

    def functions(self) -> dict[str, Callable[..., Any]]:
        context = self

        @expressions.lazy
        def count(scope: Scope, log: Any, condition: Any = None) -> Any:
            rows = context.record.logs.get(log.name or "", [])
            total = 0
            for row in rows:
                if not isinstance(row, dict):
                    continue
                if condition is None or bool(condition(Scope(context.resolver(None, None, row), scope.functions))):
                    total += 1
            return total
        return {"count": count}


def _evaluate(expr: Expression, scope: Scope) -> Any:
    try:
        return expressions.evaluate(expr, scope)
    except (ExpressionError, TypeError, ValueError, ZeroDivisionError, OverflowError, AttributeError, KeyError):
        return MISSING


_PARSED: dict[str, Expression] = {}


def _parse(text: str) -> Expression:
    if text not in _PARSED:
        _PARSED[text] = expressions.parse(text)
    return _PARSED[text]


def _normal(value: Any, kind: ItemKind) -> Any:
    if isinstance(value, float) and value.is_integer() and kind is ItemKind.INTEGER:
        return int(value)
    return value


def complete(study: Study, record: SubjectRecord, cached: dict[str, Any]) -> set[str]:
    """Add fixed and derived values to the record in place; return the paths of every derived value set."""
    context = _Context(study, record)
    functions = context.functions()
    derived_paths: set[str] = set()
    # log rows first: visit items such as N12 count rows of a log
    for log in study.logs:
        for index, row in enumerate(record.logs.get(log.id, [])):
            if not isinstance(row, dict):
                continue
            scope = Scope(context.resolver(None, None, row), functions)
            for item in log.form.items:
                if item.derived is None:
                    continue
                path = f"/logs/{log.id}/{index}/{item.id}"
                value = _evaluate(_parse(item.derived), scope)
                if value is MISSING or value is None:
                    value = cached.get(path)
                if value is not None and value is not MISSING:
                    row[item.id] = _normal(value, item.kind)
                    derived_paths.add(path)
    for visit in study.visits:
        forms = record.visits.get(visit.id)
        if not isinstance(forms, dict):
            continue
        _fill_fixed(visit, forms)
        for _ in range(2):  # a derived item may use another derived item (FSVISC -> EDSSCALC)
            for inst in visit.forms:
                values = forms.get(inst.name)
                if not isinstance(values, dict) or not _has_input(inst, values):
                    continue
                scope = Scope(context.resolver(visit.id, inst.name, None), functions)
                for item in inst.items:
                    if item.derived is None:
                        continue
                    path = f"/visits/{visit.id}/{inst.name}/{item.id}"
                    value = _evaluate(_parse(item.derived), scope)
                    if value is MISSING or value is None:
                        value = cached.get(path)
                    if value is not None and value is not MISSING:
                        values[item.id] = _normal(value, item.kind)
                        derived_paths.add(path)
    return derived_paths


def _has_input(inst: Any, values: dict[str, Any]) -> bool:
    return any(it.is_input and it.id in values for it in inst.items)


def _fill_fixed(visit: Visit, forms: dict[str, Any]) -> None:
    """Fixed values go into form instances the site filled; an untouched optional form stays absent."""
    for inst in visit.forms:
        values = forms.get(inst.name)
        if not isinstance(values, dict) or not _has_input(inst, values):
            continue
        for item in inst.items:
            if item.fixed is not None and item.id not in values:
                values[item.id] = item.fixed
