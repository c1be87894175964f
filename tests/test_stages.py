"""The pipeline's stages are explicit: the derive step completes the record before any check stage, so the
rules stage alone gives the same rule findings as the field and rules stages together (issue 12, item 5)."""
from __future__ import annotations

import json

import pytest

from crf.checks.stage import CheckStage
from crf.validation import build_stages, validate
from findings_cases import COMPLETER_TODAY, TODAY, base, completer
from test_rule_cases import CASES, COMPLETER


def _rule_findings(findings: list) -> list[tuple]:
    return sorted((f.rule, f.visit, f.form, f.field, f.row, f.message) for f in findings if f.category not in ("field",))


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rules_stage_alone_gives_the_same_rule_findings(study, tmp_path, rule_id):
    wording, plant = CASES[rule_id]
    doc = completer() if rule_id in COMPLETER else base()
    plant(doc)
    path = tmp_path / "subject.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    today = COMPLETER_TODAY if rule_id in COMPLETER else TODAY
    both = validate(study, [path], jobs=1, today=today).findings
    alone = validate(study, [path], jobs=1, today=today, stage_names=["rules"]).findings
    rules_of_both = [f for f in both if f.rule == rule_id or f.rule.startswith(("EC-", "PD-"))]
    assert _rule_findings(alone) == _rule_findings(rules_of_both)
    assert any(f.rule == rule_id for f in alone), f"{rule_id} ({wording}) needs the field stage to fire"


def test_every_stage_has_the_same_protocol(study):
    stages = build_stages(study)
    assert [s.name for s in stages] == ["fields", "rules"]
    for stage in stages:
        assert isinstance(stage, CheckStage)
        assert isinstance(stage.summary.__call__, object) and isinstance(dict(stage.supersession_policy), dict)


def test_fixed_values_a_document_leaves_out_reach_the_rules_alone(study, tmp_path):
    """Fixed items (e.g. the EDSS context ATTACK on the attack visit) are not inputs: a hand-written document
    leaves them out. The derive step puts them in, so the rules stage alone still finds each attack's assessment."""
    doc = completer()
    fixed = [(v.id, i.name, it.id) for v in study.visits for i in v.forms for it in i.items if it.fixed is not None]
    assert fixed and not any(item in doc["visits"].get(v, {}).get(f, {}) for v, f, item in fixed)
    path = tmp_path / "subject.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    both = validate(study, [path], jobs=1, today=COMPLETER_TODAY).findings
    alone = validate(study, [path], jobs=1, today=COMPLETER_TODAY, stage_names=["rules"]).findings
    assert both == [] and alone == []
