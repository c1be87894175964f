"""What a site typed where the study placed no named input cell, so that nothing typed is lost.

Sites insert rows into a log table (the Instructions allow it, in Excel and LibreOffice): the inserted
row has no defined names, so it is found here by the columns of the log's named cells and read as a
log row. Anything else typed on a visit or log sheet outside every input cell (a note beside the form,
a column the site inserted, a sheet copied within the workbook) is one located finding: it was not read.
What the study itself wrote on a sheet (labels, questions, help) is known from the writer's own layout.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from ..findings import Severity
from ..model import Study
from .base import file_finding
from .convert import clean_text, safe_text
from .sheet_xml import column_letters as _column_letters

Rows = list[list[Any]]


def _blank(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, str) and not clean_text(value))


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return safe_text(str(value))


def inserted_log_rows(study: Study, by_sheet: dict[str, list[tuple[Any, Any]]], rows_of: Callable[[str], Rows],
                      make_spec: Callable[..., Any], make_ref: Callable[..., Any]) -> list[tuple[Any, Any]]:
    """Cells of rows inserted inside or below a log table, as (field spec, cell ref) pairs.

    A log's columns are where its named cells are (a column inserted by the site moves them); its
    table starts below the header row that holds the item ids. A row there without defined names but
    with a value in an input column is a log row the site added.
    """
    found: list[tuple[Any, Any]] = []
    logs = {lg.id: lg for lg in study.logs}
    for sheet, entries in by_sheet.items():
        per_log: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
        for spec, ref in entries:
            if spec.row is not None and spec.container in logs:
                per_log[spec.container].append((spec, ref))
        for log_id, cells in per_log.items():
            log = logs[log_id]
            seen: dict[str, Counter[int]] = defaultdict(Counter)
            for spec, ref in cells:
                seen[spec.item.id][ref.col] += 1
            columns = {item_id: count.most_common(1)[0][0] for item_id, count in seen.items()}
            named_rows = {ref.row for _, ref in cells}
            if not columns or not named_rows:
                continue
            rows = rows_of(sheet)
            first_item = log.form.items[0]
            id_column = columns.get(first_item.id)
            id_row = None
            if id_column is not None:
                for r in range(min(min(named_rows), len(rows)) - 1, -1, -1):
                    if id_column < len(rows[r]) and rows[r][id_column] == first_item.id:
                        id_row = r
                        break
            start = (id_row + 2) if id_row is not None else min(named_rows)
            input_columns = [columns[it.id] for it in log.form.items if it.is_input and it.id in columns]
            for r in range(start, len(rows)):
                if r in named_rows:
                    continue
                row = rows[r]
                if not any(c < len(row) and not _blank(row[c]) for c in input_columns):
                    continue
                for item in log.form.items:
                    if item.id in columns and item.is_input:
                        c = columns[item.id]
                        found.append((make_spec(log, item, r), make_ref(sheet, f"{_column_letters(c)}{r + 1}", r, c)))
    return found


def _written_texts(study: Study) -> dict[str, frozenset[str]]:
    """Every text the workbook writer puts on each visit and log sheet (labels, questions, help, row numbers).

    Laying the sheets out costs about a second (most of a one-file run), so the texts are kept in the
    definition cache (crf.defcache), keyed by the definition and the bytes of the code that makes them;
    in the process, by the study object (an lru_cache would hash the whole frozen model on every file: 10 ms)."""
    key = (id(study), study.definition_hash)
    hit = _WRITTEN.get(key)
    if hit is None or hit[0] is not study:
        hit = _WRITTEN[key] = (study, _written_texts_of(study))
        while len(_WRITTEN) > 4:
            _WRITTEN.pop(next(iter(_WRITTEN)))
    return hit[1]


_WRITTEN: dict[tuple[int, str], tuple[Study, dict[str, frozenset[str]]]] = {}


def _written_texts_of(study: Study) -> dict[str, frozenset[str]]:
    import json

    from .. import defcache

    code = _WRITER_CODE
    cached = defcache.computed("written-texts", study.definition_hash, code)
    if cached is not None:
        try:
            return {sheet: frozenset(texts) for sheet, texts in json.loads(cached).items()}
        except ValueError:
            pass  # not ours: computed again below
    texts = _layout_texts(study)
    defcache.remember_computed("written-texts", study.definition_hash, code,
                               json.dumps({sheet: sorted(values) for sheet, values in texts.items()}, ensure_ascii=False).encode("utf-8"))
    return texts


_PACKAGE = Path(__file__).resolve().parent.parent
# the code the texts depend on: the writer's layout, the model it lays out, the text cleaning here
_WRITER_CODE = (*sorted((_PACKAGE / "xlsx").glob("*.py")),
                *(_PACKAGE / name for name in ("xlsx_formula.py", "expressions.py", "fieldmap.py", "model.py", "subject.py",
                                               "readers/sheet_scan.py", "readers/convert.py")))


def _layout_texts(study: Study) -> dict[str, frozenset[str]]:
    from ..xlsx import Builder  # the writer's own layout, without saving a workbook

    builder = Builder(study, None, None, None)
    for visit in study.visits:
        for key in visit.workbook_keys:
            builder.visit_sheet(visit, key)
    for log in study.logs:
        builder.log_sheet(log)
    texts: dict[str, frozenset[str]] = {}
    for ws in builder.wb.worksheets:
        values = set()
        for row in ws.iter_rows(values_only=True):
            for value in row:
                if value is not None and not (isinstance(value, str) and value.startswith("=")):
                    values.add(clean_text(_shown(value)))
                    if isinstance(value, str):
                        values.add(value)  # as written, for the fast exact match
        texts[ws.title] = frozenset(values)
    return texts


def _who_line(study: Study) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(study.id)}   Subject .*   Site .*   Protocol .*")


def stray_values(study: Study, display: str, site: str, subject: str, sheet_names: list[str],
                 read_cells: dict[str, set[tuple[int, int]]], rows_of: Callable[[str], Rows],
                 form_sheets: dict[str, str]) -> Iterator[Any]:
    """One finding per visit or log sheet holding values outside every input cell, and per copied sheet."""
    written = _written_texts(study)
    who = _who_line(study)

    def typed(sheet: str, template: str, skip: set[tuple[int, int]]) -> list[tuple[int, int, Any]]:
        ours = written.get(template, frozenset())
        nothing_typed = ours | {"", None}  # a row of blanks and the study's own texts only: one set test in C, not a cell at a time
        out = []
        for r, row in enumerate(rows_of(sheet)):
            if nothing_typed.issuperset(row):
                continue
            for c, value in enumerate(row):
                if value == "" or value is None or (value.__class__ is str and value in ours):
                    continue  # the fast cases first: most cells are blank or the study's own label
                if _blank(value) or (r, c) in skip:
                    continue
                text = clean_text(_shown(value))
                if text in ours or (r == 1 and who.match(text)):
                    continue
                out.append((r, c, value))
        return out

    for sheet in sorted(form_sheets):
        if sheet not in sheet_names or sheet not in written:
            continue
        extra = typed(sheet, sheet, read_cells.get(sheet, set()))
        if extra:
            r, c, value = extra[0]
            cell = f"{_column_letters(c)}{r + 1}"
            more = f" and {len(extra) - 1} more cell(s) of this sheet" if len(extra) > 1 else ""
            yield file_finding(display, "VALUE-OUTSIDE-FORM", f"'{_shown(value)[:60]}' was typed outside every input cell{more}, "
                               "so it was not read", "Type each value in its input cell of the form (the coloured cells); "
                               "anything else, such as a comment, goes to the data manager as a note", sheet=sheet, cell=cell,
                               site=site, subject=subject, category="structure", value=_shown(value)[:200],
                               visit=form_sheets[sheet])
    for sheet in sheet_names:
        if sheet in written or sheet in form_sheets:
            continue
        source = _copied_from(sheet, written)
        if source is None:
            continue
        original = {(r, c): v for r, row in enumerate(rows_of(source)) for c, v in enumerate(row) if not _blank(v)} \
            if source in sheet_names else {}
        extra = [(r, c, v) for r, c, v in typed(sheet, source, set()) if original.get((r, c)) != v]
        extra += [(r, c, v) for r, row in enumerate(rows_of(sheet)) for c, v in enumerate(row)
                  if not _blank(v) and (r, c) in read_cells.get(source, set()) and original.get((r, c)) != v]
        extra = sorted(set(extra), key=lambda x: (x[0], x[1]))
        if extra:
            r, c, value = extra[0]
            yield file_finding(display, "SHEET-COPIED", f"this sheet is a copy of '{source}' and {len(extra)} value(s) typed on it "
                               f"were not read (first: '{_shown(value)[:60]}')", f"Type them on the sheet '{source}' itself "
                               "and delete the copy; a repeated visit or a second entry goes where the Instructions say",
                               sheet=sheet, cell=f"{_column_letters(c)}{r + 1}", site=site, subject=subject, category="structure",
                               visit=form_sheets.get(source, ""), form=sheet)
        else:
            yield file_finding(display, "SHEET-COPIED", f"this sheet is a copy of '{source}'; nothing on it differs from the original, "
                               "so nothing was lost", "Delete the copy before sending the workbook next time", severity=Severity.WARNING,
                               sheet=sheet, site=site, subject=subject, category="structure", visit=form_sheets.get(source, ""), form=sheet)


def _copied_from(sheet: str, written: dict[str, frozenset[str]]) -> Optional[str]:
    """'V3 Day 28 (2)' (Excel) or 'V3 Day 28_2' (LibreOffice) -> 'V3 Day 28'."""
    m = re.match(r"^(.*?)(?: \(\d+\)|_\d+)$", sheet)
    if m and m[1] in written:
        return m[1]
    return None
