"""Any study folder runs through the whole toolkit with no code written for it (issue 12, item 1): the mini
study of tests/fixtures and studies imported from a REDCap dictionary and from ODM files (shared/realworld),
none of which declares form roles or functions, go through synth, the workbook, the PDF forms and the
validator; synth says what it skipped and refuses a plant it cannot make with the reason, never a traceback."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from click.testing import CliRunner

from crf.cli import build
from crf.interop.odm_import import read_odm
from crf.interop.redcap import read_redcap
from crf.interop.studywriter import write_study
from crf.loader import load_study
from crf.validation import validate

from conftest import MINI_STUDY

NAMES = ["mini-study", "redcap-longitudinal", "odm-cdash"]


@pytest.fixture(scope="module")
def folders(realworld, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("foreign-studies")
    redcap = write_study(read_redcap(realworld / "redcap-dd" / "redcapr_longitudinal" / "dictionary.csv").draft, base / "redcap")
    odm = write_study(read_odm(realworld / "odm" / "odmlib_cdash-metadata_odm132.xml"), base / "odm")
    return {"mini-study": MINI_STUDY, "redcap-longitudinal": redcap.folder, "odm-cdash": odm.folder}


def synth(folder: Path, out: Path, *more: str):
    return CliRunner().invoke(build, ["synth", "--study", str(folder), "--out", str(out), "--subjects", "2", "--seed", "3", *more])


@pytest.mark.parametrize("name", NAMES)
def test_a_study_without_roles_generates_builds_its_pdfs_and_validates(folders, name, tmp_path):
    folder = folders[name]
    study = load_study(folder)
    assert not study.functions.functions and not any(f.role for f in study.forms())  # nothing of its own
    made = synth(folder, tmp_path / "demo")
    assert made.exit_code == 0, made.output
    assert "note: no form has x-role 'dosing', so not generated: infusions dosed from the same-visit weight" in made.output
    assert "note: no form has x-role 'consent', so not generated: the consent dated before every procedure" in made.output
    returned = sorted((tmp_path / "demo" / "returned").glob("*.xlsx"))
    assert len(returned) == 2

    if name == "odm-cdash":  # the mini study's and an imported REDCap dictionary's PDFs: tests/test_pdf.py, test_redcap_import.py
        pdfs = CliRunner().invoke(build, ["pdf", "--study", str(folder), "--out", str(tmp_path / "forms")])
        assert pdfs.exit_code == 0, pdfs.output
        assert any((tmp_path / "forms" / "pdf").glob("*.pdf"))

    result = validate(study, [tmp_path / "demo" / "returned"], jobs=1, today=dt.date(2026, 11, 25))
    assert [s.subject for s in result.subjects] == [f"01-00{n}" for n in (1, 2)]
    # the generated subjects follow the study's own schemas: nothing to report, and no fault of the validator
    assert [(f.rule, f.file, f.message) for f in result.findings] == []


@pytest.mark.parametrize("name", NAMES)
def test_a_plant_the_study_has_no_forms_for_is_refused_with_the_reason(folders, name, tmp_path):
    made = synth(folders[name], tmp_path / "demo", "--plant", "dose-deviation")
    assert made.exit_code == 1 and isinstance(made.exception, SystemExit)  # a message, not a crash
    assert "plant 'dose-deviation' needs a form with x-role 'dosing'" in made.output
    assert "Traceback" not in made.output


def test_the_plants_that_need_no_role_apply_to_the_mini_study(folders, tmp_path):
    made = synth(folders["mini-study"], tmp_path / "demo", "--plant", "missing-required,soft-limit", "--format", "json")
    assert made.exit_code == 0, made.output
    assert (tmp_path / "demo" / "planted.json").is_file()
