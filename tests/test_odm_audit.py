"""validate.py store odm: the study store's audit trail as a transactional ODM 1.3.2 file. A subject written by
hand from the spec is returned twice; the second return changes one value and clears another."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

from lxml import etree

from crf.interop.odm import ODM_NS, xsd_errors

from conftest import ODM_XSD, ROOT

NS = {"odm": ODM_NS}
SUBJECT = ROOT / "tests" / "fixtures" / "subjects" / "01-901.json"


def _run(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "validate.py"), *args], capture_output=True, text=True, cwd=cwd)


def test_the_audit_trail_is_a_valid_transactional_odm_file_with_who_when_why(tmp_path, realworld):
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    shutil.copy(SUBJECT, tmp_path / "first" / SUBJECT.name)
    doc = json.loads(SUBJECT.read_text())
    before = doc["visits"]["V1"]["VS_PRE"]
    old_sbp, old_pulse = before["SYSBP"], before["PULSE"]
    before["SYSBP"] = 60  # below the diastolic pressure: EC-19
    del before["PULSE"]
    (tmp_path / "second" / SUBJECT.name).write_text(json.dumps(doc))
    for folder, received in (("first", "2026-11-20T10:00"), ("second", "2026-11-25T10:00")):
        run = _run(folder, "--store", "study.db", "--received", received, "--today", "2026-11-25", cwd=tmp_path)
        assert run.returncode in (0, 1), run.stderr
    run = _run("store", "odm", "--store", "study.db", "--output", "audit.xml", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    data = (tmp_path / "audit.xml").read_bytes()
    assert xsd_errors(data, ODM_XSD) == []
    root = etree.fromstring(data)
    assert root.get("FileType") == "Transactional"
    first, second = root.findall("odm:ClinicalData/odm:SubjectData", NS)
    assert (first.get("TransactionType"), second.get("TransactionType")) == ("Insert", "Update")
    values = sum(1 for forms in json.loads(SUBJECT.read_text())["visits"].values() for v in forms.values() for _ in v) + \
        sum(1 for rows in json.loads(SUBJECT.read_text())["logs"].values() for r in rows for _ in r)
    assert len(first.findall(".//odm:ItemData", NS)) == values  # the first return inserts every value it held
    changed = {d.get("ItemOID"): d for d in second.findall(".//odm:ItemData", NS)}
    assert set(changed) == {"IT.VS.SYSBP", "IT.VS.PULSE"}
    sbp, pulse = changed["IT.VS.SYSBP"], changed["IT.VS.PULSE"]
    assert (sbp.get("TransactionType"), sbp.get("Value"), pulse.get("TransactionType"), pulse.get("Value")) == ("Update", "60", "Remove", None)
    audit = sbp.find("odm:AuditRecord", NS)
    assert audit.findtext("odm:DateTimeStamp", namespaces=NS) == "2026-11-25T10:00:00+00:00"
    assert f"from {old_sbp}" in audit.findtext("odm:ReasonForChange", namespaces=NS)
    assert f"from {old_pulse}" in pulse.findtext("odm:AuditRecord/odm:ReasonForChange", namespaces=NS)
    user = audit.find("odm:UserRef", NS).get("UserOID")
    assert root.find(f"odm:AdminData/odm:User[@OID='{user}']", NS) is not None
    assert any("EC-19" in c.text and "(open" in c.text for c in sbp.findall("odm:Annotation/odm:Comment", NS))
    # same store, same bytes
    _run("store", "odm", "--store", "study.db", "--output", "again.xml", cwd=tmp_path)
    assert (tmp_path / "again.xml").read_bytes() == data
