"""CSV listing of every finding, one row each; text that a spreadsheet would run as a formula is neutralised."""
from __future__ import annotations

import csv
import io
from typing import Any

from . import COLUMNS, finding_row, neutralise, text_of


def render_csv(result: Any) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for f in result.findings:
        row = finding_row(f)
        writer.writerow([neutralise(text_of(row[c])) for c in COLUMNS])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")  # BOM: Excel then reads UTF-8 correctly
