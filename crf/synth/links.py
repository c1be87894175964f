"""A whole subject: dates from the schedule, and the records that must agree with each other.

Python adds only what JSON Schema cannot say: dates from the schedule, the dose from the weight
(`study.dosing`), a disability score from its subsystem grades, and records that must agree (event log,
event visit, rescue medication, event count). Each link finds its forms by their role (`x-role`, see
crf/synth/roles.py) and is skipped when the study has none, so any study folder generates.
"""
from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from .. import schedule
from ..model import Form, FormInstance, FormRole, Item, Study, Visit
from ..subject import SubjectRecord
from . import roles
from .fill import FIRST_DAY0, Clock, as_number, fill_form, form_examples, item_codes, iso, pick, schema_node, typical_range

EVENT_PROBABILITY = 0.3  # a subject with an event on study (an attack, in the shipped study)
SECOND_EVENT_PROBABILITY = 0.4  # of a subject with an event
UNSCHEDULED_PROBABILITY = 0.25
WEIGHT_JITTER = 0.01  # the dosing weight varies by at most +/-1% around the subject's weight (< 3% drift)


@dataclass
class Event:
    """An event on study (an attack, in the shipped study) with its visit and the score it leaves."""

    number: int
    onset: dt.date
    visit_date: dt.date
    profile: dict[str, Any]


@dataclass
class Subject:
    study: Study
    rng: random.Random
    record: SubjectRecord
    day0: dt.date
    dates: dict[str, dt.date]  # scheduled visit id -> date
    consent: dt.date
    typical: dict[str, Any] = field(default_factory=dict)  # the subject's own value of a repeated item
    score: dict[str, Any] = field(default_factory=dict)  # the disability-score form's values (item id -> value)
    events: list[Event] = field(default_factory=list)  # in onset order, numbered from 1

    @property
    def wocbp(self) -> bool:
        """A woman of childbearing potential, as her demographics form says."""
        found = roles.of_study(self.study, "demographics")
        item = found.item("childbearing_potential") if found else None
        code = found.code("childbearing_potential") if found else None
        if not item:
            return False
        return any(form.get(item) == code for visit in self.record.visits.values() for form in visit.values())

    @property
    def end(self) -> dt.date:
        return max(self.dates.values())


def clean_subject(study: Study, site: str, subject: str, seed: int, day0: Optional[dt.date] = None) -> SubjectRecord:
    """A complete, consistent subject who follows the protocol; the same arguments give the same record."""
    rng = random.Random(f"{study.id}|{site}|{subject}|{seed}")
    day0 = day0 or FIRST_DAY0 + dt.timedelta(days=rng.randrange(0, 540))
    record = SubjectRecord(study=study.id, site=site, subject=subject, form_version=study.form_version,
                           definition_hash=study.definition_hash)
    dates = _schedule(study, day0, rng)
    first = min(dates.values()) if dates else day0
    subj = Subject(study, rng, record, day0, dates, consent=first - dt.timedelta(days=rng.randint(0, 3)))
    scores = _Scores.of(study)
    if scores is not None:
        subj.score = scores.profile(rng, rng.choice(scores.steps))
    subj.events = _plan_events(subj, scores)
    event_visit = _event_visit(study)
    for visit in study.visits:
        if visit.repeating:  # a visit per event; now and then an unscheduled visit
            own = visit is event_visit
            days = [a.visit_date for a in subj.events] if own else _unscheduled_days(subj, visit)
            for n, day in enumerate(days, start=1):
                _fill_visit(subj, visit, day, visit.key(n), subj.events[n - 1] if own else None)
            continue
        scheduled = dates.get(visit.id)
        if scheduled is not None:
            _fill_visit(subj, visit, scheduled, visit.id)
    _fill_logs(subj)
    derive(study, record)
    _link_totals(subj)
    derive(study, record)
    return record


def _schedule(study: Study, day0: dt.date, rng: random.Random) -> dict[str, dt.date]:
    """A date inside each scheduled visit's window; screening 7-21 days before Day 0 where the window allows."""
    dates: dict[str, dt.date] = {}
    for visit in study.visits:
        days = schedule.day_window(visit)
        if days is None or visit.day is None:
            continue
        lo, hi = days
        if visit.kind == "screening":
            a, b = max(lo, -21), min(hi, -7)
            lo, hi = (a, b) if a <= b else (lo, hi)
        else:  # well inside the window, so that intervals between infusions stay comfortable
            lo, hi = visit.day - min(2, visit.window.before), visit.day + min(2, visit.window.after)
        dates[visit.id] = day0 + dt.timedelta(days=rng.randint(lo, hi))
    return dates


def _event_visit(study: Study) -> Optional[Visit]:
    """The repeating visit whose instances the study links to rows of the event log."""
    log = roles.log(study, "events")
    for visit in study.visits:
        if log is not None and visit.repeating and visit.link is not None and visit.link.log == log.id:
            return visit
    return None


# -- disability scores ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Scores:
    """The disability-score role: subsystem grades that give each score step (with the ambulation score 0),
    and the raw scores that give each converted grade."""

    score: str
    ambulation: str
    systems: tuple[str, ...]
    usually_impaired: tuple[str, ...]
    never_minimal: tuple[str, ...]
    grades: dict[float, tuple[int, ...]]
    raw_for_converted: dict[str, dict[str, list[int]]]

    @classmethod
    def of(cls, study: Study) -> Optional["_Scores"]:
        found = roles.of_study(study, "disability-score")
        if found is None or not found.item("score") or not found.tables.get("grades_for_score"):
            return None
        return cls(found.item("score") or "", found.item("ambulation") or "", found.item_list("systems"),
                   found.item_list("usually_impaired"), found.item_list("never_minimal"),
                   {float(k): tuple(v) for k, v in found.tables["grades_for_score"].items()},
                   found.tables.get("raw_for_converted", {}))

    @property
    def steps(self) -> list[float]:
        return sorted(self.grades)

    def profile(self, rng: random.Random, score: float) -> dict[str, Any]:
        """Subsystem scores that give this score step by the study's table (ambulation score 0)."""
        converted = {fs: 0 for fs in self.systems}
        impaired = rng.sample(self.usually_impaired, len(self.grades[score]))
        for fs, grade in zip(impaired, self.grades[score]):
            converted[fs] = grade
        for fs in rng.sample([f for f in self.systems if converted[f] == 0 and f not in self.never_minimal], rng.randint(0, 2)):
            converted[fs] = 1
        raw = {fs: rng.choice(self.raw_for_converted.get(fs, {}).get(str(g), (g,))) for fs, g in converted.items()}
        return {**raw, **({self.ambulation: 0} if self.ambulation else {}), self.score: score}


def _plan_events(subj: Subject, scores: Optional[_Scores]) -> list[Event]:
    """Usually none; sometimes one event between two dosing visits, now and then a second one later, each
    seen at its own visit 1-4 days after onset and worse than every score before it."""
    visit = _event_visit(subj.study)
    if subj.rng.random() >= EVENT_PROBABILITY or visit is None:
        return []
    on_study = sorted(d for d in subj.dates.values() if d > subj.day0)
    gaps = [(a, b) for a, b in zip(on_study, on_study[1:]) if (b - a).days >= 20]
    if not gaps:
        return []
    wanted = 2 if subj.rng.random() < SECOND_EVENT_PROBABILITY and len(gaps) >= 2 and visit.repeat_sheets >= 2 else 1
    chosen = sorted(subj.rng.sample(gaps, wanted))
    top = max(scores.grades) if scores else 0.0
    if scores and subj.score[scores.score] > top - 0.5 * wanted:  # leave room for each event to worsen the score
        subj.score = scores.profile(subj.rng, top - 0.5 * wanted)
    events: list[Event] = []
    worst = subj.score[scores.score] if scores else 0.0
    for number, (a, b) in enumerate(chosen, start=1):
        onset = a + dt.timedelta(days=subj.rng.randint(3, (b - a).days - 10))
        room = top - worst
        target = worst + (0.5 if room < 1.0 or number < wanted else subj.rng.choice((0.5, 1.0)))
        worst = target
        visit_date = onset + dt.timedelta(days=subj.rng.randint(1, 4))
        events.append(Event(number, onset, visit_date, scores.profile(subj.rng, target) if scores else {}))
    return events


def _unscheduled_days(subj: Subject, visit: Visit) -> list[dt.date]:
    """Now and then one visit off the schedule (a repeat laboratory test...), on a day between two scheduled visits."""
    if visit.link is not None or visit.repeat_sheets < 1 or subj.rng.random() >= UNSCHEDULED_PROBABILITY:
        return []
    on_study = sorted(d for d in subj.dates.values() if d > subj.day0)
    taken = {a.visit_date for a in subj.events} | {a.onset for a in subj.events}
    gaps = [(a, b) for a, b in zip(on_study, on_study[1:]) if (b - a).days >= 10]
    if not gaps:
        return []
    a, b = subj.rng.choice(gaps)
    day = a + dt.timedelta(days=subj.rng.randint(4, (b - a).days - 4))
    return [] if day in taken else [day]


# -- visits -------------------------------------------------------------------------------------------
def _fill_visit(subj: Subject, visit: Visit, day: dt.date, key: str, event: Optional[Event] = None) -> None:
    clock = Clock(subj.rng)
    forms = list(visit.forms)
    if visit.repeating and visit.link is None:  # an unscheduled visit: its own form and one or two assessments
        forms = forms[:1] + sorted(subj.rng.sample(forms[1:], min(len(forms) - 1, subj.rng.randint(1, 2))), key=visit.forms.index)
    for inst in forms:
        values = _link_visit_form(subj, visit, inst, day, clock, event)
        filled = fill_form(subj.study, inst.items, subj.rng, day, clock, values,
                           typical=subj.typical, typical_key=inst.form.id, source=inst.form.source)
        subj.record.visits.setdefault(key, {})[inst.name] = filled


def _link_visit_form(subj: Subject, visit: Visit, inst: FormInstance, day: dt.date, clock: Clock,
                     event: Optional[Event] = None) -> dict[str, Any]:
    """Values that must agree with the schedule, the dosing rule or other records (skipped when absent)."""
    study, rng, form = subj.study, subj.rng, inst.form
    pre: dict[str, Any] = {}
    weight_item = weight_item_of(study)
    after_dosing = any(roles.role(i.form, "dosing") for i in visit.forms[: visit.forms.index(inst)])
    if weight_item and form.has(weight_item):  # weighed before dosing, not after
        pre[weight_item] = None if after_dosing else _weight(subj, form.item(weight_item), day)
    consent = roles.items(roles.role(form, "consent"), form, "date")
    if consent:  # consent: before any procedure
        pre[consent[0]] = iso(subj.consent)
    birth = roles.items(roles.role(form, "demographics"), form, "birth_date")
    if birth:  # an adult at consent
        pre[birth[0]] = iso(subj.consent - dt.timedelta(days=rng.randint(19 * 365, 62 * 365)))
    history = roles.role(form, "disease-history")
    dates = roles.items(history, form, "onset", "diagnosis")
    if dates:  # disease history: onset <= diagnosis <= consent
        onset = subj.consent - dt.timedelta(days=rng.randint(800, 3000))
        diagnosis = onset + dt.timedelta(days=rng.randint(20, 300))
        pre.update({dates[0]: onset.isoformat()[:7], dates[1]: diagnosis.isoformat()[:7]})
        test = roles.items(history, form, "test_date")
        if test:
            pre[test[0]] = iso(diagnosis.replace(day=1) + dt.timedelta(days=rng.randint(0, 20)))
        subj.typical["_onset"] = onset
    pregnancy = roles.role(form, "pregnancy-test")
    test_items = roles.items(pregnancy, form, "performed", "date")
    if pregnancy and test_items:  # pregnancy test: women of childbearing potential only
        performed, date = test_items
        if subj.wocbp:
            before = rng.randint(0, 2) if visit.infusion else 0
            pre.update({performed: pregnancy.code("performed"), date: iso(day - dt.timedelta(days=before))})
        elif pregnancy.code("not_applicable") in item_codes(form.item(performed)):
            pre[performed] = pregnancy.code("not_applicable")
    if roles.role(form, "disability-score"):
        pre.update({k: v for k, v in (event.profile if event else subj.score).items() if form.has(k)})
    if event and visit.link is not None and inst.name == visit.link.form:
        pre[visit.link.item] = event.number
        onset_item = roles.items(roles.role(form, "event-visit"), form, "onset")
        if onset_item:
            pre[onset_item[0]] = iso(event.onset)
    dosing = roles.role(form, "dosing")
    if visit.infusion and dosing:
        pre.update(_dosing(subj, form, dosing, day, clock, pre_weight=_same_visit_weight(subj, visit, weight_item)))
    end = roles.items(roles.role(form, "end-of-study"), form, "event_count", "final_score")
    if end:  # end of study: the investigator's own event count
        scores = _Scores.of(study)
        pre[end[0]] = len(subj.events)
        pre[end[1]] = subj.score.get(scores.score) if scores else None
    return pre


def weight_item_of(study: Study) -> str:
    """The dosing weight's item id (study.json dosing.weight_source FORM.ITEM)."""
    return ((study.dosing.weight_source if study.dosing else None) or "").rpartition(".")[2]


def _weight(subj: Subject, item: Item, day: dt.date) -> float:
    base = subj.typical.get("_weight")
    if base is None:
        base = pick(subj.study, item, subj.rng, day, None) if schema_node(subj.study, item).get("examples") else None
        if base is None:
            lo, hi = typical_range(item)
            base = subj.rng.uniform(lo + (hi - lo) * 0.2, hi - (hi - lo) * 0.2)
        subj.typical["_weight"] = base
    return as_number(item, base * (1 + subj.rng.uniform(-WEIGHT_JITTER, WEIGHT_JITTER)))


def _same_visit_weight(subj: Subject, visit: Visit, weight_item: str) -> Optional[float]:
    source = (subj.study.dosing.weight_source if subj.study.dosing else None) or ""
    form_name = source.rpartition(".")[0]
    return subj.record.value(visit.id, form_name, weight_item) if form_name else None


def _dosing(subj: Subject, form: Form, dosing_role: FormRole, day: dt.date, clock: Clock, pre_weight: Optional[float]) -> dict[str, Any]:
    """The infusion: dose = mg/kg x the same-visit weight, vials covering it, about an hour long."""
    dosing, rng = subj.study.dosing, subj.rng
    out: dict[str, Any] = {}
    start = clock.minutes + rng.randint(10, 25)
    end = start + rng.randint(60, 75)
    clock.minutes = end
    times = {dosing_role.item("start_date"): iso(day), dosing_role.item("end_date"): iso(day),
             dosing_role.item("start_time"): Clock.text(start), dosing_role.item("end_time"): Clock.text(end)}
    out.update({k: v for k, v in times.items() if k and form.has(k)})
    if pre_weight is not None and dosing is not None:
        dose = round(dosing.dose_mg_per_kg * pre_weight)
        weight, dose_item = dosing_role.item("weight"), dosing_role.item("dose")
        if weight and form.has(weight):
            out[weight] = pre_weight
        if dose_item and form.has(dose_item):
            out[dose_item] = dose
        out.update({k: v for k, v in vial_items(dosing_role, vial_counts(dosing.vial_sizes_mg, dose)).items() if form.has(k)})
    checked = dosing_role.item("pregnancy_checked")
    if checked and form.has(checked):
        out[checked] = dosing_role.code("pregnancy_checked" if subj.wocbp else "pregnancy_not_applicable")
    return out


def vial_counts(sizes: Sequence[float], dose: float) -> dict[float, int]:
    """Vials covering the dose with the least waste, then the fewest vials: {120: 2, 400: 1}."""
    if not sizes or dose <= 0:
        return {}
    ranges = [range(0, math.ceil(dose / s) + 1) for s in sizes]
    best = min((c for c in itertools.product(*ranges) if sum(n * s for n, s in zip(c, sizes)) >= dose),
               key=lambda c: (sum(n * s for n, s in zip(c, sizes)), sum(c)))
    return dict(zip(sizes, best))


def vial_items(dosing_role: FormRole, counts: dict[float, int]) -> dict[str, int]:
    """Vial counts by the dosing form's item for each vial size (its role's `vials` table: vial size -> item id)."""
    names = dosing_role.tables.get("vials", {})
    return {names[key]: n for size, n in counts.items() if (key := f"{size:g}") in names}


# -- logs ---------------------------------------------------------------------------------------------
def _fill_logs(subj: Subject) -> None:
    study, rng, record = subj.study, subj.rng, subj.record
    screening = min(subj.dates.values()) if subj.dates else subj.day0
    events = roles.log(study, "events")
    for log in study.logs:
        form = log.form
        examples = form_examples(study, form.source)
        rows: list[dict[str, Any]] = []
        if roles.role(form, "prior-events"):  # prior events qualifying for inclusion: one in 12 months, maybe more in 24
            days = sorted({rng.randint(30, 330)} | {rng.randint(60, 700) for _ in range(rng.randint(0, 2))}, reverse=True)
            for back in days[: log.rows]:
                rows.append(fill_form(study, form.items, rng, screening - dt.timedelta(days=back), None))
        elif events is not None and log.id == events.id:
            rows.extend(_event_row(subj, form, event) for event in subj.events)
        elif examples:
            rows = _example_rows(subj, form, examples, screening)
        for n, row in enumerate(rows, start=1):
            for it in form.items:  # CDASH --SPID: the row's sponsor-defined number
                if it.id.endswith("SPID") and it.is_input and it.value_type == "integer":
                    row[it.id] = n
        record.logs[log.id] = rows[: log.rows]
    for event in subj.events:
        _rescue_medication(subj, event)


def _example_rows(subj: Subject, form: Form, examples: list[dict[str, Any]], screening: dt.date) -> list[dict[str, Any]]:
    """A few rows built from the form's coherent examples; event-linked categories are left to the links."""
    rng, study = subj.rng, subj.study
    medications = roles.of_study(study, "medications")
    category = medications.item("category") if medications else None
    linked = roles.table(medications, "linked_categories") or ()
    usable = [e for e in examples if not category or e.get(category) not in linked]
    rows = []
    for example in rng.sample(usable, rng.randint(1, min(3, len(usable)))):
        adverse = roles.role(form, "adverse-events")
        medication = roles.role(form, "medications")
        history = roles.role(form, "medical-history")
        if adverse and roles.items(adverse, form, "start"):  # adverse event on study, resolved within days
            start = subj.day0 + dt.timedelta(days=rng.randint(2, max(3, (subj.end - subj.day0).days - 20)))
            time = f"{rng.randint(7, 21):02d}:{rng.choice((0, 20, 40)):02d}"
            row = fill_form(study, form.items, rng, start, None, {adverse.item("start_time") or "": time}, example)
            end = roles.items(adverse, form, "ongoing", "end")
            if end and row.get(end[0]) == adverse.code("not_ongoing"):
                row[end[1]] = iso(start + dt.timedelta(days=rng.randint(1, 10)))
        elif medication and roles.items(medication, form, "name"):  # chronic ones started before consent; prior therapy stopped before it
            start = subj.consent - dt.timedelta(days=rng.randint(200, 2000))
            row = fill_form(study, form.items, rng, start, None, None, example)
            end = roles.items(medication, form, "ongoing", "end")
            if end and row.get(end[0]) == medication.code("not_ongoing"):
                row[end[1]] = iso(subj.consent - dt.timedelta(days=rng.randint(30, 150)))
        elif history and roles.items(history, form, "term"):  # history: years before screening, partial dates
            start = screening - dt.timedelta(days=rng.randint(400, 5000))
            row = fill_form(study, form.items, rng, start, None, None, example)
            began = roles.items(history, form, "start")
            if began:
                row[began[0]] = start.isoformat()[:7]
            ended = history.item("end")
            if ended and ended in row:
                row[ended] = (start + dt.timedelta(days=rng.randint(40, 300))).isoformat()[:7]
        else:
            row = fill_form(study, form.items, rng, subj.day0 + dt.timedelta(days=rng.randint(1, 300)), None, None, example)
        rows.append(row)
    return rows


def _event_row(subj: Subject, form: Form, event: Event) -> dict[str, Any]:
    found = roles.role(form, "events")
    scores = _Scores.of(subj.study)
    end = iso(event.onset + dt.timedelta(days=subj.rng.randint(14, 30)))
    pre = {found.item("number"): event.number, found.item("onset"): iso(event.onset), found.item("end"): end,
           found.item("score"): event.profile.get(scores.score) if scores else None} if found else {}
    return fill_form(subj.study, form.items, subj.rng, event.onset, None, {k: v for k, v in pre.items() if k and form.has(k)})


def _rescue_medication(subj: Subject, event: Event) -> None:
    """The event's rescue therapy in the medication log, linked by event number."""
    study = subj.study
    for log in study.logs:
        medications = roles.role(log.form, "medications")
        linked = roles.items(medications, log.form, "event_number", "name")
        if medications is None or not linked:
            continue
        category = medications.item("category")
        rescue = [e for e in form_examples(study, log.form.source) if category and e.get(category) == medications.code("rescue")]
        if not rescue:
            return
        start = event.onset + dt.timedelta(days=1)
        pre = {medications.item("start"): iso(start), medications.item("end"): iso(start + dt.timedelta(days=4)),
               medications.item("ongoing"): medications.code("not_ongoing"), linked[0]: event.number}
        row = fill_form(study, log.form.items, subj.rng, start, None, {k: v for k, v in pre.items() if k}, subj.rng.choice(rescue))
        subj.record.logs.setdefault(log.id, []).append(row)


def _link_totals(subj: Subject) -> None:
    """Investigator-entered totals equal what the logs give (the event count = its derived twin)."""
    found = roles.of_study(subj.study, "end-of-study")
    count, derived = (found.item("event_count"), found.item("event_count_derived")) if found else (None, None)
    if not count or not derived:
        return
    for forms in subj.record.visits.values():
        for values in forms.values():
            if count in values and derived in values:
                values[count] = values[derived]


# -- derived items --------------------------------------------------------------------------------------
def derive(study: Study, record: SubjectRecord) -> None:
    """Set every derived item from the study's own derivations (crf.rules); others stay blank."""
    from ..rules import RuleSet  # the derivations live with the rules: one implementation

    ruleset = RuleSet.shared(study)
    # recomputed from scratch: a plant may have blanked an input a derived item used
    for key, visit in study.visit_keys(record.visits):
        for inst in visit.forms:
            values = record.visits[key].get(inst.name)
            if values is None:
                continue
            for item in inst.items:
                if item.derived:
                    values.pop(item.id, None)
    for log in study.logs:
        for row in record.logs.get(log.id, []):
            for item in log.form.items:
                if item.derived:
                    row.pop(item.id, None)
    for path, value in ruleset.derived_values(record, today=FIRST_DAY0 + dt.timedelta(days=3650)).items():
        parts = path.strip("/").split("/")
        if parts[0] == "visits":
            of_key = study.visit_of(parts[1])
            assert of_key is not None  # derived_values gives paths of the record's own visits
            item = of_key.form(parts[2]).form.item(parts[3])
            target = record.visits[parts[1]][parts[2]]
        else:
            item = study.log(parts[1]).form.item(parts[3])
            target = record.logs[parts[1]][int(parts[2])]
        if item.is_number or (item.codelist and item.value_type != "string"):
            if isinstance(value, (int, float)):
                target[item.id] = as_number(item, value)
        elif item.codelist is None or value in item.codelist.values:
            target[item.id] = value
