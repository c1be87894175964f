"""The HTML report for data managers: counts, a subject x visit status grid, and the listings."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..findings import Severity
from ..rules import deviation_listing
from . import REPORT_FORMAT_VERSION, text_of

TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates" / "report"
STATUS_CLASS = {"complete": "ok", "queries": "q", "deviations": "dev", "out of window": "win", "missing": "miss",
                "not due": "nd", "": "none"}


def render_html(result: Any) -> bytes:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["text"] = text_of
    template = env.get_template("report.html.j2")
    grid = result.status_grid()
    findings = result.findings
    html = template.render(
        result=result, study=result.study, grid=grid, visits=result.study.visits, status_class=STATUS_CLASS,
        counts=result.counts(), by_subject=result.counts_by_subject(), severities=[s.value for s in Severity],
        actionable=[f for f in findings if f.severity in (Severity.ERROR, Severity.QUERY)],
        deviations=[f for f in findings if f.severity in (Severity.MAJOR, Severity.MINOR)],
        warnings=[f for f in findings if f.severity is Severity.WARNING],
        files=result.files, format_version=REPORT_FORMAT_VERSION,
        deviation_rows=deviation_listing(findings),
        attacks=[s.extra["attacks"] for s, _ in grid if "attacks" in s.extra],
    )
    return html.encode("utf-8")
