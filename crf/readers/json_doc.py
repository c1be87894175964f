"""Read a subject document (JSON, the structure of crf.subject) into a SubjectRecord.

Values are taken as JSON gives them (the schema judges their types); blanks (null, "", []) are
dropped as in a workbook. Visits, forms and logs that the study does not have are reported once each.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ..findings import Severity
from ..fieldmap import FieldPath
from ..model import Study, split_visit_key
from ..subject import Location, SubjectRecord
from .base import ReadSubject, Unusable, file_finding
from .convert import ValueIssue, safe_value

MAX_JSON_BYTES = 50 * 1024 * 1024
MAX_DEPTH = 20
MAX_DIGITS = 300  # an integer longer than this is no measurement (Python refuses over 4,300 digits)
LOG_ROWS_FACTOR = 4  # a log with more rows than this many times those it offers is cut to those (and reported)


@dataclass(frozen=True)
class _Unreadable:
    """A JSON number no report can carry: 1e400 (infinite as a float), NaN, Infinity, or thousands of digits."""

    text: str

    def issue(self) -> ValueIssue:
        shown = self.text if len(self.text) <= 40 else f"{self.text[:20]}… ({len(self.text):,} digits)"
        what = f"a number with {len(self.text):,} digits" if len(self.text) > MAX_DIGITS else "not a finite number"
        return ValueIssue("NOT-A-NUMBER", shown, f"'{shown}' is {what}", "Export the value again as a number", "a number")


def _float(text: str) -> Any:
    value = float(text)
    return value if math.isfinite(value) else _Unreadable(text)


def _int(text: str) -> Any:
    return int(text) if len(text) <= MAX_DIGITS else _Unreadable(text)


def _loads(text: str) -> Any:
    return json.loads(text, parse_float=_float, parse_int=_int, parse_constant=_Unreadable)


def _plain(value: Any) -> Any:
    """Unreadable numbers where nothing reads them as a value (identity, ids, inside lists) become their text."""
    if isinstance(value, _Unreadable):
        return value.text[:60]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _split(values: dict[str, Any], path: str, issues: dict[str, ValueIssue]) -> dict[str, Any]:
    """An item's unreadable number becomes a finding on it (like a cell that cannot be read), not a value."""
    out = {}
    for key, value in values.items():
        if isinstance(value, _Unreadable):
            issues[f"{path}/{key}"] = value.issue()
        else:
            out[key] = _plain(value)
    return out


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _depth(node: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(node, dict):
        return max((_depth(v, level + 1) for v in node.values()), default=level)
    if isinstance(node, list):
        return max((_depth(v, level + 1) for v in node), default=level)
    return level


def _unknown_visit(study: Study, key: str) -> str:
    base, repeat = split_visit_key(key)
    visit = next((v for v in study.visits if v.id == base), None)
    if visit is not None and visit.repeating:
        return f"visit '{key}' repeats: key each of its visits with its number ({visit.id}#1, {visit.id}#2 ...)"
    if visit is not None:
        return f"visit '{key}' does not repeat; it has no numbered visits (write '{visit.id}')"
    return f"visit '{key}' is not a visit of {study.id} (or is not an object)"


def _visit_keys_hint(study: Study) -> str:
    return ", ".join(f"{v.id}#1, {v.id}#2 ..." if v.repeating else v.id for v in study.visits)


def read_json(data: bytes, display: str, study: Study) -> tuple[ReadSubject, list]:
    if len(data) > MAX_JSON_BYTES:
        raise Unusable("FILE-TOO-LARGE", f"the file is {len(data) // (1024 * 1024)} MB, far more than one subject's data",
                       "Send one subject per file")
    try:
        doc = safe_value(_loads(data.decode("utf-8-sig")))  # lone surrogates and control characters made visible, once
    except UnicodeDecodeError:
        raise Unusable("FILE-NOT-JSON", "the file is not UTF-8 text", "Export the subject document again as UTF-8 JSON")
    except json.JSONDecodeError as exc:
        raise Unusable("FILE-NOT-JSON", f"the file is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                       "Export the subject document again; do not edit it by hand")
    except RecursionError:
        raise Unusable("FILE-NOT-JSON", "the JSON is nested too deeply", "Export the subject document again")
    if not isinstance(doc, dict) or _depth(doc) > MAX_DEPTH:
        raise Unusable("FILE-NOT-SUBJECT", "the JSON is not one subject document ({\"study\", \"subject\", \"visits\", \"logs\"})",
                       "Send one subject per file, in the structure of docs/report-format.md")
    issues: dict[str, ValueIssue] = {}
    doc = {k: (v if k in ("visits", "logs") else _plain(v)) for k, v in doc.items()}
    site, subject = str(doc.get("site") or ""), str(doc.get("subject") or "")
    if doc.get("study") != study.id:
        raise Unusable("WRONG-STUDY", f"this document belongs to study '{doc.get('study') or 'unknown'}', not to {study.id}",
                       "Send it to that study's data manager", category="identity", site=site, subject=subject)
    if doc.get("form_version") != study.form_version:
        raise Unusable("FORM-VERSION", f"this document has form version {doc.get('form_version') or 'unknown'}, but {study.id} "
                       f"now uses form version {study.form_version}", f"Convert the data to form version {study.form_version} and send it again",
                       category="identity", site=site, subject=subject)
    if not subject:
        raise Unusable("SUBJECT-MISSING", "the document has no subject number", "Add \"subject\" and send it again", category="identity")
    findings = []
    if doc.get("definition_hash") and doc.get("definition_hash") != study.definition_hash:
        findings.append(file_finding(display, "DEFINITION-CHANGED", "the document was made from an earlier edit of the same form version",
                                     "Nothing to do for the site; the data manager should check that no item changed meaning",
                                     severity=Severity.WARNING, site=site, subject=subject, category="identity"))
    record = SubjectRecord(study=study.id, site=site, subject=subject, form_version=doc.get("form_version"),
                           definition_hash=doc.get("definition_hash"), source=display)
    visits = doc.get("visits") or {}
    if not isinstance(visits, dict):
        visits = {}
        findings.append(file_finding(display, "JSON-STRUCTURE", "\"visits\" is not an object", "Fix the export", site=site, subject=subject, category="structure"))
    for visit_id, forms in visits.items():
        visit = study.visit_of(str(visit_id))
        if visit is None or not isinstance(forms, dict):
            findings.append(file_finding(display, "UNKNOWN-VISIT", _unknown_visit(study, str(visit_id)),
                                         f"Use the visit keys of the study ({_visit_keys_hint(study)})", site=site, subject=subject,
                                         category="structure", visit=str(visit_id)))
            continue
        kept: dict[str, dict[str, Any]] = {}
        for name, values in forms.items():
            if isinstance(values, dict):
                values = _split({k: v for k, v in values.items() if not _blank(v)}, f"/visits/{visit_id}/{name}", issues)
                for item_id in issues.keys() & {str(FieldPath.visit(visit_id, name, k)) for k in forms[name]}:
                    record.locations[item_id] = Location(display)
            else:
                values = _plain(values)
            if isinstance(values, dict):
                if not values:
                    continue
            kept[name] = values  # unknown forms and non-objects are left for the schema to report
            if isinstance(values, dict):
                for item_id in values:
                    record.locations[str(FieldPath.visit(visit_id, name, item_id))] = Location(display)
        if kept:
            record.visits[visit_id] = kept
    logs = doc.get("logs") or {}
    known_logs = {lg.id: lg for lg in study.logs}
    result = ReadSubject(record)
    if isinstance(logs, dict):
        for log_id, rows in logs.items():
            if log_id not in known_logs or not isinstance(rows, list):
                findings.append(file_finding(display, "UNKNOWN-LOG", f"log '{log_id}' is not a log of {study.id} (or is not a list of rows)",
                                             f"Use the log ids of the study ({', '.join(sorted(known_logs))})", site=site, subject=subject,
                                             category="structure"))
                continue
            offered = known_logs[log_id].rows
            if len(rows) > LOG_ROWS_FACTOR * offered:  # 20,000 rows of a 40-row log: bounded, and said so
                findings.append(file_finding(
                    display, "LOG-STRUCTURE", f"the log {log_id} has {len(rows):,} rows, far more than the {offered} it offers; only the "
                    f"first {offered} were read and checked", "Export only the subject's own rows; tell the data manager",
                    site=site, subject=subject, category="structure", form=log_id))
                rows = rows[:offered]
            kept_rows: list[Any] = []
            numbers = []
            for i, row in enumerate(rows):
                if isinstance(row, dict):
                    row = {k: v for k, v in row.items() if not _blank(v)}
                    if not row:
                        continue
                    index = len(kept_rows)
                    row = _split(row, f"/logs/{log_id}/{index}", issues)
                    for path in [p for p in issues if p.startswith(f"/logs/{log_id}/{index}/")]:
                        record.locations[path] = Location(display)
                else:
                    row = _plain(row)
                kept_rows.append(row)
                numbers.append(i + 1)
            if kept_rows:
                record.logs[log_id] = kept_rows
                result.log_rows[log_id] = numbers
    result.issues.update(issues)
    return result, findings
