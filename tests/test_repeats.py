"""Repeating visits as study data: each attack its own attack visit (ATT#1, ATT#2 ...), unscheduled visits (UNS#n).

The subject is the hand-written 01-901 (tests/fixtures/subjects): two attacks, each with its attack visit linked
to its attack-log row by the attack number, and an unscheduled visit with a repeat laboratory test and a urine
pregnancy test. Every case changes it in one place, chosen from the spec's wording (schedule: ATT "<= 7 d after
onset", ET / UNS "any"; EC-57: attack EDSS within 7 days of onset; PD-14: WOCBP infused without a negative test).
"""
from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import openpyxl
import pytest

from crf.readers import read_file
from crf.subject import SubjectRecord
from crf.validation import validate
from crf.xlsx import workbook_bytes

from findings_cases import COMPLETER_TODAY, completer, move_visit
from test_site_edits import HERE, SYSTEM_PYTHON, _uno_available


def _run(study, doc, tmp_path: Path) -> list:
    path = tmp_path / "01-901.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return validate(study, [path], jobs=1, today=COMPLETER_TODAY).findings


def _where(findings, rule=None):
    return sorted((f.rule, f.visit, f.form, f.field, f.row) for f in findings if rule is None or f.rule == rule)


def test_the_hand_written_subject_has_two_attacks_and_an_unscheduled_visit():
    doc = completer()
    assert [k for k in doc["visits"] if "#" in k] == ["ATT#1", "ATT#2", "UNS#1"]
    assert [doc["visits"][f"ATT#{n}"]["ATT"]["CESPID"] for n in (1, 2)] == [row["CESPID"] for row in doc["logs"]["CE"]] == [1, 2]


def test_an_attacks_edss_is_looked_for_in_that_attacks_own_visit(study, tmp_path):
    """Attack 1 not assessed at its visit; attack 2's visit EDSS falls within attack 1's 7 days but is attack 2's."""
    doc = completer()
    del doc["visits"]["ATT#1"]["EDSS"]
    for values in doc["visits"]["ATT#2"].values():  # attack 2 began two days after attack 1, seen on its day 1
        for key, value in list(values.items()):
            if value in ("2025-11-14", "2025-11-12"):
                values[key] = "2025-06-05" if value == "2025-11-14" else "2025-06-04"
    doc["logs"]["CE"][1].update(CESTDAT="2025-06-04", CEENDAT="2025-06-25")
    doc["logs"]["CM"][3].update(CMSTDAT="2025-06-05", CMENDAT="2025-06-09")
    found = _run(study, doc, tmp_path)
    assert ("EC-57", "", "CE", "ATTEDSS", 1) in _where(found, "EC-57")  # attack 1: no EDSS at its own visit
    assert ("EC-57", "", "CE", "ATTEDSS", 2) not in _where(found, "EC-57")  # attack 2: assessed at its visit, on time


def test_an_attack_without_a_linked_visit_takes_an_edss_of_a_visit_not_linked_to_another_attack(study, tmp_path):
    doc = completer()
    doc["visits"]["UNS#1"] = doc["visits"].pop("ATT#1")  # attack 1 seen at an unscheduled visit instead
    uns = doc["visits"]["UNS#1"]
    del uns["ATT"]
    uns["SV"]["SVREAS"] = "Attack seen at the clinic on the day of the call"
    uns["EDSS"]["RSCONTXT"] = "UNSCHEDULED"
    assert _where(_run(study, doc, tmp_path)) == []


def test_a_pregnancy_test_at_an_unscheduled_visit_counts(study, tmp_path):
    """PD-14: a WOCBP infused at V4 without the pre-infusion test at V4, but with a negative test 2 days before at UNS#1."""
    doc = completer()
    doc["visits"]["V4"]["PREG"] = {"LBPERF": "N", "LBREASND": "Urine sample not obtained before the infusion"}
    assert "PD-14" in {f.rule for f in _run(study, doc, tmp_path)}
    move_visit(doc, "UNS#1", "2025-03-06", "2025-03-20")
    assert "PD-14" not in {f.rule for f in _run(study, doc, tmp_path)}


def test_bad_repeats_are_clear_findings(study, tmp_path):
    doc = completer()
    del doc["visits"]["UNS#1"]["SV"]["SVSTDAT"]  # a repeat visit without its date
    doc["visits"]["UNS#1"]["EX"] = dict(doc["visits"]["V2"]["EX"])  # an infusion at an unscheduled visit: not allowed there
    doc["visits"]["ATT#2"]["ATT"]["CESPID"] = 3  # an attack visit linked to no attack
    doc["visits"]["ATT"] = doc["visits"]["ATT#1"]  # a repeating visit without its number
    found = _run(study, doc, tmp_path)
    got = {(f.rule, f.visit, f.form, f.field): f.message for f in found}
    assert "repeats: key each of its visits with its number (ATT#1, ATT#2 ...)" in got[("UNKNOWN-VISIT", "ATT", "", "")]
    assert "Visit UNS#1 'Unscheduled visit 1'" in got[("FIELD-REQUIRED", "UNS#1", "SV", "SVSTDAT")]
    assert "collects only these forms: SV, VS, HEM, CHEM, PREG, EDSS" in got[("FORM-UNKNOWN", "UNS#1", "EX", "")]
    assert "the attack log has no attack 3" in got[("LNK-01", "ATT#2", "ATT", "CESPID")]
    assert "Visit ATT#2 'Attack visit 2'" in got[("LNK-01", "ATT#2", "ATT", "CESPID")]


def test_the_workbook_offers_blank_repeat_sheets_and_says_how_to_use_them(study, tmp_path):
    record = SubjectRecord.from_json(completer())
    path = tmp_path / "BEL-NMOSD_01-901.xlsx"
    path.write_bytes(workbook_bytes(study, record.site, record.subject, record))
    wb = openpyxl.load_workbook(path)
    assert [n for n in wb.sheetnames if n.startswith(("ATT", "UNS"))] == [
        "ATT 1 Attack visit", "ATT 2 Attack visit", "ATT 3 Attack visit", "ATT 4 Attack visit",
        "UNS 1 Unscheduled visit", "UNS 2 Unscheduled visit", "UNS 3 Unscheduled visit"]
    steps = " ".join(str(c.value) for row in wb["Instructions"].iter_rows() for c in row if c.value)
    assert "Attack visits: this workbook has 4 blank sheets ('ATT 1 Attack visit' to 'ATT 4 Attack visit')" in steps
    assert "give the number of its row in the NMOSD attacks (on study) log (CESPID)" in steps
    assert "do not copy a sheet" in steps
    assert wb.defined_names["F_ATT_2__ATT__CESPID"].attr_text == "'ATT 2 Attack visit'!$D$11"
    assert wb["ATT 2 Attack visit"]["D11"].value == 2 and wb["ATT 3 Attack visit"]["D11"].value is None
    calendar = [row[0] for row in wb["Visit calendar"].iter_rows(min_row=10, values_only=True)]
    assert "ATT#1" in calendar and "UNS#3" in calendar
    read = read_file(path, path.name, study)
    assert read.findings == [] and [k for k in read.subject.record.visits if "#" in k] == ["ATT#1", "ATT#2", "UNS#1"]


@pytest.mark.libreoffice
def test_a_third_attack_typed_on_the_next_blank_sheet_in_libreoffice_is_read(study, tmp_path):
    if not _uno_available():
        pytest.skip("LibreOffice with python3-uno is not installed; `make test` installs them")
    record = SubjectRecord.from_json(completer())
    source = tmp_path / "BEL-NMOSD_01-901.xlsx"
    source.write_bytes(workbook_bytes(study, record.site, record.subject, record))
    names = openpyxl.load_workbook(source).defined_names

    def cell(name: str) -> str:
        return names[name].attr_text.split("!")[1].replace("$", "")
    sheet = "ATT 3 Attack visit"
    steps = [{"do": "type", "sheet": sheet, "cell": cell("F_ATT_3__SV__SVSTDAT"), "value": "2026-01-10"},
             {"do": "type", "sheet": sheet, "cell": cell("F_ATT_3__ATT__CESPID"), "value": 3},
             {"do": "type", "sheet": sheet, "cell": cell("F_ATT_3__ATT__CESTDAT"), "value": "2026-01-08"}]
    actions = tmp_path / "actions.json"
    actions.write_text(json.dumps(steps))
    saved = tmp_path / "out" / source.name
    saved.parent.mkdir()
    run = subprocess.run([str(SYSTEM_PYTHON), str(HERE / "lo_driver.py"), str(source), str(saved), str(actions)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    read = read_file(saved, saved.name, study).subject.record
    assert read.visits["ATT#3"] == {"SV": {"SVSTDAT": "2026-01-10"}, "ATT": {"CESPID": 3, "CESTDAT": "2026-01-08"}}
    found = validate(study, [saved], jobs=1, today=dt.date(2026, 11, 25)).findings
    at3 = sorted((f.rule, f.form) for f in found if f.visit == "ATT#3")
    assert ("LNK-01", "ATT") in at3  # attack 3 is not in the attack log yet
    assert {("FORM-MISSING", form) for form in ("VS", "HEM", "CHEM", "EDSS")} <= set(at3)
    assert not [f for f in found if f.rule in ("SHEET-COPIED", "VALUE-OUTSIDE-FORM")]
