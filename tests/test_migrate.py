"""build_crf.py migrate: a returned workbook of an older form version carried into the current one.

The "older version" is the shipped study as it was before an amendment, made here from a copy: form
version 0.9, a vital-signs comment item the amendment removed and albumin collected as a whole number.
The subject is the hand-written 01-901.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from crf.cli import build
from crf.loader import load_study
from crf.readers import read_file
from crf.subject import SubjectRecord
from crf.xlsx import workbook_bytes

ROOT = Path(__file__).resolve().parent.parent
SUBJECT = ROOT / "tests" / "fixtures" / "subjects" / "01-901.json"


def _old_study(tmp_path: Path) -> Path:
    folder = tmp_path / "study-0.9"
    shutil.copytree(ROOT / "schemas" / "belimumab-nmosd", folder)
    study = json.loads((folder / "study.json").read_text())
    study["form_version"] = "0.9"
    (folder / "study.json").write_text(json.dumps(study, indent=2))
    vs = json.loads((folder / "forms" / "vital-signs.json").read_text())
    vs["properties"]["VSCOMM"] = {"type": "string", "maxLength": 200, "title": "Comment", "x-sdtm": "NOT SUBMITTED"}
    (folder / "forms" / "vital-signs.json").write_text(json.dumps(vs, indent=2))
    chem = json.loads((folder / "forms" / "lab-chemistry.json").read_text())
    chem["properties"]["ALB"]["type"] = "integer"
    chem["properties"]["ALB"].pop("x-decimals")
    (folder / "forms" / "lab-chemistry.json").write_text(json.dumps(chem, indent=2))
    return folder


@pytest.fixture(scope="module")
def old_workbook(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("migrate")
    old = load_study(_old_study(tmp))
    doc = json.loads(SUBJECT.read_text())
    doc["visits"]["SCR"]["VS"]["VSCOMM"] = "Arrived late"
    doc["visits"]["SCR"]["CHEM"]["ALB"] = 46
    doc["form_version"] = "0.9"
    record = SubjectRecord.from_json(doc)
    path = tmp / "old" / "BEL-NMOSD_01-901.xlsx"
    path.parent.mkdir()
    path.write_bytes(workbook_bytes(old, record.site, record.subject, record))
    return path


def test_old_workbook_is_refused_by_the_validator(study, old_workbook):
    read = read_file(old_workbook, old_workbook.name, study)
    assert [f.rule for f in read.findings] == ["FORM-VERSION"]


def test_migrate_carries_every_value_and_lists_what_it_could_not(study, old_workbook, tmp_path):
    before = old_workbook.read_bytes()
    result = CliRunner().invoke(build, ["migrate", str(old_workbook), "--out", str(tmp_path / "new")])
    assert result.exit_code == 1, result.output  # one value could not be carried
    assert old_workbook.read_bytes() == before  # the old file is never modified
    assert "/visits/SCR/VS/VSCOMM = 'Arrived late': form version 1.0 has no such field" in result.output
    assert "1 value(s) not carried" in result.output
    new = tmp_path / "new" / "BEL-NMOSD_01-901.xlsx"
    assert (tmp_path / "new" / "BEL-NMOSD_01-901.migration.txt").read_text().count("not carried") == 1
    read = read_file(new, new.name, study)
    assert read.findings == []
    record = read.subject.record
    assert record.form_version == "1.0"
    assert record.value("SCR", "CHEM", "ALB") == 46  # a whole number then, a decimal item now
    assert record.value("SCR", "CHEM", "BILI") == 9.7
    assert record.value("ATT#1", "EDSS", "EDSS") == 3.5
    original = SubjectRecord.from_json(json.loads(SUBJECT.read_text()))
    for visit, forms in original.visits.items():
        for form, values in forms.items():
            for item, value in values.items():
                if (visit, form, item) != ("SCR", "CHEM", "ALB"):
                    assert record.value(visit, form, item) == value, (visit, form, item)
    assert [r.get("AETERM") for r in record.logs["AE"]] == [r["AETERM"] for r in original.logs["AE"]]


def test_migrate_refuses_a_file_that_is_not_a_workbook(tmp_path):
    bad = tmp_path / "notes.xlsx"
    bad.write_text("not a workbook")
    result = CliRunner().invoke(build, ["migrate", str(bad), "--out", str(tmp_path / "new")])
    assert result.exit_code == 2 and "Traceback" not in result.output
