"""What every reader returns: one FileResult per input file."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..findings import Finding, Severity
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


@dataclass
class FileResult:
    file: str  # as given on the command line (relative where possible)
    sha256: str
    kind: str  # xlsx, json, unknown
    size: int
    subject: Optional[ReadSubject] = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.subject is not None


class Unusable(Exception):
    """The file cannot be checked at all; becomes exactly one finding naming it."""

    def __init__(self, rule: str, problem: str, fix: str, sheet: str = "", cell: str = "",
                 severity: Severity = Severity.ERROR, category: str = "file", site: str = "", subject: str = ""):
        super().__init__(problem)
        self.rule, self.problem, self.fix = rule, problem, fix
        self.sheet, self.cell, self.severity, self.category = sheet, cell, severity, category
        self.site, self.subject = site, subject


def file_finding(file: str, rule: str, problem: str, fix: str, severity: Severity = Severity.ERROR,
                 category: str = "file", sheet: str = "", cell: str = "", site: str = "", subject: str = "",
                 value: Any = None, expected: str = "", visit: str = "", form: str = "") -> Finding:
    where = f"File {file}"
    if sheet:
        where += f", sheet '{sheet}'"
    if cell:
        where += f", cell {cell}"
    if fix and fix[-1] not in ".!?":
        fix += "."
    return Finding(rule=rule, severity=severity, category=category, message=f"{where}: {problem}. {fix}",
                   subject=subject, site=site, visit=visit, form=form, file=file, sheet=sheet, cell=cell,
                   value=value, expected=expected)


def finding_from(file: str, exc: Unusable) -> Finding:
    return file_finding(file, exc.rule, exc.problem, exc.fix, exc.severity, exc.category, exc.sheet, exc.cell,
                        exc.site, exc.subject)
