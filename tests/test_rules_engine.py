"""The rules engine: rule files as data, load-time checks, the expression extensions, summaries, docs."""
from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from crf import expressions as ex
from crf.cli import build
from crf.findings import Finding, Severity
from crf.loader import StudyDefinitionError, load_study
from crf.rules import RuleSet, deviation_listing, endpoint_summary
from crf.rules.docs import render_markdown

from conftest import ROOT, SHIPPED_STUDY, edit_json
from test_rules import ATTACK, FEMALE, TODAY, chain, move_visit, d, subject


@pytest.fixture(scope="module")
def ruleset(study) -> RuleSet:
    return RuleSet.load(study, today=TODAY)


# -- expressions -----------------------------------------------------------------------------------

def ev(text: str, **names):
    return ex.evaluate(ex.parse(text), ex.Scope(lambda n: names.get(n, ex.MISSING)))


def test_compiled_expressions_keep_blank_semantics():
    assert ev("A + 1") is ex.MISSING and ev("A > 1") is False and ev("A != 1") is False
    assert ev('A not in ["X"]') is False and ev('A in ["X"]') is False  # a blank is neither in nor out
    assert ev("A if B else C", B=True, A=1, C=2) == 1 and ev("1 < A <= 3", A=3) is True
    assert ev("nz(A) + nz(B, 5)", A=2) == 7
    assert ev("count_of('Y', [A, B], C)", A="Y", B="N", C="Y") == 2


def test_partial_dates_and_date_helpers():
    assert ev('earliest("2021-02")') == dt.date(2021, 2, 1) and ev('latest("2021-02")') == dt.date(2021, 2, 28)
    assert ev('latest("2020")') == dt.date(2020, 12, 31) and ev('earliest("2020-UN-UN")') == dt.date(2020, 1, 1)
    assert ev('add_days("2024-02-28", 2)') == dt.date(2024, 3, 1) and ev('earliest("nonsense")') is ex.MISSING


def test_contains_any_matches_word_starts():
    assert ev('contains_any(T, ["depress"])', T="Major Depression")
    assert not ev('contains_any(T, ["ae"])', T="Paediatric review")
    assert ev('contains_any(T, ["self harm"])', T="Self-harm")


def test_edss_neurostatus_algorithm(study):
    edss_neurostatus = study.functions.module.edss_neurostatus  # the study's own (schemas/belimumab-nmosd/functions.py)
    # (visual conv, pyramidal, sensory, bowel/bladder conv, brainstem, cerebellar, cerebral, ambulation) -> EDSS
    assert edss_neurostatus(0, 0, 0, 0, 0, 0, 1, 0) == 0  # cerebral 1 allowed at 0
    assert edss_neurostatus(1, 0, 0, 0, 0, 0, 0, 0) == 1.0
    assert edss_neurostatus(1, 1, 0, 0, 0, 0, 0, 0) == 1.5
    assert edss_neurostatus(0, 2, 0, 0, 0, 0, 0, 0) == 2.0
    assert edss_neurostatus(0, 2, 2, 0, 0, 0, 0, 0) == 2.5
    assert edss_neurostatus(0, 3, 0, 0, 0, 0, 0, 0) == 3.0
    assert edss_neurostatus(0, 3, 2, 0, 0, 0, 0, 0) == 3.5
    assert edss_neurostatus(0, 4, 0, 0, 0, 0, 0, 0) == 4.0
    assert edss_neurostatus(0, 2, 0, 0, 0, 0, 0, 2) == 4.5
    assert edss_neurostatus(0, 3, 0, 0, 0, 0, 0, 6) == 6.0
    assert edss_neurostatus(0, 3, 0, 0, 0, 0, 0, 16) == 10.0
    assert edss_neurostatus(0, None, 0, 0, 0, 0, 0, 0) is ex.MISSING


# -- loading: problems name the file and pointer -------------------------------------------------------

def _copy_study(tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "study"
    shutil.copytree(SHIPPED_STUDY, target)
    return target


def _rule_problems(folder: Path) -> list[str]:
    with pytest.raises(StudyDefinitionError) as info:
        RuleSet.load(load_study(folder))
    return [str(p) for p in info.value.problems]


def test_misspelt_item_in_a_rule_is_a_load_error(tmp_path):
    folder = _copy_study(tmp_path)
    edit_json(folder / "rules" / "vital-signs.json", lambda doc: doc["rules"][1].update(fail_if="SYSBPP <= DIABP"))
    [problem] = _rule_problems(folder)
    assert problem.startswith("rules/vital-signs.json#/rules/1/fail_if: 'SYSBPP' is not an item of each VS form")


def test_unknown_function_and_bad_rule_shape_are_load_errors(tmp_path):
    folder = _copy_study(tmp_path)
    edit_json(folder / "rules" / "vital-signs.json", lambda doc: doc["rules"][1].update(fail_if="sysbp(SYSBP) <= DIABP"))
    edit_json(folder / "rules" / "labs.json", lambda doc: doc["rules"][0].pop("severity"))
    problems = _rule_problems(folder)
    assert any(p.startswith("rules/labs.json#/rules/0: 'severity' is a required property") for p in problems)
    folder2 = _copy_study(tmp_path / "b")
    edit_json(folder2 / "rules" / "vital-signs.json", lambda doc: doc["rules"][1].update(fail_if="sysbp(SYSBP) <= DIABP"))
    assert any("unknown function sysbp()" in p for p in _rule_problems(folder2))


def test_a_function_given_the_wrong_number_of_arguments_is_a_load_error(tmp_path):
    folder = _copy_study(tmp_path)
    edit_json(folder / "rules" / "vital-signs.json", lambda doc: doc["rules"][1].update(fail_if="days_between(SYSBP) > DIABP"))
    [problem] = _rule_problems(folder)
    assert problem.startswith("rules/vital-signs.json#/rules/1/fail_if: days_between() takes 2 argument(s), days_between(start, end), not 1")


def test_the_function_registry_describes_every_function():
    from crf.expressions import ARGUMENT_KINDS
    from crf.rules.functions import CONTEXT_FUNCTIONS, FUNCTIONS

    assert set(CONTEXT_FUNCTIONS) <= set(FUNCTIONS)
    for fn in FUNCTIONS.values():
        assert fn.description and fn.returns in ("number", "integer", "date", "boolean", "text", "list", "any"), fn.name
        assert all(a.partition(" ")[0] in ARGUMENT_KINDS for a in fn.args)
        # a lazy function reads ids and conditions itself; an eager one only ever gets values
        assert fn.lazy or all(a.startswith(("value ", "table ")) for a in fn.args), fn.name


def test_the_rules_schema_names_exactly_the_registered_python_rules():
    from crf.rules.functions import PYTHON_RULES

    schema = json.loads((ROOT / "schemas" / "meta" / "rules.schema.json").read_text())
    enum = _find_function_enum(schema)
    assert enum == sorted(PYTHON_RULES), "schemas/meta/rules.schema.json: the function enum must list crf.rules.functions.PYTHON_RULES"


def _find_function_enum(node):
    if isinstance(node, dict):
        if "function" in node and isinstance(node["function"], dict) and "enum" in node["function"]:
            return node["function"]["enum"]
        for value in node.values():
            found = _find_function_enum(value)
            if found is not None:
                return found
    return None


def test_misspelt_function_in_x_derived_is_a_load_error_naming_the_item(tmp_path):
    folder = _copy_study(tmp_path)
    edit_json(folder / "forms" / "end-of-study.json", lambda doc: doc["properties"]["LASTDOSE"].update({"x-derived": "last_dose_dat()"}))
    with pytest.raises(StudyDefinitionError) as info:
        load_study(folder)
    [problem] = info.value.problems
    assert (problem.file, problem.pointer) == ("forms/end-of-study.json", "/properties/LASTDOSE/x-derived")
    assert "LASTDOSE" in problem.message and "last_dose_dat()" in problem.message


def test_another_schedule_needs_no_code(tmp_path):
    """Widening a window in study.json changes what the schedule rules report."""
    folder = _copy_study(tmp_path)
    record = subject()
    chain(move_visit("V5", lambda r: d(91)), move_visit("V4", lambda r: d(64)))(record)
    assert "PD-05" in {f.rule for f in RuleSet.load(load_study(folder), today=TODAY).check([copy.deepcopy(record)])}

    def widen(doc):
        doc["visits"][4]["window"].update(before=10, after=10)
    edit_json(folder / "study.json", widen)
    assert "PD-05" not in {f.rule for f in RuleSet.load(load_study(folder), today=TODAY).check([record])}


def test_rules_are_compiled_once_and_only_selected_rules_run(study):
    subset = RuleSet.load(study, today=TODAY, only=["EC-19"])
    rec = subject()
    rec.visits["V2"]["VS_PRE"].update(SYSBP=90, DIABP=95)
    assert [(f.rule, f.visit, f.form, f.field) for f in subset.check([rec])] == [("EC-19", "V2", "VS_PRE", "SYSBP")]


def test_derived_items_of_the_schemas_are_evaluated(ruleset):
    rec = subject(ATTACK)
    ctx = ruleset.context(rec)
    eos = ctx.form_frame("V15", "EOS")
    assert eos.compute(eos.items["LASTDOSE"]) == dt.date.fromisoformat(rec.visits["V14"]["EX"]["EXSTDAT"])
    assert eos.compute(eos.items["NATTD"]) == 1
    row = ctx.row_frame("CE", 0)
    assert row.compute(row.items["ONTRT"]) == "Y"
    assert row.compute(row.items["FSCRIT"]) in ("Y", "N")
    edss = ctx.form_frame("SCR", "EDSS")
    assert edss.compute(edss.items["EDSSCALC"]) == rec.visits["SCR"]["EDSS"]["EDSS"]


def test_rule_error_becomes_a_warning_finding_not_an_exception(study, monkeypatch):
    from crf.rules import functions

    def broken(ctx, rule):
        raise RuntimeError("boom")
        yield  # pragma: no cover

    ruleset = RuleSet.load(study, today=TODAY, only=["EC-40"])
    monkeypatch.setitem(functions.PYTHON_RULES, "infusion_timing", broken)
    [f] = list(ruleset.check([subject()]))
    assert (f.rule, f.severity) == ("EC-40", Severity.WARNING) and "boom" in f.message


# -- summaries for the HTML report ---------------------------------------------------------------------------

def test_endpoint_summary_counts_attacks_beside_the_investigator(ruleset):
    one = subject(ATTACK)
    two = subject(FEMALE)
    two.visits["V15"]["EOS"]["NATT"] = 2
    rows = endpoint_summary(ruleset, [one, two])
    assert [(r.subject, r.derived, r.reported, r.agrees) for r in rows] == [
        ("01-001", 0, 2, False), ("01-010", 1, 1, True)]  # ATTACK: the seed of a subject with one attack


def test_deviation_listing_groups_by_subject_category_severity():
    def dev(subject, rule, category, severity):
        return Finding(rule, severity, category, "m", subject=subject, site="01")
    rows = deviation_listing([
        dev("01-002", "PD-10", "missed dose", Severity.MINOR), dev("01-001", "PD-05", "visit window", Severity.MINOR),
        dev("01-001", "PD-09", "dosing", Severity.MINOR), dev("01-001", "PD-07", "dosing", Severity.MAJOR),
        dev("01-001", "PD-07", "dosing", Severity.MAJOR), Finding("EC-36", Severity.QUERY, "dosing", "q", subject="01-001")])
    assert [(r.subject, r.category, r.severity, r.count, r.rules) for r in rows] == [
        ("01-001", "dosing", "major deviation", 2, ("PD-07",)),
        ("01-001", "dosing", "minor deviation", 1, ("PD-09",)),
        ("01-001", "visit window", "minor deviation", 1, ("PD-05",)),
        ("01-002", "missed dose", "minor deviation", 1, ("PD-10",))]


# -- traceability -------------------------------------------------------------------------------------------

def test_committed_edit_check_listing_is_up_to_date(study):
    committed = (ROOT / "docs" / "edit-checks.md").read_text(encoding="utf-8")
    assert committed == render_markdown(RuleSet.load(study)), "docs/edit-checks.md is out of date: run python build_crf.py rules-doc"


def test_listing_names_every_rule_with_its_assumption_mark(ruleset):
    text = render_markdown(ruleset)
    for rule in ruleset.rules:
        line = next(row for row in text.splitlines() if row.startswith(f"| {rule.id} |"))
        assert ("| yes: " in line) == bool(rule.assumption)


def test_rules_doc_command_checks_and_writes(tmp_path):
    out = tmp_path / "edit-checks.md"
    runner = CliRunner()
    assert runner.invoke(build, ["rules-doc", "--out", str(out), "--check"]).exit_code == 1
    result = runner.invoke(build, ["rules-doc", "--out", str(out)])
    assert result.exit_code == 0 and "81 rules" in result.output
    assert runner.invoke(build, ["rules-doc", "--out", str(out), "--check"]).exit_code == 0


def test_rule_files_carry_ids_categories_and_severities(ruleset):
    ids = [r.id for r in ruleset.rules]
    assert ids == [f"EC-{n:02d}" for n in range(1, 63)] + ["LNK-01"] + [f"PD-{n:02d}" for n in range(1, 19)]
    for rule in ruleset.rules:
        if rule.id.startswith("PD-"):
            assert rule.is_deviation or all(c.severity in (Severity.MAJOR, Severity.MINOR) for c in rule.checks)
        for related in rule.related:
            assert related in ids
