"""ODM 1.3.2 export of the study definition: valid by the official XSD, readable by odmlib, complete."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from lxml import etree

from crf.interop.odm import ODM_NS, xsd_errors
from crf.interop.odm_export import study_to_odm

from conftest import MINI_STUDY, ODM_XSD, ROOT

NS = {"odm": ODM_NS}


@pytest.fixture(scope="module")
def exported(study) -> bytes:
    return study_to_odm(study)


@pytest.fixture(scope="module")
def mdv(exported):
    return etree.fromstring(exported).find("odm:Study/odm:MetaDataVersion", NS)


def test_export_is_valid_against_the_official_odm_1_3_2_schema(exported, mini_study, realworld):
    errors = xsd_errors(exported, ODM_XSD)
    assert errors == [], "\n".join(errors)
    assert xsd_errors(study_to_odm(mini_study), ODM_XSD) == []


def test_the_schema_check_lists_every_error_with_its_line(exported, realworld):
    # a broken copy of our export: two faults, both must be reported, each with a line number
    broken = exported.replace(b'DataType="float"', b'DataType="decimal"', 1).replace(b'Repeating="No"', b'Repeating="Maybe"', 1)
    errors = xsd_errors(broken, ODM_XSD)
    assert len(errors) == 2 and all(e.startswith("line ") for e in errors), errors


def test_export_is_deterministic_and_dates_only_from_source_date_epoch(study, exported, monkeypatch):
    assert study_to_odm(study) == exported
    assert b'CreationDateTime="2000-01-01T00:00:00+00:00"' in exported
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764633600")
    assert b'CreationDateTime="2025-12-02T00:00:00+00:00"' in study_to_odm(study)


def test_odmlib_reloads_the_export_and_every_oid_reference_resolves(exported, study, tmp_path):
    odmlib_loader = pytest.importorskip("odmlib.loader")
    from odmlib import odm_loader
    from odmlib.oid_generator import create_oid_checker

    path = tmp_path / "study.xml"
    path.write_bytes(exported)
    loader = odmlib_loader.ODMLoader(odm_loader.XMLODMLoader(model_package="odm_1_3_2", ns_uri=ODM_NS))
    loader.open_odm_document(str(path))
    odm = loader.load_odm()  # strict mode: odmlib's own conformance rules hold
    checker = create_oid_checker("odm_1_3_2")
    odm.verify_oids(checker)
    assert checker.check_oid_refs()
    mdv = odm.Study[0].MetaDataVersion[0]
    assert len(mdv.StudyEventDef) == len(study.visits) + 1  # the visits and the running logs
    assert len(mdv.ItemDef) == sum(len(f.items) for f in study.forms())
    assert len(mdv.CodeList) == len(study.codelists)


def test_visits_carry_day_0_offsets_and_windows_in_protocol_order(mdv):
    order = [ref.get("StudyEventOID") for ref in mdv.findall("odm:Protocol/odm:StudyEventRef", NS)]
    assert order[:3] == ["SE.SCR", "SE.V1", "SE.V2"] and order[-1] == "SE.LOGS"
    v2 = mdv.find("odm:StudyEventDef[@OID='SE.V2']", NS)
    aliases = {a.get("Context"): a.get("Name") for a in v2.findall("odm:Alias", NS)}
    assert aliases["open-ecrf:day"] == "14" and aliases["open-ecrf:window"] == "-3/+3"
    att = mdv.find("odm:StudyEventDef[@OID='SE.ATT']", NS)
    assert att.get("Type") == "Unscheduled"
    assert {a.get("Context"): a.get("Name") for a in att.findall("odm:Alias", NS)}["open-ecrf:window-anchor"] == "attack onset"


def test_repeating_visits_are_repeating_study_events(mdv):
    """Each attack its attack visit, any number of unscheduled visits: StudyEventDef Repeating="Yes", the rest "No"."""
    repeating = {ev.get("OID") for ev in mdv.findall("odm:StudyEventDef", NS) if ev.get("Repeating") == "Yes"}
    assert repeating == {"SE.ATT", "SE.UNS"}
    att = {a.get("Context"): a.get("Name") for a in mdv.find("odm:StudyEventDef[@OID='SE.ATT']", NS).findall("odm:Alias", NS)}
    assert att["open-ecrf:repeat-sheets"] == "4"
    assert json.loads(att["open-ecrf:repeat-link"]) == {"item": "ATT.CESPID", "log": "CE", "log_item": "CESPID"}
    uns = {a.get("Context"): a.get("Name") for a in mdv.find("odm:StudyEventDef[@OID='SE.UNS']", NS).findall("odm:Alias", NS)}
    assert uns["open-ecrf:repeat-sheets"] == "3" and "open-ecrf:repeat-link" not in uns


def test_items_keep_type_unit_hard_and_soft_limits_and_sdtm(mdv):
    temp = mdv.find("odm:ItemDef[@OID='IT.VS.TEMP']", NS)
    assert (temp.get("DataType"), temp.get("SignificantDigits")) == ("float", "1")
    assert temp.find("odm:MeasurementUnitRef", NS).get("MeasurementUnitOID") == "MU.C"
    checks = {(rc.get("SoftHard"), rc.get("Comparator"), rc.findtext("odm:CheckValue", namespaces=NS)) for rc in temp.findall("odm:RangeCheck", NS)}
    assert checks == {("Hard", "GE", "33"), ("Hard", "LE", "43"), ("Soft", "GE", "35.5"), ("Soft", "LT", "38")}
    fever = [rc for rc in temp.findall("odm:RangeCheck", NS) if rc.get("Comparator") == "LT"][0]
    assert "fever" in fever.findtext("odm:ErrorMessage/odm:TranslatedText", namespaces=NS)
    aliases = {a.get("Context"): a.get("Name") for a in temp.findall("odm:Alias", NS)}
    assert aliases["SDTM"] == "VS.VSORRES" and aliases["open-ecrf:sdtm-where"] == 'VSTESTCD = "TEMP"'


def test_conditions_and_derivations_are_condition_and_method_defs(mdv):
    ref = mdv.find("odm:ItemGroupDef/odm:ItemRef[@ItemOID='IT.DM.CHILDPOT']", NS)
    cond = mdv.find(f"odm:ConditionDef[@OID='{ref.get('CollectionExceptionConditionOID')}']", NS)
    expressions = {e.get("Context"): e.text for e in cond.findall("odm:FormalExpression", NS)}
    assert expressions["XPath"] == "not(../ItemData[@ItemOID='IT.DM.SEX'][@Value='F'])"
    assert expressions["open-ecrf"] == 'not (SEX in ["F"])'
    bmi = mdv.find("odm:ItemGroupDef/odm:ItemRef[@ItemOID='IT.VS.BMI']", NS)
    method = mdv.find(f"odm:MethodDef[@OID='{bmi.get('MethodOID')}']", NS)
    assert method.findtext("odm:FormalExpression", namespaces=NS) == "round(WEIGHT / (HEIGHT / 100) ** 2, 1)"


def test_logs_are_repeating_item_groups_and_instances_keep_fixed_values(mdv):
    ae = mdv.find("odm:ItemGroupDef[@OID='IG.LOG.AE']", NS)
    assert ae.get("Repeating") == "Yes"
    pre = mdv.find("odm:FormDef[@OID='F.VS_PRE']", NS)
    aliases = {a.get("Context"): a.get("Name") for a in pre.findall("odm:Alias", NS)}
    assert aliases["open-ecrf:fixed"] == '{"VSTPT": "PRE-INFUSION"}' and aliases["open-ecrf:form"] == "VS"
    pre_items = [r.get("ItemOID") for r in mdv.findall("odm:ItemGroupDef[@OID='IG.VS_PRE']/odm:ItemRef", NS)]
    assert "IT.VS.WEIGHT" in pre_items and "IT.VS.HEIGHT" not in pre_items  # omitted at dosing visits


def test_cli_writes_the_metadata_file(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "build_crf.py"), "odm", "--study", str(MINI_STUDY), "--out", str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    written = tmp_path / "MINI-odm-metadata.xml"
    assert written.is_file() and str(written) in run.stdout
