"""The workbook contract: what the workbook writer (crf.xlsx) promises and the readers (crf.readers,
crf.migrate) rely on. A change here is a change of FORMAT_VERSION, written into every workbook's _meta."""
from __future__ import annotations

import re

FORMAT_VERSION = "1"

# Reserved sheets; every other sheet is a visit or a log.
INSTRUCTIONS_SHEET = "Instructions"
CALENDAR_SHEET = "Visit calendar"
LISTS_SHEET = "_lists"  # the code lists that drop-down validations point at
META_SHEET = "_meta"  # study, site, subject, versions and the field map (hidden)

# A multiple-choice answer is its codes in one cell: written joined by MULTI_SEPARATOR; read split at
# MULTI_SPLIT, so a site may also type a semicolon without the space, or one code per line.
MULTI_SEPARATOR = "; "
MULTI_SPLIT = re.compile(r"[;\n]")

DATE_FORMAT = "DD-MMM-YYYY"  # how date cells are shown
TIME_FORMAT = "text HH:MM"  # times are typed as text (written into _meta)
