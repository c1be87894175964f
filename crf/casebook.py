"""Subject casebooks: each subject's returned data printed as the CRF book, with its findings beside the items.

The certified copy a sponsor archives: the same form and log templates as the blank book, each item
with the value the site returned (blank items visible as blank), every finding printed under the item
it is about, a cover with the visit status, the input file's SHA-256 and the study definition used.
Values are read again from the input files (read-only, as the validator reads them). Same inputs,
same bytes: the PDF identifier comes from the inputs and no clock is printed.
"""
from __future__ import annotations

import datetime as dt
import heapq
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from . import __version__
from .findings import Finding, Severity
from .fieldmap import FieldPath
from .model import Item, ItemKind, Study, split_visit_key
from .pdf import PdfBuilder
from .pdf_layout import FormView, LogPage, LogView
from .readers import read_file
from .readers.base import ReadSubject
from .validation import FileOutcome, ValidationResult, visit_columns, visit_statuses

__all__ = ["write_casebooks", "casebook_name"]

LOG_RECORDS_PER_PAGE = 4  # filled records are taller than blank ones (text wraps in its cell)
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


@dataclass(frozen=True)
class Shown:
    """What the casebook prints for one item: its value as the site gave it, and the findings about it."""

    text: str = ""  # the value in words ("12/MAR/2026", "Yes [Y]", "71.5 kg")
    blank: bool = True
    raw: str = ""  # what the site typed when it could not be read as a value (kept, never lost)
    selected: tuple[str, ...] = ()  # codes chosen (choice items: the form's options are printed, these ticked)
    derived: bool = False
    findings: tuple[Finding, ...] = ()


@dataclass
class CaseForm:
    view: FormView
    shown: dict[str, Shown]
    findings: tuple[Finding, ...] = ()  # about the form but no item of it


@dataclass
class CaseVisit:
    id: str
    label: str
    status: str
    date: str
    study_day: str
    window: str
    present: bool
    forms: list[CaseForm] = field(default_factory=list)
    findings: tuple[Finding, ...] = ()  # about the visit but no form of it


@dataclass
class CaseLog:
    view: LogView
    rows: dict[int, dict[str, Shown]]  # record number (from 1) -> item id -> shown
    row_findings: dict[int, tuple[Finding, ...]]
    findings: tuple[Finding, ...] = ()  # about the log but no row


def casebook_name(outcome: FileOutcome) -> str:
    assert outcome.subject is not None
    return f"casebook-{outcome.subject.site}-{outcome.subject.subject}.pdf".replace("/", "_")


def write_casebooks(result: ValidationResult, sources: dict[str, Path], out_dir: Path, page_size: str = "A4",
                    today: Optional[dt.date] = None, jobs: Optional[int] = None,
                    histories: Optional[dict[str, dict[str, Any]]] = None) -> list[Path]:
    """One casebook PDF per usable subject file of `result`; `sources` maps a file's display name to its path.

    `histories`: subject -> crf.store.reports.subject_history, printed as the casebook's last section
    (the audit trail and query history), when the run was recorded in a study store.

    A casebook is a whole CRF book (over a hundred pages for a subject at the end of the study), so
    subjects are laid out in parallel, each worker with its own parsed stylesheet.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    # a file's findings, and those of its subject that name no file, in the run's order (one pass over the findings)
    by_file: dict[str, list[tuple[int, Finding]]] = {}
    by_subject: dict[tuple[str, str], list[tuple[int, Finding]]] = {}
    for n, f in enumerate(result.findings):
        if f.file:
            by_file.setdefault(f.file, []).append((n, f))
        else:
            by_subject.setdefault((f.site, f.subject), []).append((n, f))
    tasks = []
    for outcome in result.files:
        if outcome.subject is None or outcome.file not in sources:
            continue
        subject = outcome.subject
        findings = [f for _, f in heapq.merge(by_file.get(outcome.file, []), by_subject.get((subject.site, subject.subject), []),
                                              key=lambda pair: pair[0])]
        history = (histories or {}).get(subject.subject)
        tasks.append((outcome, str(sources[outcome.file]), findings, str(out_dir / casebook_name(outcome)), history))
    jobs = max(1, min(jobs or len(os.sched_getaffinity(0)), len(tasks)))
    if jobs == 1:
        _worker_init(result.study, page_size, today)
        written = [_worker_run(t) for t in tasks]
    else:
        context = multiprocessing.get_context("fork")  # workers inherit the loaded study
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_init,
                                 initargs=(result.study, page_size, today)) as pool:
            written = list(pool.map(_worker_run, tasks))
    return [Path(p) for p in written if p]


_WORKER: dict[str, Any] = {}


def _worker_init(study: Study, page_size: str, today: Optional[dt.date]) -> None:
    _WORKER.update(builder=PdfBuilder(study, page_size=page_size), today=today)


def _worker_run(task: tuple[FileOutcome, str, list[Finding], str, Optional[dict[str, Any]]]) -> Optional[str]:
    outcome, source, findings, target, history = task
    builder: PdfBuilder = _WORKER["builder"]
    read = read_file(Path(source), outcome.file, builder.study).subject
    if read is None:  # changed since it was checked: nothing certified can be printed
        return None
    path = Path(target)
    try:
        document = render_casebook(builder, outcome, read, findings, _WORKER["today"], history)
        builder._write(document, path, name=f"{path.name}|{outcome.sha256}")
    except Exception as exc:  # one subject's casebook must not stop the others'; the findings stand regardless
        sys.stderr.write(f"casebook of {outcome.file} not written: {type(exc).__name__}: {str(exc)[:200]}\n")
        return None
    return target


def render_casebook(builder: PdfBuilder, outcome: FileOutcome, read: ReadSubject, findings: list[Finding],
                    today: Optional[dt.date], history: Optional[dict[str, Any]] = None) -> Any:
    study = builder.study
    assert outcome.subject is not None
    record = read.record
    derived = _derived(study, read)
    placed: set[int] = set()

    def about(**where: Any) -> tuple[Finding, ...]:
        out = []
        for n, f in enumerate(findings):
            if n not in placed and all(getattr(f, k) == v for k, v in where.items()):
                out.append(f)
                placed.add(n)
        return tuple(out)

    statuses = visit_statuses(study, outcome.subject, findings)
    visits: list[CaseVisit] = []
    for column in visit_columns(study, [*outcome.subject.visits, *(f.visit for f in findings if f.visit)]):
        key = column.id
        visit = study.visit_of(key)
        assert visit is not None
        state = outcome.subject.visits.get(key)
        present = bool(state and state.present)
        case = CaseVisit(key, column.label, statuses.get(key, ""), _date_text(state.date) if state and state.date else "",
                         "" if not state or state.study_day is None else str(state.study_day),
                         {"in": "in window", "out": "out of window"}.get(state.window or "", "") if state else "", present)
        if present:
            for view in builder.visit_views[visit.id]:
                inst = visit.form(view.name)
                values = record.visits.get(key, {}).get(inst.name, {})
                shown = {}
                for item in inst.items:
                    path = str(FieldPath.visit(key, inst.name, item.id))
                    shown[item.id] = _shown(item, values.get(item.id), read, path, derived.get(path),
                                            about(visit=key, form=inst.name, field=item.id))
                anchor = f"cb-{view.anchor}" + (f"-{split_visit_key(key)[1]}" if visit.repeating else "")
                case.forms.append(CaseForm(replace(view, anchor=anchor), shown, about(visit=key, form=inst.name)))
            case.findings = about(visit=key)  # a visit not returned has no page: its findings go on the cover
        visits.append(case)
    logs: list[CaseLog] = []
    for log in study.logs:
        log_view = builder.log_views[log.id]
        rows: dict[int, dict[str, Shown]] = {}
        row_findings: dict[int, tuple[Finding, ...]] = {}
        for index, values in enumerate(record.logs.get(log.id, [])):
            number = index + 1
            if not any(v not in (None, "", []) for v in values.values()) and not any(f.form == log.id and f.row == number for f in findings):
                continue  # an empty row of the sheet
            shown = {}
            for item in log.form.items:
                path = str(FieldPath.log(log.id, index, item.id))
                shown[item.id] = _shown(item, values.get(item.id), read, path, derived.get(path), about(form=log.id, row=number, field=item.id))
            rows[number] = shown
            row_findings[number] = about(form=log.id, row=number)
        numbers = sorted(rows)
        pages = tuple(LogPage(numbers[i], tuple(numbers[i:i + LOG_RECORDS_PER_PAGE])) for i in range(0, len(numbers), LOG_RECORDS_PER_PAGE))
        logs.append(CaseLog(replace(log_view, anchor=f"cb-log-{log.id}", pages=pages), rows, row_findings, about(form=log.id)))
    remaining = tuple(f for n, f in enumerate(findings) if n not in placed)
    counts = {s.value: sum(1 for f in findings if f.severity is s) for s in Severity}
    subject = outcome.subject
    title = f"{study.id} casebook of subject {subject.subject}"
    context = builder._context(
        title, subject=subject, outcome=outcome, visits=visits, logs=logs, general=remaining, counts=counts,
        checked=today.isoformat() if today else "", file_name=outcome.file.replace("\\", "/").rsplit("/", 1)[-1],
        record=record, tool=f"open-ecrf {__version__}", history=_audit(study, history) if history else None)
    return builder._render("casebook.html.j2", context)


def _audit(study: Study, history: dict[str, Any]) -> dict[str, Any]:
    """The store's history of a subject with each change and query placed in words (visit, form, item, cell)."""
    from .reports import text_of

    def item_words(visit: str, form: str, item: str, row: Optional[int]) -> str:
        if row is not None:
            return f"log {visit} record {row}, {item}"
        return " ".join(x for x in (visit, form, item) if x) or "the subject"

    def value_words(value: Any) -> str:
        return "(blank)" if value is None else text_of(value)

    changes = [{**c, "where": item_words(c["visit"], c["form"], c["item"], c["log_row"]),
                "place": f"sheet '{c['sheet']}', cell {c['cell']}" if c["cell"] else (c["sheet"] or "–"),
                "old_text": value_words(c["old"]), "new_text": value_words(c["new"])}
               for c in history["changes"]]
    queries = [{**q, "where": item_words(q["form"] if q["log_row"] is not None else q["visit"], "", q["field"], q["log_row"])}
               for q in history["queries"]]
    return {**history, "changes": changes, "queries": queries}


def _derived(study: Study, read: ReadSubject) -> dict[str, Any]:
    from .rules import RuleSet

    try:
        return RuleSet.shared(study).derived_values(read.record)
    except Exception:  # the casebook prints what can be computed; the findings already say what cannot
        return {}


def _shown(item: Item, value: Any, read: ReadSubject, path: str, derived: Any, findings: tuple[Finding, ...]) -> Shown:
    issue = read.issues.get(path)
    raw = "" if issue is None else str(issue.raw)
    if item.fixed is not None:
        value = item.fixed
    is_derived = item.derived is not None
    if value in (None, "", []) and is_derived:
        value = read.cached.get(path, derived)
    if value in (None, "", []):
        return Shown(blank=True, raw=raw, derived=is_derived, findings=findings)
    return Shown(_value_text(item, value), False, raw, _selected(item, value), is_derived, findings)


def _selected(item: Item, value: Any) -> tuple[str, ...]:
    if item.kind == ItemKind.MULTI_CHOICE and isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    if item.kind == ItemKind.CHOICE:
        return (str(value),)
    return ()


def _value_text(item: Item, value: Any) -> str:
    if item.codelist is not None:
        values = value if isinstance(value, (list, tuple)) else [value]
        return "; ".join(f"{item.codelist.label(v)} [{v}]" for v in values)
    if item.kind in (ItemKind.DATE, ItemKind.PARTIAL_DATE) and isinstance(value, str):
        return _date_text(value)
    if isinstance(value, float) and item.kind == ItemKind.DECIMAL:
        text = f"{value:.{item.decimals}f}"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = str(value)
    return f"{text} {item.unit}" if item.unit else text


def _date_text(iso: str) -> str:
    """2026-03-12 as the forms ask for it (12/MAR/2026); partial dates keep their UN/UNK parts."""
    parts = iso.split("-")
    if len(parts) == 3 and parts[1].isdigit() and 1 <= int(parts[1]) <= 12:
        return f"{parts[2]}/{MONTHS[int(parts[1]) - 1]}/{parts[0]}"
    if len(parts) == 2 and parts[1].isdigit() and 1 <= int(parts[1]) <= 12:
        return f"UN/{MONTHS[int(parts[1]) - 1]}/{parts[0]}"
    if len(parts) == 1 and parts[0].isdigit():
        return f"UN/UNK/{parts[0]}"
    return iso

