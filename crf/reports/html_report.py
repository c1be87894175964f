"""The HTML report for data managers: counts, a subject x visit status grid, and the listings.

Streamed from the template (Jinja2 `generate`), compiled once and kept in the cache directory (Jinja2's bytecode
cache, keyed by the template's source: crf.defcache.cache_dir()); the listings' rows, the bulk of a page, are
and of the subjects-by-visit grid, the bulk of a page, are written by `listing_rows` and `grid_rows` rather than
by template loops (a tenth of the cost per row). Each listing shows at most LISTING_LIMIT rows, so that the page
opens in a browser whatever the number of findings; past it the page says so, and names the full listing:
a CSV of every finding written beside the report (REPORT.findings.csv) when the report is written to a file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Optional

from jinja2 import BytecodeCache, Environment, FileSystemBytecodeCache, FileSystemLoader, select_autoescape
from jinja2.filters import do_truncate
from markupsafe import Markup, escape

from .. import defcache
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
                      trim_blocks=True, lstrip_blocks=True, bytecode_cache=_bytecode_cache())
    env.filters["text"] = text_of
    template = env.get_template("report.html.j2")

    def listing_rows(rows: list[Finding]) -> Markup:
        """One table row per finding, each column escaped as the template's autoescape would."""
        return Markup("".join(
            f'<tr><td><code>{_esc(f.finding_id)}</code></td><td class="sev-{_esc(f.severity.value.split(" ")[0])}">'
            f'{_esc(f.severity.value)}</td><td>{_esc(f.rule)}</td><td>{_esc(f.site)}</td><td>{_esc(f.subject)}</td>'
            f'<td>{_esc(f.visit)}</td><td>{_esc(f.sheet)}</td><td>{_esc(f.cell)}</td>'
            f'<td>{_esc(do_truncate(env, text_of(f.value), 80))}</td><td>{_esc(f.message)}</td></tr>\n' for f in rows))
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
    visits = result.visit_columns()
    by_subject = result.counts_by_subject()

    def grid_rows() -> Markup:
        """One row per subject: site, subject, each visit's status (its date and study day in the title), counts."""
        rows = []
        for s, statuses in grid:
            cells = [f"<tr><td>{_esc(s.site)}</td><td>{_esc(s.subject)}</td>\n"]
            for v in visits:
                status, seen = statuses.get(v.id, ""), s.visits.get(v.id)
                title = _esc(v.label)
                if seen and seen.date:
                    title += ": " + _esc(seen.date)
                if seen and seen.study_day is not None:
                    title += f" (day {_esc(seen.study_day)})"
                cells.append(f'<td class="{_esc(STATUS_CLASS[status])}" title="{title}">{_esc(status)}</td>')
            c = by_subject.get((s.site, s.subject), {})
            cells.append(f'<td class="num">{c.get("error", 0)}</td><td class="num">{c.get("query", 0)}</td>'
                         f'<td class="num">{c.get("major deviation", 0) + c.get("minor deviation", 0)}</td></tr>\n')
            rows.append("".join(cells))
        return Markup("".join(rows))

    chunks = template.generate(
        result=result, study=result.study, grid=grid, grid_rows=grid_rows, visits=visits, status_class=STATUS_CLASS,
        counts=result.counts(), by_subject=by_subject, severities=[s.value for s in Severity],
        listings=listings, listing_rows=listing_rows, limit=limit, full_listing=full_listing,
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


def _esc(value: Any) -> str:
    """markupsafe.escape's result for a plain string without its Markup object (the rows' cost is mostly escaping)."""
    if value.__class__ is not str:
        return str(escape(value))
    return value.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;").replace("'", "&#39;").replace('"', "&#34;")


def _bytecode_cache() -> Optional[BytecodeCache]:
    """The compiled template kept between runs (Jinja2 checks the source's checksum and its own version); none when
    caching is off or the cache directory cannot be made."""
    if not defcache.enabled():
        return None
    folder = defcache.cache_dir() / "templates"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return _KeptTemplates(str(folder))


class _KeptTemplates(FileSystemBytecodeCache):
    """A cache that cannot be written (a read-only or full disk) costs a compile, never the report."""

    def dump_bytecode(self, bucket: Any) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass
