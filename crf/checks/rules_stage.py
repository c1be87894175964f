"""The rules stage: the study's consistency checks and protocol deviations (EC-xx, PD-xx) from crf/rules/.

The rules are compiled once per process and study definition (`RuleSet.shared`, which the derived
values and the visit summaries use too; forked workers inherit it) and run on one subject at a time,
so a worker never holds more than one subject's data. `today` fixes the date of future-date checks, so
that a rerun with the same inputs gives the same report.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterator, Optional

from ..findings import Finding
from ..model import Study
from ..readers.base import ReadSubject
from ..rules import AttackCount, RuleSet, endpoint_summary
from .stage import CheckStage, derive


class RulesStage(CheckStage):
    name = "rules"

    def __init__(self, study: Study, today: Optional[dt.date] = None):
        self.study = study
        self.ruleset = RuleSet.shared(study)  # `today` is passed per call: the shared set is not ours to change
        self.today = today
        self.supersession_policy = self.ruleset.supersession_policy  # read by crf.validation after all stages ran

    def check(self, read: ReadSubject) -> Iterator[Finding]:
        derive(self.study, read)  # done already in a run (crf.validation)
        yield from self.ruleset.check([read.record], today=self.today)

    def summary(self, read: ReadSubject) -> dict[str, Any]:
        """The primary endpoint's attack count for the HTML report (derived from the log, and as reported)."""
        counts: list[AttackCount] = endpoint_summary(self.ruleset, [read.record], today=self.today)
        return {"attacks": counts[0]} if counts else {}
