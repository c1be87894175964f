"""A subject's data as returned by a site, whatever file it came in.

The JSON form of a subject document (also what `validate.py` accepts as input) is:

    {"study": "BEL-NMOSD", "form_version": "1.0", "definition_hash": "...",
     "site": "01", "subject": "01-001",
     "visits": {"V1": {"VS_PRE": {"WEIGHT": 70.2, ...}, ...}, ...},
     "logs": {"AE": [{"AETERM": "Headache", ...}, ...], ...}}

Values are JSON values as the schemas describe them: dates "YYYY-MM-DD", times "HH:MM", codes, numbers,
arrays of codes for multi-selects. Blank fields are absent. Readers fill `locations` so that every
finding can name the file, sheet and cell a value came from.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass(frozen=True)
class Location:
    file: str
    sheet: Optional[str] = None
    cell: Optional[str] = None

    def describe(self) -> str:
        if self.sheet and self.cell:
            return f"{self.file}, sheet '{self.sheet}', cell {self.cell}"
        if self.sheet:
            return f"{self.file}, sheet '{self.sheet}'"
        return self.file


@dataclass
class SubjectRecord:
    study: str
    site: str
    subject: str
    visits: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    logs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    form_version: Optional[str] = None
    definition_hash: Optional[str] = None
    source: Optional[str] = None  # file the record was read from
    locations: dict[str, Location] = field(default_factory=dict)  # field path -> where it was read

    def value(self, visit: str, form: str, item: str) -> Any:
        return self.visits.get(visit, {}).get(form, {}).get(item)

    def set(self, visit: str, form: str, item: str, value: Any) -> None:
        self.visits.setdefault(visit, {}).setdefault(form, {})[item] = value

    def location(self, path: str) -> Location:
        return self.locations.get(path) or Location(self.source or "?")

    def to_json(self) -> dict[str, Any]:
        return {
            "study": self.study, "form_version": self.form_version, "definition_hash": self.definition_hash,
            "site": self.site, "subject": self.subject, "visits": self.visits, "logs": self.logs,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any], source: Optional[str] = None) -> "SubjectRecord":
        return cls(
            study=doc.get("study", ""), site=str(doc.get("site", "")), subject=str(doc.get("subject", "")),
            visits=doc.get("visits") or {}, logs=doc.get("logs") or {}, form_version=doc.get("form_version"),
            definition_hash=doc.get("definition_hash"), source=source,
        )
