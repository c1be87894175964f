"""The JSON report (docs/report-format.md): versioned, with tool version, study hash and input hashes."""
from __future__ import annotations

import json
from typing import Any

from . import REPORT_FORMAT_VERSION, finding_row


def report_document(result: Any) -> dict[str, Any]:
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
                    "findings": len(f.findings)} for f in result.files],
        "subjects": [{"site": s.site, "subject": s.subject, "file": s.file,
                      "visits": {vid: {"status": statuses[vid], "date": s.visits[vid].date, "study_day": s.visits[vid].study_day,
                                       "window": s.visits[vid].window} for vid in statuses}}
                     for s, statuses in grid],
        "findings": [finding_row(f) for f in result.findings],
    }


def render_json(result: Any) -> bytes:
    doc = report_document(result)
    if getattr(result, "store", None) is not None:  # only with validate.py --store: what the study store recorded
        doc["store"] = result.store
    return (json.dumps(doc, indent=1, ensure_ascii=False, default=str) + "\n").encode("utf-8")
