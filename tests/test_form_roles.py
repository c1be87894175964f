"""Form roles (`x-role`): checked at load against the form's own items and codes, and what the synthetic
generator goes by (it knows no item id of any study)."""
from __future__ import annotations

import shutil

import pytest

from crf.loader import StudyDefinitionError, load_study
from crf.synth import clean_subject, skipped

from conftest import MINI_STUDY, edit_json


def with_role(folder, role):
    edit_json(folder / "forms" / "vitals.json", lambda d: d.update({"x-role": role}))
    return folder


def problems(folder):
    with pytest.raises(StudyDefinitionError) as info:
        load_study(folder)
    return [(p.file, p.pointer, p.message) for p in info.value.problems]


def test_a_role_naming_an_item_the_form_has_not_is_a_problem_of_that_slot(study_copy):
    folder = with_role(study_copy(), {"role": "vital-signs", "items": {"systolic": "SYSBP", "diastolic": ["HR", "DIABP"]}})
    assert problems(folder) == [
        ("forms/vitals.json", "/x-role/items/diastolic", "x-role 'vital-signs': diastolic names 'DIABP', which is not an item of this form"),
        ("forms/vitals.json", "/x-role/items/systolic", "x-role 'vital-signs': systolic names 'SYSBP', which is not an item of this form"),
    ]


def test_a_role_code_must_be_a_code_of_the_form(study_copy):
    folder = with_role(study_copy(), {"role": "demographics", "items": {"childbearing_potential": "SMOKER"},
                                      "codes": {"childbearing_potential": "YES"}})
    assert problems(folder) == [
        ("forms/vitals.json", "/x-role/codes/childbearing_potential",
         "x-role 'demographics': childbearing_potential is 'YES', which is not a code of any item of this form")]


def test_an_unknown_role_is_refused_by_the_meta_schema(study_copy):
    found = problems(with_role(study_copy(), {"role": "vitals"}))
    assert [(f, p) for f, p, _ in found] == [("forms/vitals.json", "/x-role/role")]


def test_the_generator_goes_by_the_role_not_by_item_ids(tmp_path):
    plain = load_study(MINI_STUDY)
    record = clean_subject(plain, "01", "01-001", 4)
    assert record.visits["BASE"]["VIT"]["VDAT"] != record.visits["FUP"]["VIT"]["VDAT"]  # each visit's own date
    # the same form declared the consent: its date item becomes the consent date, before the first visit
    shutil.copytree(MINI_STUDY, tmp_path / "roled")
    roled = load_study(with_role(tmp_path / "roled", {"role": "consent", "items": {"date": "VDAT"}}))
    record = clean_subject(roled, "01", "01-001", 4)
    consent = record.visits["BASE"]["VIT"]["VDAT"]
    assert consent == record.visits["FUP"]["VIT"]["VDAT"]
    assert "no form has x-role 'consent', so not generated: the consent dated before every procedure" in skipped(plain)
    assert not any("'consent'" in note for note in skipped(roled))


def test_the_shipped_study_declares_every_role_the_generator_knows(study):
    assert skipped(study) == []
