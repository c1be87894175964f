"""A hand-written subject (tests/fixtures/findings/base-subject.json) and helpers to plant one problem in a copy.

The base subject was typed from the CRF specification, not produced by crf.synth: it validates clean, and
every test changes it in one place, chosen from the spec's wording, and looks at what the validator says.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from crf.findings import Finding
from crf.validation import validate

BASE = Path(__file__).resolve().parent / "fixtures" / "findings" / "base-subject.json"
TODAY = dt.date(2026, 1, 1)
_BASE_DOC: dict[str, Any] = json.loads(BASE.read_text(encoding="utf-8"))


def base() -> dict[str, Any]:
    """A fresh copy of the hand-written subject document."""
    return copy.deepcopy(_BASE_DOC)


def form(doc: dict[str, Any], visit: str, name: str) -> dict[str, Any]:
    return doc["visits"][visit][name]


def run(study: Any, doc: dict[str, Any], tmp: Path, name: str = "subject.json",
        stages: Optional[Sequence[str]] = None) -> list[Finding]:
    """Validate one subject document as a site would send it (all stages unless told)."""
    path = tmp / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return validate(study, [path], jobs=1, today=TODAY, stage_names=stages).findings


def where(findings: list[Finding], rule: Optional[str] = None) -> list[tuple[str, str, str, str, Optional[int]]]:
    """(rule, visit, form, field, row) of each finding, optionally of one rule only."""
    return sorted((f.rule, f.visit, f.form, f.field, f.row) for f in findings if rule is None or f.rule == rule)


Plant = Callable[[dict[str, Any]], Any]


SUBJECTS = Path(__file__).resolve().parent / "fixtures" / "subjects"
COMPLETER_TODAY = dt.date(2026, 11, 25)  # after 01-901's end of study (tests/test_handwritten.py)


def completer() -> dict[str, Any]:
    """01-901 (issue 10's hand-written subject): completed week 52, two investigator-confirmed attacks, each seen at
    its attack visit (ATT#1, ATT#2), and an unscheduled visit (UNS#1) with repeat laboratory and pregnancy tests."""
    return json.loads((SUBJECTS / "01-901.json").read_text(encoding="utf-8"))


def move_visit(doc: dict[str, Any], visit: str, old: str, new: str) -> None:
    """Every date of one visit moved from `old` to `new` (visit, assessments and infusion on the same new day)."""
    for values in doc["visits"][visit].values():
        for key, value in list(values.items()):
            if value == old:
                values[key] = new


# Plants: small functions that change a subject document in one place.
def set_values(visit: str, name: str, **values: Any) -> Plant:
    return lambda doc: form(doc, visit, name).update(values)


def remove(visit: str, name: str, *items: str) -> Plant:
    def plant(doc: dict[str, Any]) -> None:
        for item in items:
            form(doc, visit, name).pop(item, None)
    return plant


def set_row(log: str, index: int, **values: Any) -> Plant:
    return lambda doc: doc["logs"][log][index].update(values)


def chain(*plants: Plant) -> Plant:
    def plant(doc: dict[str, Any]) -> None:
        for p in plants:
            p(doc)
    return plant
