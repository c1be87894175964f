"""One problem, one finding: planted problems in the hand-written subject, each reported once, where it is.

Each plant changes the hand-written subject in one place, chosen from the spec's wording. The test counts
findings per (subject, visit, form, field, log row): at most one query or error and at most one deviation
(a deviation records what happened, for the deviation log; the query asks the site about the data).
"""
from __future__ import annotations

from collections import Counter
from typing import Callable

import pytest

from crf.findings import Finding, Severity
from crf.rules.supersede import Supersession, supersede
from findings_cases import base, chain, form, remove, run, set_row, set_values, where


NOT_GIVEN = ("EXSTDAT", "EXSTTIM", "EXENDAT", "EXENTIM", "EXWT", "EXDOSE", "EXVOL", "EXDILU", "N120", "N400", "EXLOT", "EXINTP", "PREMED", "IRR")
PLANTS: dict[str, Callable[[dict], None]] = {
    "consent date in 2099": set_values("SCR", "IC", DSSTDAT="2099-03-03"),
    "contraception blank (WOCBP)": remove("SCR", "DM", "CONTRAC"),
    "childbearing potential blank (female)": remove("SCR", "DM", "CHILDPOT"),
    "EDSS 0.5": set_values("V1", "EDSS", EDSS=0.5),
    "EDSS 10 without death": set_values("ET", "EDSS", EDSS=10.0),
    "neutrophils 0.8, significance blank": chain(set_values("V3", "HEM", NEUT=0.8), remove("V3", "HEM", "LBCLSIG")),
    "weight 125 kg at V3": set_values("V3", "VS_PRE", WEIGHT=125.0),
    "weight 300 kg (impossible)": set_values("V2", "VS_PRE", WEIGHT=300.0),
    "systolic 260": set_values("V1", "VS_PRE", SYSBP=260),
    "systolic 85": set_values("V1", "VS_PRE", SYSBP=85),
    "systolic below diastolic": set_values("V2", "VS_POST", SYSBP=70, DIABP=72),
    "fever before infusion": set_values("V2", "VS_PRE", TEMP=38.4),
    "ALT 150, significant": set_values("V3", "CHEM", ALT=150, LBCLSIG="Y"),
    "criterion IN03 blank": remove("SCR", "IE", "IN03"),
    "all criteria met but EX02 Yes": set_values("SCR", "IE", EX02="Y"),
    "AE serious, no criterion": set_row("AE", 0, AESER="Y"),
    "AE end before start": set_row("AE", 0, AEENDAT="2025-04-06"),
    "AE not ongoing, no end date": lambda doc: doc["logs"]["AE"][0].pop("AEENDAT"),
    "infusion not given, no reason": chain(set_values("V3", "EX", EXYN="N"), remove("V3", "EX", *NOT_GIVEN)),
    "dose 800 mg for 67.6 kg": set_values("V2", "EX", EXDOSE=800, N120=4, N400=1),
    "vials insufficient": set_values("V1", "EX", N120=2, N400=1),
    "dextrose diluent": set_values("V2", "EX", EXDILU="DEXTROSE"),
    "infusion of 30 minutes": set_values("V3", "EX", EXENTIM="09:55"),
    "visual FS 7": set_values("V1", "EDSS", FSVIS=7),
    "PAQUAL Y for oral steroid": set_row("PA", 0, PARESC=["ORAL STEROID"], PAQUAL="Y"),
    "AQP4 negative": set_values("SCR", "NMO", AQP4RES="NEGATIVE"),
    "birth date after consent": set_values("SCR", "DM", BRTHDAT="2025-04-01"),
    "age 17 at consent": set_values("SCR", "DM", BRTHDAT="2008-01-01"),
    "V2 a week late": set_values("V2", "SV", SVSTDAT="2025-04-14"),
    "visit date in the future": set_values("ET", "SV", SVSTDAT="2026-05-12"),
    "medication end before start": set_row("CM", 1, CMENDAT="2025-04-01"),
    "rituximab during treatment": lambda doc: doc["logs"]["CM"].append(
        {"CMTRT": "Rituximab", "CMCAT": "OTHER", "CMINDC": "NMOSD", "CMSTDAT": "2025-04-28", "CMONGO": "Y", "CMROUTE": "INTRAVENOUS"}),
    "attack count 1, log empty": set_values("ET", "EOS", NATT=1),
    "positive pregnancy test at V2": set_values("V2", "PREG", HCG="POSITIVE"),
    "pre-infusion vitals after the start": set_values("V1", "VS_PRE", VSTIM="09:45"),
    "infusion reaction without AE": set_values("V3", "EX", IRR="Y"),
    "first symptom after diagnosis": set_values("SCR", "NMO", MHSTDAT="2022-03"),
    "screening 42 days before Day 0": chain(set_values("SCR", "SV", SVSTDAT="2025-02-10"), set_values("SCR", "IC", DSSTDAT="2025-02-07")),
}


def _places(findings: list[Finding]) -> Counter:
    return Counter((f.subject, "" if f.row is not None else f.visit, f.form, f.field, f.row,
                    f.severity in (Severity.MAJOR, Severity.MINOR)) for f in findings)


@pytest.mark.parametrize("name", sorted(PLANTS))
def test_each_planted_problem_is_reported_once_where_it_is(study, tmp_path, name):
    doc = base()
    PLANTS[name](doc)
    findings = run(study, doc, tmp_path)
    assert findings, f"{name}: no finding"
    repeated = {place: n for place, n in _places(findings).items() if n > 1}
    assert not repeated, f"{name}: " + "; ".join(f"{f.rule} {f.visit} {f.form}.{f.field}: {f.message}" for f in findings)


def test_consent_date_in_the_future_is_one_finding(study, tmp_path):
    doc = base()
    PLANTS["consent date in 2099"](doc)
    assert where(run(study, doc, tmp_path)) == [("EC-01", "SCR", "IC", "DSSTDAT", None)]


def test_procedures_before_consent_once_per_visit_listing_the_forms(study, tmp_path):
    doc = base()
    form(doc, "SCR", "IC")["DSSTDAT"] = "2025-03-06"  # the screening procedures are dated the day before
    findings = run(study, doc, tmp_path)
    assert where(findings) == [("EC-02", "SCR", "SV", "SVSTDAT", None), ("PD-01", "SCR", "SV", "SVSTDAT", None)]
    ec02 = next(f for f in findings if f.rule == "EC-02")
    for title in ("Vital signs", "Haematology", "Eligibility", "EDSS"):
        assert title in ec02.message


def test_weight_change_keeps_its_own_message(study, tmp_path):
    doc = base()
    PLANTS["weight 125 kg at V3"](doc)
    ec20 = [f for f in run(study, doc, tmp_path) if f.field == "WEIGHT"]
    assert [f.rule for f in ec20] == ["EC-20"]
    assert "recalculate the dose" in ec20[0].message


def test_an_impossible_weight_is_the_range_error_not_a_weight_change(study, tmp_path):
    doc = base()
    PLANTS["weight 300 kg (impossible)"](doc)
    found = [(f.rule, f.severity) for f in run(study, doc, tmp_path) if f.field == "WEIGHT"]
    assert found == [("EC-18", Severity.ERROR)]


def test_grade_3_lab_keeps_its_own_message(study, tmp_path):
    doc = base()
    PLANTS["neutrophils 0.8, significance blank"](doc)
    findings = run(study, doc, tmp_path)
    assert where(findings) == [("EC-23", "V3", "HEM", "LBCLSIG", None), ("EC-25", "V3", "HEM", "NEUT", None)]
    assert "adverse event" in next(f for f in findings if f.rule == "EC-25").message


def _finding(rule: str, severity: Severity, field: str = "WEIGHT", cell: str = "") -> Finding:
    return Finding(rule=rule, severity=severity, category="range", message=rule, subject="01-101", visit="V3", form="VS_PRE",
                   field=field, sheet="V3" if cell else "", cell=cell)


def test_a_rule_never_hides_a_more_severe_finding():
    error = _finding("FIELD-RANGE", Severity.ERROR, cell="D12")
    query = _finding("EC-20", Severity.QUERY)
    assert supersede([error, query], {"EC-20": (Supersession("FIELD-RANGE"),)}) == [error, query]


def test_the_kept_finding_takes_the_cell_of_the_one_it_supersedes():
    soft = _finding("SOFT-LIMIT", Severity.QUERY, cell="D12")
    rule = _finding("EC-20", Severity.QUERY)
    kept = supersede([soft, rule], {"EC-20": (Supersession("SOFT-LIMIT"),)})
    assert [(f.rule, f.message, f.cell) for f in kept] == [("EC-20", "EC-20", "D12")]


def test_two_rules_declaring_each_other_do_not_both_vanish():
    a, b = _finding("EC-20", Severity.QUERY), _finding("EC-18", Severity.QUERY)
    kept = supersede([a, b], {"EC-20": (Supersession("EC-18"),), "EC-18": (Supersession("EC-20"),)})
    assert len(kept) == 1
