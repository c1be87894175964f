"""Report writers: one ValidationResult -> text (terminal), JSON, CSV, an Excel query listing, HTML.

Every writer returns bytes and is deterministic: same inputs, same bytes (no timestamps unless the
caller passes one; findings in Finding.sort_key order). The JSON format is documented in
docs/report-format.md and versioned by REPORT_FORMAT_VERSION.
"""
from __future__ import annotations

from typing import Any, Callable

from ..findings import Finding

REPORT_FORMAT_VERSION = "1.0"
FORMATS = ("text", "json", "csv", "xlsx", "html", "odm")
COLUMNS = ("id", "severity", "rule", "category", "site", "subject", "visit", "form", "field", "row", "file", "sheet",
           "cell", "value", "expected", "message")


def finding_row(f: Finding) -> dict[str, Any]:
    d = f.as_dict()
    return {c: d.get(c) for c in COLUMNS}


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


def render(result: Any, fmt: str) -> bytes:
    """The report of `result` in one of FORMATS, as bytes."""
    writer: Callable[[Any], bytes]
    if fmt == "text":
        from .text_report import render_text as writer
    elif fmt == "json":
        from .json_report import render_json as writer
    elif fmt == "csv":
        from .csv_report import render_csv as writer
    elif fmt == "xlsx":
        from .xlsx_report import render_xlsx as writer
    elif fmt == "html":
        from .html_report import render_html as writer
    elif fmt == "odm":  # the data read, as CDISC ODM 1.3.2 ClinicalData with the findings as annotations
        from ..interop.odm_clinical import render_odm as writer
    else:
        raise ValueError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
    return writer(result)
