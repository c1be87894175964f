"""The HTML report for data managers: counts, a subject x visit status grid, and the listings.

Streamed from the template (Jinja2 `generate`). Each listing shows at most LISTING_LIMIT rows, so that the page
opens in a browser whatever the number of findings; past it the page says so, and names the full listing:
a CSV of every finding written beside the report (REPORT.findings.csv) when the report is written to a file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Optional

from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..findings import SEVERITY_ORDER, Finding, Severity
from . import REPORT_FORMAT_VERSION, text_of

TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates" / "report"
STATUS_CLASS = {"complete": "ok", "queries": "q", "deviations": "dev", "out of window": "win", "missing": "miss",
                "not due": "nd", "": "none"}
LISTING_LIMIT = 2000  # rows per listing on the page; a browser shows a few thousand table rows comfortably


@dataclass
class Listing:
    """The first `limit` findings of one listing, and how many there are."""

    rows: list[Finding]
    total: int = 0


@dataclass(frozen=True)
class DeviationGroup:
    site: str
    subject: str
    category: str
    severity: str
    count: int
    rules: tuple[str, ...]


def companion_path(path: Path) -> Path:
    """Where the full listing of an HTML report at `path` is written."""
    return path.with_name(path.stem + ".findings.csv")


def write_html(result: Any, out: BinaryIO, path: Optional[Path] = None, limit: int = LISTING_LIMIT) -> Optional[Path]:
    """The report; past `limit` rows in a listing and with `path`, also the full listing beside it (returned)."""
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["text"] = text_of
    template = env.get_template("report.html.j2")
    listings = {"actionable": Listing([]), "deviations": Listing([]), "warnings": Listing([])}
    groups: dict[tuple[str, str, str, Severity], tuple[int, set[str]]] = {}
    for f in result.findings:  # one pass: the page keeps the first rows of each listing, and counts
        if f.severity in (Severity.ERROR, Severity.QUERY):
            listing = listings["actionable"]
        elif f.severity in (Severity.MAJOR, Severity.MINOR):
            listing = listings["deviations"]
            key = (f.site, f.subject, f.category, f.severity)
            count, rules = groups.get(key, (0, set()))
            rules.add(f.rule)
            groups[key] = (count + 1, rules)
        else:
            listing = listings["warnings"]
        listing.total += 1
        if len(listing.rows) < limit:
            listing.rows.append(f)
    deviation_rows = sorted((DeviationGroup(site, subject, category, severity.value, count, tuple(sorted(rules)))
                             for (site, subject, category, severity), (count, rules) in groups.items()),
                            key=lambda r: (r.site, r.subject, SEVERITY_ORDER[Severity(r.severity)], r.category))
    cut = any(listing.total > limit for listing in listings.values())
    full_listing, companion = None, None
    if cut and path is not None:
        from .csv_report import write_findings_csv

        companion = companion_path(path)
        with companion.open("wb") as csv_out:
            write_findings_csv(result.findings, csv_out)
        full_listing = companion.name
    grid = result.status_grid()
    chunks = template.generate(
        result=result, study=result.study, grid=grid, visits=result.visit_columns(), status_class=STATUS_CLASS,
        counts=result.counts(), by_subject=result.counts_by_subject(), severities=[s.value for s in Severity],
        listings=listings, limit=limit, full_listing=full_listing,
        files=result.files, format_version=REPORT_FORMAT_VERSION, deviation_rows=deviation_rows,
        attacks=[s.extra["attacks"] for s, _ in grid if "attacks" in s.extra],
    )
    block: list[str] = []
    for chunk in chunks:
        block.append(chunk)
        if len(block) >= 2000:
            out.write("".join(block).encode("utf-8"))
            block.clear()
    out.write("".join(block).encode("utf-8"))
    return companion
