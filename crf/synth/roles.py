"""Which form is which, for the generator: the roles the study's forms declare (`x-role`, crf.model.FormRole).

The generator never looks for item ids of its own: a form's role names the items it links (the consent
date, the pregnancy test's result, the infusion's dose...). A study whose forms declare no role is filled
from its schemas alone; `skipped` says what the generator then cannot do.
"""
from __future__ import annotations

from typing import Any, Iterator, Optional

from ..model import Form, FormInstance, FormRole, Log, Study, Visit

# What the generator does with each role: the note `skipped` gives for a role no form declares.
USES = {
    "consent": "the consent dated before every procedure",
    "demographics": "an adult's birth date, and women of childbearing potential",
    "disease-history": "disease onset before diagnosis before consent",
    "pregnancy-test": "pregnancy tests for women of childbearing potential, timed to the infusion",
    "disability-score": "disability scores that agree with their subsystem grades and worsen with each event",
    "event-visit": "the onset date on each event's own visit",
    "dosing": "infusions dosed from the same-visit weight (and the dose, missed-dose and pregnancy plants)",
    "end-of-study": "the investigator's event count and final score (and the count-mismatch plant)",
    "prior-events": "qualifying events before screening",
    "events": "events on study with their visits, assessments and rescue medication",
    "medications": "medication start and stop dates, rescue medication (and the prohibited-medication plant)",
    "adverse-events": "adverse events on study with their end dates (and the serious-AE and date-order plants)",
    "medical-history": "medical history years before screening",
    "vital-signs": "no vital signs when an infusion was not given (and the blood-pressure plant)",
}


def role(form: Form, name: str) -> Optional[FormRole]:
    """The form's role when it is `name`."""
    return form.role if form.role is not None and form.role.name == name else None


def instance(visit: Visit, name: str) -> Optional[FormInstance]:
    """The visit's first form instance of that role."""
    return next((inst for inst in visit.forms if role(inst.form, name)), None)


def log(study: Study, name: str) -> Optional[Log]:
    """The first log whose rows are a form of that role."""
    return next((lg for lg in study.logs if role(lg.form, name)), None)


def of_study(study: Study, name: str) -> Optional[FormRole]:
    """The role as the first form (a visit's or a log's) declaring it gives it."""
    for form in forms(study):
        found = role(form, name)
        if found is not None:
            return found
    return None


def forms(study: Study) -> Iterator[Form]:
    yield from study.forms()
    for lg in study.logs:
        yield lg.form


def items(found: Optional[FormRole], form: Form, *slots: str) -> Optional[tuple[str, ...]]:
    """The role's item ids of these slots when the form has every one of them, else None."""
    if found is None:
        return None
    ids = tuple(found.item(slot) or "" for slot in slots)
    return ids if all(i and form.has(i) for i in ids) else None


def table(found: Optional[FormRole], name: str) -> Any:
    return found.tables.get(name) if found is not None else None


def skipped(study: Study) -> list[str]:
    """What the generator cannot do for this study, one line per role no form declares."""
    declared = {f.role.name for f in forms(study) if f.role is not None}
    return [f"no form has x-role {name!r}, so not generated: {what}" for name, what in USES.items() if name not in declared]
