"""The validation pipeline: files -> readers -> check stages -> findings -> a ValidationResult.

    discover(paths) -> read_file (crf.readers) -> ReadSubject
                    -> CHECK_STAGES, in order, on each subject (crf.checks.fields, then the rules engine)
                    -> per-file outcome (findings + a small subject summary; records are not kept)
    then across files: duplicate subjects; findings sorted with Finding.sort_key.

Files are independent: each is read and checked in its own forked child process (crf.workers, up to
`jobs` at once), which inherits the study and the compiled stages, has a memory and a time limit, and
can crash without taking the run down. Only findings and summaries come back, so memory does not grow
with the number of files' data. An unusable file is one finding; nothing here raises on bad data.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import stat
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

from . import __version__
from .checks.fields import FieldChecks
from .checks.stage import CheckStage, derive
from .fieldmap import FieldPath, iter_fields
from .catalogue import code, problem_text
from .findings import Finding, Severity
from .messages import render
from .model import Study, split_visit_key
from .readers import discover, read_file
from .readers.base import FileResult, ReadSubject, file_finding
from .readers.convert import safe_text
from .readers.safety import DEFAULT_LIMITS, Limits
from .rules.supersede import supersede
from .spill import Collector, SpilledFindings, VisitSeverity
from .workers import Failure, can_isolate, run_isolated


def _fields_stage(study: Study, today: Optional[dt.date]) -> CheckStage:
    return FieldChecks(study)


def _rules_stage(study: Study, today: Optional[dt.date]) -> CheckStage:
    from .checks.rules_stage import RulesStage  # the consistency and deviation rules (crf/rules/)
    return RulesStage(study, today)


# The check stages, in order. A new kind of check is a new entry here.
CHECK_STAGES: tuple[tuple[str, Callable[[Study, Optional[dt.date]], CheckStage]], ...] = (
    ("fields", _fields_stage),
    ("rules", _rules_stage),
)


def build_stages(study: Study, names: Optional[Sequence[str]] = None, today: Optional[dt.date] = None) -> list[CheckStage]:
    return [factory(study, today) for name, factory in CHECK_STAGES if names is None or name in names]


def _policy(stages: Sequence[CheckStage]) -> dict[str, Any]:
    """The supersession policy the stages declare (the rules' `supersedes`; crf.rules.supersede)."""
    out: dict[str, Any] = {}
    for stage in stages:
        out.update(stage.supersession_policy)
    return out


# -- results ---------------------------------------------------------------------------------
_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False, default=str)

@dataclass(frozen=True)
class VisitState:
    present: bool
    date: Optional[str] = None
    window: Optional[str] = None  # "in", "out" or None (not checkable)
    study_day: Optional[int] = None


@dataclass
class SubjectSummary:
    site: str
    subject: str
    file: str
    visits: dict[str, VisitState] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # stage summaries (attack counts from the rules stage)


@dataclass
class FileOutcome:
    file: str
    sha256: str
    kind: str
    size: int
    findings: list[Finding]
    subject: Optional[SubjectSummary] = None
    values: Optional["ReturnedValues"] = None  # only with keep_values (the study store records them)
    listing: Optional[Any] = None  # an answered query listing (crf.readers.listing.QueryListing), not a subject
    spilled: int = 0  # findings moved to the run's spill file (crf.spill); `findings` holds the others

    @property
    def finding_count(self) -> int:
        return len(self.findings) + self.spilled

    @property
    def usable(self) -> bool:
        return self.subject is not None


@dataclass(frozen=True)
class ReturnedValues:
    """Every value read from one subject file, with where it was read: what the study store keeps.

    Made in the worker, ready for the store's table, as one JSON text: a thousand small tuples per file kept until
    the run ends would cost the parent more (pickling, and garbage-collector passes) than the store itself.
    """

    form_version: str
    definition_hash: str
    encoded: str  # JSON list of [path, visit, form, item, log row (from 1) or null, value as JSON, sheet, cell]

    def rows(self) -> list[list[Any]]:
        return json.loads(self.encoded)

    @classmethod
    def of(cls, record: Any) -> "ReturnedValues":
        out: list[tuple[str, str, str, str, Optional[int], str, str, str]] = []
        locations = record.locations
        encode = _JSON.encode

        def add(path: str, container: str, form: str, item: str, row: Optional[int], value: Any) -> None:
            where = locations.get(path)
            out.append((path, container, form, item, row, encode(value),
                        (where.sheet or "") if where else "", (where.cell or "") if where else ""))
        for visit, forms in record.visits.items():
            for form, items in forms.items():
                for item, value in items.items():
                    add(str(FieldPath.visit(visit, form, item)), visit, form, item, None, value)
        for log, rows in record.logs.items():
            for i, row in enumerate(rows):
                for item, value in row.items():
                    add(str(FieldPath.log(log, i, item)), log, log, item, i + 1, value)
        return cls(record.form_version or "", record.definition_hash or "", json.dumps(out, ensure_ascii=False))


@dataclass
class ValidationResult:
    study: Study
    files: list[FileOutcome]
    findings: Sequence[Finding]  # a list, or past crf.spill.SPILL_AFTER a SpilledFindings read from its file in order
    subjects: list[SubjectSummary]
    stages: list[str]
    generated: Optional[str] = None  # a timestamp only when the caller asks for one
    tool_version: str = __version__
    store: Optional[dict[str, Any]] = None  # what the study store recorded of this run (validate.py --store)

    @property
    def needs_action(self) -> bool:
        if isinstance(self.findings, SpilledFindings):
            return self.findings.needs_action()
        return any(f.severity.needs_action for f in self.findings)

    def counts(self) -> dict[str, int]:
        if isinstance(self.findings, SpilledFindings):
            return self.findings.counts()
        out = {s.value: 0 for s in Severity}
        for f in self.findings:
            out[f.severity.value] += 1
        return out

    def counts_by_subject(self) -> dict[tuple[str, str], dict[str, int]]:
        out: dict[tuple[str, str], dict[str, int]] = {}
        for s in self.subjects:
            out.setdefault((s.site, s.subject), {sev.value: 0 for sev in Severity})
        if isinstance(self.findings, SpilledFindings):
            for key, counts in self.findings.counts_by_subject().items():
                out.setdefault(key, {sev.value: 0 for sev in Severity}).update(counts)
            return dict(sorted(out.items()))
        for f in self.findings:
            key = (f.site, f.subject)
            out.setdefault(key, {sev.value: 0 for sev in Severity})[f.severity.value] += 1
        return dict(sorted(out.items()))

    def visit_columns(self) -> list[VisitColumn]:
        """The grid's columns: every visit, each instance of a repeating visit that any subject has."""
        keys = {k for s in self.subjects for k in s.visits} | {f.visit for s in self.subjects for f in self.findings_of(s) if f.visit}
        return visit_columns(self.study, keys)

    def status_grid(self) -> list[tuple[SubjectSummary, dict[str, str]]]:
        columns = self.visit_columns()
        return [(s, visit_statuses(self.study, s, self.findings_of(s), columns)) for s in self.subjects]

    def findings_of(self, subject: SubjectSummary) -> Sequence[VisitSeverity]:
        """The subject's findings (their visit and severity only, when the findings were spilled to disk)."""
        index = self.__dict__.get("_by_subject")
        if index is None:  # built once (setdefault would build it again on every call: quadratic in findings)
            if isinstance(self.findings, SpilledFindings):
                index = self.findings.visits_by_subject()
            else:
                index = _index(self.findings)
            self.__dict__["_by_subject"] = index
        return index.get((subject.site, subject.subject), [])


def _index(findings: Iterable[Finding]) -> dict[tuple[str, str], Sequence[VisitSeverity]]:
    out: dict[tuple[str, str], list[Finding]] = defaultdict(list)
    for f in findings:
        out[(f.site, f.subject)].append(f)
    return dict(out)


STATUSES = ("complete", "queries", "deviations", "out of window", "missing", "not due", "")


@dataclass(frozen=True)
class VisitColumn:
    """One column of a status grid: a visit, or one instance of a repeating visit (ATT#2)."""

    id: str  # the visit key
    label: str
    scheduled: bool


def visit_columns(study: Study, keys: Iterable[str] = ()) -> list[VisitColumn]:
    """Every visit that does not repeat, and each instance of a repeating one among `keys` (the subjects'), in schedule order."""
    wanted = set(keys) | {v.id for v in study.visits if not v.repeating}
    out = []
    for key, visit in study.visit_keys(wanted):
        repeat = split_visit_key(key)[1]
        out.append(VisitColumn(key, visit.label if repeat is None else f"{visit.label} {repeat}", visit.scheduled))
    return out


def visit_statuses(study: Study, subject: SubjectSummary, findings: Iterable[VisitSeverity],
                   columns: Optional[Sequence[VisitColumn]] = None) -> dict[str, str]:
    """Status of each visit: queries > deviations > out of window > complete; missing when a later visit exists."""
    by_visit: dict[str, set[Severity]] = defaultdict(set)
    for f in findings:
        if f.visit:
            by_visit[f.visit].add(f.severity)
    if columns is None:
        columns = visit_columns(study, [*subject.visits, *by_visit])
    last_present = max((i for i, v in enumerate(columns) if v.scheduled and subject.visits.get(v.id, VisitState(False)).present), default=-1)
    out: dict[str, str] = {}
    for i, visit in enumerate(columns):
        state = subject.visits.get(visit.id, VisitState(False))
        severities = by_visit.get(visit.id, set())
        if not state.present:
            if severities & {Severity.ERROR, Severity.QUERY}:
                out[visit.id] = "queries"
            elif severities & {Severity.MAJOR, Severity.MINOR}:
                out[visit.id] = "deviations"
            elif visit.scheduled and i < last_present:
                out[visit.id] = "missing"
            else:
                out[visit.id] = "not due" if visit.scheduled else ""
            continue
        if severities & {Severity.ERROR, Severity.QUERY}:
            out[visit.id] = "queries"
        elif severities & {Severity.MAJOR, Severity.MINOR}:
            out[visit.id] = "deviations"
        elif state.window == "out":
            out[visit.id] = "out of window"
        else:
            out[visit.id] = "complete"
    return out


# -- one file (runs in a worker) ----------------------------------------------------------------
def summarise(study: Study, read: ReadSubject) -> SubjectSummary:
    """Each visit's date, study day and window status for the grid, from the rules' schedule analysis.

    The same Day 0, visit dates and windows (anchored ones included) as the window rules EC-62 and
    PD-05 use, so the grid and the findings cannot disagree.
    """
    from .rules import RuleSet
    from .rules.schedule import analyse

    record = read.record
    schedule = analyse(RuleSet.shared(study).context(record))
    summary = SubjectSummary(record.site, record.subject, record.source or "")
    for column in visit_columns(study, record.visits):
        timing = schedule.visits.get(column.id)
        if timing is None or not record.visits.get(column.id):
            summary.visits[column.id] = VisitState(False)
            continue
        date = timing.date.isoformat() if isinstance(timing.date, dt.date) else None
        window = None if timing.in_window is None else ("in" if timing.in_window else "out")
        summary.visits[column.id] = VisitState(True, date, window, timing.study_day)
    return summary


def check_file(study: Study, stages: Sequence[CheckStage], path: Path, display: str, limits: Limits = DEFAULT_LIMITS,
               keep_values: bool = False) -> FileOutcome:
    result: FileResult = read_file(path, display, study, limits)
    outcome = FileOutcome(result.file, result.sha256, result.kind, result.size, list(result.findings), listing=result.listing)
    if result.subject is None:
        return outcome
    read = result.subject
    if keep_values:  # as returned, before the derive step adds the calculated values
        outcome.values = ReturnedValues.of(read.record)
    try:
        derive(study, read)
    except Exception as exc:  # a bug in a derivation must not hide the other files' findings
        outcome.findings.append(file_finding(
            display, "CHECK-FAILED", problem_text("CHECK-FAILED", stage="derive", detail=f"{type(exc).__name__}: {str(exc)[:160]}"),
            site=read.record.site, subject=read.record.subject))
    for stage in stages:
        try:
            outcome.findings.extend(stage.check(read))
        except Exception as exc:  # a bug in a stage must not hide the other files' findings
            outcome.findings.append(file_finding(
                display, "CHECK-FAILED", problem_text("CHECK-FAILED", stage=stage.name, detail=f"{type(exc).__name__}: {str(exc)[:160]}"),
                site=read.record.site, subject=read.record.subject))
    outcome.findings = _without_unreadable(study, read, supersede(outcome.findings, _policy(stages)))
    outcome.subject = summarise(study, read)
    for stage in stages:
        try:
            outcome.subject.extra.update(stage.summary(read))
        except Exception:  # a summary is a convenience; the findings stand without it
            pass
    return outcome


def _inputs_per_container(study: Study) -> dict[str, int]:
    cache = _COUNTS.get(id(study))
    if cache is None:
        cache = defaultdict(int)
        for f in iter_fields(study):
            cache[f.container] += 1
        _COUNTS[id(study)] = cache
    return cache


_COUNTS: dict[int, dict[str, int]] = {}


def _without_unreadable(study: Study, read: ReadSubject, findings: list[Finding]) -> list[Finding]:
    """A visit or log the reader could not read at all (its sheet is missing) was reported once; rules
    that find it 'not recorded' would only repeat that, so their findings there are dropped."""
    if not read.unknown:
        return findings
    unknown: dict[str, int] = defaultdict(int)
    for p in filter(None, map(FieldPath.parse, read.unknown)):
        unknown[p.container] += 1
    totals = _inputs_per_container(study)
    lost = {c for c, n in unknown.items() if n >= totals.get(c, 0)}
    if not lost:
        return findings
    return [f for f in findings if f.category in ("file", "structure", "identity")
            or not (f.visit in lost or (f.row is not None and f.form in lost))]


# -- the run ---------------------------------------------------------------------------------
def _failed(task: tuple[str, str], failure: Failure) -> FileOutcome:
    """The one finding of a file whose child process gave no outcome (crashed, aborted, out of memory, too slow)."""
    path, display = task
    digest, size = "", 0
    try:
        info = os.stat(path)
        if stat.S_ISREG(info.st_mode) and info.st_size <= DEFAULT_LIMITS.max_file_bytes:
            size = info.st_size
            with open(path, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        pass
    rule = "READER-TIMEOUT" if failure.kind == "timeout" else "READER-CRASHED"
    kind = "json" if path.lower().endswith(".json") else "xlsx"
    return FileOutcome(display, digest, kind, size, [file_finding(display, rule, problem_text(rule, detail=failure.detail))])


def reading_order(study: Study) -> Callable[[Finding], tuple[Any, ...]]:
    """Sort key for findings: per subject and file, visits in schedule order, then down each sheet.

    A site coordinator works down a sheet: D7 before D12 before D104 (Finding.sort_key alone
    would sort V10 before V2 and cells as text).
    """
    visit_index = {v.id: i for i, v in enumerate(study.visits)}
    log_index = {lg.id: len(study.visits) + i for i, lg in enumerate(study.logs)}

    def key(f: Finding) -> tuple[Any, ...]:
        match = _CELL.match(f.cell or "")
        cell = (int(match[2]), len(match[1]), match[1]) if match else (0, 0, "")
        base, repeat = split_visit_key(f.visit) if f.visit else ("", None)
        # one number (the spill stores it in a column): the visit's place in the schedule, then its repeat number
        place = visit_index[base] * 10_000 + (repeat or 0) if base in visit_index else log_index.get(f.form, -1) * 10_000
        return (f.site, f.subject, f.file, place, f.row or 0, cell, f.sort_key())
    return key


_CELL = re.compile(r"^([A-Z]{1,3})(\d+)$")


def display_name(path: Path, base: Optional[Path] = None) -> str:
    """How a file is named in findings: relative to the working folder where possible.

    A name that is not valid UTF-8 (made on another system) keeps its readable part: reports are UTF-8.
    """
    folder = base or Path.cwd()
    try:  # a link is named as given, not by its target (a link to /dev/zero is reported as the link)
        name = Path(os.path.abspath(path)).relative_to(os.path.abspath(folder)).as_posix()
    except ValueError:
        try:
            name = path.resolve().relative_to(folder.resolve()).as_posix()
        except ValueError:
            name = path.as_posix()
    return safe_text(name.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))  # no terminal escapes from a file name


def validate(study: Study, paths: Sequence[Path], jobs: Optional[int] = None, stage_names: Optional[Sequence[str]] = None,
             progress: Optional[Callable[[int, int], None]] = None, limits: Limits = DEFAULT_LIMITS,
             generated: Optional[str] = None, base: Optional[Path] = None, today: Optional[dt.date] = None,
             keep_values: bool = False, isolate: bool = True) -> ValidationResult:
    """Check every input file; `isolate` (default) runs each in a forked child (crf.workers), so no file can take the run down."""
    files = list(discover(paths))
    tasks = [(str(p), display_name(p, base)) for p in files]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks) or 1))
    outcomes: list[FileOutcome] = []
    collector = Collector(reading_order(study))  # past SPILL_AFTER findings they wait on disk, not in memory
    stages = build_stages(study, stage_names, today)  # compiled once here; forked workers inherit them

    def work(task: tuple[str, str]) -> FileOutcome:
        return check_file(study, stages, Path(task[0]), task[1], limits, keep_values)

    if isolate and can_isolate():
        for outcome in run_isolated(tasks, work, jobs, limits.max_read_seconds, limits.max_read_memory, _failed, progress):
            outcomes.append(collector.take(outcome))
    else:  # no fork on this platform: in this process, one file after another
        for i, task in enumerate(tasks):
            outcomes.append(collector.take(work(task)))
            if progress:
                progress(i + 1, len(tasks))
    outcomes.sort(key=lambda o: o.file)
    subjects = [o.subject for o in outcomes if o.subject is not None]
    findings: Sequence[Finding]
    if collector.spill is None:
        held = [f for o in outcomes for f in o.findings]
        held.extend(_duplicates(outcomes))
        held = _dedupe(held)
        held.sort(key=reading_order(study))
        findings = held
    else:  # the same order and dedupe, in the spill file (crf.spill)
        collector.spill.add(_duplicates(outcomes))
        findings = collector.spill.finish()
    subjects.sort(key=lambda s: (s.site, s.subject, s.file))
    return ValidationResult(study, outcomes, findings, subjects, [n for n, _ in CHECK_STAGES if stage_names is None or n in stage_names],
                            generated=generated)


def _duplicates(outcomes: list[FileOutcome]) -> Iterator[Finding]:
    by_subject: dict[tuple[str, str], list[FileOutcome]] = defaultdict(list)
    for o in outcomes:
        if o.subject is not None:
            by_subject[(o.subject.site, o.subject.subject)].append(o)
    for (site, subject), group in sorted(by_subject.items()):
        if len(group) < 2:
            continue
        names = [o.file for o in group]
        same = len({o.sha256 for o in group}) == 1
        detail = "identical copies" if same else "with different contents"
        entry = code("DUPLICATE-SUBJECT")
        yield Finding(
            rule=entry.code, severity=entry.severity, category=entry.category, subject=subject, site=site, file=names[0],
            message=render("", problem_text(entry.code, subject=subject, site=site, count=len(group), detail=detail, files=", ".join(names)), entry.fix),
            value=names, expected="one file per subject")


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """The same problem found in two files of one subject (duplicates) is listed once per file."""
    seen: set[tuple[str, str]] = set()
    out = []
    for f in findings:
        key = (f.finding_id, f.file)
        if key in seen:
            continue
        seen.add(key)
        out.append(f)
    return out
