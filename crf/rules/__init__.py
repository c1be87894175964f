"""Edit checks and protocol deviations, declared as data in <study>/rules/*.json.

`RuleSet.load(study)` compiles the rules once; `ruleset.check(records)` yields Findings. The summaries
the HTML report shows (deviation listing, attacks per subject) are in `crf.rules.summaries`.
"""
from .engine import Check, ForEach, Rule, RuleSet, merge_records
from .summaries import AttackCount, DeviationRow, deviation_listing, endpoint_summary

__all__ = ["Check", "ForEach", "Rule", "RuleSet", "merge_records", "AttackCount", "DeviationRow", "deviation_listing", "endpoint_summary"]
