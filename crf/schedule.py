"""The schedule service: Day 0, each visit's target date and window, computed in one place.

From the study definition: visits[].day and window (days before and after, and what the window counts
from), and study.json `schedule` (crf.model.ScheduleConfig, parsed once by the loader: where visit and
infusion dates are recorded). Day 0 is the date of the first infusion given. The rules
(crf.rules.schedule), the workbook's visit calendar (crf.xlsx), the status grid (crf.validation, through
the rules' analysis) and the synthetic generator (crf.synth) all use these functions, so the calendar a
site plans with and the windows the validator checks are the same arithmetic.
"""
from __future__ import annotations

import datetime as dt
from typing import Optional

from .model import Study, Visit

DAY0_ANCHOR = "day0"  # a window counted in study days from Day 0 (visits[].window.anchor)


def day_window(visit: Visit) -> Optional[tuple[int, int]]:
    """(first, last) study day of a visit planned on a study day; None for a visit whose window counts
    from another date (e.g. an attack's onset) or that has no planned day."""
    if visit.day is None or visit.window.anchor != DAY0_ANCHOR:
        return None
    return visit.day - visit.window.before, visit.day + visit.window.after


def target_date(visit: Visit, day0: dt.date) -> Optional[dt.date]:
    """The planned date of a visit planned on a study day."""
    return None if day_window(visit) is None or visit.day is None else day0 + dt.timedelta(days=visit.day)


def window_dates(visit: Visit, day0: dt.date) -> Optional[tuple[dt.date, dt.date]]:
    """The first and last date of the visit's window, for a visit planned on a study day."""
    days = day_window(visit)
    return None if days is None else (day0 + dt.timedelta(days=days[0]), day0 + dt.timedelta(days=days[1]))


def study_day(date: dt.date, day0: dt.date) -> int:
    """Study day of a date: Day 0 is day 0, the day before it day -1."""
    return (date - day0).days


def in_window(visit: Visit, date: dt.date, day0: Optional[dt.date], anchor: Optional[dt.date] = None) -> Optional[bool]:
    """Whether a visit's date is inside its window: by study day when it is planned on one, else by days
    from its anchor date; None when that cannot be told (no Day 0 yet, no anchor date, no window)."""
    days = day_window(visit)
    if days is not None:
        return None if day0 is None else days[0] <= study_day(date, day0) <= days[1]
    if visit.day is None and anchor is not None:
        return -visit.window.before <= (date - anchor).days <= visit.window.after
    return None


def visit_date_field(study: Study, visit: Visit) -> Optional[tuple[str, str]]:
    """(form instance, item) where the visit's date is recorded, when the visit collects the schedule's visit_date."""
    ref = study.schedule.visit_date
    if ref is not None and visit.has(ref.form) and visit.form(ref.form).form.has(ref.item):
        return ref.form, ref.item
    return None


def day0_visit(study: Study) -> Optional[Visit]:
    """The visit of Day 0: the one planned on day 0, else the one with the first infusion."""
    return next((v for v in study.visits if v.day == 0), None) or next((v for v in study.visits if v.infusion == 1), None)


def day0_field(study: Study) -> Optional[tuple[Visit, str, str]]:
    """(visit, form instance, item) where Day 0 is recorded on paper and in the workbook: the infusion date
    of the Day-0 visit, else that visit's date (a study without infusions)."""
    visit = day0_visit(study)
    if visit is None:
        return None
    conf = study.schedule
    for inst in visit.forms:
        if inst.name == conf.infusion_form and any(it.id == conf.infusion_date for it in inst.items):
            return visit, inst.name, conf.infusion_date
    found = visit_date_field(study, visit)
    return (visit, *found) if found else None
