"""One type for everything the validator reports.

Checks yield Findings and never raise on bad data. `finding_id` is a hash of what identifies the
problem (rule, subject, visit, form, field, log row), not of the value or message, so that the same
problem found again in a later return of the same subject keeps its id and its query can be tracked.
"""
from __future__ import annotations

import enum
import hashlib
import dataclasses
from dataclasses import asdict, dataclass
from typing import Any, Optional


class Severity(str, enum.Enum):
    ERROR = "error"
    QUERY = "query"
    MAJOR = "major deviation"
    MINOR = "minor deviation"
    WARNING = "warning"

    @property
    def needs_action(self) -> bool:
        return self in (Severity.ERROR, Severity.QUERY, Severity.MAJOR)


SEVERITY_ORDER = {s: i for i, s in enumerate(Severity)}


@dataclass(frozen=True)
class Finding:
    rule: str  # EC-36, PD-07, or a structural code such as FILE-NOT-XLSX
    severity: Severity
    category: str
    message: str  # for a site coordinator: where, what is wrong, what to do
    subject: str = ""
    site: str = ""
    visit: str = ""
    form: str = ""
    field: str = ""
    row: Optional[int] = None  # log row, from 1
    file: str = ""
    sheet: str = ""
    cell: str = ""
    value: Any = None
    expected: str = ""
    extra_key: str = dataclasses.field(default="", compare=False)  # distinguishes two findings of one rule on one field

    @property
    def finding_id(self) -> str:
        key = "|".join(str(x) for x in (self.rule, self.subject, self.visit, self.form, self.field, self.row or "", self.extra_key or ""))
        if not self.subject:  # file-level findings are identified by their file name, wherever it was run from
            key += "|" + self.file.replace("\\", "/").rsplit("/", 1)[-1]
        return hashlib.sha256(key.encode()).hexdigest()[:12]

    def sort_key(self) -> tuple[Any, ...]:
        return (self.site, self.subject, self.file, self.visit, self.form, self.row or 0, self.field, self.rule, SEVERITY_ORDER[self.severity], self.message)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra_key")
        d["severity"] = self.severity.value
        d["id"] = self.finding_id
        return d
