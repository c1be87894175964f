"""Report writers: one ValidationResult -> text (terminal), JSON, CSV, an Excel query listing, HTML.

Every writer streams to a binary file (`write_report`), one finding at a time, so that time and memory are
linear in the number of findings (issue 13); `render` is the same bytes in memory. Deterministic: same
inputs, same bytes (no timestamps unless the caller passes one; findings in reading order). The JSON format
is documented in docs/report-format.md and versioned by REPORT_FORMAT_VERSION.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, BinaryIO, Callable, Optional

from ..findings import Finding

REPORT_FORMAT_VERSION = "1.0"
FORMATS = ("text", "json", "csv", "xlsx", "html", "odm")
COLUMNS = ("id", "severity", "rule", "category", "site", "subject", "visit", "form", "field", "row", "file", "sheet",
           "cell", "value", "expected", "message")


def finding_row(f: Finding) -> dict[str, Any]:
    """The report's columns of one finding (Finding.as_dict without its deep copy: this runs once per finding)."""
    return {"id": f.finding_id, "severity": f.severity.value, "rule": f.rule, "category": f.category, "site": f.site,
            "subject": f.subject, "visit": f.visit, "form": f.form, "field": f.field, "row": f.row, "file": f.file,
            "sheet": f.sheet, "cell": f.cell, "value": f.value, "expected": f.expected, "message": f.message}


def text_of(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return "; ".join(text_of(v) for v in value)
    return str(value)


def neutralise(text: str) -> str:
    """Stop a spreadsheet from reading text as a formula (CSV/formula injection)."""
    if text and text[0] in ("=", "+", "-", "@", "\t", "\r", "\n"):
        return "'" + text
    return text


Writer = Callable[[Any, BinaryIO, Optional[Path]], Optional[Path]]


def _writer(fmt: str) -> Writer:
    if fmt == "text":
        from .text_report import write_text
        return write_text
    if fmt == "json":
        from .json_report import write_json
        return write_json
    if fmt == "csv":
        from .csv_report import write_csv
        return write_csv
    if fmt == "xlsx":
        from .xlsx_report import write_xlsx
        return write_xlsx
    if fmt == "html":
        from .html_report import write_html
        return write_html
    if fmt == "odm":  # the data read, as CDISC ODM 1.3.2 ClinicalData with the findings as annotations
        from ..interop.odm_clinical import render_odm

        def write_odm(result: Any, out: BinaryIO, path: Optional[Path] = None) -> Optional[Path]:
            out.write(render_odm(result))
            return None
        return write_odm
    raise ValueError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")


def write_report(result: Any, fmt: str, out: BinaryIO, path: Optional[Path] = None) -> Optional[Path]:
    """Stream the report of `result` in one of FORMATS to `out`. `path` is where `out` is written, when it is a
    file: the HTML report past its listing limit writes its full listing beside it (crf.reports.html_report),
    and that file is returned."""
    return _writer(fmt)(result, out, path)


def render(result: Any, fmt: str) -> bytes:
    """The report of `result` in one of FORMATS, as bytes."""
    buf = io.BytesIO()
    write_report(result, fmt, buf)
    return buf.getvalue()
