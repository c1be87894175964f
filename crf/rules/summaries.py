"""What the HTML report shows beside the findings: deviations by subject, category and severity, and
the primary endpoint's attack count per subject (derived from the attack log) beside the investigator's.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from ..expressions import MISSING
from ..findings import SEVERITY_ORDER, Finding, Severity
from ..subject import SubjectRecord
from .engine import RuleSet, merge_records


@dataclass(frozen=True)
class DeviationRow:
    site: str
    subject: str
    category: str
    severity: str  # "major deviation" / "minor deviation"
    count: int
    rules: tuple[str, ...]  # PD ids, sorted
    findings: tuple[Finding, ...]


def deviation_listing(findings: Iterable[Finding]) -> list[DeviationRow]:
    """Protocol deviations grouped by subject, category and severity (major first), in subject order."""
    groups: dict[tuple[str, str, str, Severity], list[Finding]] = {}
    for f in findings:
        if f.severity in (Severity.MAJOR, Severity.MINOR):
            groups.setdefault((f.site, f.subject, f.category, f.severity), []).append(f)
    rows = [
        DeviationRow(site, subject, category, severity.value, len(items), tuple(sorted({f.rule for f in items})),
                     tuple(sorted(items, key=Finding.sort_key)))
        for (site, subject, category, severity), items in groups.items()
    ]
    return sorted(rows, key=lambda r: (r.site, r.subject, SEVERITY_ORDER[Severity(r.severity)], r.category))


@dataclass(frozen=True)
class AttackCount:
    site: str
    subject: str
    derived: int  # confirmed attacks with onset on or after Day 0 in the attack log (NATTD)
    reported: Optional[int]  # the investigator's count on the end-of-study form (NATT), None if not returned
    rows: int  # attack-log rows, confirmed or not
    unconfirmed: int
    endpoint: str = ""  # what is counted, as the study names it (constants "endpoint.label")
    log_label: str = ""  # the log it is counted from

    @property
    def agrees(self) -> Optional[bool]:
        return None if self.reported is None else self.reported == self.derived


def endpoint_summary(ruleset: RuleSet, records: Sequence[SubjectRecord], today: Optional[dt.date] = None) -> list[AttackCount]:
    """Attacks per subject from the attack log (the primary endpoint) beside the investigator's count.

    The derived count is the end-of-study form's NATTD expression evaluated on the log (so the study
    definition, not this code, says which attacks count); the reported count is NATT as entered.
    """
    conf = ruleset.constants.get("endpoint")
    if not conf:  # the study names no endpoint count (rules/constants.json "endpoint")
        return []
    log_id, eos_form = conf["log"], conf["form"]
    derived_item, reported_item, confirmed_item = conf["derived"], conf["reported"], conf["confirmed"]
    log_label = f"{log_id} log"
    out = []
    for record in merge_records(records):
        ctx = ruleset.context(record, today)
        rows = list(ctx.row_frames(log_id))
        eos = ctx.form_frames(eos_form)
        if eos:
            derived = eos[0].compute(eos[0].items[derived_item])
            reported = eos[0].resolve(reported_item)
        else:  # no end-of-study form yet: evaluate NATTD's expression as if it were there
            item = ruleset.layout.form_items[eos_form][derived_item]
            from .context import Frame
            derived = Frame(ctx, {derived_item: item}, {}).compute(item)
            reported = MISSING
        unconfirmed = sum(1 for r in rows if r.resolve(confirmed_item) != "Y")
        out.append(AttackCount(record.site, record.subject, int(derived) if isinstance(derived, (int, float)) else 0,
                               int(reported) if isinstance(reported, (int, float)) else None, len(rows), unconfirmed,
                               conf.get("label", derived_item), log_label))
    return sorted(out, key=lambda a: (a.site, a.subject))
