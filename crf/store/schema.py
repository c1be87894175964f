"""The store's tables (SQLAlchemy Core). Alembic revisions in crf/store/migrations/ create and change them.

History (append-only, refused by triggers in the database): what was received and read, what changed
and what happened to each query. `queries` is the one mutable table: each query's current state,
which the `query_events` history explains step by step.
"""
from __future__ import annotations

from sqlalchemy import (Boolean, Column, ForeignKey, Index, Integer, MetaData, String, Table, Text, UniqueConstraint)

metadata = MetaData()

# Written once when the store is created: which study it belongs to.
store_info = Table(
    "store_info", metadata,
    Column("key", String(40), primary_key=True),
    Column("value", Text, nullable=False),
)

# One per command that wrote to the store (validate.py --store, queries close/reopen).
runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True),
    Column("command", String(20), nullable=False),
    Column("received", String(32), nullable=False),  # ISO date-time, UTC
    Column("tool_version", String(20), nullable=False),
    Column("definition_hash", String(80), nullable=False),
    Column("by", Text, nullable=False, server_default=""),
)

# Every distinct file ever received (by SHA-256): a subject's return, an answered query listing, or an unusable file.
inputs = Table(
    "inputs", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("file", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("kind", String(20), nullable=False),  # xlsx, json, query-listing, unknown
    Column("received", String(32), nullable=False),
    Column("site", String(20), nullable=False, server_default=""),
    Column("subject", String(40), nullable=False, server_default=""),
    Column("form_version", String(20), nullable=False, server_default=""),
    Column("definition_hash", String(80), nullable=False, server_default=""),
    Column("usable", Boolean, nullable=False),
    Column("return_number", Integer),  # 1, 2, 3... per subject; NULL when not a usable subject return
    UniqueConstraint("site", "subject", "return_number", name="uq_inputs_return_number"),
)
Index("ix_inputs_subject", inputs.c.site, inputs.c.subject)

# Each arrival of a file, including the same file sent again (then `input_id` is the first arrival's).
receipts = Table(
    "receipts", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("input_id", Integer, ForeignKey("inputs.id"), nullable=False),
    Column("file", Text, nullable=False),
    Column("already_received", Boolean, nullable=False),
)

# Every value read from a return, with the cell it was read from.
item_values = Table(
    "item_values", metadata,
    Column("input_id", Integer, ForeignKey("inputs.id"), primary_key=True),
    Column("path", String(200), primary_key=True),  # /visits/V1/VS_PRE/WEIGHT, /logs/AE/0/AETERM
    Column("visit", String(40), nullable=False),  # visit id, or the log id for log rows
    Column("form", String(60), nullable=False),
    Column("item", String(60), nullable=False),
    Column("log_row", Integer),  # from 1
    Column("value", Text, nullable=False),  # JSON
    Column("sheet", Text, nullable=False, server_default=""),
    Column("cell", String(12), nullable=False, server_default=""),
)

# Visit dates and windows of each return (the subject x visit grid).
return_visits = Table(
    "return_visits", metadata,
    Column("input_id", Integer, ForeignKey("inputs.id"), primary_key=True),
    Column("visit", String(40), primary_key=True),
    Column("present", Boolean, nullable=False),
    Column("date", String(10)),
    Column("window", String(3)),
    Column("study_day", Integer),
)

# The audit trail: what changed from a subject's previous return to this one, item by item.
value_changes = Table(
    "value_changes", metadata,
    Column("id", Integer, primary_key=True),
    Column("input_id", Integer, ForeignKey("inputs.id"), nullable=False),
    Column("previous_input_id", Integer, ForeignKey("inputs.id"), nullable=False),
    Column("site", String(20), nullable=False),
    Column("subject", String(40), nullable=False),
    Column("path", String(200), nullable=False),
    Column("visit", String(40), nullable=False),
    Column("form", String(60), nullable=False),
    Column("item", String(60), nullable=False),
    Column("log_row", Integer),
    Column("old_value", Text),  # JSON; NULL when the item was blank
    Column("new_value", Text),  # JSON; NULL when the item was cleared
    Column("sheet", Text, nullable=False, server_default=""),
    Column("cell", String(12), nullable=False, server_default=""),
)
Index("ix_value_changes_subject", value_changes.c.site, value_changes.c.subject)

# Every finding of every file, as reported.
findings = Table(
    "findings", metadata,
    Column("input_id", Integer, ForeignKey("inputs.id"), primary_key=True),
    Column("finding_id", String(12), primary_key=True),
    Column("rule", String(40), nullable=False),
    Column("severity", String(20), nullable=False),
    Column("category", String(40), nullable=False),
    Column("site", String(20), nullable=False),
    Column("subject", String(40), nullable=False),
    Column("visit", String(40), nullable=False),
    Column("form", String(60), nullable=False),
    Column("field", String(60), nullable=False),
    Column("log_row", Integer),
    Column("sheet", Text, nullable=False),
    Column("cell", String(12), nullable=False),
    Column("value", Text),  # JSON
    Column("expected", Text, nullable=False),
    Column("message", Text, nullable=False),
)

# Each query's current state (derived from query_events; the only table that is updated).
queries = Table(
    "queries", metadata,
    Column("id", String(12), primary_key=True),  # the finding id, stable across returns
    Column("site", String(20), nullable=False),
    Column("subject", String(40), nullable=False),
    Column("rule", String(40), nullable=False),
    Column("severity", String(20), nullable=False),
    Column("visit", String(40), nullable=False),
    Column("form", String(60), nullable=False),
    Column("field", String(60), nullable=False),
    Column("log_row", Integer),
    Column("sheet", Text, nullable=False),
    Column("cell", String(12), nullable=False),
    Column("value", Text),  # JSON, as last found
    Column("expected", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("status", String(12), nullable=False),  # open persisting answered resolved closed reopened
    Column("present", Boolean, nullable=False),  # found in the subject's latest return
    Column("first_input_id", Integer, ForeignKey("inputs.id"), nullable=False),
    Column("first_seen", String(32), nullable=False),
    Column("last_input_id", Integer, ForeignKey("inputs.id"), nullable=False),
    Column("last_seen", String(32), nullable=False),
    Column("status_since", String(32), nullable=False),
    Column("answer", Text, nullable=False, server_default=""),
    Column("corrected_value", Text, nullable=False, server_default=""),
    Column("answered_by", Text, nullable=False, server_default=""),
    Column("answered_on", Text, nullable=False, server_default=""),
    Column("close_reason", Text, nullable=False, server_default=""),
)
Index("ix_queries_subject", queries.c.site, queries.c.subject)

# What happened to each query, in order: opened, persisting, answered, resolved, closed, reopened.
query_events = Table(
    "query_events", metadata,
    Column("id", Integer, primary_key=True),
    Column("query_id", String(12), ForeignKey("queries.id"), nullable=False),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("input_id", Integer, ForeignKey("inputs.id")),  # the return or listing that caused it
    Column("event", String(12), nullable=False),
    Column("status", String(12), nullable=False),  # the status after the event
    Column("at", String(32), nullable=False),
    Column("by", Text, nullable=False, server_default=""),
    Column("text", Text, nullable=False, server_default=""),  # the site's answer or the data manager's reason
    Column("corrected_value", Text, nullable=False, server_default=""),
)
Index("ix_query_events_query", query_events.c.query_id)

# Tables whose rows are never updated or deleted (21 CFR 11.10(e)); triggers refuse it.
APPEND_ONLY = ("store_info", "runs", "inputs", "receipts", "item_values", "return_visits", "value_changes", "findings",
               "query_events")
