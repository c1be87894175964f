"""Planted problems: `PLANTS` holds named kinds; `plant()` applies one to a clean record and describes it.

A plant that changes linked records (a dose, a pregnancy test, a serious AE) finds them by their forms' roles
(`x-role`, crf/synth/roles.py); it does not apply to a study without them (PlantNotApplicable).
"""
from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

from .. import expressions
from ..model import FormInstance, FormRole, Item, ItemKind, Study, Visit
from ..subject import SubjectRecord
from . import roles
from .fill import FIRST_DAY0, as_number, iso, pick, typical_range
from .links import derive, vial_counts, vial_items, weight_item_of


class PlantNotApplicable(ValueError):
    """This record has nothing the plant could change (no AE log, no woman of childbearing potential...)."""


PlantFn = Callable[[Study, SubjectRecord, random.Random], str]


@dataclass(frozen=True)
class Plant:
    apply: PlantFn
    needs: Callable[[Study, SubjectRecord], bool] = lambda study, record: True
    help: str = ""
    roles: tuple[str, ...] = ()  # the form roles (x-role) it changes: without them it applies to no subject of the study

    def missing_roles(self, study: Study) -> list[str]:
        return [r for r in self.roles if roles.of_study(study, r) is None]


PLANTS: dict[str, Plant] = {}


def plant_kind(name: str, needs: Optional[Callable[[Study, SubjectRecord], bool]] = None,
               uses: tuple[str, ...] = ()) -> Callable[[PlantFn], PlantFn]:
    """Register a plant: `@plant_kind("my-kind")` over `def f(study, record, rng) -> str`; `uses`: the form roles it needs."""
    def register(fn: PlantFn) -> PlantFn:
        PLANTS[name] = Plant(fn, needs or (lambda study, record: True), (fn.__doc__ or "").strip(), uses)
        return fn
    return register


def check_roles(study: Study, kind: str) -> None:
    """Refuse, with the reason, a plant whose forms the study does not have (no subject could ever get it)."""
    missing = PLANTS[kind].missing_roles(study)
    if missing:
        raise PlantNotApplicable(f"plant {kind!r} needs a form with x-role {' and '.join(repr(r) for r in missing)}, "
                                 f"which study {study.id} has not (docs/study-definition.md, form roles)")


def plant(study: Study, record: SubjectRecord, kind: str, rng: random.Random) -> str:
    """Change `record` in place to hold exactly one problem of this kind; return its description."""
    if kind not in PLANTS:
        raise ValueError(f"unknown plant kind {kind!r}; known kinds: {', '.join(sorted(PLANTS))}")
    chosen = PLANTS[kind]
    check_roles(study, kind)
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


def _dosing_forms(study: Study, record: SubjectRecord) -> list[tuple[Visit, dict[str, Any], FormRole]]:
    """The infusions given: (visit, the dosing form's values, its role)."""
    out = []
    for visit in study.visits:
        for inst in visit.forms:
            values = record.visits.get(visit.id, {}).get(inst.name)
            found = roles.role(inst.form, "dosing")
            given = found.item("given") if found else None
            if visit.infusion and found and given and values and values.get(given) == found.code("given"):
                out.append((visit, values, found))
    return out


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
    weight = weight_item_of(study)

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


def _doses(study: Study, record: SubjectRecord) -> list[tuple[Visit, dict[str, Any], FormRole]]:
    return [f for f in _dosing_forms(study, record) if f[2].item("dose") in f[1]]


@plant_kind("dose-deviation", needs=lambda s, r: s.dosing is not None and bool(_doses(s, r)), uses=("dosing",))
def _dose_deviation(study: Study, record: SubjectRecord, rng: random.Random) -> str:
    """One dose 15% away from mg/kg x weight (the vials still cover it)."""
    dosing = study.dosing
    assert dosing is not None  # needs=: a dose is only recorded in a study with dosing
    visit, values, found = rng.choice(_doses(study, record))
    dose = found.item("dose") or ""
    old = values[dose]
    factor = rng.choice((0.85, 1.15))
    values[dose] = int(round(old * factor))
    for key in found.tables.get("vials", {}).values():
        values.pop(key, None)
    values.update(vial_items(found, vial_counts(dosing.vial_sizes_mg, values[dose])))
    return f"visit {visit.id}: dose {values[dose]} mg instead of {old} mg ({round((factor - 1) * 100):+d}% of {dosing.dose_mg_per_kg:g} mg/kg x weight)"


def _maintenance_doses(study: Study, record: SubjectRecord) -> list[tuple[Visit, dict[str, Any], FormRole]]:
    doses = _dosing_forms(study, record)
    loading = study.dosing.loading_infusions if study.dosing else 0
    return [d for d in doses[:-1] if (d[0].infusion or 0) > loading]


@plant_kind("missed-dose", needs=lambda s, r: bool(_maintenance_doses(s, r)), uses=("dosing",))
def _missed_dose(study: Study, record: SubjectRecord, rng: random.Random) -> str:
    """One maintenance infusion not given (reason recorded; no post-infusion vital signs)."""
    visit, values, found = rng.choice(_maintenance_doses(study, record))
    inst = roles.instance(visit, "dosing")
    assert inst is not None  # _dosing_forms found the visit's dosing form
    keep = {it.id for it in inst.items if not it.required_with and (it.required or it.fixed is not None)}
    for key in [k for k in values if k not in keep]:
        values.pop(key)
    given = found.item("given") or ""
    values[given] = found.code("not_given")
    reason_id = found.item("reason_not_given")
    reason = inst.form.item(reason_id) if reason_id and inst.form.has(reason_id) else None
    if reason:
        values[reason.id] = pick(study, reason, rng, FIRST_DAY0, None)
    for other in visit.forms:  # post-infusion vital signs were not taken
        post = record.visits[visit.id].get(other.name, {})
        vital = roles.role(other.form, "vital-signs")
        both = roles.items(vital, other.form, "performed", "timepoint") if vital else None
        if vital and both:
            performed, timepoint = both
            fixed = other.form.item(timepoint).fixed
            if post.get(timepoint, fixed) == vital.code("after_dosing"):
                record.visits[visit.id][other.name] = {k: v for k, v in post.items() if k == timepoint} | {performed: vital.code("not_done")}
    return f"visit {visit.id}: infusion {visit.infusion} not given ({given} = {values[given]}, reason {values.get(reason_id or '')})"


def _prohibited(study: Study) -> Optional[tuple[str, FormRole, dict[str, Any]]]:
    """The medication log, its role and the prohibited medicine the role gives (tables.prohibited)."""
    log = roles.log(study, "medications")
    found = roles.role(log.form, "medications") if log else None
    prohibited = roles.table(found, "prohibited")
    if log is None or found is None or not isinstance(prohibited, dict) or not roles.items(found, log.form, "start"):
        return None
    return log.id, found, prohibited


@plant_kind("prohibited-med", needs=lambda s, r: _prohibited(s) is not None and bool(_dosing_forms(s, r)), uses=("medications", "dosing"))
def _prohibited_med(study: Study, record: SubjectRecord, rng: random.Random) -> str:
    """A medicine the protocol prohibits (its medication form's role names it) given during treatment."""
    found = _prohibited(study)
    assert found is not None
    log_id, medications, prohibited = found
    doses = _dosing_forms(study, record)
    visit, values, dosing = doses[min(len(doses) - 1, rng.randint(3, max(3, len(doses) - 2)))]
    visit_date = study.schedule.visit_date
    given = values.get(dosing.item("start_date") or "") or (
        record.visits[visit.id][visit_date.form][visit_date.item] if visit_date else None)
    assert isinstance(given, str)  # a dosing visit has its date
    start = dt.date.fromisoformat(given) + dt.timedelta(days=rng.randint(3, 10))
    row = {**prohibited.get("row", {}), medications.item("start"): iso(start), medications.item("ongoing"): medications.code("not_ongoing"),
           medications.item("end"): iso(start)}
    form = study.log(log_id).form
    rows = record.logs.setdefault(log_id, [])
    rows.append({k: v for k, v in row.items() if k and form.has(k)})
    return f"/logs/{log_id}/{len(rows) - 1}: {prohibited.get('description', 'a prohibited medicine')} on {iso(start)}, during study treatment"


def _pregnancy_forms(study: Study, record: SubjectRecord) -> list[tuple[Visit, dict[str, Any], dict[str, Any], FormRole, FormRole]]:
    out = []
    for visit, ex, dosing in _dosing_forms(study, record):
        inst = roles.instance(visit, "pregnancy-test")
        found = roles.role(inst.form, "pregnancy-test") if inst else None
        preg = record.visits[visit.id].get(inst.name) if inst else None
        if found and preg and preg.get(found.item("result") or "") == found.code("negative"):
            out.append((visit, preg, ex, found, dosing))
    return out


@plant_kind("positive-pregnancy-dosed", needs=lambda s, r: bool(_pregnancy_forms(s, r)), uses=("pregnancy-test", "dosing"))
def _positive_pregnancy_dosed(study: Study, record: SubjectRecord, rng: random.Random) -> str:
    """A positive pre-infusion pregnancy test, and the infusion given anyway."""
    visit, preg, ex, found, dosing = rng.choice(_pregnancy_forms(study, record)[1:] or _pregnancy_forms(study, record))
    preg[found.item("result") or ""] = found.code("positive")
    checked = dosing.item("pregnancy_checked")
    if checked and checked in ex:
        ex[checked] = dosing.code("pregnancy_not_checked")
    return f"visit {visit.id}: pregnancy test {found.code('positive')} on {preg.get(found.item('date') or '')}, infusion {visit.infusion} given"


def _role_rows(study: Study, record: SubjectRecord, name: str, *slots: str) -> list[tuple[str, int, dict[str, Any], FormRole]]:
    """(log id, row index, row, role) of every row of a log whose form has that role and the slots' items."""
    out = []
    for log in study.logs:
        found = roles.role(log.form, name)
        if found is not None and roles.items(found, log.form, *slots):
            out += [(log.id, n, row, found) for n, row in enumerate(record.logs.get(log.id, []))]
    return out


@plant_kind("late-sae-report", needs=lambda s, r: bool(_role_rows(s, r, "adverse-events", "serious", "aware", "reported")), uses=("adverse-events",))
def _late_sae_report(study: Study, record: SubjectRecord, rng: random.Random) -> str:
    """An AE made serious (hospitalisation), reported to the sponsor 3 days after awareness."""
    log_id, n, row, found = rng.choice(_role_rows(study, record, "adverse-events", "serious", "aware", "reported"))
    form = study.log(log_id).form
    start, serious = found.item("start") or "", found.item("serious")
    aware = dt.date.fromisoformat(row[start]) if start in row else FIRST_DAY0
    no = found.code("not_serious")
    criteria = [it.id for it in form.items if it.condition and it.condition.item == serious and it.codelist and no in it.codelist.values]
    row.update({c: no for c in criteria})
    row.update({k: v for k, v in ((serious, found.code("serious")), (found.item("hospitalisation"), found.code("hospitalisation")),
                                  (found.item("aware"), iso(aware)), (found.item("reported"), iso(aware + dt.timedelta(days=3)))) if k})
    return f"/logs/{log_id}/{n}: serious AE {row.get(found.item('term') or '')!r}, aware {iso(aware)}, reported 3 days later"


def _end_of_study(study: Study, record: SubjectRecord) -> Optional[tuple[dict[str, Any], FormRole]]:
    found = roles.of_study(study, "end-of-study")
    count = found.item("event_count") if found else None
    if found is None or not count:
        return None
    for forms in record.visits.values():
        for values in forms.values():
            if count in values:
                return values, found
    return None


@plant_kind("attack-count-mismatch", needs=lambda s, r: _end_of_study(s, r) is not None, uses=("end-of-study",))
def _attack_count_mismatch(study: Study, record: SubjectRecord, rng: random.Random) -> str:
    """The investigator's event (attack) count one more than the event log gives."""
    found = _end_of_study(study, record)
    assert found is not None
    values, eos = found
    count, derived = eos.item("event_count") or "", eos.item("event_count_derived") or ""
    values[count] = int(values[count]) + 1
    return f"end of study: {count} = {values[count]}, the log gives {values.get(derived, values[count] - 1)} ({derived})"


def _blood_pressures(study: Study, record: SubjectRecord) -> list[tuple[str, FormInstance, str, str]]:
    out = []
    for key, inst, it in _fields(study, record):
        pressures = roles.items(roles.role(inst.form, "vital-signs"), inst.form, "systolic", "diastolic")
        if pressures and it.id == pressures[0]:
            out.append((key, inst, pressures[0], pressures[1]))
    return out


@plant_kind("sbp-below-dbp", needs=lambda s, r: bool(_blood_pressures(s, r)), uses=("vital-signs",))
def _sbp_below_dbp(study: Study, record: SubjectRecord, rng: random.Random) -> str:
    """Systolic below diastolic, both inside their soft limits."""
    key, inst, sys_id, dia_id = rng.choice(_blood_pressures(study, record))
    sys_item, dia_item = inst.form.item(sys_id), inst.form.item(dia_id)
    sys_lo = typical_range(sys_item)[0]
    dia_lo, dia_hi = typical_range(dia_item)
    systolic = int(max(sys_lo, dia_lo) + 2)
    diastolic = int(min(dia_hi, systolic + 4))
    if diastolic <= systolic:
        systolic = diastolic - 1
    values = record.visits[key][inst.name]
    values.update({sys_id: systolic, dia_id: diastolic})
    return f"{_path(key, inst.name, sys_id)} = {systolic} below {dia_id} = {diastolic}"


def _ended_events(study: Study, record: SubjectRecord) -> list[tuple[str, int, dict[str, Any], FormRole]]:
    return [x for x in _role_rows(study, record, "adverse-events", "start", "end") if x[3].item("end") in x[2]]


@plant_kind("bad-date-order", needs=lambda s, r: bool(_ended_events(s, r)), uses=("adverse-events",))
def _bad_date_order(study: Study, record: SubjectRecord, rng: random.Random) -> str:
    """An adverse event ending before it started."""
    log_id, n, row, found = rng.choice(_ended_events(study, record))
    start, end = found.item("start") or "", found.item("end") or ""
    row[end] = iso(dt.date.fromisoformat(row[start]) - dt.timedelta(days=rng.randint(2, 6)))
    return f"/logs/{log_id}/{n}: AE end {row[end]} before its start {row[start]}"
