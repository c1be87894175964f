"""validate.py --format odm: returned data as ODM 1.3.2 ClinicalData, valid by the official XSD, every value
of the files read present once, findings as annotations. Inputs: the subjects written by hand from the spec
(tests/fixtures/subjects) and records REDCap exported (shared/realworld), never synth output."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from lxml import etree

from crf.interop.odm import ODM_NS, xsd_errors
from crf.interop.odm_clinical import clinical_odm
from crf.interop.redcap import read_redcap, records_to_documents
from crf.interop.studywriter import write_study
from crf.subject import SubjectRecord

from conftest import ODM_XSD, ROOT

NS = {"odm": ODM_NS}
SUBJECTS = ROOT / "tests" / "fixtures" / "subjects"


def _count_values(doc: dict) -> int:
    visits = sum(1 for forms in doc["visits"].values() for values in forms.values() for v in values.values() if v not in (None, "", []))
    logs = sum(1 for rows in doc.get("logs", {}).values() for row in rows for v in row.values() if v not in (None, "", []))
    return visits + logs


def test_validate_writes_xsd_valid_clinical_data_with_every_value_read(tmp_path, realworld):
    returned = tmp_path / "returned"
    shutil.copytree(SUBJECTS, returned)
    # one subject with a problem: a systolic pressure below the diastolic one
    doc = json.loads((returned / "01-901.json").read_text())
    visit = next(v for v, forms in doc["visits"].items() if "VS_PRE" in forms and "SYSBP" in forms["VS_PRE"])
    doc["visits"][visit]["VS_PRE"]["SYSBP"] = 60
    (returned / "01-901.json").write_text(json.dumps(doc))
    out = tmp_path / "data.xml"
    run = subprocess.run([sys.executable, str(ROOT / "validate.py"), str(returned), "--format", "odm", "--output", str(out), "--today", "2026-11-25"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode in (0, 1), run.stderr
    data = out.read_bytes()
    assert xsd_errors(data, ODM_XSD) == []
    root = etree.fromstring(data)
    subjects = root.findall("odm:ClinicalData/odm:SubjectData", NS)
    assert sorted(s.get("SubjectKey") for s in subjects) == ["01-901", "01-902"]
    docs = {p.stem: json.loads(p.read_text()) for p in returned.glob("*.json")}
    for s in subjects:
        assert len(s.findall(".//odm:ItemData", NS)) == _count_values(docs[s.get("SubjectKey")])
    sysbp = root.find(f".//odm:SubjectData[@SubjectKey='01-901']/odm:StudyEventData[@StudyEventOID='SE.{visit}']//odm:ItemData[@ItemOID='IT.VS.SYSBP']", NS)
    assert sysbp.get("Value") == "60"
    assert any("EC-19" in c.text for c in sysbp.findall("odm:Annotation/odm:Comment", NS))
    ae_rows = root.findall(".//odm:SubjectData[@SubjectKey='01-901']//odm:FormData[@FormOID='F.LOG.AE']/odm:ItemGroupData", NS)
    assert [g.get("ItemGroupRepeatKey") for g in ae_rows] == [str(n) for n in range(1, len(docs["01-901"]["logs"].get("AE", [])) + 1)]
    # odmlib reads it back and every OID reference (ClinicalData to metadata) resolves
    odmlib_loader = pytest.importorskip("odmlib.loader")
    from odmlib import odm_loader
    from odmlib.oid_generator import create_oid_checker

    loader = odmlib_loader.ODMLoader(odm_loader.XMLODMLoader(model_package="odm_1_3_2", ns_uri=ODM_NS))
    loader.open_odm_document(str(out))
    odm = loader.load_odm()
    checker = create_oid_checker("odm_1_3_2")
    odm.verify_oids(checker)
    assert checker.check_oid_refs() and len(odm.ClinicalData[0].SubjectData) == 2
    # the same run twice: the same bytes
    again = tmp_path / "again.xml"
    subprocess.run([sys.executable, str(ROOT / "validate.py"), str(returned), "--format", "odm", "--output", str(again), "--today", "2026-11-25"],
                   capture_output=True, cwd=tmp_path)
    assert again.read_bytes() == data


def test_records_redcap_exported_become_valid_clinical_data(realworld, tmp_path):
    imp = read_redcap(realworld / "redcap-dd" / "redcapr_longitudinal" / "dictionary.csv")
    study = write_study(imp.draft, tmp_path / "study")
    docs, _ = records_to_documents(imp, study, realworld / "redcap-dd" / "redcapr_longitudinal" / "data.csv")
    data = clinical_odm(study, [SubjectRecord.from_json(d) for d in docs], [])
    assert xsd_errors(data, ODM_XSD) == []
    root = etree.fromstring(data)
    assert len(root.findall(".//odm:SubjectData", NS)) == 3
    gym = root.find(".//odm:SubjectData[@SubjectKey='100']//odm:ItemData[@ItemOID='IT.DEMOGRAPHI.AEROBICS']", NS)
    assert gym.get("Value") == "1|2"  # a multi-select: its codes separated by "|" (docs/interop.md)


CLINICAL_FILES = ["odmlib_virus-study_metadata+clinicaldata_odm132.xml", "openclinica3_full-extract_odm13-oc-ext.xml",
                  "redcap_longitudinal-project_odm131-redcap-ext.xml", "redcap_visits-project_odm131-redcap-ext.xml"]
TYPE_RULES = {"FIELD-TYPE", "NOT-A-NUMBER", "DATE-INVALID", "TIME-INVALID", "FIELD-FORMAT", "FIELD-INVALID", "FIELD-UNKNOWN",
              "FORM-UNKNOWN", "UNKNOWN-VISIT", "FIELD-TOO-LONG", "LOG-STRUCTURE", "JSON-STRUCTURE"}


@pytest.mark.parametrize("name", CLINICAL_FILES)
def test_clinical_data_of_real_odm_files_convert_and_validate_without_a_type_finding(realworld, tmp_path, name):
    from crf.interop.odm_import import clinical_to_documents, read_odm_with_maps
    from crf.validation import validate

    source = realworld / "odm" / name
    draft, maps = read_odm_with_maps(source)
    study = write_study(draft, tmp_path / "study")
    docs, _ = clinical_to_documents(source, maps, study)
    (tmp_path / "docs").mkdir()
    for n, doc in enumerate(docs):
        (tmp_path / "docs" / f"{n}.json").write_text(json.dumps(doc))
    values = sum(1 for d in docs for forms in d["visits"].values() for v in forms.values() for _ in v) + \
        sum(1 for d in docs for rows in d["logs"].values() for r in rows for _ in r)
    expected_subjects = {"odmlib_virus": 2, "openclinica3": 13, "redcap_longitudinal": 3, "redcap_visits": 1}
    assert len(docs) == next(n for k, n in expected_subjects.items() if name.startswith(k)) and values > 40
    result = validate(study, [tmp_path / "docs"], jobs=1)
    assert [f"{f.rule} {f.field}: {f.message}" for f in result.findings if f.rule in TYPE_RULES] == []
    if name.startswith("openclinica3"):
        # the extract's own inconsistency: values 2 and 99 recorded against code list CL_7 (1, 4, 999), of another CRF version
        assert {f.value for f in result.findings if f.rule == "FIELD-CHOICE"} <= {2, 99}


def test_returned_data_round_trip_through_odm_clinical_data(tmp_path):
    """Hand-written subjects -> validate.py --format odm -> import odm --subjects: the same values come back."""
    out = tmp_path / "data.xml"
    subprocess.run([sys.executable, str(ROOT / "validate.py"), str(SUBJECTS), "--format", "odm", "--output", str(out), "--today", "2026-11-25"],
                   capture_output=True, cwd=tmp_path, check=False)
    run = subprocess.run([sys.executable, str(ROOT / "build_crf.py"), "import", "odm", str(out), "--out", str(tmp_path / "study"),
                          "--subjects", str(tmp_path / "back")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    data = out.read_bytes()
    assert xsd_errors(data, ODM_XSD) == []
    events = [(e.get("StudyEventOID"), e.get("StudyEventRepeatKey")) for e in etree.fromstring(data).iterfind(
        f".//{{{ODM_NS}}}SubjectData[@SubjectKey='01-901']/{{{ODM_NS}}}StudyEventData")]
    assert [e for e in events if e[1] is not None] == [("SE.ATT", "1"), ("SE.ATT", "2"), ("SE.UNS", "1")]  # ATT#1, ATT#2, UNS#1
    for original in SUBJECTS.glob("*.json"):
        sent = json.loads(original.read_text())
        back = json.loads((tmp_path / "back" / original.name).read_text())
        assert back["visits"] == {v: {f: {i: x for i, x in vals.items() if x not in (None, "", [])} for f, vals in forms.items() if any(x not in (None, "", []) for x in vals.values())}
                                  for v, forms in sent["visits"].items() if forms}
        assert back["logs"] == {k: rows for k, rows in sent.get("logs", {}).items() if rows}
