"""docs/edit-checks.md, generated from the rules files (`python build_crf.py rules-doc`)."""
from __future__ import annotations

import json
from collections import Counter
from typing import Any

from .engine import Rule, RuleSet
from .functions import PYTHON_RULES, functions_of

SEVERITY_LABEL = {"error": "error (H)", "query": "query", "major deviation": "major", "minor deviation": "minor"}


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _severities(rule: Rule) -> str:
    found = [rule.severity.value] + [c.severity.value for c in rule.checks]
    return ", ".join(SEVERITY_LABEL[s] for s in dict.fromkeys(found))


def _doc(fn: Any) -> str:
    return (fn.__doc__ or "").strip().split("\n")[0]


def render_markdown(ruleset: RuleSet) -> str:
    study = ruleset.study
    rules = ruleset.rules
    kinds = Counter(r.kind for r in rules)
    out = [
        f"# Edit checks and protocol deviations: {study.id}",
        "",
        "<!-- Generated from schemas/" + study.folder.name + "/rules/*.json by `python build_crf.py rules-doc`; do not edit by hand. -->",
        "",
        f"{len(rules)} rules ({sum(1 for r in rules if r.id.startswith('EC-'))} edit checks, "
        f"{sum(1 for r in rules if r.id.startswith('PD-'))} protocol deviations"
        + (f", {others} other ({', '.join(sorted({r.id.split('-')[0] for r in rules if not r.id.startswith(('EC-', 'PD-'))}))})"
           if (others := sum(1 for r in rules if not r.id.startswith(("EC-", "PD-")))) else "")
        + f"): {kinds['expression']} declared as expressions, "
        f"{kinds['python']} as registered Python functions. Protocol {study.protocol_version}, form version {study.form_version}.",
        "",
        "## How to read this",
        "- **Severity**: *error* = impossible or contradictory data (spec type H); *query* = implausible or",
        "  cross-form inconsistency the site confirms or corrects (S and X); *major* / *minor* = protocol deviation (spec section 4).",
        "- **Edit checks and deviations** are separate rules. An edit check is a query to the site about the data",
        "  (correct it, or confirm it); a deviation (PD) records what happened to the subject, once per occurrence",
        "  (per infusion, per visit, per medication row), whatever the number of queries. Where the spec ties them",
        "  (EC-36 over 10% gives PD-07) both are reported, each once: the query on the data, the deviation for the",
        "  deviation log. The *related* column links them.",
        "- **One problem, one finding**: a rule lists under *Supersedes* the findings its own finding makes redundant",
        "  (a structural code of the field checks, or another rule), on the same item unless a wider scope is given;",
        "  those are dropped and the rule's message stays. A finding never hides a more severe one. Two checks of one",
        "  rule on the same item and unit give one finding (the first that fails).",
        "- **Partial dates** (history, medications) compare conservatively: a check fires only when every date a",
        "  partial date could stand for breaks the rule (`earliest()`/`latest()`, `must_overlap()`); a check that",
        "  looks for a supporting record accepts one that may match (`may_overlap()`).",
        "- **Day 0** is the date of the first infusion given; every window counts from it. **Today** is the date of the",
        "  run (injectable: `RuleSet.load(study, today=...)`, `ruleset.check(records, today=...)`).",
        "- **ASSUMPTION**: the rule depends on something the spec marks as an assumption; it is configurable in the",
        "  study definition (the rules files' constants, study.json windows and dosing).",
        "",
        "## Rules",
        "",
        "| ID | Title | Forms | Severity | Category | Kind | Related | ASSUMPTION | Message |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rules:
        message = r.message if r.kind == "python" and not r.messages else (r.checks[0].message if r.checks else r.message)
        if r.kind == "python" and r.messages:
            message = next(iter(r.messages.values()))
        out.append("| " + " | ".join(_cell(x) for x in (
            r.id, r.title, ", ".join(r.forms), _severities(r), r.category, r.kind, ", ".join(r.related),
            f"yes: {r.assumption}" if r.assumption else "no", message)) + " |")
    out += ["", "## Rule details", ""]
    for r in rules:
        out += [f"### {r.id}: {r.title}", "",
                f"Reads {', '.join(r.forms)}; {r.category}; {_severities(r)}; defined in `{r.source}`."]
        if r.related:
            out.append(f"Related: {', '.join(r.related)}.")
        if r.assumption:
            out.append(f"ASSUMPTION: {r.assumption}")
        if r.note:
            out.append(f"Reading: {r.note}")
        if r.supersedes:
            out.append("Supersedes (one problem, one finding): " + "; ".join(s.describe() for s in r.supersedes) + ".")
        out.append("")
        if r.kind == "python":
            fn = PYTHON_RULES[r.function or ""]
            out.append(f"Python rule `{r.function}` ({fn.__module__}): {_doc(fn)}")
            if r.params:
                out.append(f"Parameters: `{json.dumps(dict(r.params), ensure_ascii=False)}`")
            for key, text in r.messages.items():
                out.append(f"- {key}: {text}")
        else:
            if r.first_match:
                out.append("Only the first failing check is reported for each unit.")
            for c in r.checks:
                cond = f"when `{c.when.text}`, " if c.when else ""
                out.append(f"- {c.severity.value}, for {c.for_each.describe()}: {cond}fails if `{c.fail_if.text}`"
                           + (f" (field {c.field})" if c.field else "") + f". Message: {c.message}")
        out.append("")
    out += ["## Constants", "", "Defined in the rules files; expressions use them by name.", "", "| Name | Value |", "|---|---|"]
    for name, value in sorted(ruleset.constants.items()):
        out.append(f"| `{name}` | `{_cell(json.dumps(value, ensure_ascii=False))}` |")
    out += ["", "## Functions of the expression language", "",
            "Besides the operators of docs/study-definition.md#expressions. Functions marked *lazy* take a log or",
            "form id and a condition evaluated once per row or form instance; names inside the condition are",
            "that row's or form's items first, then those of the enclosing form.", "",
            "| Function | Result | What it gives |", "|---|---|---|"]
    known = functions_of(study)  # the language's and the study's own (crf/plugin.py)
    for name in sorted(known):
        spec = known[name]
        lazy = " (lazy)" if spec.lazy else ""
        out.append(f"| `{_cell(spec.signature())}`{lazy} | {spec.returns} | {_cell(spec.description)} |")
    return "\n".join(out) + "\n"
