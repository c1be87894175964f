"""Complete a record before it is checked: fixed values from the model, derived values computed.

Fixed and derived items are not inputs, so a site is never asked for them. Derived values are
computed by the study's derivations (crf.rules); otherwise the formula's cached value from the
workbook is kept; otherwise the item stays blank (it is never reported as missing).
"""
from __future__ import annotations

from typing import Any

from ..expressions import MISSING
from ..model import ItemKind, Study, Visit
from ..subject import SubjectRecord


def _normal(value: Any, kind: ItemKind) -> Any:
    if isinstance(value, float) and value.is_integer() and kind is ItemKind.INTEGER:
        return int(value)
    return value


def complete(study: Study, record: SubjectRecord, cached: dict[str, Any]) -> set[str]:
    """Add fixed and derived values to the record in place; return the paths of every derived value set.

    Derived values come from the study's one derivation (crf.rules: the same functions the rules
    use); where it cannot compute one, the workbook formula's cached value stands.
    """
    from ..rules import RuleSet

    for visit in study.visits:
        forms = record.visits.get(visit.id)
        if isinstance(forms, dict):
            _fill_fixed(visit, forms)
    computed = RuleSet.shared(study).derived_values(record)
    derived_paths: set[str] = set()

    def put(values: dict[str, Any], path: str, item: Any) -> None:
        value = computed.get(path, cached.get(path))
        if value is not None and value is not MISSING:
            values[item.id] = _normal(value, item.kind)
            derived_paths.add(path)

    for log in study.logs:
        for index, row in enumerate(record.logs.get(log.id, [])):
            if isinstance(row, dict):
                for item in log.form.items:
                    if item.derived is not None:
                        put(row, f"/logs/{log.id}/{index}/{item.id}", item)
    for visit in study.visits:
        forms = record.visits.get(visit.id)
        for inst in visit.forms if isinstance(forms, dict) else ():
            values = forms.get(inst.name)
            if isinstance(values, dict) and _has_input(inst, values):
                for item in inst.items:
                    if item.derived is not None:
                        put(values, f"/visits/{visit.id}/{inst.name}/{item.id}", item)
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
