"""The protocol of every check stage, and the derive step that runs before all of them.

The pipeline for one subject (crf.validation.check_file): read -> derive -> each check stage -> supersede.
Deriving is a step of its own so that every stage sees the same completed record, whichever stages run:
the rules stage alone gives the same findings as after the field checks.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Iterable, Mapping

from ..findings import Finding
from ..model import Study
from ..readers.base import ReadSubject
from .derive import complete


class CheckStage:
    """A check stage: built once per study, then `check` is called for each derived subject.

    `check` yields findings and never raises on bad data (an exception is reported as CHECK-FAILED).
    `supersession_policy` says which findings a stage's findings replace (crf.rules.supersede);
    `summary` gives extra facts about the subject for the reports (e.g. the attack count).
    """

    name: str = ""
    supersession_policy: Mapping[str, Any] = MappingProxyType({})

    def check(self, read: ReadSubject) -> Iterable[Finding]:
        raise NotImplementedError

    def summary(self, read: ReadSubject) -> dict[str, Any]:
        return {}


def derive(study: Study, read: ReadSubject) -> None:
    """Complete the record once, before any check: fixed and calculated values are added to it,
    `read.derived` names the calculated paths, `read.disagreements` the values sent that differ."""
    if read.derived_done:
        return
    read.derived, read.disagreements = complete(study, read.record, read.cached)
    read.derived_done = True
