"""Visit and infusion timing, driven by the study model (visits, windows, study.dosing).

Day 0 is the date of the first infusion given. A scheduled visit's window is [day - before,
day + after] in protocol days from Day 0 (never from the previous visit); an unscheduled visit whose
window has an `anchor` is checked against the date study.json's `schedule.anchors` maps it to
(the attack visit against the attack onset). The arithmetic is the schedule service's (crf/schedule.py),
which the workbook calendar uses too. Nothing here knows a day number or an item of the shipped study.

The analysis is computed once per subject (`analyse`) and shared by the rules that report from it:
EC-40 (infusion timing), EC-62 (visit dates), PD-05 (window), PD-09 (interval), PD-10 (missed
infusions), PD-06 (week-52 visit) and PD-15 (safety labs missed).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, TYPE_CHECKING

from .. import schedule as service
from ..expressions import MISSING, compile_expression, parse
from ..model import ItemKind, Visit
from .functions import Hit, python_rule

if TYPE_CHECKING:
    from .context import Frame, SubjectContext
    from .engine import Rule


@dataclass
class VisitTiming:
    visit: Visit
    date: Any  # visit date (dt.date or MISSING)
    low: Optional[int] = None  # window in protocol days
    high: Optional[int] = None
    study_day: Optional[int] = None
    in_window: Optional[bool] = None  # None when it cannot be told (no Day 0, no date, no anchor)
    anchor_date: Any = MISSING
    key: str = ""  # the visit key (V1, ATT#2)
    label: str = ""  # as the site reads it (Attack visit 2)


@dataclass
class InfusionTiming:
    visit: Visit
    frame: "Frame"
    date: Any
    number: int  # planned infusion number of the visit
    sequence: int  # 1 for the first infusion given, 2 for the next...
    study_day: Optional[int] = None
    in_window: Optional[bool] = None
    interval: Optional[int] = None  # days since the previous infusion given
    min_interval: Optional[int] = None


@dataclass
class Schedule:
    day0: Any
    visits: dict[str, VisitTiming] = field(default_factory=dict)
    infusions: list[InfusionTiming] = field(default_factory=list)
    treatment_end: Any = MISSING  # date treatment stopped early (EOTDAT, or the ET visit), else MISSING


def analyse(ctx: "SubjectContext") -> Schedule:
    cached = ctx.memo.get("schedule")
    if cached is not None:
        return cached
    study, day0 = ctx.study, ctx.day0
    conf = study.schedule
    known_day0 = day0 if isinstance(day0, dt.date) else None
    sched = Schedule(day0)
    for key, visit in study.visit_keys(ctx.record.visits):
        date = ctx.visit_date(key)
        timing = VisitTiming(visit, date, key=key, label=ctx.layout.label(key))
        days = service.day_window(visit)
        if days is not None:
            timing.low, timing.high = days
            if isinstance(date, dt.date) and known_day0 is not None:
                timing.study_day = service.study_day(date, known_day0)
                timing.in_window = service.in_window(visit, date, known_day0)
        else:
            ref = conf.anchor(visit.window.anchor)
            anchor = ctx.field_value(key, ref.form, ref.item) if ref else MISSING
            timing.anchor_date = anchor
            if isinstance(anchor, dt.date) and isinstance(date, dt.date):
                timing.in_window = service.in_window(visit, date, known_day0, anchor)
        sched.visits[key] = timing
    dosing = study.dosing
    for seq, (visit_id, frame, date) in enumerate(ctx.infusions, start=1):
        visit = ctx.layout.visit(visit_id)  # type: ignore[assignment]  # an infusion frame's visit key is a visit's
        inf = InfusionTiming(visit, frame, date, visit.infusion or seq, seq)
        if isinstance(date, dt.date) and known_day0 is not None and service.day_window(visit) is not None:
            inf.study_day = service.study_day(date, known_day0)
            inf.in_window = service.in_window(visit, date, known_day0)
        if dosing is not None and sched.infusions and isinstance(date, dt.date) and isinstance(sched.infusions[-1].date, dt.date):
            inf.interval = (date - sched.infusions[-1].date).days
            loading = inf.number <= dosing.loading_infusions
            inf.min_interval = dosing.min_interval_loading_days if loading else dosing.min_interval_maintenance_days
        sched.infusions.append(inf)
    eos = ctx.end_of_study
    if eos is not None:
        stop = eos.resolve(conf.treatment_end_date) if conf.treatment_end_date else MISSING
        if not isinstance(stop, dt.date) and eos.visit in conf.early_termination_visits and conf.end_of_study_date:
            stop = eos.resolve(conf.end_of_study_date)
        sched.treatment_end = stop if isinstance(stop, dt.date) else MISSING
    ctx.memo["schedule"] = sched
    return sched


def _window_text(low: Optional[int], high: Optional[int]) -> str:
    return f"Day {low} to Day {high}"


def _visit_date_field(ctx: "SubjectContext") -> tuple[str, str]:
    """(form, item) of the visit date, where a finding about a visit's date is put."""
    ref = ctx.study.schedule.visit_date
    return (ref.form, ref.item) if ref else ("", "")


_DATE_ITEMS: dict[int, tuple[Any, tuple[str, ...]]] = {}


def _date_items(frame: "Frame") -> tuple[str, ...]:
    found = _DATE_ITEMS.get(id(frame.items))
    if found is None or found[0] is not frame.items:
        found = (frame.items, tuple(i.id for i in frame.items.values() if i.kind == ItemKind.DATE and i.is_input))
        _DATE_ITEMS[id(frame.items)] = found
    return found[1]


@python_rule("visit_dates")
def visit_dates(ctx: "SubjectContext", rule: "Rule") -> Iterator[Hit]:
    """EC-62: visit dates in the future, out of schedule order, out of window (visits without an infusion
    given: infusion dates are EC-40's), and an infusion dated differently from its visit."""
    sched = analyse(ctx)
    form, item = _visit_date_field(ctx)
    infused = {inf.visit.id: inf for inf in sched.infusions}
    previous: Optional[VisitTiming] = None
    for key, visit in ctx.study.visit_keys(ctx.record.visits):
        label = ctx.layout.label(key)
        for inst in visit.forms:
            frame = ctx.form_frame(key, inst.name)
            if frame is None:
                continue
            for date_item in _date_items(frame):
                value = frame.resolve(date_item)
                if isinstance(value, dt.date) and value > ctx.today:
                    yield Hit(key, inst.name, date_item, message="future", key="future", value=frame.data.get(date_item),
                              values={"date": value, "label": label, "today": ctx.today})
        timing = sched.visits[key]
        if not isinstance(timing.date, dt.date):
            continue
        if visit.day is not None:
            if previous is not None and timing.date <= previous.date:
                yield Hit(visit.id, form, item, message="order", key="order", value=timing.date.isoformat(),
                          values={"date": timing.date, "label": visit.label, "previous": previous.visit.label, "previous_date": previous.date})
            previous = timing
        inf = infused.get(visit.id)
        if inf is not None and isinstance(inf.date, dt.date) and inf.date != timing.date:
            yield Hit(visit.id, inf.frame.instance or "", ctx.study.schedule.infusion_date, message="infusion_date",
                      key="infusion-date", value=inf.date.isoformat(), values={"date": inf.date, "visit_date": timing.date, "label": visit.label})
        if inf is None and timing.in_window is False:
            yield Hit(key, form, item, message="window", key="window", value=timing.date.isoformat(), values=_window_values(timing, sched))


def _window_values(timing: VisitTiming, sched: Schedule) -> dict[str, Any]:
    visit = timing.visit
    if visit.day is None:
        return {"date": timing.date, "label": timing.label or visit.label, "day": "-", "window": f"{visit.window.before} to {visit.window.after} days from the {visit.window.anchor} ({timing.anchor_date})",
                "target": timing.anchor_date}
    target = sched.day0 + dt.timedelta(days=visit.day)
    return {"date": timing.date, "label": visit.label, "day": timing.study_day, "window": _window_text(timing.low, timing.high),
            "target": target, "first": sched.day0 + dt.timedelta(days=timing.low or 0), "last": sched.day0 + dt.timedelta(days=timing.high or 0)}


def _day_window_text(visit: Visit) -> str:
    """The window of a visit planned on a study day (only those have an in_window verdict for infusions)."""
    days = service.day_window(visit)
    return _window_text(*days) if days else ""


@python_rule("infusion_timing")
def infusion_timing(ctx: "SubjectContext", rule: "Rule") -> Iterator[Hit]:
    """EC-40: infusion outside its visit window, too short an interval, more infusions than planned,
    infusion after the last allowed day."""
    sched = analyse(ctx)
    dosing = ctx.study.dosing
    if dosing is None:  # a study without dosing (imported from ODM or REDCap) has no infusion plan to check
        return
    date_item = ctx.study.schedule.infusion_date
    for inf in sched.infusions:
        if not isinstance(inf.date, dt.date):
            continue
        where: dict[str, Any] = dict(visit=inf.visit.id, form=inf.frame.instance or "", field=date_item, value=inf.date.isoformat())
        base = {"date": inf.date, "label": inf.visit.label, "number": inf.number, "day": inf.study_day}
        if inf.in_window is False:
            v = inf.visit
            yield Hit(**where, message="window", key="window",
                      values={**base, "window": _day_window_text(v),
                              "target": sched.day0 + dt.timedelta(days=v.day or 0)})
        if inf.interval is not None and inf.min_interval is not None and inf.interval < inf.min_interval:
            yield Hit(**where, message="interval", key="interval",
                      values={**base, "interval": inf.interval, "minimum": inf.min_interval,
                              "phase": "loading" if inf.number <= dosing.loading_infusions else "maintenance"})
        if dosing.infusions is not None and inf.sequence > dosing.infusions:
            yield Hit(**where, message="extra", key="extra", values={**base, "planned": dosing.infusions, "sequence": inf.sequence})
        if dosing.last_infusion_max_day is not None and inf.study_day is not None and inf.study_day > dosing.last_infusion_max_day:
            yield Hit(**where, message="late", key="late", values={**base, "max_day": dosing.last_infusion_max_day})


@python_rule("window_deviations")
def window_deviations(ctx: "SubjectContext", rule: "Rule") -> Iterator[Hit]:
    """PD-05: one deviation per visit whose date, or whose infusion's date, is outside the window."""
    sched = analyse(ctx)
    infused = {inf.visit.id: inf for inf in sched.infusions}
    date_item = ctx.study.schedule.infusion_date
    form, item = _visit_date_field(ctx)
    skip = set(rule.params.get("skip_kinds", ()))
    for visit_id, timing in sched.visits.items():
        if timing.visit.kind in skip:
            continue
        inf = infused.get(visit_id)
        if inf is not None and inf.in_window is False:
            v = inf.visit
            yield Hit(visit_id, inf.frame.instance or "", date_item, value=inf.date.isoformat(), message="infusion",
                      values={"date": inf.date, "label": v.label, "day": inf.study_day,
                              "window": _day_window_text(v)})
        elif inf is None and timing.in_window is False:
            yield Hit(visit_id, form, item, value=timing.date.isoformat(), message="visit", values=_window_values(timing, sched))


@python_rule("infusion_intervals")
def infusion_intervals(ctx: "SubjectContext", rule: "Rule") -> Iterator[Hit]:
    """PD-09: an interval shorter than the loading or maintenance minimum."""
    dosing = ctx.study.dosing
    if dosing is None:
        return
    date_item = ctx.study.schedule.infusion_date
    for inf in analyse(ctx).infusions:
        if inf.interval is not None and inf.min_interval is not None and inf.interval < inf.min_interval:
            yield Hit(inf.visit.id, inf.frame.instance or "", date_item, value=inf.date.isoformat(),
                      values={"date": inf.date, "label": inf.visit.label, "interval": inf.interval, "minimum": inf.min_interval,
                              "phase": "loading" if inf.number <= dosing.loading_infusions else "maintenance"})


def _planned_infusions(ctx: "SubjectContext") -> list[Visit]:
    return sorted((v for v in ctx.study.visits if v.infusion), key=lambda v: v.infusion or 0)


@python_rule("missed_doses")
def missed_doses(ctx: "SubjectContext", rule: "Rule") -> Iterator[Hit]:
    """PD-10: one deviation per planned infusion not given (recorded as not given, or its visit missing
    after its window closed while the subject was on treatment). Major for a loading dose or a run of
    two or more maintenance doses in a row, minor for a single maintenance dose."""
    sched = analyse(ctx)
    conf = ctx.study.schedule
    infusion_form = conf.infusion_form
    not_given = compile_expression(parse(conf.infusion_not_given))
    loading = ctx.study.dosing.loading_infusions if ctx.study.dosing else 0
    given = {inf.visit.id for inf in sched.infusions}
    stop = sched.treatment_end
    missed: dict[int, tuple[Visit, str, str]] = {}
    for visit in _planned_infusions(ctx):
        if visit.id in given:
            continue
        frames = [f for f in ctx.form_frames(infusion_form) if f.visit == visit.id]
        if frames:
            if bool(not_given(frames[0])):  # a blank answer is a missing item, not a missed dose
                missed[visit.infusion or 0] = (visit, frames[0].instance or "", "not_given")
            continue
        if sched.day0 is MISSING or visit.day is None:
            continue
        target = sched.day0 + dt.timedelta(days=visit.day)
        if isinstance(stop, dt.date) and target - dt.timedelta(days=visit.window.before) > stop:
            continue  # planned after treatment stopped: not a missed dose
        if target + dt.timedelta(days=visit.window.after) < ctx.today and visit.id not in ctx.record.visits:
            missed[visit.infusion or 0] = (visit, "", "absent")
    for number, (visit, instance, how) in sorted(missed.items()):
        in_a_row = (number - 1 in missed and number - 1 > loading) or number + 1 in missed
        major = number <= loading or in_a_row
        values = {"label": visit.label, "number": number, "phase": "loading" if number <= loading else "maintenance"}
        if how == "not_given":
            yield Hit(visit.id, instance, conf.infusion_status_item, message="not_given", severity="major" if major else "minor", values=values, value="N")
        else:
            form, item = _visit_date_field(ctx)
            yield Hit(visit.id, form, item, message="absent", severity="major" if major else "minor", values=values)


@python_rule("week52_visit")
def week52_visit(ctx: "SubjectContext", rule: "Rule") -> Iterator[Hit]:
    """PD-06: the week-52 visit more than `max_days_off` days off target, its assessments missing, or
    the visit missing once that many days have passed (not for a subject who terminated early)."""
    params = rule.params
    visit = ctx.layout.visits.get(params.get("visit", ""))
    sched = analyse(ctx)
    if visit is None or visit.day is None or sched.day0 is MISSING:
        return
    limit = int(params.get("max_days_off", 14))
    target = sched.day0 + dt.timedelta(days=visit.day)
    form, item = _visit_date_field(ctx)
    timing = sched.visits.get(visit.id)
    values = {"label": visit.label, "target": target, "limit": limit}
    if timing is None:
        early = any(v in ctx.record.visits for v in ctx.study.schedule.early_termination_visits)
        if not early and ctx.today > target + dt.timedelta(days=limit):
            yield Hit(visit.id, form, item, message="missing", values=values)
        return
    if timing.study_day is not None and abs(timing.study_day - visit.day) > limit:
        yield Hit(visit.id, form, item, message="off_target", value=timing.date.isoformat(),
                  values={**values, "date": timing.date, "off": timing.study_day - visit.day})
        return
    absent = [name for name in params.get("assessments", ()) if not any(
        f.visit == visit.id for f in ctx.form_frames(ctx.layout.instance_form_id.get((visit.id, name), name)))]
    if absent:
        yield Hit(visit.id, absent[0], "", message="assessments", values={**values, "forms": ", ".join(absent)})


@python_rule("missed_labs")
def missed_labs(ctx: "SubjectContext", rule: "Rule") -> Iterator[Hit]:
    """PD-15: at each scheduled on-treatment visit that took place, a safety-lab panel of its schedule not
    done (form blank or its performed item = N). Screening results at most `reuse_screening_days` old stand in at
    Day 0. Minor; major when the same panel was also missed at the previous or next lab visit."""
    params = rule.params
    panels = params.get("forms", ())
    reuse = int(params.get("reuse_screening_days", 0))
    done_item = params["performed_item"]
    date_item = params["date_item"]
    sched = analyse(ctx)
    timeline: dict[str, list[tuple[Visit, bool]]] = {p: [] for p in panels}
    for visit in ctx.study.visits:
        if visit.kind != "scheduled" or visit.day is None or visit.day < 0 or visit.id not in ctx.record.visits:
            continue
        for inst in visit.forms:
            if inst.form.id not in panels:
                continue
            frame = ctx.form_frame(visit.id, inst.name)
            done = frame is not None and frame.resolve(done_item) != "N" and frame.resolve(date_item) is not MISSING
            if not done and visit.day == 0 and reuse and sched.day0 is not MISSING:
                for screening in ctx.form_frames(inst.form.id):
                    d = screening.resolve(date_item)
                    if screening.visit != visit.id and isinstance(d, dt.date) and 0 <= (sched.day0 - d).days <= reuse:
                        done = True
            timeline[inst.form.id].append((visit, done))
    by_visit: dict[str, list[tuple[str, bool]]] = {}
    for panel, points in timeline.items():
        for i, (visit, done) in enumerate(points):
            if done:
                continue
            neighbour = (i > 0 and not points[i - 1][1]) or (i + 1 < len(points) and not points[i + 1][1])
            by_visit.setdefault(visit.id, []).append((panel, neighbour))
    for visit_id, missed in by_visit.items():
        visit = ctx.layout.visits[visit_id]
        first = next(inst.name for inst in visit.forms if inst.form.id == missed[0][0])
        yield Hit(visit_id, first, done_item, severity="major" if any(n for _, n in missed) else "minor",
                  values={"label": visit.label, "panels": ", ".join(p for p, _ in missed)})
