"""Recording one validate.py run in the study store: inputs, values, the audit trail, findings, queries.

Order within the run: answered query listings first (the site answered them before it sent the
corrected workbooks), then subject returns in file order. A file already received (same SHA-256)
gets a receipt and nothing else: it is not a new return.
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, CursorResult

from .. import __version__
from ..fieldmap import FieldPath
from ..findings import Finding, Severity
from ..readers.base import file_finding
from ..readers.listing import QUERIES_SHEET, QueryListing
from . import lifecycle
from .lifecycle import Events, as_json
from .schema import findings as findings_table
from .schema import inputs, item_values, queries, receipts, return_visits, runs, value_changes


@dataclass
class RunSummary:
    """What a run recorded; `findings` are the store's own (answers it could not match), for the reports."""

    run_id: int
    received: str
    new_returns: list[str] = field(default_factory=list)
    already_received: list[tuple[str, str, str]] = field(default_factory=list)  # (file, first received as, when)
    listings: list[str] = field(default_factory=list)
    answers: int = 0
    changes: int = 0
    events: Events = field(default_factory=lambda: Events({}))
    findings: list[Finding] = field(default_factory=list)
    sites: dict[str, dict[str, Any]] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"{len(self.new_returns)} new return(s)"]
        if self.already_received:
            parts.append(f"{len(self.already_received)} file(s) already received (not counted again)")
        if self.listings:
            parts.append(f"{len(self.listings)} answered query listing(s), {self.answers} answer(s)")
        parts.append(f"{self.changes} changed value(s)")
        ev = self.events.counts
        parts.append(", ".join(f"{ev.get(k, 0)} {k}" for k in ("opened", "persisting", "resolved", "reopened")) + " queries")
        return "Store: " + "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.run_id, "received": self.received, "new_returns": self.new_returns,
                "already_received": [{"file": f, "first_received_as": first, "on": when} for f, first, when in self.already_received],
                "listings": self.listings, "answers": self.answers, "changed_values": self.changes,
                "query_events": dict(sorted(self.events.counts.items())), "sites": self.sites}


def _split_path(path: str) -> tuple[str, str, str, Optional[int]]:
    """(container, form (a log's id), item, log row from 1) of a field's path."""
    p = FieldPath.parse(path)
    if p is None:
        raise ValueError(f"not a field's path: {path}")
    if p.row is not None:  # /logs/AE/0/AETERM
        return p.container, p.container, p.item, p.row + 1
    return p.container, p.form, p.item, None  # /visits/V1/VS_PRE/WEIGHT


def new_run(conn: Connection, command: str, received: str, definition_hash: str, by: str = "") -> int:
    return _new_id(conn.execute(runs.insert().values(command=command, received=received, tool_version=__version__,
                                                     definition_hash=definition_hash, by=by)))


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None  # a single-row INSERT always has its key
    return int(key[0])


def record(conn: Connection, result: Any, received: str, by: str = "") -> RunSummary:
    """Record a ValidationResult computed with keep_values=True; returns what was recorded."""
    run_id = new_run(conn, "validate", received, result.study.definition_hash, by)
    summary = RunSummary(run_id, received)
    by_file: dict[str, list[Finding]] = defaultdict(list)
    for f in result.findings:
        by_file[f.file].append(f)
    ordered = sorted(result.files, key=lambda o: (o.listing is None, o.file))
    for outcome in ordered:
        if not outcome.sha256:  # the file could not even be opened: nothing to keep but its finding in the report
            continue
        first = conn.execute(select(inputs.c.id, inputs.c.file, inputs.c.received).where(inputs.c.sha256 == outcome.sha256)).first()
        if first is not None:
            conn.execute(receipts.insert().values(run_id=run_id, input_id=first.id, file=outcome.file, already_received=True))
            summary.already_received.append((outcome.file, first.file, first.received))
            continue
        subject = outcome.subject
        site = subject.site if subject else (outcome.listing.site if outcome.listing else "")
        number = None
        if subject is not None:
            number = 1 + (conn.execute(select(func.max(inputs.c.return_number)).where(
                inputs.c.site == subject.site, inputs.c.subject == subject.subject)).scalar() or 0)
        values = outcome.values
        input_id = _new_id(conn.execute(inputs.insert().values(
            run_id=run_id, sha256=outcome.sha256, file=outcome.file, size=outcome.size, kind=outcome.kind, received=received,
            site=site, subject=subject.subject if subject else "", form_version=values.form_version if values else "",
            definition_hash=values.definition_hash if values else "", usable=subject is not None,
            return_number=number)))
        conn.execute(receipts.insert().values(run_id=run_id, input_id=input_id, file=outcome.file, already_received=False))
        found = list(by_file.get(outcome.file, []))
        if outcome.listing is not None:
            extra = _answers(conn, outcome.listing, run_id, input_id, received, summary)
            found += extra
            summary.findings += extra
            summary.listings.append(outcome.file)
        _findings(conn, input_id, found)
        if subject is not None:
            summary.new_returns.append(outcome.file)
            if values is not None:
                summary.changes += _values(conn, input_id, subject.site, subject.subject, values.rows())
            bulk_insert(conn, return_visits, [(input_id, vid, v.present, v.date, v.window, v.study_day) for vid, v in subject.visits.items()])
            lifecycle.apply_return(conn, subject.site, subject.subject,
                                   [f for f in found if f.subject == subject.subject and f.site == subject.site],
                                   input_id, run_id, received, summary.events)
    summary.sites = lifecycle.site_counts(conn, received)
    return summary


def _findings(conn: Connection, input_id: int, found: list[Finding]) -> None:
    rows: dict[str, dict[str, Any]] = {}
    for f in found:
        rows.setdefault(f.finding_id, dict(
            input_id=input_id, finding_id=f.finding_id, rule=f.rule, severity=f.severity.value, category=f.category, site=f.site,
            subject=f.subject, visit=f.visit, form=f.form, field=f.field, log_row=f.row, sheet=f.sheet, cell=f.cell,
            value=as_json(f.value), expected=f.expected, message=f.message))
    if rows:
        conn.execute(findings_table.insert(), list(rows.values()))


def bulk_insert(conn: Connection, table: Any, rows: list[tuple[Any, ...]]) -> None:
    """Many rows of plain values (all columns, in order) straight to the driver's executemany: a subject's thousand
    values cost a tenth of what SQLAlchemy's per-row parameter processing does."""
    if not rows:
        return
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    columns = ", ".join(conn.dialect.identifier_preparer.quote(c.name) for c in table.columns)
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({columns}) VALUES ({', '.join([mark] * len(table.columns))})", rows)


def _values(conn: Connection, input_id: int, site: str, subject: str, read: list[list[Any]]) -> int:
    """Store the values read; the audit trail gets one row per item that differs from the subject's previous return."""
    bulk_insert(conn, item_values, [(input_id, *row) for row in read])  # ReturnedValues rows are item_values' columns
    new = {row[0]: (row[5], row[6], row[7]) for row in read}
    previous = conn.execute(select(inputs.c.id).where(
        inputs.c.site == site, inputs.c.subject == subject, inputs.c.usable.is_(True), inputs.c.id != input_id)
        .order_by(inputs.c.return_number.desc()).limit(1)).scalar()
    if previous is None:  # the first return: its values are the baseline, nothing changed yet
        return 0
    old = {r.path: (r.value, r.sheet, r.cell) for r in conn.execute(
        select(item_values.c.path, item_values.c.value, item_values.c.sheet, item_values.c.cell).where(item_values.c.input_id == previous))}
    changes = []
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path), new.get(path)
        if before is not None and after is not None and before[0] == after[0]:
            continue
        visit, form, item, log_row = _split_path(path)
        where = after or before
        assert where is not None
        changes.append(dict(input_id=input_id, previous_input_id=previous, site=site, subject=subject, path=path, visit=visit,
                            form=form, item=item, log_row=log_row, old_value=before[0] if before else None,
                            new_value=after[0] if after else None, sheet=where[1], cell=where[2]))
    if changes:
        conn.execute(value_changes.insert(), changes)
    return len(changes)


def _answers(conn: Connection, listing: QueryListing, run_id: int, input_id: int, at: str, summary: RunSummary) -> list[Finding]:
    """Record the listing's answers; a row whose id does not match the query it claims to be is a finding."""
    problems: list[Finding] = []
    for row in listing.rows:
        if not row.answered:
            continue
        q = conn.execute(select(queries).where(queries.c.id == row.query_id)).first()
        where: dict[str, Any] = dict(sheet=QUERIES_SHEET, cell=row.id_cell, site=listing.site or row.site, category="listing", value=row.query_id)
        if q is None:
            problems.append(file_finding(listing.file, "LISTING-UNKNOWN-QUERY", f"query id {row.query_id} (row {row.number}) was never issued for this study",
                                         "Query ids must stay as issued: copy the id back from the listing you received; this answer was not recorded", **where))
            continue
        if listing.site and q.site != listing.site:
            problems.append(file_finding(listing.file, "LISTING-OTHER-SITE", f"query {row.query_id} (row {row.number}) is a query of site {q.site}, but this listing was issued to site {listing.site}",
                                         "Answer each site's queries in that site's own listing; this answer was not recorded", **where))
            continue
        claimed = (row.site, row.subject, row.rule, row.visit, row.field)
        actual = (q.site, q.subject, q.rule, q.visit, q.field)
        if any(c and c != a for c, a in zip(claimed, actual)):
            problems.append(file_finding(
                listing.file, "LISTING-ID-MISMATCH",
                f"the id {row.query_id} in row {row.number} belongs to query {q.rule} of subject {q.subject}"
                f"{' visit ' + q.visit if q.visit else ''}{' field ' + q.field if q.field else ''}, but the row is about "
                f"{row.rule} of subject {row.subject}{' visit ' + row.visit if row.visit else ''}{' field ' + row.field if row.field else ''}",
                "The id column was changed or rows were mixed up: answer in the listing as issued; this answer was not recorded", **where))
            continue
        if lifecycle.answer(conn, q, run_id, input_id, at, summary.events, row.answer, row.corrected_value, row.answered_by, row.answered_on):
            summary.answers += 1
    return [dataclasses.replace(f, severity=Severity.ERROR, extra_key=f.cell) for f in problems]
