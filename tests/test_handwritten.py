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
