"""One problem, one finding: the supersession policy the rules declare (`supersedes` in rules/*.json).

A rule names the findings its own finding makes redundant: structural codes of the field stage
(FIELD-REQUIRED on the item an EC asks for, FIELD-CHOICE on an EDSS of 0.5, SOFT-LIMIT on a weight
EC-20 queries) or other rules (EC-01 on a consent date in the future makes every "procedure before
consent" of EC-02 meaningless). Each entry has a scope:

- `field`   (default) the same item: visit, form, field and log row;
- `form`    the same form instance, or the same log row (an impossible FS score makes EC-33's
            comparison of the EDSS with the FS scores meaningless);
- `visit`   the same visit;
- `subject` anywhere in the subject's data.

The superseded finding is dropped and the rule's finding stays with its own message; where it has
no cell of its own it takes the superseded one's. A finding never hides a more severe one, and a
finding that is itself superseded supersedes nothing (so two rules cannot drop each other).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence

from ..findings import SEVERITY_ORDER, Finding, Severity

SCOPES = ("field", "form", "visit", "subject")


@dataclass(frozen=True)
class Supersession:
    """One entry of a rule's `supersedes`."""

    finding: str  # a structural code (FIELD-REQUIRED) or a rule id (EC-62)
    scope: str = "field"
    fields: tuple[str, ...] = ()  # scope form: only findings on these items
    check: str = ""  # only findings of this check key of the superseded rule
    severity: Optional[Severity] = None  # only when the rule's own finding has this severity

    def describe(self) -> str:
        text = self.finding
        if self.check:
            text += f" (check {self.check})"
        if self.fields:
            text += f" on {', '.join(self.fields)}"
        if self.scope != "field":
            text += f", anywhere in the same {self.scope}" if self.scope != "form" else ", in the same form or log row"
        if self.severity is not None:
            text += f", when this rule's finding is an {self.severity.value}"
        return text


def _place(f: Finding, scope: str) -> tuple[object, ...]:
    visit = "" if f.row is not None else f.visit  # log findings carry no visit
    if scope == "field":
        return (f.subject, visit, f.form, f.field, f.row)
    if scope == "form":
        return (f.subject, visit, f.form, f.row)
    if scope == "visit":
        return (f.subject, visit)
    return (f.subject,)


def _matches(entry: Supersession, rule_finding: Finding, other: Finding) -> bool:
    if other.rule != entry.finding or other is rule_finding or other.rule == rule_finding.rule:
        return False
    if entry.severity is not None and rule_finding.severity is not entry.severity:
        return False
    if entry.check and other.extra_key != entry.check:
        return False
    if entry.fields and other.field not in entry.fields:
        return False
    if SEVERITY_ORDER[other.severity] < SEVERITY_ORDER[rule_finding.severity]:
        return False  # never hide a more severe finding
    return _place(rule_finding, entry.scope) == _place(other, entry.scope)


def supersede(findings: Sequence[Finding], policy: Mapping[str, Sequence[Supersession]]) -> list[Finding]:
    """The findings of one subject with every superseded finding dropped (order kept)."""
    deciders = [f for f in findings if f.rule in policy]
    if not deciders:
        return list(findings)
    by_rule: dict[str, list[Finding]] = {}
    for f in findings:
        by_rule.setdefault(f.rule, []).append(f)
    dropped: dict[int, Finding] = {}  # id(superseded finding) -> the finding that supersedes it
    # most severe first, so that a finding that is itself superseded has been dropped before it could act
    for decider in sorted(deciders, key=lambda f: SEVERITY_ORDER[f.severity]):
        if id(decider) in dropped:
            continue
        for entry in policy[decider.rule]:
            for other in by_rule.get(entry.finding, ()):
                if id(other) not in dropped and _matches(entry, decider, other):
                    dropped[id(other)] = decider
    if not dropped:
        return list(findings)
    cells: dict[int, Finding] = {}  # a kept finding without a cell takes that of one it superseded on its field
    for f in findings:
        keeper = dropped.get(id(f))
        if keeper is not None and f.cell and f.field == keeper.field:
            cells.setdefault(id(keeper), f)
    out = []
    for f in findings:
        if id(f) in dropped:
            continue
        lost = cells.get(id(f))
        if lost is not None and not f.cell:
            f = dataclasses.replace(f, sheet=lost.sheet, cell=lost.cell, file=f.file or lost.file)
        out.append(f)
    return out


def parse_entries(raw: Iterable[object]) -> list[Supersession]:
    """`supersedes` as written in a rules file (validated by schemas/meta/rules.schema.json)."""
    out = []
    for entry in raw:
        if isinstance(entry, str):
            out.append(Supersession(entry))
            continue
        assert isinstance(entry, dict)
        severity = entry.get("severity")
        out.append(Supersession(entry["finding"], entry.get("scope", "field"), tuple(entry.get("fields", ())),
                                entry.get("check", ""), _SEVERITY[severity] if severity else None))
    return out


_SEVERITY = {"error": Severity.ERROR, "query": Severity.QUERY, "major": Severity.MAJOR, "minor": Severity.MINOR}
