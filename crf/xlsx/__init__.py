"""Excel CRF workbooks for sites: one workbook per subject, written with openpyxl.

The layout contract with the readers (validator, test-data generator) is docs/workbook-format.md:
every input cell carries the workbook-level defined name of crf.fieldmap, and the hidden `_meta`
sheet repeats the identity of the workbook and the field map. Everything else (colours, widths,
instructions) is presentation and may change.

The package, by layer:
  validations.py  the data validations and amber soft-limit formats of an input cell (pure functions of an item)
  values.py       a record's value and the number format of its cell
  texts.py        sheet names, help texts, hints, windows in words
  styles.py       fills, fonts, borders, protection, and the style cache
  layout.py       the builder: which sheets, which cell holds what, with which defined name and rule
  ooxml.py        the XML openpyxl is too slow for (visit/log cells, _meta rows, defined names), the package saved
                  deterministically
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from ..model import Study
from ..subject import SubjectRecord
from .layout import CALENDAR, INSTRUCTIONS, LISTS, META, Builder
from .texts import log_sheet_text, sheet_title, visit_sheet_text
from .validations import Rule, describe_range, describe_soft, rule_for, soft_formula
from .values import excel_value, number_format

__all__ = ["CALENDAR", "INSTRUCTIONS", "LISTS", "META", "Builder", "Rule", "build_workbooks", "describe_range", "describe_soft",
           "excel_value", "log_sheet_text", "number_format", "rule_for", "sheet_title", "soft_formula", "visit_sheet_text",
           "workbook_bytes", "workbook_name", "write_workbook"]


def workbook_name(study: Study, subject: Optional[str]) -> str:
    tail = "template" if not subject else re.sub(r"[^A-Za-z0-9._-]", "_", subject)
    return f"{study.id}_{tail}.xlsx"


def build_workbooks(study: Study, out_dir: Path, site: Optional[str] = None, subjects: tuple[str, ...] = ()) -> list[Path]:
    """One workbook per subject in `out_dir` (created), or one blank template without subjects."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not subjects:
        return [write_workbook(study, out_dir / workbook_name(study, None), site, None)]
    written = []
    for subject in subjects:
        subject_site = site
        prefix = subject.rpartition("-")[0]
        if site and prefix and prefix != site:
            raise ValueError(f"subject {subject} does not belong to site {site} (subject numbers start with the site number)")
        if not subject_site and prefix:
            subject_site = prefix
        written.append(write_workbook(study, out_dir / workbook_name(study, subject), subject_site, subject))
    return written


def write_workbook(study: Study, path: Path, site: Optional[str], subject: Optional[str],
                   record: Optional[SubjectRecord] = None) -> Path:
    """Write one subject workbook (a blank template when subject is None); pre-fill it from `record`."""
    if record is not None:
        subject = subject or record.subject or None
        site = site or record.site or None
    data = Builder(study, site, subject, record).build()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def workbook_bytes(study: Study, site: Optional[str], subject: Optional[str], record: Optional[SubjectRecord] = None) -> bytes:
    return Builder(study, site, subject, record).build()
