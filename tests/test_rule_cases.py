"""Every edit check and deviation (EC-01..EC-62, PD-01..PD-18): one case written by hand from the spec's wording.

Each case quotes the spec's rule (CRF spec section 3b / 4), plants that situation in a copy of a hand-written
subject (tests/fixtures/findings/base-subject.json, or issue 10's completer 01-901 for attacks and week 52) and
expects the rule among the findings. The plants are written from the wording, not from the rule's expression,
so a rule that reads the spec differently fails here.
"""
from __future__ import annotations

from typing import Any, Callable

import pytest

from crf.rules import RuleSet
from findings_cases import COMPLETER_TODAY, base, completer, move_visit
from findings_cases import chain as both
from findings_cases import remove as rm
from findings_cases import set_row as row
from findings_cases import set_values as s

Doc = dict[str, Any]
NOT_GIVEN = ("EXSTDAT", "EXSTTIM", "EXENDAT", "EXENTIM", "EXWT", "EXDOSE", "EXVOL", "EXDILU", "N120", "N400", "EXLOT", "EXINTP", "PREMED", "IRR")


def add(log: str, **values: Any) -> Callable[[Doc], None]:
    return lambda doc: doc["logs"].setdefault(log, []).append(values)


def v2_on(date: str) -> Callable[[Doc], None]:
    return lambda doc: move_visit(doc, "V2", "2025-04-07", date)


def drop_form(visit: str, name: str) -> Callable[[Doc], None]:
    return lambda doc: doc["visits"][visit].pop(name)


SAE = dict(AESER="Y", AESDTH="N", AESLIFE="N", AESHOSP="Y", AESDISAB="N", AESCONG="N", AESMIE="N", SAEAWDAT="2025-04-08", SAERPDAT="2025-04-08")
LIVE_VACCINE = dict(CMTRT="Yellow fever vaccine", CMCAT="VACCINE", CMLIVE="Y", CMINDC="Travel", CMDSTXT="0.5", CMDOSU="mL",
                    CMDOSFRQ="ONCE", CMROUTE="SUBCUTANEOUS", CMSTDAT="2025-03-10", CMONGO="N", CMENDAT="2025-03-10")
RITUXIMAB = dict(CMTRT="Rituximab", CMCAT="OTHER", CMINDC="NMOSD", CMDSTXT="1000", CMDOSU="mg", CMDOSFRQ="ONCE", CMROUTE="INTRAVENOUS",
                 CMSTDAT="2025-04-28", CMONGO="N", CMENDAT="2025-04-28")
ALL_FS_ZERO = dict(FSVIS=0, FSBS=0, FSPYR=0, FSCRB=0, FSSEN=0, FSBB=0, FSCBR=0)

# rule -> (the spec's words, the plant); "completer" cases use 01-901
CASES: dict[str, tuple[str, Callable[[Doc], None]]] = {
    "EC-01": ("DSSTDAT > today", s("SCR", "IC", DSSTDAT="2099-03-03")),
    "EC-02": ("Any screening procedure date < DSSTDAT", s("SCR", "IC", DSSTDAT="2025-03-06")),
    "EC-03": ("BRTHDAT >= DSSTDAT", s("SCR", "DM", BRTHDAT="2025-03-03")),
    "EC-04": ("AGE = floor(years from BRTHDAT to DSSTDAT) < 18", s("SCR", "DM", BRTHDAT="2007-03-04")),  # 17 the day before the 18th birthday
    "EC-05": ("CHILDPOT=Y with CONTRAC blank", rm("SCR", "DM", "CONTRAC")),
    "EC-06": ("IEYN=Y while any ... exclusion = Y", s("SCR", "IE", EX02="Y")),
    "EC-07": ("IN01=Y and AGE < 18", s("SCR", "DM", BRTHDAT="2008-01-01")),
    "EC-08": ("IN04=Y and screening EDSS > 6.0", s("SCR", "EDSS", EDSS=6.5)),
    "EC-09": ("IN05=Y and AQP4 != POSITIVE", s("SCR", "NMO", AQP4RES="INDETERMINATE")),
    "EC-10": ("IN02=Y with ... ALTDXEXC != Y", s("SCR", "NMO", ALTDXEXC="N")),
    "EC-11": ("IN03=Y but not (N12 >= 1 or N24 >= 2); qualifying = IV corticosteroid/IVIG/PLEX",
              both(row("PA", 0, PARESC=["ORAL STEROID"]), row("PA", 1, PARESC=["ORAL STEROID"]))),
    "EC-12": ("EX01=N and HIV ... positive", s("SCR", "SERO", HIV="POSITIVE")),
    "EC-13": ("EX04=N, CHILDPOT=Y, and ... CONTRAC != Y", s("SCR", "DM", CONTRAC="N")),
    "EC-14": ("EXYN=Y while IEYN != Y", s("SCR", "IE", IEYN="N")),
    "EC-15": ("Not (MHSTDAT <= DXDAT <= DSSTDAT)", s("SCR", "NMO", DXDAT="2025-04")),
    "EC-16": ("Rescue = NONE or oral steroid only, but PAQUAL=Y", row("PA", 1, PARESC=["NONE"], PAQUAL="Y")),
    "EC-17": ("AQP4 method not a cell-based assay", s("SCR", "NMO", AQP4METH="IIF")),
    "EC-18": ("Outside 3a limits (PULSE hard 30-220)", s("V1", "VS_PRE", PULSE=240)),
    "EC-19": ("SYSBP <= DIABP", s("V1", "VS_POST", SYSBP=100, DIABP=100)),
    "EC-20": ("Weight change > 10% vs W0", s("V3", "VS_PRE", WEIGHT=76.0)),
    "EC-21": ("Pre-infusion VS time > EXSTTIM", s("V1", "VS_PRE", VSTIM="09:45")),
    "EC-22": ("Pre-dose TEMP >= 38.0 with PREINF=N and dose given", s("V2", "VS_PRE", TEMP=38.0)),
    "EC-23": ("abnormal with LBCLSIG blank", both(s("V3", "HEM", HGB=95), rm("V3", "HEM", "LBCLSIG"))),
    "EC-24": ("LBCLSIG=Y after Day 0 with no AE within +/-7 d", s("V3", "CHEM", LBCLSIG="Y", LBCLSPEC="Glucose raised")),
    "EC-25": ("CTCAE grade >= 3 threshold met (PLAT < 50)", s("V3", "HEM", PLAT=40, LBCLSIG="Y", LBCLSPEC="Thrombocytopenia")),
    "EC-26": ("ALT or AST > 3 x ULN and BILI > 2 x ULN on the same date", s("V3", "CHEM", AST=200, BILI=60, LBCLSIG="Y", LBCLSPEC="AST, bilirubin")),
    "EC-27": ("WOCBP with no NEGATIVE HCG between EXSTDAT - 3 d and the infusion",
              both(s("V3", "PREG", LBPERF="N", LBREASND="Not done"), rm("V3", "PREG", "LBDAT", "HCG"))),
    "EC-28": ("HCG POSITIVE followed by a later infusion", s("V2", "PREG", HCG="POSITIVE")),
    "EC-29": ("EDSS not in {0, 1.0, 1.5 ... 9.5, 10}", s("SCR", "EDSS", EDSS=0.5)),
    "EC-30": ("FS ... out of range (F8: FSBS 0-5)", s("V1", "EDSS", FSBS=6)),
    "EC-31": ("AMBSC >= 3 and EDSS != map (4 -> 5.5)", s("V1", "EDSS", AMBSC=4)),
    "EC-32": ("EDSS 1.0-4.5 with all FS = 0", s("V1", "EDSS", **ALL_FS_ZERO)),
    "EC-33": ("EDSS != EDSSCALC", s("V1", "EDSS", EDSS=3.0)),
    "EC-34": ("EDSS = 10 and DSDECOD != DEATH", s("ET", "EDSS", EDSS=10.0)),
    "EC-35": ("abs(EXWT - same-visit weight) > 0.5 kg", s("V2", "EX", EXWT=68.5, EXDOSE=685)),
    "EC-36": ("abs(EXDOSE - 10 x EXWT) / (10 x EXWT) > 5%", s("V2", "EX", EXDOSE=720)),
    "EC-37": ("120 x N120 + 400 x N400 < EXDOSE", s("V1", "EX", N120=2, N400=1)),
    "EC-38": ("duration < 45 min", s("V3", "EX", EXENTIM="10:05")),
    "EC-39": ("Volume outside 225-275 mL", s("V1", "EX", EXVOL=300)),
    "EC-40": ("Infusion out of window (V2 Day 14 +/-3 d)", v2_on("2025-04-12")),
    "EC-41": ("EXYN=N and EXREASND blank", both(s("V3", "EX", EXYN="N"), rm("V3", "EX", *NOT_GIVEN))),
    "EC-42": ("IRR=Y ... with no AE starting EXSTDAT to +7 d flagged AESI IRR/HYPERSENSITIVITY", s("V3", "EX", IRR="Y", EXAENO=2)),
    "EC-43": ("PREMED=Y and no premedication CM on EXSTDAT", s("V2", "EX", PREMED="Y")),
    "EC-44": ("PREINF=Y and dose given", s("V2", "EX", PREINF="Y")),
    "EC-45": ("Start > end", row("AE", 0, AEENDAT="2025-04-06")),
    "EC-46": ("AETOXGR=5 without AEOUT=FATAL", row("AE", 0, AETOXGR=5)),
    "EC-47": ("AESER=Y with no criterion = Y", row("AE", 0, **{**SAE, "AESHOSP": "N"})),
    "EC-48": ("AEACN = DRUG WITHDRAWN, then a later dose", row("AE", 0, AEACN="DRUG WITHDRAWN")),
    "EC-49": ("SAE report date - awareness date > 1 d", row("AE", 0, **{**SAE, "SAERPDAT": "2025-04-11"})),
    "EC-50": ("AECONTRT=Y and no CM linked via CMAENO", lambda doc: doc["logs"]["CM"][1].pop("CMAENO")),
    "EC-51": ("Depression/suicide term without AESI = DEPRESSION/SUICIDALITY", row("AE", 0, AETERM="Depression")),
    "EC-52": ("Start > end", row("CM", 1, CMENDAT="2025-04-06")),
    "EC-53": ("Prohibited drug overlapping Day 0 to EOS", add("CM", **RITUXIMAB)),
    "EC-54": ("CMLIVE=Y with start in [Day 0 - 30 d, EOS]", add("CM", **LIVE_VACCINE)),
    "EC-55": ("end < onset (completer)", row("CE", 0, CEENDAT="2025-05-30")),
    "EC-56": ("INVCONF=Y with DUR24=N (completer)", row("CE", 0, DUR24="N")),
    "EC-57": ("No attack EDSS within 7 d of onset (completer)", drop_form("ATT#1", "EDSS")),
    "EC-58": ("Rescue given but no rescue CM linked to the attack (completer)", lambda doc: doc["logs"]["CM"][2].pop("CMATTNO")),
    "EC-59": ("DSSTDAT < last dose", s("ET", "EOS", DSSTDAT="2025-04-20")),
    "EC-60": ("NATT != NATTD", s("ET", "EOS", NATT=1)),
    "EC-61": ("ADVERSE EVENT without an AE with AEACN = DRUG WITHDRAWN", s("ET", "EOS", DSDECOD="ADVERSE EVENT", EOTREAS="ADVERSE EVENT")),
    "EC-62": ("Dates ... in the future", s("ET", "SV", SVSTDAT="2026-05-12")),
    "PD-01": ("Any study procedure before consent", s("SCR", "IC", DSSTDAT="2025-03-06")),
    "PD-02": ("Superseded ... ICF version; re-consent missing", s("SCR", "IC", ICVER="1.0")),
    "PD-03": ("Dosed with any ... exclusion = Y", s("SCR", "IE", EX03="Y")),
    "PD-04": ("Eligibility test (... pregnancy) missing at first dose", drop_form("SCR", "PREG")),
    "PD-05": ("Visit or infusion outside its window", v2_on("2025-04-12")),
    "PD-06": ("W52 assessments missing (completer)", drop_form("V15", "EDSS")),
    "PD-07": ("Dose > 10% away from 10 mg/kg x weight", s("V2", "EX", EXDOSE=800, N120=4, N400=1)),
    "PD-08": ("Dextrose diluent", s("V2", "EX", EXDILU="DEXTROSE")),
    "PD-09": ("Interval < 10 d (loading)", v2_on("2025-04-01")),
    "PD-10": ("Any loading dose missed", both(s("V2", "EX", EXYN="N", EXREASND="LOGISTICS"), rm("V2", "EX", *NOT_GIVEN))),
    "PD-11": ("Dosing after ... positive pregnancy test", s("V2", "PREG", HCG="POSITIVE")),
    "PD-12": ("Other B-cell ... biologics (e.g. rituximab)", add("CM", **RITUXIMAB)),
    "PD-13": ("Live vaccine <= 30 d before Day 0", add("CM", **LIVE_VACCINE)),
    "PD-14": ("WOCBP infused without a negative pregnancy test",
              both(s("V3", "PREG", LBPERF="N", LBREASND="Not done"), rm("V3", "PREG", "LBDAT", "HCG"))),
    "PD-15": ("Scheduled haematology ... missed", lambda doc: doc["visits"]["V3"].update(HEM={"LBPERF": "N", "LBREASND": "Sample haemolysed"})),
    "PD-16": ("SAE reported > 24 h after awareness", row("AE", 0, **{**SAE, "SAERPDAT": "2025-04-11"})),
    "PD-17": ("Attack EDSS > 7 d late (completer)", s("ATT#1", "EDSS", RSDAT="2025-06-12")),
    "LNK-01": ("Attack visit linked to no attack of the attack log (completer)", s("ATT#2", "ATT", CESPID=3)),
    "PD-18": ("Pre-infusion ... depression screen missing", s("V2", "EX", PREDEP="N")),
}
COMPLETER = {"EC-55", "EC-56", "EC-57", "EC-58", "PD-06", "PD-17", "LNK-01"}


def test_every_rule_of_the_study_has_a_hand_written_case(study):
    assert sorted(r.id for r in RuleSet.load(study).rules) == sorted(CASES)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fires_on_its_case_from_the_spec(study, tmp_path, rule_id):
    from crf.validation import validate
    import json
    from findings_cases import TODAY

    wording, plant = CASES[rule_id]
    doc = completer() if rule_id in COMPLETER else base()
    plant(doc)
    path = tmp_path / "subject.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    findings = validate(study, [path], jobs=1, today=COMPLETER_TODAY if rule_id in COMPLETER else TODAY).findings
    fired = [f for f in findings if f.rule == rule_id]
    assert fired, f"{rule_id} ({wording}) did not fire; found: " + "; ".join(f"{f.rule}: {f.message}" for f in findings)
    assert all(f.message and "{" not in f.message for f in fired)


# The other side of the spec's thresholds: the same situation just inside the rule, so no finding of it.
NEAR_MISSES: dict[str, tuple[str, str, Callable[[Doc], None]]] = {
    "weight +10% exactly": ("EC-20", "Weight change > 10% vs W0", s("V3", "VS_PRE", WEIGHT=74.8)),
    "temperature 37.9": ("EC-22", "Pre-dose TEMP >= 38.0", s("V2", "VS_PRE", TEMP=37.9)),
    "infusion of 45 minutes": ("EC-38", "duration < 45 min", s("V3", "EX", EXENTIM="10:10")),
    "weight used 0.5 kg off": ("EC-35", "abs(EXWT - same-visit weight) > 0.5 kg", s("V2", "EX", EXWT=68.1, EXDOSE=681)),
    "dose 5% over": ("EC-36", "> 5% query", s("V2", "EX", EXDOSE=709)),
    "V2 three days late": ("PD-05", "V2 window +/-3 d", v2_on("2025-04-10")),
    "SAE reported the next day": ("EC-49", "report date - awareness date > 1 d", row("AE", 0, **{**SAE, "SAERPDAT": "2025-04-09"})),
    "age 18 on the consent day": ("EC-04", "AGE < 18", s("SCR", "DM", BRTHDAT="2007-03-03")),
    "live vaccine 31 days before Day 0": ("PD-13", "Live vaccine <= 30 d before Day 0",
                                          add("CM", **{**LIVE_VACCINE, "CMSTDAT": "2025-02-21", "CMENDAT": "2025-02-21"})),
}


@pytest.mark.parametrize("name", sorted(NEAR_MISSES))
def test_rule_does_not_fire_just_inside_its_threshold(study, tmp_path, name):
    from findings_cases import run

    rule_id, wording, plant = NEAR_MISSES[name]
    doc = base()
    plant(doc)
    assert [f.message for f in run(study, doc, tmp_path) if f.rule == rule_id] == [], f"{rule_id} ({wording})"
