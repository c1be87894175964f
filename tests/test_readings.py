"""The spec's rules read exactly: each case is planted by hand in the hand-written subject, from the spec's wording."""
from __future__ import annotations

import pytest

from findings_cases import base, form, run, where


def test_hand_written_subject_validates_clean(study, tmp_path):
    assert run(study, base(), tmp_path) == []


def test_ec13_blank_contraception_does_not_support_ex04_no(study, tmp_path):
    # spec EC-13: "EX04=N, CHILDPOT=Y, and HCG positive or CONTRAC != Y": a blank CONTRAC is not Y
    doc = base()
    del form(doc, "SCR", "DM")["CONTRAC"]
    findings = run(study, doc, tmp_path)
    assert where(findings, "EC-13") == [("EC-13", "SCR", "IE", "EX04", None)]  # once: contraception is a screening answer


def test_ec13_contraception_no_and_a_positive_day0_test_each_reported(study, tmp_path):
    doc = base()
    form(doc, "SCR", "DM")["CONTRAC"] = "N"
    form(doc, "V1", "PREG")["HCG"] = "POSITIVE"
    assert where(run(study, doc, tmp_path), "EC-13") == [("EC-13", "SCR", "IE", "EX04", None), ("EC-13", "V1", "IE", "EX04", None)]


def test_ae_onset_time_required_within_24_hours_after_an_infusion(study, tmp_path):
    # F11: "time required if onset <= 24 h after an infusion"; the headache began on the day of infusion 2
    doc = base()
    del doc["logs"]["AE"][0]["AESTTIM"]
    assert where(run(study, doc, tmp_path), "EC-45") == [("EC-45", "", "AE", "AESTTIM", 1)]


def test_ae_onset_time_not_required_days_after_an_infusion(study, tmp_path):
    doc = base()
    ae = doc["logs"]["AE"][0]
    del ae["AESTTIM"]
    ae["AESTDAT"], ae["AEENDAT"] = "2025-04-11", "2025-04-12"  # four days after infusion 2, long before infusion 3
    doc["logs"]["CM"][1].update(CMSTDAT="2025-04-11", CMENDAT="2025-04-11")
    assert where(run(study, doc, tmp_path), "EC-45") == []


def test_ec34_edss_10_reported_on_the_edss_form_where_it_was_recorded(study, tmp_path):
    doc = base()
    form(doc, "ET", "EDSS")["EDSS"] = 10.0
    found = [f for f in run(study, doc, tmp_path) if f.rule == "EC-34"]
    assert [(f.visit, f.form, f.field) for f in found] == [("ET", "EDSS", "EDSS")]
    assert "end-of-study form" in found[0].message and "DEATH" in found[0].message


@pytest.mark.parametrize("titre, ok", [("<1:10", True), ("1:160", True), ("1/160", False), ("positive", False)])
def test_aqp4_titre_accepts_the_way_a_negative_result_is_written(study, tmp_path, titre, ok):
    doc = base()
    form(doc, "SCR", "NMO")["AQP4TITR"] = titre
    assert (where(run(study, doc, tmp_path, stages=("fields",))) == []) is ok


def test_pd04_day0_urine_test_does_not_replace_the_screening_serum_test(study, tmp_path):
    # spec PD-04: the eligibility pregnancy test (schedule: S at screening) missing at first dose
    doc = base()
    del form(doc, "SCR", "PREG")["HCG"]
    form(doc, "SCR", "PREG")["LBPERF"] = "N"
    form(doc, "SCR", "PREG")["LBREASND"] = "Forgotten"
    del form(doc, "SCR", "PREG")["LBDAT"]
    findings = run(study, doc, tmp_path)
    assert [(f.rule, f.severity.value) for f in findings if f.rule == "PD-04"] == [("PD-04", "major deviation")]


def test_pd04_no_finding_for_a_woman_without_childbearing_potential(study, tmp_path):
    doc = base()
    dm = form(doc, "SCR", "DM")
    dm["CHILDPOT"] = "N"
    del dm["CONTRAC"]
    del form(doc, "SCR", "PREG")["HCG"]
    form(doc, "SCR", "PREG")["LBPERF"] = "NA"
    del form(doc, "SCR", "PREG")["LBDAT"]
    assert where(run(study, doc, tmp_path), "PD-04") == []


def test_derived_value_sent_that_disagrees_with_its_derivation_is_reported(study, tmp_path):
    # F4: PAQUAL is derived (D); EC-16: "Rescue = NONE or oral steroid only, but PAQUAL=Y"
    doc = base()
    doc["logs"]["PA"][0].update(PARESC=["ORAL STEROID"], PAQUAL="Y")
    findings = run(study, doc, tmp_path)
    assert ("EC-16", "", "PA", "PAQUAL", 1) in where(findings)


def test_derived_value_sent_that_agrees_is_not_reported(study, tmp_path):
    doc = base()
    doc["logs"]["PA"][0]["PAQUAL"] = "Y"  # IV methylprednisolone: qualifying
    form(doc, "SCR", "DM")["AGE"] = 34
    assert run(study, doc, tmp_path) == []


def test_workbook_with_a_calculated_cell_typed_over_is_reported(study, tmp_path):
    from crf.subject import SubjectRecord
    from crf.xlsx import workbook_bytes
    from tests.badfiles import set_text

    doc = base()
    doc["logs"]["PA"][0]["PARESC"] = ["ORAL STEROID"]
    record = SubjectRecord.from_json(doc)
    data = set_text(workbook_bytes(study, "01", "01-101", record), "L_PA__R001__PAQUAL", "Y")
    path = tmp_path / "01-101.xlsx"
    path.write_bytes(data)
    from crf.validation import validate
    from findings_cases import TODAY
    findings = validate(study, [path], jobs=1, today=TODAY).findings
    assert ("EC-16", "", "PA", "PAQUAL", 1) in where(findings)
    assert all(f.sheet and f.cell for f in findings if f.field == "PAQUAL")
