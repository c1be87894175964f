"""A study's own expression functions (study.json "functions", crf/plugin.py): loaded from the study folder,
registered like the language's, checked at load (each problem names the file), part of the definition hash."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from crf.loader import StudyDefinitionError, load_study
from crf.rules import RuleSet
from crf.rules.docs import render_markdown
from crf.subject import SubjectRecord

from conftest import edit_json

PLUGIN = '''
from crf.expressions import MISSING, Function

USES = {"VIT": ("HR",)}
CONSTANTS = ("fast_heart",)


def _band(hr):
    """Written for this test: a heart rate's band."""
    if not isinstance(hr, int):
        return MISSING
    return "FAST" if hr > 100 else "SLOW" if hr < 50 else "NORMAL"


FUNCTIONS = (Function("hr_band", _band, ("value hr",), "text", "FAST, SLOW or NORMAL: the band of a heart rate"),)
'''

RULES = {
    "$schema": "https://open-ecrf.org/meta/2026-11/rules",
    "title": "Heart rate band",
    "constants": {"fast_heart": "FAST"},
    "rules": [{"id": "MINI-01", "title": "Fast heart", "forms": ["VIT"], "severity": "query", "category": "safety monitoring",
               "kind": "expression", "for_each": {"form": "VIT"}, "fail_if": "hr_band(HR) == fast_heart", "field": "HR",
               "message": "Heart rate {HR} is fast. Confirm it."}],
}


def with_plugin(root: Path, source: str = PLUGIN, rules: dict | None = None) -> Path:
    (root / "functions.py").write_text(source)
    edit_json(root / "study.json", lambda d: d.update(functions="functions.py"))
    (root / "rules").mkdir(exist_ok=True)
    (root / "rules" / "band.json").write_text(json.dumps(rules or RULES))
    return root


def problems(folder: Path) -> list[tuple[str, str]]:
    with pytest.raises(StudyDefinitionError) as info:
        RuleSet.load(load_study(folder))
    return [(p.file, p.message) for p in info.value.problems]


def test_a_study_function_is_called_by_a_rule_and_listed_in_the_function_table(study_copy):
    study = load_study(with_plugin(study_copy()))
    rules = RuleSet.load(study, today=dt.date(2026, 3, 1))
    record = SubjectRecord("MINI", "01", "01-001", visits={
        "BASE": {"VIT": {"VDAT": "2026-01-05", "HR": 120, "SMOKER": "N"}},
        "FUP": {"VIT": {"VDAT": "2026-02-04", "HR": 70, "SMOKER": "N"}}})
    found = [(f.rule, f.visit, f.field) for f in rules.check([record]) if f.rule == "MINI-01"]
    assert found == [("MINI-01", "BASE", "HR")]
    assert "| `hr_band(hr)` | text | FAST, SLOW or NORMAL: the band of a heart rate |" in render_markdown(rules)
    assert not (study.folder / "__pycache__").exists()  # run from source: nothing written into the study folder


def test_the_plugin_is_part_of_the_definition_hash(study_copy):
    folder = with_plugin(study_copy())
    before = load_study(folder).definition_hash
    (folder / "functions.py").write_text(PLUGIN.replace("hr > 100", "hr > 110"))
    changed = load_study(folder)
    assert changed.definition_hash != before
    assert changed.functions.module._band(105) == "NORMAL"  # the new source runs, not a cached module


def test_a_call_with_the_wrong_number_of_arguments_fails_at_load_naming_the_file(study_copy):
    rules = json.loads(json.dumps(RULES))
    rules["rules"][0]["fail_if"] = "hr_band(HR, 3) == fast_heart"
    found = problems(with_plugin(study_copy(), rules=rules))
    assert found == [("rules/band.json", "hr_band() takes 1 argument(s), hr_band(hr), not 2, in 'hr_band(HR, 3) == fast_heart'")]


def test_an_x_derived_item_calling_a_study_function_is_checked_for_its_arguments(study_copy):
    folder = with_plugin(study_copy())
    edit_json(folder / "forms" / "vitals.json", lambda d: d["properties"].update(
        BAND={"type": "string", "title": "Band", "x-derived": "hr_band()", "x-sdtm": "NOT SUBMITTED"}))
    with pytest.raises(StudyDefinitionError) as info:
        load_study(folder)
    assert [(p.file, p.message) for p in info.value.problems] == [
        ("forms/vitals.json", "item BAND: hr_band() takes 1 argument(s), hr_band(hr), not 0, in 'hr_band()'")]


@pytest.mark.parametrize("source, message", [
    (PLUGIN.replace('"VIT": ("HR",)', '"VIT": ("PULSE",)'), "'PULSE' is not an item of VIT; fix USES (and the code that names it)"),
    (PLUGIN.replace('"VIT": ("HR",)', '"VITALS": ("HR",)'), "'VITALS' is not a form or log id of the study; fix USES (and the code that names it)"),
    (PLUGIN.replace('Function("hr_band"', 'Function("round"'),
     'the study\'s functions module (study.json "functions") round() is a function of the expression language already; give the study\'s own another name'),
    (PLUGIN.replace("FUNCTIONS = (", "FUNCS = ("),
     'the study\'s functions module (study.json "functions") defines no FUNCTIONS, a tuple of crf.expressions.Function'),
    (PLUGIN.replace('("value hr",)', '("number hr",)'),
     'the study\'s functions module (study.json "functions") cannot be run (line 15): ValueError: hr_band(): argument '
     "'number hr' is not 'kind name' with a kind of ['condition', 'container', 'item', 'table', 'value', 'visit']"),
    (PLUGIN + "\n1 / 0\n", 'the study\'s functions module (study.json "functions") cannot be run (line 17): ZeroDivisionError: division by zero'),
    (PLUGIN + "\ndef broken(:\n", 'the study\'s functions module (study.json "functions") cannot be run (line 17): SyntaxError: invalid syntax (functions.py, line 17)'),
], ids=["unknown-item", "unknown-form", "taken-name", "no-functions", "bad-kind", "raises", "syntax"])
def test_a_bad_plugin_is_one_problem_of_its_file(study_copy, source, message):
    with pytest.raises(StudyDefinitionError) as info:
        load_study(with_plugin(study_copy(), source))
    assert [(p.file, p.message) for p in info.value.problems] == [("functions.py", message)]


def test_a_constant_the_plugin_reads_must_be_defined(study_copy):
    rules = json.loads(json.dumps(RULES))
    rules["constants"] = {"fast": "FAST"}
    rules["rules"][0]["fail_if"] = "hr_band(HR) == fast"
    assert problems(with_plugin(study_copy(), rules=rules)) == [
        ("functions.py", "the study's functions read constant 'fast_heart', which no rules file defines; add it to a rules file's constants")]


def test_a_missing_plugin_file_is_a_problem_of_study_json_s_named_file(study_copy):
    folder = with_plugin(study_copy())
    (folder / "functions.py").unlink()
    with pytest.raises(StudyDefinitionError) as info:
        load_study(folder)
    assert [(p.file, p.message) for p in info.value.problems] == [
        ("functions.py", 'the study\'s functions module (study.json "functions") does not exist (or cannot be read)')]
