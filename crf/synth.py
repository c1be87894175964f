"""Synthetic subjects for tests and demos: complete, realistic, internally consistent, deterministic.

Typical values come from the study definition, not from Python: for every item the generator takes
the schema's `default`, else one of its `examples`, else a value inside its soft limits (and
reference range), else a code of its code list. A form may carry object `examples`: coherent partial
rows (an AE term with its relationship, a medicine with its dose and route) used for log rows.
Python adds only what JSON Schema cannot say: dates from the schedule, the dose from the weight
(`study.dosing`), the EDSS from its functional scores, and records that must agree (attack log,
attack visit, rescue medication, attack count). Each of those links looks its items up in the model
and is skipped when the study lacks them, so any study folder generates.

`PLANTS` holds named problems; `plant()` applies one to a clean record and describes it.
"""
from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Optional, Sequence

from . import expressions, schedule
from .model import FormInstance, Item, ItemKind, Limits, Study, Visit
from .subject import SubjectRecord

FIRST_DAY0 = dt.date(2023, 1, 9)  # Day 0 of generated subjects falls in the 18 months after this date
ATTACK_PROBABILITY = 0.3
SECOND_ATTACK_PROBABILITY = 0.4  # of a subject with an attack
UNSCHEDULED_PROBABILITY = 0.25
WEIGHT_JITTER = 0.01  # the dosing weight varies by at most +/-1% around the subject's weight (< 3% drift)
VALUE_JITTER = 0.04  # other repeated measurements vary by +/-4% of their typical range around the subject's own value
FALLBACK_TEXT = "See source documents"

# The Neurostatus functional systems as CDASH-style item ids of the EDSS form, and the conversions of
# the visual and bowel/bladder scores (Kurtzke): raw scores that give each converted grade.
FS_ITEMS = ("FSVIS", "FSBS", "FSPYR", "FSCRB", "FSSEN", "FSBB", "FSCBR")
RAW_FOR_CONVERTED = {"FSVIS": {0: (0,), 1: (1,), 2: (2, 3), 3: (4, 5), 4: (6,)},
                     "FSBB": {0: (0,), 1: (1,), 2: (2,), 3: (3, 4), 4: (5,), 5: (6,)}}
# For an ambulatory subject (ambulation score 0), the FS grades that give each EDSS step.
EDSS_GRADES = {2.0: (2,), 2.5: (2, 2), 3.0: (3,), 3.5: (3, 2), 4.0: (4,)}
NMOSD_FS = ("FSVIS", "FSPYR", "FSSEN", "FSBB")  # the systems NMOSD attacks usually leave impaired


# -- reading the study definition ---------------------------------------------------------------
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


def find_instance(visit: Visit, *item_ids: str) -> Optional[FormInstance]:
    """The first form instance of the visit holding all these items."""
    for inst in visit.forms:
        if all(inst.form.has(i) for i in item_ids):
            return inst
    return None


def iso(day: dt.date) -> str:
    return day.isoformat()


# -- the generator ----------------------------------------------------------------------------------
class _Clock:
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


@dataclass
class _Attack:
    number: int
    onset: dt.date
    visit_date: dt.date
    profile: dict[str, Any]


@dataclass
class _Subject:
    study: Study
    rng: random.Random
    record: SubjectRecord
    day0: dt.date
    dates: dict[str, dt.date]  # scheduled visit id -> date
    consent: dt.date
    typical: dict[str, Any] = field(default_factory=dict)  # the subject's own value of a repeated item
    edss: dict[str, Any] = field(default_factory=dict)
    attacks: list[_Attack] = field(default_factory=list)  # in onset order, numbered from 1

    @property
    def wocbp(self) -> bool:
        return any(form.get("CHILDPOT") == "Y" for visit in self.record.visits.values() for form in visit.values())

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
    subj = _Subject(study, rng, record, day0, dates, consent=first - dt.timedelta(days=rng.randint(0, 3)))
    subj.edss = _edss_profile(rng, rng.choice(sorted(EDSS_GRADES)))
    subj.attacks = _plan_attacks(subj)
    for visit in study.visits:
        if visit.repeating:  # an attack visit per attack; now and then an unscheduled visit
            attack_visit = visit is _attack_visit(study)
            days = [a.visit_date for a in subj.attacks] if attack_visit else _unscheduled_days(subj, visit)
            for n, day in enumerate(days, start=1):
                _fill_visit(subj, visit, day, visit.key(n), subj.attacks[n - 1] if attack_visit else None)
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


def _attack_log(study: Study) -> Optional[str]:
    for log in study.logs:
        if log.form.has("CESTDAT") and log.form.has("INVCONF"):
            return log.id
    return None


def _attack_visit(study: Study) -> Optional[Visit]:
    """The repeating visit whose instances the study links to rows of the attack log."""
    log = _attack_log(study)
    for visit in study.visits:
        if visit.repeating and visit.link is not None and visit.link.log == log:
            return visit
    return None


def _plan_attacks(subj: _Subject) -> list[_Attack]:
    """Usually none; sometimes one attack between two dosing visits, now and then a second one later, each
    seen at its own attack visit 1-4 days after onset and worse than every EDSS before it."""
    visit = _attack_visit(subj.study)
    if subj.rng.random() >= ATTACK_PROBABILITY or visit is None or not _attack_log(subj.study):
        return []
    on_study = sorted(d for d in subj.dates.values() if d > subj.day0)
    gaps = [(a, b) for a, b in zip(on_study, on_study[1:]) if (b - a).days >= 20]
    if not gaps:
        return []
    wanted = 2 if subj.rng.random() < SECOND_ATTACK_PROBABILITY and len(gaps) >= 2 and visit.repeat_sheets >= 2 else 1
    chosen = sorted(subj.rng.sample(gaps, wanted))
    top = max(EDSS_GRADES)
    if subj.edss["EDSS"] > top - 0.5 * wanted:  # leave room for each attack to worsen the EDSS
        subj.edss = _edss_profile(subj.rng, top - 0.5 * wanted)
    attacks: list[_Attack] = []
    worst = subj.edss["EDSS"]
    for number, (a, b) in enumerate(chosen, start=1):
        onset = a + dt.timedelta(days=subj.rng.randint(3, (b - a).days - 10))
        room = top - worst
        target = worst + (0.5 if room < 1.0 or number < wanted else subj.rng.choice((0.5, 1.0)))
        worst = target
        attacks.append(_Attack(number, onset, onset + dt.timedelta(days=subj.rng.randint(1, 4)), _edss_profile(subj.rng, target)))
    return attacks


def _unscheduled_days(subj: _Subject, visit: Visit) -> list[dt.date]:
    """Now and then one visit off the schedule (a repeat laboratory test...), on a day between two scheduled visits."""
    if visit.link is not None or visit.repeat_sheets < 1 or subj.rng.random() >= UNSCHEDULED_PROBABILITY:
        return []
    on_study = sorted(d for d in subj.dates.values() if d > subj.day0)
    taken = {a.visit_date for a in subj.attacks} | {a.onset for a in subj.attacks}
    gaps = [(a, b) for a, b in zip(on_study, on_study[1:]) if (b - a).days >= 10]
    if not gaps:
        return []
    a, b = subj.rng.choice(gaps)
    day = a + dt.timedelta(days=subj.rng.randint(4, (b - a).days - 4))
    return [] if day in taken else [day]


def _edss_profile(rng: random.Random, edss: float) -> dict[str, Any]:
    """FS scores that give this EDSS step by the Kurtzke/Neurostatus rules (ambulation score 0)."""
    converted = {fs: 0 for fs in FS_ITEMS}
    impaired = rng.sample(NMOSD_FS, len(EDSS_GRADES[edss]))
    for fs, grade in zip(impaired, EDSS_GRADES[edss]):
        converted[fs] = grade
    for fs in rng.sample([f for f in FS_ITEMS if converted[f] == 0 and f != "FSCBR"], rng.randint(0, 2)):
        converted[fs] = 1
    raw = {fs: rng.choice(RAW_FOR_CONVERTED.get(fs, {}).get(g, (g,))) for fs, g in converted.items()}
    return {**raw, "AMBSC": 0, "EDSS": edss}


# -- visits -------------------------------------------------------------------------------------------
def _fill_visit(subj: _Subject, visit: Visit, day: dt.date, key: str, attack: Optional[_Attack] = None) -> None:
    clock = _Clock(subj.rng)
    forms = list(visit.forms)
    if visit.repeating and visit.link is None:  # an unscheduled visit: its own form and one or two assessments
        forms = forms[:1] + sorted(subj.rng.sample(forms[1:], min(len(forms) - 1, subj.rng.randint(1, 2))), key=visit.forms.index)
    for inst in forms:
        values = _link_visit_form(subj, visit, inst, day, clock, attack)
        filled = fill_form(subj.study, inst.items, subj.rng, day, clock, values,
                           typical=subj.typical, typical_key=inst.form.id, source=inst.form.source)
        subj.record.visits.setdefault(key, {})[inst.name] = filled


def _link_visit_form(subj: _Subject, visit: Visit, inst: FormInstance, day: dt.date, clock: _Clock,
                     attack: Optional[_Attack] = None) -> dict[str, Any]:
    """Values that must agree with the schedule, the dosing rule or other records (skipped when absent)."""
    study, rng, form = subj.study, subj.rng, inst.form
    pre: dict[str, Any] = {}
    weight_item = _weight_item(study)
    after_dosing = any(i.form.domain == "EX" for i in visit.forms[: visit.forms.index(inst)])
    if weight_item and form.has(weight_item):  # weighed before dosing, not after
        pre[weight_item] = None if after_dosing else _weight(subj, form.item(weight_item), day)
    if form.has("ICVER") and form.has("DSSTDAT"):  # consent: before any procedure
        pre["DSSTDAT"] = iso(subj.consent)
    if form.has("BRTHDAT"):  # an adult at consent
        pre["BRTHDAT"] = iso(subj.consent - dt.timedelta(days=rng.randint(19 * 365, 62 * 365)))
    if form.has("DXDAT") and form.has("MHSTDAT"):  # NMOSD history: onset <= diagnosis <= consent
        onset = subj.consent - dt.timedelta(days=rng.randint(800, 3000))
        diagnosis = onset + dt.timedelta(days=rng.randint(20, 300))
        pre.update(MHSTDAT=onset.isoformat()[:7], DXDAT=diagnosis.isoformat()[:7])
        if form.has("AQP4DAT"):
            pre["AQP4DAT"] = iso(diagnosis.replace(day=1) + dt.timedelta(days=rng.randint(0, 20)))
        subj.typical["_onset"] = onset
    if form.has("HCG") and form.has("LBPERF"):  # pregnancy test: women of childbearing potential only
        if subj.wocbp:
            before = rng.randint(0, 2) if visit.infusion else 0
            pre.update(LBPERF="Y", LBDAT=iso(day - dt.timedelta(days=before)))
        elif item_codes(form.item("LBPERF")) and "NA" in item_codes(form.item("LBPERF")):
            pre["LBPERF"] = "NA"
    if form.has("EDSS") and all(form.has(fs) for fs in FS_ITEMS):
        pre.update({k: v for k, v in (attack.profile if attack else subj.edss).items() if form.has(k)})
    if attack and visit.link is not None and inst.name == visit.link.form:
        pre[visit.link.item] = attack.number
        if form.has("CESTDAT"):
            pre["CESTDAT"] = iso(attack.onset)
    if visit.infusion and form.domain == "EX":
        pre.update(_dosing(subj, form, day, clock, pre_weight=_same_visit_weight(subj, visit, weight_item)))
    if form.has("NATT") and form.has("FINEDSS"):  # end of study: the investigator's own attack count
        pre["NATT"] = len(subj.attacks)
        pre["FINEDSS"] = subj.edss["EDSS"]
    return pre


def _weight(subj: _Subject, item: Item, day: dt.date) -> float:
    base = subj.typical.get("_weight")
    if base is None:
        base = _pick(subj.study, item, subj.rng, day, None) if schema_node(subj.study, item).get("examples") else None
        if base is None:
            lo, hi = typical_range(item)
            base = subj.rng.uniform(lo + (hi - lo) * 0.2, hi - (hi - lo) * 0.2)
        subj.typical["_weight"] = base
    return as_number(item, base * (1 + subj.rng.uniform(-WEIGHT_JITTER, WEIGHT_JITTER)))


def _same_visit_weight(subj: _Subject, visit: Visit, weight_item: str) -> Optional[float]:
    source = (subj.study.dosing.weight_source if subj.study.dosing else None) or ""
    form_name = source.rpartition(".")[0]
    return subj.record.value(visit.id, form_name, weight_item) if form_name else None


def _dosing(subj: _Subject, form: Any, day: dt.date, clock: _Clock, pre_weight: Optional[float]) -> dict[str, Any]:
    """The infusion: dose = mg/kg x the same-visit weight, vials covering it, about an hour long."""
    dosing, rng = subj.study.dosing, subj.rng
    out: dict[str, Any] = {}
    start = clock.minutes + rng.randint(10, 25)
    end = start + rng.randint(60, 75)
    clock.minutes = end
    times = {"EXSTDAT": iso(day), "EXENDAT": iso(day), "EXSTTIM": _Clock.text(start), "EXENTIM": _Clock.text(end)}
    out.update({k: v for k, v in times.items() if form.has(k)})
    if pre_weight is not None and dosing is not None:
        dose = round(dosing.dose_mg_per_kg * pre_weight)
        if form.has("EXWT"):
            out["EXWT"] = pre_weight
        if form.has("EXDOSE"):
            out["EXDOSE"] = dose
        out.update({k: v for k, v in vial_counts(dosing.vial_sizes_mg, dose).items() if form.has(k)})
    if form.has("PREPREG"):
        out["PREPREG"] = "Y" if subj.wocbp else "NA"
    return out


def vial_counts(sizes: Sequence[float], dose: float) -> dict[str, int]:
    """Vials covering the dose with the least waste, then the fewest vials: {"N120": 2, "N400": 1}."""
    if not sizes or dose <= 0:
        return {}
    ranges = [range(0, math.ceil(dose / s) + 1) for s in sizes]
    best = min((c for c in itertools.product(*ranges) if sum(n * s for n, s in zip(c, sizes)) >= dose),
               key=lambda c: (sum(n * s for n, s in zip(c, sizes)), sum(c)))
    return {f"N{int(s) if float(s).is_integer() else s}": n for s, n in zip(sizes, best)}


def item_codes(item: Item) -> tuple[Any, ...]:
    return item.codelist.values if item.codelist else ()


# -- generic filling ----------------------------------------------------------------------------------
def fill_form(study: Study, items: Sequence[Item], rng: random.Random, day: dt.date, clock: Optional[_Clock],
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
            value = _pick(study, it, rng, day, clock, example, typical, typical_key)
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


def _pick(study: Study, item: Item, rng: random.Random, day: dt.date, clock: Optional[_Clock],
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


# -- logs ---------------------------------------------------------------------------------------------
def _fill_logs(subj: _Subject) -> None:
    study, rng, record = subj.study, subj.rng, subj.record
    screening = min(subj.dates.values()) if subj.dates else subj.day0
    for log in study.logs:
        form = log.form
        examples = form_examples(study, form.source)
        rows: list[dict[str, Any]] = []
        if form.has("PASTDAT"):  # prior attacks qualifying for inclusion: one in 12 months, maybe more in 24
            days = sorted({rng.randint(30, 330)} | {rng.randint(60, 700) for _ in range(rng.randint(0, 2))}, reverse=True)
            for back in days[: log.rows]:
                rows.append(fill_form(study, form.items, rng, screening - dt.timedelta(days=back), None))
        elif log.id == _attack_log(study):
            rows.extend(_attack_row(subj, form, attack) for attack in subj.attacks)
        elif examples:
            rows = _example_rows(subj, log.id, form, examples, screening)
        for n, row in enumerate(rows, start=1):
            for it in form.items:  # CDASH --SPID: the row's sponsor-defined number
                if it.id.endswith("SPID") and it.is_input and it.value_type == "integer":
                    row[it.id] = n
        record.logs[log.id] = rows[: log.rows]
    for attack in subj.attacks:
        _rescue_medication(subj, attack)


def _example_rows(subj: _Subject, log_id: str, form: Any, examples: list[dict[str, Any]], screening: dt.date) -> list[dict[str, Any]]:
    """A few rows built from the form's coherent examples; event-linked categories are left to the links."""
    rng, study = subj.rng, subj.study
    usable = [e for e in examples if e.get("CMCAT") not in ("RESCUE", "PREMEDICATION", "VACCINE")]
    rows = []
    for example in rng.sample(usable, rng.randint(1, min(3, len(usable)))):
        if form.has("AESTDAT"):  # adverse event on study, resolved within days
            start = subj.day0 + dt.timedelta(days=rng.randint(2, max(3, (subj.end - subj.day0).days - 20)))
            row = fill_form(study, form.items, rng, start, None, {"AESTTIM": f"{rng.randint(7, 21):02d}:{rng.choice((0, 20, 40)):02d}"}, example)
            if row.get("AEONGO") == "N" and form.has("AEENDAT"):
                row["AEENDAT"] = iso(start + dt.timedelta(days=rng.randint(1, 10)))
        elif form.has("CMTRT"):  # medication: chronic ones started before consent; prior therapy stopped before it
            start = subj.consent - dt.timedelta(days=rng.randint(200, 2000))
            row = fill_form(study, form.items, rng, start, None, None, example)
            if row.get("CMONGO") == "N" and form.has("CMENDAT"):
                row["CMENDAT"] = iso(subj.consent - dt.timedelta(days=rng.randint(30, 150)))
        elif form.has("MHTERM"):  # history: years before screening, partial dates
            start = screening - dt.timedelta(days=rng.randint(400, 5000))
            row = fill_form(study, form.items, rng, start, None, None, example)
            if form.has("MHSTDAT"):
                row["MHSTDAT"] = start.isoformat()[:7]
            if "MHENDAT" in row:
                row["MHENDAT"] = (start + dt.timedelta(days=rng.randint(40, 300))).isoformat()[:7]
        else:
            row = fill_form(study, form.items, rng, subj.day0 + dt.timedelta(days=rng.randint(1, 300)), None, None, example)
        rows.append(row)
    return rows


def _attack_row(subj: _Subject, form: Any, attack: _Attack) -> dict[str, Any]:
    pre = {"CESPID": attack.number, "CESTDAT": iso(attack.onset),
           "CEENDAT": iso(attack.onset + dt.timedelta(days=subj.rng.randint(14, 30))), "ATTEDSS": attack.profile["EDSS"]}
    return fill_form(subj.study, form.items, subj.rng, attack.onset, None, {k: v for k, v in pre.items() if form.has(k)})


def _rescue_medication(subj: _Subject, attack: _Attack) -> None:
    """The attack's rescue therapy in the medication log, linked by attack number."""
    study = subj.study
    for log in study.logs:
        if not (log.form.has("CMATTNO") and log.form.has("CMTRT")):
            continue
        rescue = [e for e in form_examples(study, log.form.source) if e.get("CMCAT") == "RESCUE"]
        if not rescue:
            return
        start = attack.onset + dt.timedelta(days=1)
        pre = {"CMSTDAT": iso(start), "CMENDAT": iso(start + dt.timedelta(days=4)), "CMONGO": "N", "CMATTNO": attack.number}
        row = fill_form(study, log.form.items, subj.rng, start, None, pre, subj.rng.choice(rescue))
        subj.record.logs.setdefault(log.id, []).append(row)


def _link_totals(subj: _Subject) -> None:
    """Investigator-entered totals equal what the logs give (NATT = derived NATTD)."""
    for forms in subj.record.visits.values():
        for values in forms.values():
            if "NATT" in values and "NATTD" in values:
                values["NATT"] = values["NATTD"]


# -- derived items --------------------------------------------------------------------------------------
def derive(study: Study, record: SubjectRecord) -> None:
    """Set every derived item from the study's own derivations (crf.rules); others stay blank."""
    from .rules import RuleSet  # the derivations live with the rules: one implementation

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


# -- planted problems -----------------------------------------------------------------------------------
class PlantNotApplicable(ValueError):
    """This record has nothing the plant could change (no AE log, no woman of childbearing potential...)."""


PlantFn = Callable[[Study, SubjectRecord, random.Random], str]


@dataclass(frozen=True)
class Plant:
    apply: PlantFn
    needs: Callable[[Study, SubjectRecord], bool] = lambda study, record: True
    help: str = ""


PLANTS: dict[str, Plant] = {}


def plant_kind(name: str, needs: Optional[Callable[[Study, SubjectRecord], bool]] = None) -> Callable[[PlantFn], PlantFn]:
    """Register a plant: `@plant_kind("my-kind")` over `def f(study, record, rng) -> str`."""
    def register(fn: PlantFn) -> PlantFn:
        PLANTS[name] = Plant(fn, needs or (lambda study, record: True), (fn.__doc__ or "").strip())
        return fn
    return register


def plant(study: Study, record: SubjectRecord, kind: str, rng: random.Random) -> str:
    """Change `record` in place to hold exactly one problem of this kind; return its description."""
    if kind not in PLANTS:
        raise ValueError(f"unknown plant kind {kind!r}; known kinds: {', '.join(sorted(PLANTS))}")
    chosen = PLANTS[kind]
    if not chosen.needs(study, record):
        raise PlantNotApplicable(f"plant {kind!r} does not apply to subject {record.subject}")
    description = chosen.apply(study, record, rng)
    derive(study, record)
    return description


def _fields(study: Study, record: SubjectRecord, visits: Optional[Callable[[Visit], bool]] = None) -> Iterator[tuple[str, FormInstance, Item]]:
    """(visit key, form instance, item) of every filled input item of the record's visits, in schedule order."""
    for key, visit in study.visit_keys(record.visits):
        if visits and not visits(visit):
            continue
        for inst in visit.forms:
            values = record.visits[key].get(inst.name, {})
            for it in inst.items:
                if it.is_input and it.id in values:
                    yield key, inst, it


def _no_dosing(visit: Visit) -> bool:
    """Visits without an infusion: a changed value there has no dosing consequence."""
    return not visit.infusion


def _dosing_forms(study: Study, record: SubjectRecord) -> list[tuple[Visit, dict[str, Any]]]:
    out = []
    for visit in study.visits:
        for inst in visit.forms:
            values = record.visits.get(visit.id, {}).get(inst.name)
            if visit.infusion and inst.form.domain == "EX" and values and values.get("EXYN") == "Y":
                out.append((visit, values))
    return out


def _weight_item(study: Study) -> str:
    return ((study.dosing.weight_source if study.dosing else None) or "").rpartition(".")[2]


def _path(visit: str, form: str, item: str) -> str:
    return f"/visits/{visit}/{form}/{item}"


@plant_kind("missing-required", needs=lambda s, r: any(it.required for _, _, it in _fields(s, r)))
def _missing_required(study: Study, record: SubjectRecord, rng: random.Random) -> str:
    """Blank one always-required item."""
    key, inst, it = rng.choice([f for f in _fields(study, record) if f[2].required])
    value = record.visits[key][inst.name].pop(it.id)
    return f"{_path(key, inst.name, it.id)} blanked (was {value!r}); it is required"


def _read_by_derived(inst: FormInstance) -> set[str]:
    return {ref.rpartition(".")[2] for it in inst.items if it.derived for ref in expressions.parse(it.derived).references()}


def _numeric_fields(study: Study, record: SubjectRecord, soft: bool) -> list[tuple[str, FormInstance, Item]]:
    """Numbers a plant can change without knock-on effects: no infusion at the visit, not the dosing
    weight, not read by a derived item; failing that, any number with the limit."""
    weight = _weight_item(study)

    def limited(it: Item) -> bool:
        return it.is_number and not it.codelist and bool(it.soft if soft else it.hard.high is not None)
    found = [f for f in _fields(study, record, _no_dosing)
             if limited(f[2]) and f[2].id != weight and f[2].id not in _read_by_derived(f[1])]
    return found or [f for f in _fields(study, record) if limited(f[2])]


@plant_kind("out-of-range", needs=lambda s, r: bool(_numeric_fields(s, r, soft=False)))
def _out_of_range(study: Study, record: SubjectRecord, rng: random.Random) -> str:
    """A number above its hard (impossible) limit."""
    key, inst, it = rng.choice(_numeric_fields(study, record, soft=False))
    high = it.hard.high
    assert high is not None
    value = as_number(it, high * 1.2 + 1)
    record.visits[key][inst.name][it.id] = value
    return f"{_path(key, inst.name, it.id)} = {value}, above the hard limit {it.hard.describe()}"


@plant_kind("soft-limit", needs=lambda s, r: bool(_numeric_fields(s, r, soft=True)))
def _soft_limit(study: Study, record: SubjectRecord, rng: random.Random) -> str:
    """A number outside its soft limits (implausible) but inside the hard ones."""
    key, inst, it = rng.choice(_numeric_fields(study, record, soft=True))
    soft = it.soft
    assert soft is not None
    step = 10 ** -it.decimals if it.decimals else 1
    if soft.high is not None:
        value = soft.high + max(step, abs(soft.high) * 0.05)
    else:
        assert soft.low is not None  # a soft limit has at least one end
        value = soft.low - max(step, abs(soft.low) * 0.05)
    hard_lo, hard_hi = it.hard.low, it.hard.high
    if hard_hi is not None:
        value = min(value, hard_hi)
    if hard_lo is not None:
        value = max(value, hard_lo)
    value = as_number(it, value)
    record.visits[key][inst.name][it.id] = value
    return f"{_path(key, inst.name, it.id)} = {value}, outside the soft limits {soft.describe()}"


def _visit_date(record: SubjectRecord, visit: Visit) -> Optional[dt.date]:
    """The visit's date: its first date item (the visit form comes first)."""
    for inst in visit.forms:
        for it in inst.items:
            value = record.value(visit.id, inst.name, it.id)
            if it.kind == ItemKind.DATE and isinstance(value, str):
                return dt.date.fromisoformat(value)
    return None


def _movable_visit(study: Study, record: SubjectRecord) -> Optional[Visit]:
    """A scheduled visit with a window; one without an infusion first (no interval rule is touched)."""
    candidates = [v for v in study.visits if v.scheduled and v.kind != "screening" and v.id in record.visits
                  and (v.window.before or v.window.after) and _visit_date(record, v)]
    candidates.sort(key=lambda v: (bool(v.infusion), -(v.day or 0)))
    return candidates[0] if candidates else None


@plant_kind("visit-out-of-window", needs=lambda s, r: _movable_visit(s, r) is not None)
def _visit_out_of_window(study: Study, record: SubjectRecord, rng: random.Random) -> str:
    """A whole scheduled visit moved a few days past the end of its window."""
    visit = _movable_visit(study, record)
    assert visit is not None and visit.day is not None
    old = _visit_date(record, visit)
    assert old is not None  # _movable_visit takes only visits with a date
    anchor = next((v for v in study.visits if v.day == 0), None)
    day0 = (_visit_date(record, anchor) if anchor else None) or old - dt.timedelta(days=visit.day)
    new_day = day0 + dt.timedelta(days=visit.day + visit.window.after + rng.randint(2, 5))
    shift = new_day - old
    for values in record.visits[visit.id].values():
        for key, value in list(values.items()):
            if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
                values[key] = iso(dt.date.fromisoformat(value) + shift)
    return (f"visit {visit.id} moved from {iso(old)} to {iso(new_day)} (protocol day {(new_day - day0).days}), "
            f"outside its window of day {visit.day} -{visit.window.before}/+{visit.window.after}")


@plant_kind("dose-deviation", needs=lambda s, r: s.dosing is not None and any("EXDOSE" in v for _, v in _dosing_forms(s, r)))
def _dose_deviation(study: Study, record: SubjectRecord, rng: random.Random) -> str:
    """One dose 15% away from mg/kg x weight (the vials still cover it)."""
    dosing = study.dosing
    assert dosing is not None  # needs=: EXDOSE is only on the forms of a study with dosing
    visit, values = rng.choice([f for f in _dosing_forms(study, record) if "EXDOSE" in f[1]])
    old = values["EXDOSE"]
    factor = rng.choice((0.85, 1.15))
    values["EXDOSE"] = int(round(old * factor))
    for key in [k for k in values if k.startswith("N") and k[1:].isdigit()]:
        values.pop(key)
    values.update(vial_counts(dosing.vial_sizes_mg, values["EXDOSE"]))
    return f"visit {visit.id}: dose {values['EXDOSE']} mg instead of {old} mg ({round((factor - 1) * 100):+d}% of {dosing.dose_mg_per_kg:g} mg/kg x weight)"


def _maintenance_doses(study: Study, record: SubjectRecord) -> list[tuple[Visit, dict[str, Any]]]:
    doses = _dosing_forms(study, record)
    loading = study.dosing.loading_infusions if study.dosing else 0
    return [d for d in doses[:-1] if (d[0].infusion or 0) > loading]


@plant_kind("missed-dose", needs=lambda s, r: bool(_maintenance_doses(s, r)))
def _missed_dose(study: Study, record: SubjectRecord, rng: random.Random) -> str:
    """One maintenance infusion not given (reason recorded; no post-infusion vital signs)."""
    visit, values = rng.choice(_maintenance_doses(study, record))
    inst = next(i for i in visit.forms if i.form.domain == "EX")
    keep = {it.id for it in inst.items if not it.required_with and (it.required or it.fixed is not None)}
    for key in [k for k in values if k not in keep]:
        values.pop(key)
    values["EXYN"] = "N"
    reason = inst.form.item("EXREASND") if inst.form.has("EXREASND") else None
    if reason:
        values["EXREASND"] = _pick(study, reason, rng, FIRST_DAY0, None)
    for other in visit.forms:  # post-infusion vital signs were not taken
        post = record.visits[visit.id].get(other.name, {})
        if other.form.has("VSPERF") and post.get("VSTPT", other.form.item("VSTPT").fixed if other.form.has("VSTPT") else None) == "POST-INFUSION":
            record.visits[visit.id][other.name] = {k: v for k, v in post.items() if k == "VSTPT"} | {"VSPERF": "N"}
    return f"visit {visit.id}: infusion {visit.infusion} not given (EXYN = N, reason {values.get('EXREASND')})"


def _medication_log(study: Study) -> Optional[str]:
    for log in study.logs:
        if log.form.has("CMTRT") and log.form.has("CMSTDAT"):
            return log.id
    return None


@plant_kind("prohibited-med", needs=lambda s, r: _medication_log(s) is not None and bool(_dosing_forms(s, r)))
def _prohibited_med(study: Study, record: SubjectRecord, rng: random.Random) -> str:
    """Rituximab (a B-cell depleting antibody) given during treatment."""
    log_id = _medication_log(study)
    assert log_id is not None
    doses = _dosing_forms(study, record)
    visit, values = doses[min(len(doses) - 1, rng.randint(3, max(3, len(doses) - 2)))]
    start = dt.date.fromisoformat(values.get("EXSTDAT") or record.visits[visit.id]["SV"]["SVSTDAT"]) + dt.timedelta(days=rng.randint(3, 10))
    row = {"CMTRT": "Rituximab", "CMCAT": "OTHER", "CMINDC": "NMOSD", "CMDSTXT": "1000", "CMDOSU": "mg",
           "CMDOSFRQ": "ONCE", "CMROUTE": "INTRAVENOUS", "CMSTDAT": iso(start), "CMONGO": "N", "CMENDAT": iso(start)}
    form = study.log(log_id).form
    rows = record.logs.setdefault(log_id, [])
    rows.append({k: v for k, v in row.items() if form.has(k)})
    return f"/logs/{log_id}/{len(rows) - 1}: rituximab 1000 mg IV on {iso(start)}, during study treatment"


def _pregnancy_forms(study: Study, record: SubjectRecord) -> list[tuple[Visit, dict[str, Any], dict[str, Any]]]:
    out = []
    for visit, ex in _dosing_forms(study, record):
        inst = find_instance(visit, "HCG", "LBPERF")
        preg = record.visits[visit.id].get(inst.name) if inst else None
        if preg and preg.get("HCG") == "NEGATIVE":
            out.append((visit, preg, ex))
    return out


@plant_kind("positive-pregnancy-dosed", needs=lambda s, r: bool(_pregnancy_forms(s, r)))
def _positive_pregnancy_dosed(study: Study, record: SubjectRecord, rng: random.Random) -> str:
    """A positive pre-infusion pregnancy test, and the infusion given anyway."""
    visit, preg, ex = rng.choice(_pregnancy_forms(study, record)[1:] or _pregnancy_forms(study, record))
    preg["HCG"] = "POSITIVE"
    if "PREPREG" in ex:
        ex["PREPREG"] = "N"
    return f"visit {visit.id}: pregnancy test POSITIVE on {preg.get('LBDAT')}, infusion {visit.infusion} given"


def _log_rows(study: Study, record: SubjectRecord, *items: str) -> list[tuple[str, int, dict[str, Any]]]:
    return [(log.id, n, row) for log in study.logs if all(log.form.has(i) for i in items)
            for n, row in enumerate(record.logs.get(log.id, []))]


@plant_kind("late-sae-report", needs=lambda s, r: bool(_log_rows(s, r, "AESER", "SAEAWDAT", "SAERPDAT")))
def _late_sae_report(study: Study, record: SubjectRecord, rng: random.Random) -> str:
    """An AE made serious (hospitalisation), reported to the sponsor 3 days after awareness."""
    log_id, n, row = rng.choice(_log_rows(study, record, "AESER", "SAEAWDAT", "SAERPDAT"))
    form = study.log(log_id).form
    aware = dt.date.fromisoformat(row["AESTDAT"]) if "AESTDAT" in row else FIRST_DAY0
    criteria = [it.id for it in form.items if it.condition and it.condition.item == "AESER" and it.codelist and "N" in it.codelist.values]
    row.update({c: "N" for c in criteria})
    row.update(AESER="Y", AESHOSP="Y", SAEAWDAT=iso(aware), SAERPDAT=iso(aware + dt.timedelta(days=3)))
    return f"/logs/{log_id}/{n}: serious AE {row.get('AETERM')!r}, aware {iso(aware)}, reported 3 days later"


def _end_of_study(study: Study, record: SubjectRecord) -> Optional[dict[str, Any]]:
    for forms in record.visits.values():
        for values in forms.values():
            if "NATT" in values:
                return values
    return None


@plant_kind("attack-count-mismatch", needs=lambda s, r: _end_of_study(s, r) is not None)
def _attack_count_mismatch(study: Study, record: SubjectRecord, rng: random.Random) -> str:
    """The investigator's attack count one more than the attack log gives."""
    values = _end_of_study(study, record)
    assert values is not None
    values["NATT"] = int(values["NATT"]) + 1
    return f"end of study: NATT = {values['NATT']}, the attack log gives {values.get('NATTD', values['NATT'] - 1)}"


def _blood_pressures(study: Study, record: SubjectRecord) -> list[tuple[str, FormInstance]]:
    return [(k, i) for k, i, it in _fields(study, record) if it.id == "SYSBP" and i.form.has("DIABP")]


@plant_kind("sbp-below-dbp", needs=lambda s, r: bool(_blood_pressures(s, r)))
def _sbp_below_dbp(study: Study, record: SubjectRecord, rng: random.Random) -> str:
    """Systolic below diastolic, both inside their soft limits."""
    key, inst = rng.choice(_blood_pressures(study, record))
    sys_item, dia_item = inst.form.item("SYSBP"), inst.form.item("DIABP")
    sys_lo = typical_range(sys_item)[0]
    dia_lo, dia_hi = typical_range(dia_item)
    systolic = int(max(sys_lo, dia_lo) + 2)
    diastolic = int(min(dia_hi, systolic + 4))
    if diastolic <= systolic:
        systolic = diastolic - 1
    values = record.visits[key][inst.name]
    values.update(SYSBP=systolic, DIABP=diastolic)
    return f"{_path(key, inst.name, 'SYSBP')} = {systolic} below DIABP = {diastolic}"


@plant_kind("bad-date-order", needs=lambda s, r: bool([x for x in _log_rows(s, r, "AESTDAT", "AEENDAT") if "AEENDAT" in x[2]]))
def _bad_date_order(study: Study, record: SubjectRecord, rng: random.Random) -> str:
    """An adverse event ending before it started."""
    log_id, n, row = rng.choice([x for x in _log_rows(study, record, "AESTDAT", "AEENDAT") if "AEENDAT" in x[2]])
    row["AEENDAT"] = iso(dt.date.fromisoformat(row["AESTDAT"]) - dt.timedelta(days=rng.randint(2, 6)))
    return f"/logs/{log_id}/{n}: AE end {row['AEENDAT']} before its start {row['AESTDAT']}"


# -- files ----------------------------------------------------------------------------------------------
def planted_subject(study: Study, kinds: Sequence[str], seed: int = 1, site: str = "01", subject: str = "01-001",
                    attempts: int = 50) -> tuple[SubjectRecord, SubjectRecord, list[str]]:
    """(clean record, the same with the planted problems, descriptions). When a plant does not apply to
    the subject of this seed (a man for a pregnancy plant), the next seeds are tried, deterministically."""
    for attempt in range(attempts):
        clean = clean_subject(study, site, subject, seed + 100_000 * attempt)
        planted = copy.deepcopy(clean)
        rng = random.Random(f"plant|{seed}|{attempt}|{subject}|{'+'.join(kinds)}")
        try:
            descriptions = [plant(study, planted, kind, rng) for kind in kinds]
        except PlantNotApplicable:
            continue
        return clean, planted, descriptions
    raise PlantNotApplicable(f"no subject found for plants {', '.join(kinds)} in {attempts} attempts")


def subject_json(record: SubjectRecord) -> str:
    return json.dumps(record.to_json(), sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def generate(study: Study, out_dir: Path, subjects: int, site: str = "01", seed: int = 1,
             plants: Sequence[str] = (), fmt: Literal["xlsx", "json"] = "json", manifest: Optional[Path] = None) -> list[Path]:
    """One file per subject in out_dir; named problems spread over the subjects, listed in `manifest`
    (default out_dir/planted.json; keep it out of a folder that is validated, it is not a subject)."""
    unknown = [k for k in plants if k not in PLANTS]
    if unknown:
        raise ValueError(f"unknown plant kind(s) {', '.join(unknown)}; known kinds: {', '.join(sorted(PLANTS))}")
    if fmt not in ("xlsx", "json"):
        raise ValueError(f"format must be xlsx or json, not {fmt!r}")
    if subjects < 1:
        raise ValueError("generate at least one subject")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    assigned: dict[int, list[str]] = {i: [] for i in range(subjects)}
    for j, kind in enumerate(plants):
        assigned[j % subjects].append(kind)
    written: list[Path] = []
    entries: list[dict[str, str]] = []
    for i in range(subjects):
        subject = f"{site}-{i + 1:03d}"
        _, record, descriptions = planted_subject(study, assigned[i], seed, site, subject)
        if fmt == "json":
            path = out_dir / f"{subject}.json"
            path.write_text(subject_json(record), encoding="utf-8")
        else:
            from .xlsx import workbook_name, write_workbook

            path = write_workbook(study, out_dir / workbook_name(study, subject), site, subject, record)
        written.append(path)
        entries += [{"file": path.name, "subject": subject, "kind": k, "description": d}
                     for k, d in zip(assigned[i], descriptions)]
    if plants:
        Path(manifest or out_dir / "planted.json").write_text(json.dumps(entries, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return written
