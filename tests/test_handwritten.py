"""Subjects written by hand from the study specification, not by `synth`.

tests/fixtures/subjects/*.json are complete subjects as a site would report them: laboratory results with
the decimals the laboratory prints (bilirubin 9.7 umol/L, albumin 45.9 g/L), vital signs as monitors show
them, doses as the pharmacy records them. They are correct, so every route into the validator must give
no finding at all: the JSON document itself, the document written into its workbook, and that workbook
after LibreOffice has opened and saved it. A finding here means the toolkit is wrong, not the subject.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import openpyxl
import pytest

from crf.readers import read_file
from crf.subject import SubjectRecord
from crf.validation import validate
from crf.xlsx import workbook_bytes

SUBJECTS = sorted((Path(__file__).parent / "fixtures" / "subjects").glob("*.json"))
TODAY = dt.date(2026, 11, 25)


def _findings(study, paths):
    result = validate(study, list(paths), jobs=1, today=TODAY)
    return [f"{f.rule} {f.visit or ''} {f.field or ''}: {f.message}" for f in result.findings]


def _workbook(study, doc_path: Path, folder: Path) -> Path:
    record = SubjectRecord.from_json(json.loads(doc_path.read_text()))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"BEL-NMOSD_{record.subject}.xlsx"
    path.write_bytes(workbook_bytes(study, record.site, record.subject, record))
    return path


def test_there_are_at_least_two_hand_written_subjects():
    assert len(SUBJECTS) >= 2


@pytest.mark.parametrize("doc", SUBJECTS, ids=lambda p: p.stem)
def test_hand_written_subject_as_json_has_no_finding(study, doc):
    assert _findings(study, [doc]) == []


@pytest.mark.parametrize("doc", SUBJECTS, ids=lambda p: p.stem)
def test_hand_written_subject_in_its_workbook_reads_back_and_has_no_finding(study, doc, tmp_path):
    path = _workbook(study, doc, tmp_path)
    read = read_file(path, path.name, study)
    assert read.findings == []
    original = SubjectRecord.from_json(json.loads(doc.read_text()))
    record = read.subject.record
    for visit, forms in original.visits.items():
        for form, values in forms.items():
            for item, value in values.items():
                assert record.value(visit, form, item) == value, f"{visit}.{form}.{item}"
    for log, rows in original.logs.items():
        assert [{k: r.get(k) for k in row} for row, r in zip(rows, record.logs.get(log, []))] == rows, log
    assert _findings(study, [path]) == []


def test_laboratory_decimals_survive_the_workbook(study, tmp_path):
    """Bilirubin and albumin are printed with one decimal by the laboratory: the workbook keeps it."""
    doc = next(p for p in SUBJECTS if p.stem == "01-901")
    path = _workbook(study, doc, tmp_path)
    record = read_file(path, path.name, study).subject.record
    assert record.value("SCR", "CHEM", "BILI") == 9.7
    assert record.value("SCR", "CHEM", "ALB") == 45.9
    assert record.value("SCR", "VS", "HEIGHT") == 162.5


@pytest.mark.libreoffice
def test_hand_written_subjects_after_a_libreoffice_save_have_no_finding(study, tmp_path):
    from tests.test_xlsx import SOFFICE, soffice_convert

    if SOFFICE is None:
        pytest.skip("LibreOffice (soffice) is not installed; `make test` installs it")
    saved = []
    for doc in SUBJECTS:
        source = _workbook(study, doc, tmp_path / "in" / doc.stem)
        saved.append(soffice_convert(source, tmp_path / "out" / doc.stem))
    assert _findings(study, saved) == []


@pytest.mark.parametrize("form, item, decimals", [("CHEM", "BILI", 1), ("CHEM", "ALB", 1), ("HEM", "PLAT", 0)])
def test_reported_precision_follows_from_the_one_declaration(study, form, item, decimals):
    """The form schema's type and x-decimals drive the workbook validation, the PDF boxes and synth alike."""
    from crf.pdf_layout import entry_for
    from crf.readers.convert import convert
    from crf.synth import as_number
    from crf.xlsx import rule_for

    it = study.visit("SCR").form(form).form.item(item)
    assert rule_for(it).type == "decimal"  # Excel/LibreOffice accept 9.7, not only whole numbers
    assert entry_for(it).decimals == decimals  # digit boxes after the decimal point on paper
    assert convert(it, "9.7") == 9.7  # the field check takes the value as typed
    assert as_number(it, 9.74) == (9.7 if decimals else 10)


# -- local laboratory reference ranges (F7: LBORNRLO, LBORNRHI) --------------------------------------
def _one(study, doc: dict, tmp_path, name="subject.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return validate(study, [path], jobs=1, today=TODAY)


def test_local_range_decides_the_abnormal_flag(study):
    """eGFR 83 is low for the central range (>= 90) but normal for the site laboratory (>= 60)."""
    from crf.rules.engine import RuleSet

    doc = json.loads(next(p for p in SUBJECTS if p.stem == "01-902").read_text())
    record = SubjectRecord.from_json(doc)
    derived = RuleSet.shared(study).derived_values(record)
    assert record.value("SCR", "CHEM", "EGFR") == 83 and record.value("SCR", "CHEM", "EGFR_NRLO") == 60
    assert derived["/visits/SCR/CHEM/EGFR_NRIND"] == "NORMAL"
    del doc["visits"]["SCR"]["CHEM"]["EGFR_NRLO"]
    assert RuleSet.shared(study).derived_values(SubjectRecord.from_json(doc))["/visits/SCR/CHEM/EGFR_NRIND"] == "LOW"


def test_abnormal_for_the_local_range_needs_a_significance_answer(study, tmp_path):
    doc = json.loads(next(p for p in SUBJECTS if p.stem == "01-902").read_text())
    chem = doc["visits"]["V3"]["CHEM"]
    chem["ALT"] = 45  # above the central range 7-40, inside the site laboratory's 10-50
    del chem["LBCLSIG"]  # blank: a field finding in any case (required), EC-23 only when a value is abnormal
    assert "EC-23" not in [f.rule for f in _one(study, doc, tmp_path).findings]
    chem["ALT"] = 52  # above the local upper limit 50
    found = [f for f in _one(study, doc, tmp_path).findings if f.rule == "EC-23"]
    assert [(f.visit, f.field) for f in found] == [("V3", "LBCLSIG")]
    assert "ALT 52 (local range 10-50)" in found[0].message


@pytest.mark.parametrize("low, high, expected_field, words", [
    (50, 10, "ALT_NRLO", "reversed"), (None, 50, "ALT_NRLO", "only one end"), (10, None, "ALT_NRHI", "only one end")])
def test_reversed_or_incomplete_local_range_is_ec23(study, tmp_path, low, high, expected_field, words):
    doc = json.loads(next(p for p in SUBJECTS if p.stem == "01-902").read_text())
    chem = doc["visits"]["V5"]["CHEM"]
    for key, value in (("ALT_NRLO", low), ("ALT_NRHI", high)):
        chem.pop(key, None)
        if value is not None:
            chem[key] = value
    found = _one(study, doc, tmp_path).findings
    assert [(f.rule, f.visit, f.field) for f in found] == [("EC-23", "V5", expected_field)]
    assert words in found[0].message


def test_one_sided_local_range_of_a_one_sided_test_is_complete(study, tmp_path):
    doc = json.loads(next(p for p in SUBJECTS if p.stem == "01-902").read_text())
    assert "EGFR_NRHI" not in doc["visits"]["V5"]["CHEM"] and doc["visits"]["V5"]["CHEM"]["EGFR_NRLO"] == 60
    assert _one(study, doc, tmp_path).findings == []


def test_local_range_items_are_in_workbook_pdf_and_acrf(study, tmp_path):
    from crf.pdf_layout import annotation_text, entry_for
    from crf.xlsx import rule_for

    chem = study.visit("SCR").form("CHEM").form
    assert chem.item("ALT").local_range == ("ALT_NRLO", "ALT_NRHI")
    assert annotation_text(chem.item("ALT_NRLO")).startswith("LBORNRLO")
    assert annotation_text(chem.item("ALT_NRHI")).startswith("LBORNRHI")
    assert annotation_text(chem.item("ALT_NRIND")).startswith("LBNRIND")
    assert 'LBORRESU = "U/L"' in annotation_text(chem.item("ALT"))
    assert rule_for(chem.item("BILI_NRHI")).type == "decimal"
    assert entry_for(chem.item("ALT_NRIND")).kind == "calculated"
    doc = next(p for p in SUBJECTS if p.stem == "01-902")
    path = _workbook(study, doc, tmp_path)
    names = openpyxl.load_workbook(path).defined_names
    assert "F_SCR__CHEM__ALT_NRLO" in names and "F_SCR__CHEM__ALT_NRIND" in names
