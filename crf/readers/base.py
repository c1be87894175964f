"""What every reader returns: one FileResult per input file."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..catalogue import code
from ..findings import Finding, Severity
from ..messages import file_place, render
from ..subject import SubjectRecord
from .convert import ValueIssue


@dataclass
class ReadSubject:
    """A subject record as read, with what the field checks need to know about how it was read."""

    record: SubjectRecord
    issues: dict[str, ValueIssue] = field(default_factory=dict)  # path -> value that could not be converted
    unknown: set[str] = field(default_factory=set)  # paths whose cell could not be found (reported once, elsewhere)
    log_rows: dict[str, list[int]] = field(default_factory=dict)  # log id -> workbook row number (from 1) of each record row
    cached: dict[str, Any] = field(default_factory=dict)  # path of a derived item -> its formula's cached value
    # set by the derive step (crf.checks.stage.derive), before the check stages
    derived: set[str] = field(default_factory=set)  # paths of the calculated values added to the record
    disagreements: list[Any] = field(default_factory=list)  # crf.checks.derive.Disagreement: calculated values sent that differ
    derived_done: bool = False


@dataclass
class FileResult:
    file: str  # as given on the command line (relative where possible)
    sha256: str
    kind: str  # xlsx, json, unknown
    size: int
    subject: Optional[ReadSubject] = None
    findings: list[Finding] = field(default_factory=list)
    listing: Optional[Any] = None  # the site's answered query listing (crf.readers.listing), when that is what it is

    @property
    def usable(self) -> bool:
        return self.subject is not None


class Unusable(Exception):
    """The file cannot be checked at all; becomes exactly one finding naming it."""

    def __init__(self, rule: str, problem: str, fix: str, sheet: str = "", cell: str = "",
                 severity: Optional[Severity] = None, category: Optional[str] = None, site: str = "", subject: str = ""):
        super().__init__(problem)
        self.rule, self.problem, self.fix = rule, problem, fix
        self.sheet, self.cell, self.severity, self.category = sheet, cell, severity, category
        self.site, self.subject = site, subject


def file_finding(file: str, rule: str, problem: str, fix: str = "", severity: Optional[Severity] = None,
                 category: Optional[str] = None, sheet: str = "", cell: str = "", site: str = "", subject: str = "",
                 value: Any = None, expected: str = "", visit: str = "", form: str = "") -> Finding:
    """A finding about the file (or a sheet or cell of it): a catalogued code, its message in the one shape.

    Severity, category and the fix default to the code's entry in crf.catalogue.
    """
    entry = code(rule)
    return Finding(rule=rule, severity=severity or entry.severity, category=category or entry.category,
                   message=render(file_place(file, sheet, cell), problem, fix or entry.fix),
                   subject=subject, site=site, visit=visit, form=form, file=file, sheet=sheet, cell=cell,
                   value=value, expected=expected)


def finding_from(file: str, exc: Unusable) -> Finding:
    return file_finding(file, exc.rule, exc.problem, exc.fix, exc.severity, exc.category, exc.sheet, exc.cell,
                        exc.site, exc.subject)
