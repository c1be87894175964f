"""The cell loop: each located field's cell converted into the subject record, with its location and any problem.

Visit fields go to their visit and form; log rows are numbered in sheet order (rows a site inserted
inside a log table included, crf.readers.sheet_scan); derived and fixed cells are the study's, only
their cached values are kept (for the derive step's comparison).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Optional

from ...fieldmap import FieldPath
from ...model import Study
from ...subject import Location
from .. import sheet_scan
from ..base import ReadSubject
from ..convert import ValueIssue, clean_text, convert
from .locate import INPUT, DERIVED, CellRef, _Spec
from .sheets import Sheets


def read_values(study: Study, sheets: Sheets, display: str, fields: list[_Spec], located: dict[str, CellRef],
                result: ReadSubject) -> tuple[dict[str, list[tuple[_Spec, CellRef]]], set[tuple[str, str]]]:
    """Fill `result` from the cells of `located` fields; returns the cells read by sheet and the unreadable cells reported on a field."""
    date1904 = sheets.package.date1904
    record = result.record
    unknown = result.unknown
    locations = record.locations
    visit_values: dict[str, dict[str, dict[str, Any]]] = {}
    log_rows: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    log_refs: dict[str, dict[int, dict[str, CellRef]]] = defaultdict(lambda: defaultdict(dict))
    log_issues: dict[str, dict[int, dict[str, ValueIssue]]] = defaultdict(lambda: defaultdict(dict))
    log_cached: dict[str, dict[int, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
    by_sheet: dict[str, list[tuple[_Spec, CellRef]]] = defaultdict(list)
    for f in fields:
        ref = located.get(f.path)
        if ref is not None and f.path not in unknown:
            by_sheet[ref.sheet].append((f, ref))
    inserted = sheet_scan.inserted_log_rows(
        study, by_sheet, sheets.rows, lambda log, item, r: _Spec(f"/logs/{log.id}/+{r}/{item.id}", "", item, log.id, log.form.id, -1, -1),
        CellRef)
    for spec, ref in inserted:
        by_sheet[ref.sheet].append((spec, ref))
    log_numbers: dict[str, dict[int, Optional[int]]] = defaultdict(dict)  # sheet row -> log row number (None: inserted)
    reported: set[tuple[str, str]] = set()  # (sheet, cell) of unreadable cells reported on their field
    for sheet, entries in by_sheet.items():  # one sheet at a time: its rows are read once
        rows = sheets.rows(sheet)
        height = len(rows)
        no_value = sheets.formula_cells_without_value(sheet)
        specials = sheets.cell_issues(sheet)
        for f, ref in entries:
            r = ref.row
            raw: Any = ""
            if r < height:
                row = rows[r]
                if ref.col < len(row):
                    raw = row[ref.col]
            blank = raw == "" or raw is None or (raw.__class__ is str and not clean_text(raw))
            item = f.item
            mode = f.mode
            cell = ref.cell
            special = specials.get(cell) if specials and mode == INPUT else None  # unreadable, or an Excel error value: on its field
            if f.row is not None:  # a log row's cell: keyed by its sheet row until the rows are numbered (below)
                container = f.container
                numbers = log_numbers[container]
                if r not in numbers:
                    numbers[r] = f.row + 1 if f.row >= 0 else None
                refs = log_refs[container][r]
                if special is not None:
                    reported.add((sheet, cell))
                    refs[item.id] = ref
                    log_rows[container].setdefault(r, {})
                    log_issues[container][r][item.id] = special
                    continue
                if blank:
                    refs[item.id] = ref
                    if mode != INPUT or cell not in no_value:
                        continue
                elif mode != INPUT:
                    if mode == DERIVED:
                        value = convert(item, raw, date1904)
                        if not isinstance(value, ValueIssue) and value is not None:
                            refs[item.id] = ref
                            log_cached[container][r][item.id] = value
                    continue
                refs[item.id] = ref
                if blank:  # an input holding a formula without its value
                    log_rows[container].setdefault(r, {})
                    log_issues[container][r][item.id] = _formula_no_value()
                    continue
                converted = convert(item, raw, date1904)
                if isinstance(converted, ValueIssue):
                    log_rows[container].setdefault(r, {})
                    log_issues[container][r][item.id] = converted
                elif converted is not None:
                    log_rows[container].setdefault(r, {})[item.id] = converted
                continue
            path = f.path
            locations[path] = Location(display, sheet, cell)
            if special is not None:
                reported.add((sheet, cell))
                visit_values.setdefault(f.container, {}).setdefault(f.form, {})
                result.issues[path] = special
                continue
            if mode != INPUT:
                if mode == DERIVED and not blank:
                    value = convert(item, raw, date1904)
                    if not isinstance(value, ValueIssue) and value is not None:
                        result.cached[path] = value
                continue
            if blank:
                if cell in no_value:
                    visit_values.setdefault(f.container, {}).setdefault(f.form, {})
                    result.issues[path] = _formula_no_value()
                continue
            converted = convert(item, raw, date1904)
            if isinstance(converted, ValueIssue):
                visit_values.setdefault(f.container, {}).setdefault(f.form, {})
                result.issues[path] = converted
            elif converted is not None:
                visit_values.setdefault(f.container, {}).setdefault(f.form, {})[item.id] = converted
    # keep visits in schedule order, only those with something entered
    for key, visit in study.visit_keys(visit_values):
        record.visits[key] = {inst.name: visit_values[key][inst.name] for inst in visit.forms if inst.name in visit_values[key]}
    for log in study.logs:
        table = log_rows.get(log.id)
        if not table:
            continue
        record.logs[log.id] = []
        result.log_rows[log.id] = []
        for wb_row in sorted(table):  # in the order of the sheet, inserted rows where the site put them
            index = len(record.logs[log.id])
            record.logs[log.id].append(table[wb_row])
            number = log_numbers[log.id].get(wb_row)
            result.log_rows[log.id].append(number if number is not None else index + 1)
            for item_id, ref in log_refs[log.id][wb_row].items():
                record.locations[str(FieldPath.log(log.id, index, item_id))] = Location(display, ref.sheet, ref.cell)
            for item_id, issue in log_issues[log.id][wb_row].items():
                result.issues[str(FieldPath.log(log.id, index, item_id))] = issue
            for item_id, value in log_cached[log.id][wb_row].items():
                result.cached[str(FieldPath.log(log.id, index, item_id))] = value
    return by_sheet, reported


def _formula_no_value() -> ValueIssue:
    return ValueIssue("FORMULA-NO-VALUE", "(formula)", "holds a formula with no calculated value (the file was saved by a "
                      "program that does not calculate formulas)", "Type the value itself instead of a formula, "
                      "or open the file in Excel, save it and send it again", "a value")
