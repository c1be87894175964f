"""Many findings wait in a temporary SQLite file, not in memory (issue 13, item 3), and the reports do not change.

The subjects are the hand-written ones of tests/fixtures (01-901, 01-902, and the base subject with problems planted
from the spec's wording); the run is made to spill after a few findings, and every report must be the same bytes
as the run that kept them in memory.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import tempfile
from pathlib import Path

import pytest

from crf import spill
from crf.reports import render
from crf.spill import SpilledFindings
from crf.validation import reading_order, validate
from tests.findings_cases import SUBJECTS, base, form
from tests.report_reference import many_findings

TODAY = dt.date(2026, 1, 1)
FORMATS = ("text", "json", "csv", "html", "xlsx")


@pytest.fixture(scope="module")
def returned(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("returned")
    for path in sorted(SUBJECTS.glob("*.json")):
        (folder / path.name).write_bytes(path.read_bytes())
    doc = base()
    form(doc, "V1", "VS_PRE")["SYSBP"] = 300  # above any blood pressure a patient has
    form(doc, "V1", "VS_PRE")["WEIGHT"] = "seventy"
    (folder / "planted.json").write_text(json.dumps(doc), encoding="utf-8")
    (folder / "copy-of-planted.json").write_text(json.dumps(doc), encoding="utf-8")  # the same subject twice
    (folder / "notes.json").write_text("{not json", encoding="utf-8")
    return folder


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_run_that_spills_writes_the_same_reports(study, returned, monkeypatch, jobs):
    kept = validate(study, [returned], jobs=jobs, today=TODAY, base=returned)
    assert isinstance(kept.findings, list) and len(kept.findings) > 20
    monkeypatch.setattr(spill, "SPILL_AFTER", 5)
    spilled = validate(study, [returned], jobs=jobs, today=TODAY, base=returned)
    assert isinstance(spilled.findings, SpilledFindings)
    assert list(spilled.findings) == kept.findings
    assert spilled.counts() == kept.counts() and spilled.needs_action == kept.needs_action
    assert spilled.counts_by_subject() == kept.counts_by_subject() and spilled.status_grid() == kept.status_grid()
    assert [o.finding_count for o in spilled.files] == [o.finding_count for o in kept.files]
    for fmt in FORMATS:
        assert render(spilled, fmt) == render(kept, fmt), fmt


def test_spilled_findings_come_back_in_reading_order_whatever_order_they_came_in(mini_study):
    result = many_findings(mini_study, 500)
    findings = list(result.findings)
    random.Random(13).shuffle(findings)
    store = SpilledFindings(reading_order(mini_study))
    store.add(findings)
    assert list(store.finish()) == sorted(findings, key=reading_order(mini_study)) == result.findings
    assert len(store) == 500 and store[0] == result.findings[0] and store[-1] == result.findings[-1]


def test_the_spill_file_leaves_nothing_behind(mini_study):
    before = set(Path(tempfile.gettempdir()).glob("open-ecrf-findings-*"))
    store = SpilledFindings(reading_order(mini_study))
    store.add(many_findings(mini_study, 50).findings)
    assert len(store.finish()) == 50
    assert set(Path(tempfile.gettempdir()).glob("open-ecrf-findings-*")) == before
    store.close()
