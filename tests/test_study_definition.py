"""The study definition loads into the model, and each kind of mistake is reported with file and pointer."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from crf.cli import build
from crf.loader import StudyDefinitionError, load_study
from crf.model import ItemKind

from conftest import MINI_STUDY, SHIPPED_STUDY, edit_json


def problems_of(folder: Path) -> list[tuple[str, str]]:
    with pytest.raises(StudyDefinitionError) as info:
        load_study(folder)
    return [(p.file, p.pointer) for p in info.value.problems]


# -- the shipped study ---------------------------------------------------------------------

def test_shipped_schedule_matches_protocol(study):
    days = {v.id: v.day for v in study.visits}
    assert [v.id for v in study.visits] == ["SCR"] + [f"V{n}" for n in range(1, 16)] + ["ATT", "UNS", "ET"]
    assert [days[f"V{n}"] for n in range(1, 15)] == [0, 14, 28] + list(range(56, 337, 28))
    assert days["V15"] == 364 and days["ATT"] is None and days["UNS"] is None and days["ET"] is None
    assert [v.infusion for v in study.visits if v.infusion] == list(range(1, 15))
    assert study.visit("V2").window.before == 3 and study.visit("V4").window.after == 7


def test_shipped_forms_follow_schedule_of_assessments(study):
    for visit in study.visits[1:15]:
        assert visit.has("EX") and visit.has("VS_PRE") and visit.has("VS_POST"), visit.id
        assert visit.form("VS_PRE").form.item("WEIGHT").required
    quarterly = {v.id for v in study.visits if v.has("IMM")}
    assert {"SCR", "V5", "V8", "V11", "V15", "ET"} <= quarterly
    assert study.visit("V15").has("EOS") and study.visit("ET").has("EOS")
    assert {lg.id for lg in study.logs} >= {"AE", "CM", "CE", "PA", "MH", "DV"}


def test_shipped_items_carry_their_annotations(study):
    vs = study.visit("SCR").form("VS").form
    sysbp = vs.item("SYSBP")
    assert (sysbp.kind, sysbp.unit, sysbp.hard.minimum, sysbp.hard.maximum) == (ItemKind.INTEGER, "mmHg", 50, 250)
    assert (sysbp.soft.minimum, sysbp.soft.maximum) == (90, 160)
    assert sysbp.sdtm.annotation() == 'VSORRES where VSTESTCD = "SYSBP"'
    assert vs.item("BMI").derived and not vs.item("BMI").is_input
    assert study.visit("V1").form("VS_PRE").form.item("VSTPT").fixed == "PRE-INFUSION"
    dm = study.visit("SCR").form("DM").form
    assert dm.item("CHILDPOT").condition.item == "SEX"
    assert dm.item("SEX").codelist.values == ("F", "M")
    edss = study.visit("SCR").form("EDSS").form.item("EDSS")
    assert len(edss.codelist.values) == 20 and 0.5 not in edss.codelist.values
    core = study.visit("SCR").form("NMO").form.item("CORECHAR")
    assert core.kind == ItemKind.MULTI_CHOICE and core.min_items == 1


def test_every_item_has_sdtm_target_and_question(study):
    for where, form, item in study.iter_fields():
        assert item.question, (where, form, item.id)
        assert item.sdtm.submitted or item.sdtm.annotation() == "NOT SUBMITTED"


def test_assumptions_are_marked_in_the_schemas(study):
    texts = " ".join(a.text for a in study.assumptions).lower()
    for topic in ("screening", "window", "weight", "attack", "prohibited", "24"):
        assert topic in texts, topic


def test_attack_and_unscheduled_visits_repeat_as_the_study_declares(study):
    """Each attack its own attack visit, linked to its attack-log row; any number of unscheduled visits (spec: ET / UNS)."""
    att, uns = study.visit("ATT"), study.visit("UNS")
    assert att.repeating and uns.repeating and not any(v.repeating for v in study.visits if v.id not in ("ATT", "UNS"))
    assert (att.link.form, att.link.item, att.link.log, att.link.log_item) == ("ATT", "CESPID", "CE", "CESPID")
    assert uns.link is None and [f.name for f in uns.forms] == ["SV", "VS", "HEM", "CHEM", "PREG", "EDSS"]
    assert uns.form("SV").form.item("SVREAS").required and uns.form("SV").form.item("SVSTDAT").required
    assert att.workbook_keys == ("ATT#1", "ATT#2", "ATT#3", "ATT#4") and uns.workbook_keys == ("UNS#1", "UNS#2", "UNS#3")
    assert study.visit_of("ATT#2") is att and study.visit_of("ATT") is None and study.visit_of("ATT#0") is None
    assert study.visit_of("V1") is study.visit("V1") and study.visit_of("V1#1") is None
    assert [k for k, _ in study.visit_keys(["UNS#1", "ATT#10", "V2", "ATT#2", "SCR", "ATT"])] == ["SCR", "V2", "ATT#2", "ATT#10", "UNS#1"]


def test_a_repeating_visit_must_be_off_the_schedule_and_link_to_what_exists(study_copy):
    folder = study_copy()

    def change(d):
        d["visits"][1]["repeating"] = {"sheets": 2, "link": {"item": "OUT.NOPE", "log": "XX", "log_item": "ID"}}
    edit_json(folder / "study.json", change)
    found = problems_of(folder)
    assert ("study.json", "/visits/1/repeating/link/item") in found and ("study.json", "/visits/1/repeating/link/log") in found
    assert ("study.json", "/visits/1/repeating") in found  # FUP is on day 30 of the schedule


def test_check_command_lists_schedule_and_exits_zero():
    result = CliRunner().invoke(build, ["check"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for visit, day in [("SCR", "-1"), ("V1", "0"), ("V4", "56"), ("V14", "336"), ("V15", "364"), ("ATT", "-"), ("UNS", "-"), ("ET", "-")]:
        assert any(line.split()[:2] == [visit, day] for line in lines), visit
    assert "No problems found." in result.output


# -- a second study --------------------------------------------------------------------------

def test_tiny_second_study_loads(mini_study):
    assert [v.id for v in mini_study.visits] == ["BASE", "FUP"]
    assert not mini_study.visit("FUP").form("VIT").form.has("CIGS")
    assert mini_study.visit("BASE").form("VIT").form.item("CIGS").condition.values == ("Y",)
    assert mini_study.log("NOTE").rows == 5


# -- mistakes ----------------------------------------------------------------------------------

def test_broken_ref_names_file_and_pointer(study_copy):
    folder = study_copy()
    edit_json(folder / "visits/followup.json", lambda d: d["properties"]["OUT"].update({"$ref": "../forms/outcom.json"}))
    assert ("visits/followup.json", "/properties/OUT/$ref") in problems_of(folder)


def test_soft_range_outside_hard_range(study_copy):
    folder = study_copy()
    edit_json(folder / "forms/vitals.json", lambda d: d["properties"]["HR"]["x-soft"].update({"maximum": 300}))
    assert problems_of(folder) == [("forms/vitals.json", "/properties/HR/x-soft")]


def test_duplicate_item_is_reported(study_copy):
    folder = study_copy()
    path = folder / "forms/outcome.json"
    text = path.read_text().replace('"COMMENT": {', '"FEEL": {"type": "string", "title": "again", "x-sdtm": "NOT SUBMITTED"},\n    "COMMENT": {', 1)
    path.write_text(text)
    with pytest.raises(StudyDefinitionError) as info:
        load_study(folder)
    (problem,) = info.value.problems
    assert problem.file == "forms/outcome.json" and "FEEL" in problem.message and "twice" in problem.message


def test_unknown_annotation_keyword(study_copy):
    folder = study_copy()
    edit_json(folder / "forms/vitals.json", lambda d: d["properties"]["HR"].update({"x-unti": "/min"}))
    found = problems_of(folder)
    assert found == [("forms/vitals.json", "/properties/HR")]


def test_schedule_naming_a_missing_form(study_copy):
    folder = study_copy()
    edit_json(folder / "study.json", lambda d: d["visits"][0]["forms"].append("LAB"))
    assert ("study.json", "/visits/0/forms/1") in problems_of(folder)


def test_malformed_json(study_copy):
    folder = study_copy()
    (folder / "forms/outcome.json").write_text('{"title": "Outcome",\n  "x-form": {"id": "OUT"}\n  "type": "object"}')
    with pytest.raises(StudyDefinitionError) as info:
        load_study(folder)
    (problem,) = info.value.problems
    assert problem.file == "forms/outcome.json" and "line 3" in problem.message


def test_codelist_label_missing(study_copy):
    folder = study_copy()
    edit_json(folder / "forms/outcome.json", lambda d: d["properties"]["FEEL"]["x-labels"].pop("SAME"))
    assert problems_of(folder) == [("forms/outcome.json", "/properties/FEEL/x-labels")]


def test_condition_naming_missing_item(study_copy):
    folder = study_copy()
    edit_json(folder / "forms/vitals.json", lambda d: d["allOf"][0]["then"].update({"required": ["CIGARS"]}))
    assert ("forms/vitals.json", "/allOf/0/then/required/0") in problems_of(folder)


def test_unknown_item_type_is_an_error_naming_the_item(study_copy):
    folder = study_copy()
    edit_json(folder / "forms/outcome.json", lambda d: d["properties"]["COMMENT"].update({"type": "boolean"}))
    assert problems_of(folder) == [("forms/outcome.json", "/properties/COMMENT/type")]


def test_check_command_exits_one_on_problems(study_copy):
    folder = study_copy()
    edit_json(folder / "forms/vitals.json", lambda d: d["properties"]["HR"]["x-soft"].update({"minimum": 5}))
    result = CliRunner().invoke(build, ["check", "--study", str(folder)])
    assert result.exit_code == 1
    assert "forms/vitals.json#/properties/HR/x-soft" in result.output


def test_definition_hash_changes_with_any_file(study_copy):
    folder = study_copy()
    before = load_study(folder).definition_hash
    edit_json(folder / "forms/outcome.json", lambda d: d.update({"description": "changed"}))
    assert load_study(folder).definition_hash != before


def test_compiled_meta_schema_agrees_with_published_strict_one(study_copy):
    """The loader's fast, flat meta-schema accepts and rejects what the published one does."""
    import json

    import jsonschema

    from crf.loader import CRF_META_ID, _build_meta_registry, flat_crf_meta_schema

    registry = _build_meta_registry()
    strict = jsonschema.Draft202012Validator(registry.contents(CRF_META_ID), registry=registry)
    flat = jsonschema.Draft202012Validator(flat_crf_meta_schema())
    form = json.loads((MINI_STUDY / "forms/vitals.json").read_text())
    assert strict.is_valid(form) and flat.is_valid(form)
    form["properties"]["HR"]["x-unti"] = "/min"
    form["allOf"][0]["then"]["x-note"] = "misplaced"
    assert not strict.is_valid(form) and not flat.is_valid(form)
    assert {tuple(e.absolute_path) for e in flat.iter_errors(form)} == {("properties", "HR"), ("allOf", 0, "then")}


def test_check_command_reports_a_broken_rule(study_copy):
    folder = study_copy(SHIPPED_STUDY)

    def misspell(doc):
        rule = next(r for r in doc["rules"] if r["id"] == "EC-19")
        rule["fail_if"] = "SYSBP <= DIABPX"

    edit_json(folder / "rules/vital-signs.json", misspell)
    result = CliRunner().invoke(build, ["check", "--study", str(folder)])
    assert result.exit_code == 1
    assert "rules/vital-signs.json" in result.output and "DIABPX" in result.output


@pytest.mark.parametrize("args", [
    ["xlsx", "--site", "02", "--subjects", "01-001"],  # subject of another site
    ["xlsx", "--subjects", "01-001..01-999999"],  # a typo that would write a million workbooks
    ["xlsx", "--subjects", "01-005..01-001"],
])
def test_build_usage_errors_exit_2_without_traceback(args, tmp_path):
    result = CliRunner().invoke(build, [*args[:1], "--out", str(tmp_path), *args[1:]])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not any(tmp_path.rglob("*.xlsx"))


def test_calculated_items_carry_words_for_the_site(study, study_copy):
    from crf.pdf_layout import entry_for

    for _, _, item in study.iter_fields():
        if item.derived and not item.derived.startswith('"'):
            assert item.derived_label, f"{item.pointer}: a calculated item of the shipped study without x-derived-label"
    folder = study_copy()
    double = {"type": "integer", "title": "Heart rate doubled", "x-derived": "2 * HR", "x-sdtm": "NOT SUBMITTED"}
    edit_json(folder / "forms/vitals.json", lambda d: d["properties"].update({"HR2": double}))
    item = load_study(folder).visits[0].forms[0].form.item("HR2")
    assert entry_for(item).text == "Calculated"  # never the expression
    edit_json(folder / "forms/vitals.json", lambda d: d["properties"]["HR2"].update({"x-derived-label": "Twice the heart rate, calculated"}))
    item = load_study(folder).visits[0].forms[0].form.item("HR2")
    assert (item.derived_label, entry_for(item).text) == ("Twice the heart rate, calculated", "Twice the heart rate, calculated")
    edit_json(folder / "forms/vitals.json", lambda d: d["properties"]["HR"].update({"x-derived-label": "words without an expression"}))
    assert problems_of(folder) == [("forms/vitals.json", "/properties/HR/x-derived-label")]


def test_cdisc_terms_are_printed_as_cdisc_writes_them(study):
    # CDISC CT / OMB race and ethnicity categories, as published (proper nouns keep their capitals)
    expected = {
        "RACE": {"AMERICAN INDIAN OR ALASKA NATIVE": "American Indian or Alaska Native", "BLACK OR AFRICAN AMERICAN": "Black or African American",
                 "NATIVE HAWAIIAN OR OTHER PACIFIC ISLANDER": "Native Hawaiian or Other Pacific Islander", "ASIAN": "Asian", "WHITE": "White"},
        "ETHNIC": {"HISPANIC OR LATINO": "Hispanic or Latino", "NOT HISPANIC OR LATINO": "Not Hispanic or Latino"},
    }
    dm = study.visit("SCR").form("DM").form
    for item_id, labels in expected.items():
        codelist = dm.item(item_id).codelist
        assert {code: codelist.label(code) for code in labels} == labels
