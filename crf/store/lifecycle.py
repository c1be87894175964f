"""The query life cycle: each finding a site must act on is a query with a status.

    open        first found in a return of the subject
    persisting  found again in a later return (days open count from first found)
    answered    the site answered it in the query listing (stays answered while still found)
    resolved    no longer found in a later return of the subject
    closed      closed by the data manager with a reason; stays closed while still found
    reopened    found again after it was resolved, or after it was closed and had gone; or re-opened by hand

Every change of status, and every answer, is one row of query_events (append-only); `queries` holds
the current state. Warnings are notes for the data manager, never queries.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from sqlalchemy import select
from sqlalchemy.engine import Connection

from ..findings import Finding, Severity
from .schema import queries, query_events

OPEN, PERSISTING, ANSWERED, RESOLVED, CLOSED, REOPENED = "open", "persisting", "answered", "resolved", "closed", "reopened"
STATUSES = (OPEN, PERSISTING, ANSWERED, REOPENED, RESOLVED, CLOSED)
ACTIVE = frozenset({OPEN, PERSISTING, ANSWERED, REOPENED})  # waiting for the site or the data manager
AGE_BUCKETS = ((7, "0-7 days"), (30, "8-30 days"), (90, "31-90 days"), (None, "over 90 days"))


def is_query(f: Finding) -> bool:
    """Findings that go to the site's query listing and are tracked: everything but warnings, of a known subject."""
    return f.severity is not Severity.WARNING and bool(f.subject)


def as_json(value: Any) -> Optional[str]:
    return None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def days_between(start: str, end: str) -> int:
    return max(0, (dt.date.fromisoformat(end[:10]) - dt.date.fromisoformat(start[:10])).days)


def age_bucket(days: int) -> str:
    for limit, label in AGE_BUCKETS:
        if limit is None or days <= limit:
            return label
    raise AssertionError("unreachable")


@dataclass
class Events:
    """What a run did to queries, for the summary line and the JSON report."""

    counts: dict[str, int]

    def add(self, event: str) -> None:
        self.counts[event] = self.counts.get(event, 0) + 1


def _event(conn: Connection, query_id: str, run_id: int, input_id: Optional[int], event: str, status: str, at: str,
           events: Events, by: str = "", text: str = "", corrected: str = "") -> None:
    conn.execute(query_events.insert().values(query_id=query_id, run_id=run_id, input_id=input_id, event=event, status=status,
                                              at=at, by=by, text=text, corrected_value=corrected))
    events.add(event)


def apply_return(conn: Connection, site: str, subject: str, found: Iterable[Finding], input_id: int, run_id: int,
                 at: str, events: Events) -> None:
    """A usable return of one subject: its findings open, keep or re-open queries; those not found are resolved."""
    current = {row.id: row for row in conn.execute(select(queries).where(queries.c.site == site, queries.c.subject == subject))}
    seen: set[str] = set()
    for f in found:
        qid = f.finding_id
        if qid in seen or not is_query(f):
            continue
        seen.add(qid)
        details = dict(rule=f.rule, severity=f.severity.value, visit=f.visit, form=f.form, field=f.field, log_row=f.row,
                       sheet=f.sheet, cell=f.cell, value=as_json(f.value), expected=f.expected, message=f.message,
                       last_input_id=input_id, last_seen=at, present=True)
        q = current.get(qid)
        if q is None:
            conn.execute(queries.insert().values(id=qid, site=site, subject=subject, status=OPEN, first_input_id=input_id,
                                                 first_seen=at, status_since=at, **details))
            _event(conn, qid, run_id, input_id, "opened", OPEN, at, events)
            continue
        if q.status == RESOLVED or (q.status == CLOSED and not q.present):
            status, event = REOPENED, "reopened"
        elif q.status == CLOSED:  # the data manager accepted it: still there, still closed
            status, event = CLOSED, ""
        elif q.status == ANSWERED:
            status, event = ANSWERED, "persisting"
        else:
            status, event = PERSISTING, "persisting"
        since = at if status != q.status else q.status_since
        conn.execute(queries.update().where(queries.c.id == qid).values(status=status, status_since=since, **details))
        if event:
            _event(conn, qid, run_id, input_id, event, status, at, events)
    if any(f.rule == "CHECK-FAILED" for f in found):  # a check stage stopped: what it did not find is not resolved
        return
    for qid, q in current.items():
        if qid in seen or not q.present:
            continue
        if q.status in ACTIVE:
            conn.execute(queries.update().where(queries.c.id == qid).values(status=RESOLVED, status_since=at, present=False))
            _event(conn, qid, run_id, input_id, "resolved", RESOLVED, at, events)
        else:
            conn.execute(queries.update().where(queries.c.id == qid).values(present=False))


def answer(conn: Connection, q: Any, run_id: int, input_id: int, at: str, events: Events, text: str, corrected: str,
           by: str, on: str) -> bool:
    """Record the site's answer; False when the same answer was already recorded (a listing saved again)."""
    if (text, corrected, by) == (q.answer, q.corrected_value, q.answered_by):
        return False
    status = ANSWERED if q.status in (OPEN, PERSISTING, REOPENED) else q.status
    conn.execute(queries.update().where(queries.c.id == q.id).values(
        status=status, status_since=at if status != q.status else q.status_since, answer=text, corrected_value=corrected,
        answered_by=by, answered_on=on))
    _event(conn, q.id, run_id, input_id, "answered", status, at, events, by=by, text=text, corrected=corrected)
    return True


class QueryActionError(Exception):
    """A close or re-open the data manager asked for cannot be done (unknown id, already closed...)."""


def close(conn: Connection, query_id: str, reason: str, by: str, run_id: int, at: str, events: Events) -> None:
    q = conn.execute(select(queries).where(queries.c.id == query_id)).first()
    if q is None:
        raise QueryActionError(f"there is no query {query_id} in this store (ids are listed by: validate.py queries list)")
    if q.status == CLOSED:
        raise QueryActionError(f"query {query_id} is already closed ({q.close_reason})")
    conn.execute(queries.update().where(queries.c.id == query_id).values(status=CLOSED, status_since=at, close_reason=reason))
    _event(conn, query_id, run_id, None, "closed", CLOSED, at, events, by=by, text=reason)


def reopen(conn: Connection, query_id: str, reason: str, by: str, run_id: int, at: str, events: Events) -> None:
    q = conn.execute(select(queries).where(queries.c.id == query_id)).first()
    if q is None:
        raise QueryActionError(f"there is no query {query_id} in this store (ids are listed by: validate.py queries list)")
    if q.status not in (CLOSED, RESOLVED):
        raise QueryActionError(f"query {query_id} is {q.status}, not closed or resolved; only those can be re-opened")
    conn.execute(queries.update().where(queries.c.id == query_id).values(status=REOPENED, status_since=at, close_reason=""))
    _event(conn, query_id, run_id, None, "reopened", REOPENED, at, events, by=by, text=reason)


def days_open(q: Any, as_of: str) -> int:
    """From first found to now for a query still waiting; to its resolution or closing otherwise."""
    end = as_of if q.status in ACTIVE else q.status_since
    return days_between(q.first_seen, end)


def site_counts(conn: Connection, as_of: str) -> dict[str, dict[str, Any]]:
    """Per site: queries by status, the waiting ones by age. The dashboard and the JSON report both use this."""
    out: dict[str, dict[str, Any]] = {}
    for q in conn.execute(select(queries).order_by(queries.c.site, queries.c.id)):
        site = out.setdefault(q.site, {"by_status": {s: 0 for s in STATUSES}, "waiting": 0,
                                       "waiting_by_age": {label: 0 for _, label in AGE_BUCKETS}})
        site["by_status"][q.status] += 1
        if q.status in ACTIVE:
            site["waiting"] += 1
            site["waiting_by_age"][age_bucket(days_open(q, as_of))] += 1
    return out
