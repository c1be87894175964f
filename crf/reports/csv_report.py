"""CSV listing of every finding, one row each; text that a spreadsheet would run as a formula is neutralised."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Optional

from ..findings import Finding
from . import COLUMNS, finding_row, neutralise, text_of


def write_csv(result: Any, out: BinaryIO, path: Optional[Path] = None) -> None:
    write_findings_csv(result.findings, out)


def write_findings_csv(findings: Iterable[Finding], out: BinaryIO) -> None:
    """Streamed in blocks of rows: memory does not grow with the number of findings."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    buf.write("\ufeff")  # BOM: Excel then reads UTF-8 correctly
    writer.writerow(COLUMNS)
    for i, f in enumerate(findings, start=1):
        writer.writerow([neutralise(v) if v.__class__ is str else neutralise(text_of(v)) for v in finding_row(f).values()])
        if i % 1000 == 0:
            out.write(buf.getvalue().encode("utf-8"))
            buf.seek(0)
            buf.truncate()
    out.write(buf.getvalue().encode("utf-8"))
