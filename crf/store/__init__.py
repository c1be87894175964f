"""The study store: every return kept, an audit trail of changes, and the query life cycle.

SQLite file by default, PostgreSQL for a study several data managers share; SQLAlchemy Core for the
database layer and Alembic for schema revisions (crf/store/migrations/). Entry points:

    record_result(store, study, result, received)  -> RunSummary   (validate.py PATH --store STORE)
    close_query / reopen_query                                     (validate.py queries close|reopen)
    crf.store.reports                                              listings, history, dashboard
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from .database import DEFAULT_WAIT, StoreError, transaction
from .ingest import RunSummary

__all__ = ["StoreError", "RunSummary", "record_result", "close_query", "reopen_query", "parse_received", "with_store"]


def parse_received(text: str | None) -> str:
    """When the files were received, as an ISO date-time (UTC): from --received, else the clock."""
    if not text:
        return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date or date-time such as 2026-11-25 or 2026-11-25T14:30") from None
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%S")


def record_result(store: str, study: Any, result: Any, received: str, by: str = "", wait: float = DEFAULT_WAIT) -> RunSummary:
    """Record one validation run (computed with keep_values=True) in one transaction: all of it or nothing."""
    from .ingest import record

    with transaction(store, study.id, wait) as conn:
        return record(conn, result, received, by)


def with_store(result: Any, summary: RunSummary) -> Any:
    """The result with what the store added: its findings (answers that could not be matched) and its summary."""
    from ..validation import reading_order

    from ..spill import SpilledFindings

    findings: Any
    if isinstance(result.findings, SpilledFindings):  # many: sorted again in their file
        findings = result.findings.extended(summary.findings)
    else:
        findings = sorted(list(result.findings) + summary.findings, key=reading_order(result.study))
    return dataclasses.replace(result, findings=findings, store=summary.as_dict())


def _action(store: str, study: Any, query_ids: tuple[str, ...], reason: str, by: str, at: str, wait: float, which: str) -> list[str]:
    from . import lifecycle
    from .ingest import new_run

    with transaction(store, study.id, wait, create=False) as conn:
        run_id = new_run(conn, which, at, study.definition_hash, by)
        events = lifecycle.Events({})
        for qid in query_ids:
            (lifecycle.close if which == "close" else lifecycle.reopen)(conn, qid.strip().lower(), reason, by, run_id, at, events)
    return list(query_ids)


def close_query(store: str, study: Any, query_ids: tuple[str, ...], reason: str, by: str, at: str, wait: float = DEFAULT_WAIT) -> list[str]:
    return _action(store, study, query_ids, reason, by, at, wait, "close")


def reopen_query(store: str, study: Any, query_ids: tuple[str, ...], reason: str, by: str, at: str, wait: float = DEFAULT_WAIT) -> list[str]:
    return _action(store, study, query_ids, reason, by, at, wait, "reopen")
