"""The JSON report (docs/report-format.md): versioned, with tool version, study hash and input hashes.

Streamed: the document is written key by key and its findings one at a time, each encoded as
json.dumps(document, indent=1) would encode it in place, so the bytes are those of one json.dumps call
while memory holds one finding's text at a time.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Optional

from ..findings import Finding
from . import COLUMNS, REPORT_FORMAT_VERSION, finding_row


def report_head(result: Any) -> dict[str, Any]:
    """Every key of the report but its findings (which follow, then `store` when the run was recorded)."""
    study = result.study
    grid = result.status_grid()
    return {
        "format": "open-ecrf-validation-report",
        "format_version": REPORT_FORMAT_VERSION,
        "tool_version": result.tool_version,
        "generated": result.generated,
        "study": {"id": study.id, "protocol_version": study.protocol_version, "form_version": study.form_version,
                  "definition_hash": study.definition_hash},
        "stages": list(result.stages),
        "needs_action": result.needs_action,
        "summary": {
            "files": len(result.files),
            "files_unusable": sum(1 for f in result.files if not f.usable),
            "subjects": len(result.subjects),
            "by_severity": result.counts(),
            "by_subject": [{"site": site, "subject": subject, **counts}
                           for (site, subject), counts in result.counts_by_subject().items()],
        },
        "inputs": [{"file": f.file, "sha256": f.sha256, "kind": f.kind, "size": f.size, "usable": f.usable,
                    "site": f.subject.site if f.subject else None, "subject": f.subject.subject if f.subject else None,
                    "findings": f.finding_count} for f in result.files],
        "subjects": [{"site": s.site, "subject": s.subject, "file": s.file,
                      "visits": {vid: {"status": statuses[vid], "date": s.visits[vid].date, "study_day": s.visits[vid].study_day,
                                       "window": s.visits[vid].window} for vid in statuses if vid in s.visits}}
                     for s, statuses in grid],
    }


def _encode(value: Any, level: int) -> str:
    """`value` as json.dumps(..., indent=1) writes it `level` levels deep (a JSON text has no raw line break)."""
    return json.dumps(value, indent=1, ensure_ascii=False, default=str).replace("\n", "\n" + " " * level)


def write_json(result: Any, out: BinaryIO, path: Optional[Path] = None) -> None:
    head = report_head(result)
    out.write(("{\n" + ",\n".join(f" {_encode(k, 1)}: {_encode(v, 1)}" for k, v in head.items())).encode("utf-8"))
    out.write(',\n "findings": '.encode("utf-8"))
    _write_findings(result.findings, out)
    if getattr(result, "store", None) is not None:  # only with validate.py --store: what the study store recorded
        out.write(f',\n "store": {_encode(result.store, 1)}'.encode("utf-8"))
    out.write(b"\n}\n")


_KEYS = tuple(f'\n   {json.dumps(key)}: ' for key in COLUMNS)


def _finding_text(f: Finding) -> str:
    """One finding as _encode(finding_row(f), 2) writes it: scalars through the C encoder (json's indenting encoder is
    pure Python and was most of the report's time), anything else through _encode."""
    parts = []
    for key, value in zip(_KEYS, finding_row(f).values()):
        if value.__class__ is str:
            text = _string(value)
        elif value is None:
            text = "null"
        elif value.__class__ is int:
            text = int.__repr__(value)
        else:
            text = _encode(value, 3)
        parts.append(key + text)
    return "{" + ",".join(parts) + "\n  }"


_string = json.encoder.encode_basestring  # ensure_ascii=False: the C function when there is one


def _write_findings(findings: Iterable[Finding], out: BinaryIO) -> None:
    chunk: list[str] = []
    first = True
    for f in findings:
        chunk.append(("[\n  " if first else ",\n  ") + _finding_text(f))
        first = False
        if len(chunk) >= 500:
            out.write("".join(chunk).encode("utf-8"))
            chunk.clear()
    chunk.append("[]" if first else "\n ]")
    out.write("".join(chunk).encode("utf-8"))
