"""The schedule service (crf/schedule.py): Day 0, target dates and windows in one place, from one typed
configuration (study.json `schedule`) that the loader checks. Values from the protocol: infusions on
Days 0, 14 and 28, then every 28 days; windows of +/-3 days; screening up to 28 days before Day 0;
the attack visit within 7 days after onset."""
from __future__ import annotations

import datetime as dt
import shutil

import pytest

from crf import schedule
from crf.loader import StudyDefinitionError, load_study
from crf.model import FieldRef
from conftest import SHIPPED_STUDY, edit_json

DAY0 = dt.date(2025, 3, 3)


def test_windows_and_target_dates_of_the_protocol(study):
    v2, scr, att = study.visit("V2"), study.visit("SCR"), study.visit("ATT")
    assert schedule.day_window(v2) == (11, 17)
    assert schedule.target_date(v2, DAY0) == dt.date(2025, 3, 17)
    assert schedule.window_dates(v2, DAY0) == (dt.date(2025, 3, 14), dt.date(2025, 3, 20))
    assert schedule.window_dates(scr, DAY0) == (dt.date(2025, 2, 3), dt.date(2025, 3, 2))  # Day -28 to Day -1
    assert schedule.in_window(v2, dt.date(2025, 3, 20), DAY0) is True
    assert schedule.in_window(v2, dt.date(2025, 3, 21), DAY0) is False
    assert schedule.in_window(v2, dt.date(2025, 3, 21), None) is None  # no Day 0 yet: cannot tell
    # the attack visit counts from the onset, not from Day 0
    assert schedule.day_window(att) is None and schedule.target_date(att, DAY0) is None
    onset = dt.date(2025, 6, 2)
    assert schedule.in_window(att, dt.date(2025, 6, 9), DAY0, onset) is True
    assert schedule.in_window(att, dt.date(2025, 6, 10), DAY0, onset) is False


def test_day0_is_recorded_where_the_first_infusion_is(study):
    visit, form, item = schedule.day0_field(study)
    assert (visit.id, form, item) == ("V1", "EX", "EXSTDAT")
    conf = study.schedule
    assert conf.visit_date == FieldRef("SV", "SVSTDAT") and conf.anchor("attack onset") == FieldRef("ATT", "CESTDAT")


def test_the_workbook_calendar_names_the_day0_cell_of_the_schedule(study):
    from crf.fieldmap import defined_name
    from crf.xlsx import Builder

    assert Builder(study, "01", "01-001", None).day0_ref == defined_name("V1", "EX", "EXSTDAT")


@pytest.mark.parametrize("key, value, pointer", [
    ("visit_date", "SV.NOSUCH", "/schedule/visit_date"),
    ("infusion_date", "EXSTDATE", "/schedule/infusion_date"),
    ("anchors", {"attack onset": "ATT.ONSET"}, "/schedule/anchors/attack onset"),
])
def test_a_schedule_naming_an_item_no_form_has_is_a_load_error(tmp_path, key, value, pointer):
    folder = tmp_path / "study"
    shutil.copytree(SHIPPED_STUDY, folder)
    edit_json(folder / "study.json", lambda doc: doc["schedule"].update({key: value}))
    with pytest.raises(StudyDefinitionError) as info:
        load_study(folder)
    assert any(str(p).startswith(f"study.json#{pointer}") for p in info.value.problems), info.value.problems


def test_a_study_without_a_schedule_has_no_day0_and_no_schedule_findings(mini_study, tmp_path):
    """The mini study (no `schedule`): nothing records Day 0, so no window can be checked or reported."""
    import json

    from crf.validation import validate

    assert mini_study.schedule.visit_date is None and schedule.day0_field(mini_study) is None
    visit = mini_study.visits[0]
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"study": mini_study.id, "site": "01", "subject": "01-001", "visits": {visit.id: {}}, "logs": {}}))
    findings = validate(mini_study, [path], jobs=1, today=DAY0).findings
    assert not [f for f in findings if f.category == "visit window"]
