"""Reports from the study store: the per-site query listing, a subject's history, the per-site dashboard.

All are deterministic: rows in a fixed order, no clock (the "as of" date is the last time files were
received unless the caller gives one), the chart drawn by matplotlib with a fixed SVG hash salt and
no date in its metadata.
"""
from __future__ import annotations

import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional, cast

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ..findings import Finding, Severity
from ..model import Study
from ..reports import text_of
from ..reports.html_report import STATUS_CLASS
from ..reports.xlsx_report import QUERY_COLUMNS, PageHeader, listing_workbook
from ..validation import SubjectSummary, VisitColumn, VisitState, visit_columns, visit_statuses
from . import lifecycle
from .schema import inputs, query_events, queries, return_visits, runs, value_changes

TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates" / "store"
STORE_COLUMNS = (("status", "Status", 11), ("days", "Days open", 9), ("previous", "Previous answer", 36))


def as_of(conn: Connection, today: Optional[str] = None) -> str:
    """The date reports count days to: the caller's, else the last time anything was recorded."""
    if today:
        return today
    return conn.execute(select(func.max(runs.c.received))).scalar() or "1970-01-01T00:00:00"


def _value(text: Optional[str]) -> Any:
    return None if text is None else json.loads(text)


def sites(conn: Connection) -> list[str]:
    return [s for s in conn.execute(select(inputs.c.site).where(inputs.c.site != "").distinct().order_by(inputs.c.site)).scalars()]


def query_rows(conn: Connection, site: Optional[str] = None, statuses: Optional[set[str]] = None, subject: Optional[str] = None) -> list[Any]:
    stmt = (select(queries, inputs.c.file.label("file"), inputs.c.return_number.label("last_return"))
            .join(inputs, inputs.c.id == queries.c.last_input_id)
            .order_by(queries.c.site, queries.c.subject, queries.c.first_input_id, queries.c.visit, queries.c.sheet, queries.c.cell, queries.c.id))
    if site:
        stmt = stmt.where(queries.c.site == site)
    if subject:
        stmt = stmt.where(queries.c.subject == subject)
    rows = list(conn.execute(stmt))
    return [r for r in rows if statuses is None or r.status in statuses]


# -- the site's query listing -------------------------------------------------------------------------
def listing_xlsx(conn: Connection, study: Study, site: str, today: Optional[str] = None) -> bytes:
    """The site's waiting queries (open, persisting, answered, re-opened) with status, days open and the previous
    answer, and empty answer columns; the site sends it back and validate.py --store records the answers."""
    day = as_of(conn, today)
    columns = list(QUERY_COLUMNS[:1]) + list(STORE_COLUMNS) + list(QUERY_COLUMNS[1:])
    rows = []
    for q in query_rows(conn, site, set(lifecycle.ACTIVE)):
        previous = " / ".join(x for x in (q.answer, f"corrected value {q.corrected_value}" if q.corrected_value else "",
                                          f"by {q.answered_by}" if q.answered_by else "", q.answered_on) if x)
        rows.append({"id": q.id, "status": q.status, "days": str(lifecycle.days_open(q, day)), "previous": previous,
                     "severity": q.severity, "rule": q.rule, "site": q.site, "subject": q.subject, "visit": q.visit, "sheet": q.sheet,
                     "cell": q.cell, "field": q.field, "row": q.log_row, "value": _value(q.value), "expected": q.expected,
                     "message": q.message, "file": q.file})
    from .. import __version__
    about = [("Study", study.id), ("Site", site), ("Protocol version", study.protocol_version), ("Form version", study.form_version),
             ("Definition hash", study.definition_hash), ("Tool version", __version__), ("Queries as of", day[:10]),
             ("How to answer", "For each query, write your answer in 'Site answer' (and the corrected value, if any), "
                               "correct the subject's workbook, and send both back to the data manager. Do not change the Query id column.")]
    return listing_workbook(columns, rows, about, freeze="B2", page=PageHeader(study, [site], day[:10]))


# -- a subject's history ------------------------------------------------------------------------------
def subject_history(conn: Connection, subject: str, today: Optional[str] = None) -> dict[str, Any]:
    """Returns, changes (old -> new, which return, which cell) and queries with their events, oldest first."""
    day = as_of(conn, today)
    returns = list(conn.execute(select(inputs).where(inputs.c.subject == subject, inputs.c.usable.is_(True)).order_by(inputs.c.return_number)))
    number = {r.id: r.return_number for r in returns}
    changes = list(conn.execute(select(value_changes).where(value_changes.c.subject == subject).order_by(value_changes.c.id)))
    qs = query_rows(conn, subject=subject)
    events: dict[str, list[Any]] = defaultdict(list)
    if qs:
        for e in conn.execute(select(query_events).where(query_events.c.query_id.in_([q.id for q in qs])).order_by(query_events.c.id)):
            events[e.query_id].append(e)
    return {
        "subject": subject, "site": returns[0].site if returns else "", "as_of": day,
        "returns": [{"return": r.return_number, "received": r.received, "file": r.file, "sha256": r.sha256, "size": r.size}
                    for r in returns],
        "changes": [{"return": number.get(c.input_id), "previous_return": number.get(c.previous_input_id), "path": c.path,
                     "visit": c.visit, "form": c.form, "item": c.item, "log_row": c.log_row, "sheet": c.sheet, "cell": c.cell,
                     "old": _value(c.old_value), "new": _value(c.new_value)} for c in changes],
        "queries": [{"id": q.id, "rule": q.rule, "severity": q.severity, "visit": q.visit, "form": q.form, "field": q.field, "log_row": q.log_row,
                     "sheet": q.sheet, "cell": q.cell, "status": q.status, "days_open": lifecycle.days_open(q, day),
                     "message": q.message, "answer": q.answer, "corrected_value": q.corrected_value, "close_reason": q.close_reason,
                     "events": [{"event": e.event, "status": e.status, "at": e.at, "return": number.get(e.input_id),
                                 "by": e.by, "text": e.text} for e in events[q.id]]} for q in qs],
    }


def history_text(history: dict[str, Any]) -> str:
    out = [f"Subject {history['subject']} (site {history['site'] or '?'}), as of {history['as_of'][:10]}", "", "Returns:"]
    for r in history["returns"]:
        out.append(f"  #{r['return']}  {r['received']}  {r['file']}  sha256 {r['sha256'][:12]}  {r['size']} bytes")
    if not history["returns"]:
        out.append("  none recorded")
    out += ["", "Changes between returns:"]
    for c in history["changes"]:
        where = f"sheet '{c['sheet']}' cell {c['cell']}" if c["cell"] else "cell unknown"
        out.append(f"  return #{c['return']}: {c['path']} ({where}): {text_of(c['old']) if c['old'] is not None else '(blank)'}"
                   f" -> {text_of(c['new']) if c['new'] is not None else '(blank)'}")
    if not history["changes"]:
        out.append("  none")
    out += ["", "Queries:"]
    for q in history["queries"]:
        out.append(f"  {q['id']}  {q['rule']}  {q['visit'] or '-'} {q['field'] or ''}  {q['status']}, {q['days_open']} day(s)"
                   + (f"  [closed: {q['close_reason']}]" if q["close_reason"] else ""))
        for e in q["events"]:
            detail = f" by {e['by']}" if e["by"] else ""
            detail += f": {e['text']}" if e["text"] else ""
            out.append(f"      {e['at'][:10]} {e['event']}" + (f" (return #{e['return']})" if e["return"] else "") + detail)
    if not history["queries"]:
        out.append("  none")
    return "\n".join(out) + "\n"


# -- the dashboard ------------------------------------------------------------------------------------
def _per_run(conn: Connection, site: str) -> list[tuple[str, int, int]]:
    """(label, queries opened or re-opened, queries resolved) for each run that received returns of the site."""
    rows = conn.execute(
        select(runs.c.id, runs.c.received, query_events.c.event, func.count())
        .join(query_events, query_events.c.run_id == runs.c.id).join(queries, queries.c.id == query_events.c.query_id)
        .where(queries.c.site == site, query_events.c.event.in_(("opened", "reopened", "resolved")), query_events.c.input_id.is_not(None))
        .group_by(runs.c.id, runs.c.received, query_events.c.event).order_by(runs.c.id))
    per: dict[int, list[Any]] = {}
    for run_id, received, event, count in rows:
        entry = per.setdefault(run_id, [received[:10], 0, 0])
        entry[1 if event != "resolved" else 2] += count
    returns = conn.execute(select(inputs.c.run_id, func.count()).where(inputs.c.site == site, inputs.c.usable.is_(True))
                           .group_by(inputs.c.run_id)).all()
    for run_id, _ in returns:
        if run_id not in per:
            received = conn.execute(select(runs.c.received).where(runs.c.id == run_id)).scalar()
            per[run_id] = [str(received)[:10], 0, 0]
    return [(label, opened, resolved) for _, (label, opened, resolved) in sorted(per.items())]


def chart_svg(series: list[tuple[str, int, int]], title: str) -> str:
    """Opened and resolved queries per return, as an inline SVG (no script, same bytes for the same data)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator

    with matplotlib.rc_context({"svg.hashsalt": "open-ecrf", "svg.fonttype": "none", "font.family": "DejaVu Sans", "font.size": 9}):
        fig, ax = plt.subplots(figsize=(max(4.0, 1.0 + 0.7 * len(series)), 2.6))
        xs = list(range(len(series)))
        ax.bar([x - 0.2 for x in xs], [s[1] for s in series], width=0.4, label="opened or re-opened", color="#c0504d")
        ax.bar([x + 0.2 for x in xs], [s[2] for s in series], width=0.4, label="resolved", color="#4f81bd")
        ax.set_xticks(xs, [f"{i + 1}\n{s[0]}" for i, s in enumerate(series)])
        ax.set_xlabel("return (date received)")
        ax.set_ylabel("queries")
        cast(MaxNLocator, ax.yaxis.get_major_locator()).set_params(integer=True)  # the default locator is an AutoLocator
        ax.set_title(title, loc="left", pad=22)
        ax.legend(frameon=False, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, borderaxespad=0.2)
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "open-ecrf"})
        plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _grid(conn: Connection, study: Study, site: str) -> tuple[list[VisitColumn], list[tuple[str, dict[str, str], int]]]:
    """The grid's columns, and (subject, visit statuses, waiting queries) from each subject's latest return and its waiting queries."""
    latest: dict[str, int] = dict(conn.execute(select(inputs.c.subject, func.max(inputs.c.id)).where(inputs.c.site == site, inputs.c.usable.is_(True))
                               .group_by(inputs.c.subject)).tuples().all())
    waiting: dict[str, list[Finding]] = defaultdict(list)
    for q in query_rows(conn, site, set(lifecycle.ACTIVE)):
        waiting[q.subject].append(Finding(rule=q.rule, severity=Severity(q.severity), category="", message="", subject=q.subject,
                                          site=q.site, visit=q.visit, form=q.form, field=q.field, row=q.log_row))
    out: list[tuple[str, SubjectSummary, list[Finding]]] = []
    for subject in sorted(latest):
        summary = SubjectSummary(site, subject, "")
        for v in conn.execute(select(return_visits).where(return_visits.c.input_id == latest[subject])):
            summary.visits[v.visit] = VisitState(bool(v.present), v.date, v.window, v.study_day)
        out.append((subject, summary, waiting[subject]))
    columns = visit_columns(study, {k for _, summary, found in out for k in [*summary.visits, *(f.visit for f in found)]})
    return columns, [(subject, visit_statuses(study, summary, found, columns), len(found)) for subject, summary, found in out]


def dashboard_html(conn: Connection, study: Study, site: str, today: Optional[str] = None) -> bytes:
    day = as_of(conn, today)
    counts = lifecycle.site_counts(conn, day).get(site, {"by_status": {s: 0 for s in lifecycle.STATUSES}, "waiting": 0,
                                                         "waiting_by_age": {label: 0 for _, label in lifecycle.AGE_BUCKETS}})
    series = _per_run(conn, site)
    waiting = query_rows(conn, site, set(lifecycle.ACTIVE))
    columns, grid = _grid(conn, study, site)
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["text"] = text_of
    html = env.get_template("dashboard.html.j2").render(
        study=study, site=site, as_of=day[:10], counts=counts, statuses=lifecycle.STATUSES, ages=[label for _, label in lifecycle.AGE_BUCKETS],
        chart=chart_svg(series, f"Site {site}: queries per return") if series else "", series=series,
        grid=grid, visits=columns, status_class=STATUS_CLASS,
        waiting=[(q, lifecycle.days_open(q, day)) for q in sorted(waiting, key=lambda q: (-lifecycle.days_open(q, day), q.subject, q.id))],
        returns=conn.execute(select(func.count()).select_from(inputs).where(inputs.c.site == site, inputs.c.usable.is_(True))).scalar(),
        subjects=conn.execute(select(func.count(inputs.c.subject.distinct())).where(inputs.c.site == site, inputs.c.usable.is_(True))).scalar(),
    )
    return html.encode("utf-8")
