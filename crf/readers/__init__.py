"""Readers: a returned file (workbook or JSON subject document) -> SubjectRecord with a Location per field.

`read_file` is the edge where an unusable file becomes exactly one finding naming it; it never
raises on bad input and never opens a file for writing.
"""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Iterable, Iterator

from ..catalogue import problem_text
from ..model import Study
from . import safety
from .base import FileResult, ReadSubject, Unusable, file_finding, finding_from
from .convert import safe_text

WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")
JSON_SUFFIXES = (".json",)
PDF_SUFFIXES = (".pdf",)  # a fillable PDF CRF (crf.pdf_fillable), filled in and saved by a PDF reader
INPUT_SUFFIXES = WORKBOOK_SUFFIXES + JSON_SUFFIXES + PDF_SUFFIXES

__all__ = ["FileResult", "ReadSubject", "read_file", "discover", "INPUT_SUFFIXES"]


def discover(paths: Iterable[Path]) -> Iterator[Path]:
    """Input files under `paths` (files as given, folders searched recursively), sorted, each once.

    Anything with an input's name that is not a folder is listed, a FIFO or a device too: read_file
    refuses it with a finding naming it, rather than leaving it out unnamed.
    """
    seen: set[Path] = set()
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            candidates = [p for p in path.rglob("*") if p.suffix.lower() in INPUT_SUFFIXES and not p.is_dir()
                          and not p.name.startswith(("~$", ".~lock"))]  # Excel / LibreOffice lock files
        else:
            candidates = [path]
        for p in candidates:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                found.append(p)
    return iter(sorted(found, key=lambda p: p.as_posix()))


def read_file(path: Path, display: str, study: Study, limits: safety.Limits = safety.DEFAULT_LIMITS) -> FileResult:
    """Read one input file; any problem that makes it unusable becomes one finding in the result."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block, a device (/dev/zero) never ends
            what = "a named pipe (FIFO)" if stat.S_ISFIFO(info.st_mode) else "a device" if stat.S_ISCHR(info.st_mode) or \
                stat.S_ISBLK(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file"
            return FileResult(display, "", "unknown", 0, findings=[file_finding(
                display, "FILE-NOT-REGULAR", problem_text("FILE-NOT-REGULAR", what=what))])
        size = info.st_size
        if size > limits.max_file_bytes:
            return FileResult(display, "", "unknown", size, findings=[file_finding(
                display, "FILE-TOO-LARGE", f"the file is {size // (1024 * 1024)} MB, far more than a CRF workbook",
                "Send the workbook the study issued for this subject")])
        # read once, read-only, never beyond the limit (the file may grow while it is read); no blocking open
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(limits.max_file_bytes + 1)
        if len(data) > limits.max_file_bytes:
            return FileResult(display, "", "unknown", len(data), findings=[file_finding(
                display, "FILE-TOO-LARGE", f"the file is over {limits.max_file_bytes // (1024 * 1024)} MB, far more than a CRF workbook",
                "Send the workbook the study issued for this subject")])
    except OSError as exc:
        return FileResult(display, "", "unknown", 0, findings=[file_finding(
            display, "FILE-UNREADABLE", f"the file cannot be opened ({exc.strerror or exc})", "Check that it exists and is readable")])
    digest = hashlib.sha256(data).hexdigest()
    suffix = path.suffix.lower()
    kind = ("xlsx" if suffix in WORKBOOK_SUFFIXES else "json" if suffix in JSON_SUFFIXES else "pdf" if suffix in PDF_SUFFIXES
            else safety.sniff(data[:16]))
    if kind == "zip":
        kind = "xlsx"
    result = FileResult(display, digest, kind, len(data))
    try:
        if kind == "xlsx":
            from .xlsx import read_workbook
            subject, findings = read_workbook(data, display, study, limits)
        elif kind == "json":
            from .json_doc import read_json
            subject, findings = read_json(data, display, study)
        elif kind == "pdf":
            from .pdf import read_pdf
            subject, findings = read_pdf(data, display, study)
        else:
            raise Unusable("FILE-TYPE", f"files of type '{suffix or '(none)'}' are not returned CRFs",
                           "Send the subject's .xlsx workbook, its filled-in fillable PDF, or a .json subject document")
    except Unusable as exc:
        if exc.rule == "NOT-A-CRF-WORKBOOK":  # perhaps the site's answered query listing, which the study store records
            from .listing import read_listing
            listing = read_listing(data, display, study)
            if listing is not None:
                result.kind, result.listing, result.findings = "query-listing", listing, list(listing.findings)
                return result
        result.findings = [finding_from(display, exc)]
        return result
    except (MemoryError, RecursionError) as exc:
        result.findings = [file_finding(display, "FILE-UNREADABLE", f"the file is too complex to read ({type(exc).__name__})",
                                        "Send the workbook the study issued for this subject")]
        return result
    except Exception as exc:  # a fault of the reader, not of the file: said so, one finding, the other files are still checked
        result.findings = [file_finding(display, "READER-FAILED", problem_text(
            "READER-FAILED", detail=safe_text(f"{type(exc).__name__}: {str(exc)[:120]}")))]
        return result
    result.subject = subject
    result.findings = findings
    return result
