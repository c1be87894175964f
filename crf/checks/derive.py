"""Complete a record before it is checked: fixed values from the model, derived values computed.

Fixed and derived items are not inputs, so a site is never asked for them. Derived values are
computed by the study's derivations (crf.rules); otherwise the formula's cached value from the
workbook is kept; otherwise the item stays blank (it is never reported as missing).

A derived value that was sent (in a JSON document, or typed over a workbook formula) and disagrees
with the derivation is kept, so that the rules check what the site recorded (EC-16 on PAQUAL), and
is returned as a Disagreement, which the field checks report (DERIVED-MISMATCH).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ..expressions import MISSING
from ..fieldmap import FieldPath
from ..model import Item, ItemKind, Study, Visit
from ..subject import SubjectRecord


def _normal(value: Any, kind: ItemKind) -> Any:
    if isinstance(value, float) and value.is_integer() and kind is ItemKind.INTEGER:
        return int(value)
    return value


@dataclass(frozen=True)
class Disagreement:
    """A derived item whose value as sent differs from the value its derivation gives."""

    path: str
    item: Item
    sent: Any
    computed: Any


def same_value(item: Item, sent: Any, computed: Any) -> bool:
    """Equal as the form shows them: numbers to the item's decimals, dates and codes as text."""
    if isinstance(sent, bool) or isinstance(computed, bool):
        return sent == computed
    if isinstance(sent, (int, float)) and isinstance(computed, (int, float)):
        return abs(float(sent) - float(computed)) <= 0.5 * 10 ** -max(item.decimals, 0) + 1e-9
    if isinstance(sent, dt.date):
        sent = sent.isoformat()
    if isinstance(computed, dt.date):
        computed = computed.isoformat()
    if isinstance(sent, (list, tuple)) and isinstance(computed, (list, tuple)):
        return sorted(map(str, sent)) == sorted(map(str, computed))
    return str(sent).strip() == str(computed).strip()


def complete(study: Study, record: SubjectRecord, cached: dict[str, Any]) -> tuple[set[str], list[Disagreement]]:
    """Add fixed and derived values to the record in place; return the paths of every derived value set
    and the derived values sent that disagree with their derivation.

    Derived values come from the study's one derivation (crf.rules: the same functions the rules
    use); where it cannot compute one, the workbook formula's cached value stands.
    """
    from ..rules import RuleSet

    for key, visit in study.visit_keys(record.visits):
        forms = record.visits[key]
        if isinstance(forms, dict):
            _fill_fixed(visit, forms)
    computed = RuleSet.shared(study).derived_values(record)
    derived_paths: set[str] = set()
    disagreements: list[Disagreement] = []

    def put(values: dict[str, Any], path: str, item: Item) -> None:
        sent = values.get(item.id, cached.get(path))
        if sent in ("", []):
            sent = None
        value = computed.get(path)
        if value is not None and sent is not None and not same_value(item, sent, value):
            disagreements.append(Disagreement(path, item, sent, value))
            value = sent  # the rules check what the site recorded
        elif value is None:
            value = sent
        if value is not None and value is not MISSING:
            values[item.id] = _normal(value, item.kind)
            derived_paths.add(path)

    for log in study.logs:
        for index, row in enumerate(record.logs.get(log.id, [])):
            if isinstance(row, dict):
                for item in log.form.items:
                    if item.derived is not None:
                        put(row, str(FieldPath.log(log.id, index, item.id)), item)
    for key, visit in study.visit_keys(record.visits):
        forms = record.visits[key]
        if not isinstance(forms, dict):
            continue
        for inst in visit.forms:
            values = forms.get(inst.name)
            if isinstance(values, dict) and _has_input(inst, values):
                for item in inst.items:
                    if item.derived is not None:
                        put(values, str(FieldPath.visit(key, inst.name, item.id)), item)
    return derived_paths, disagreements


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
