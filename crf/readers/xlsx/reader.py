"""A returned subject workbook read into a SubjectRecord: identity, locating, the cells, and the sheet reports.

The layers, each its own module: package.py (what the file is, the safety guards, xl/workbook.xml,
`_meta`), locate.py (where each field is), sheets.py (rows of cells through the pre-scan), cells.py
(the cell loop and conversion); here they are put together, with the findings about sheets.
"""
from __future__ import annotations

import io
from collections import defaultdict
from typing import Any

import python_calamine

from ...contract import META_SHEET
from ...findings import Severity
from ...model import Study
from ...subject import SubjectRecord
from .. import safety, sheet_scan
from ..base import ReadSubject, Unusable, file_finding
from ..convert import clean_text, safe_text, show_value
from .cells import read_values
from .locate import CellRef, Where, _FieldMap, _Spec, field_table, locate, parse_reference
from .package import FIX_SEND_ORIGINAL, _meta_head, _open_package, _Package
from .sheets import Sheets, _SheetDamaged


class _Reader(Sheets):
    def __init__(self, study: Study, display: str, package: _Package, book: Any):
        super().__init__(package, book)
        self.study = study
        self.display = display
        self.findings: list = []
        self.site = ""
        self.subject = ""

    def unusable(self, rule: str, problem: str, fix: str, **kw: Any) -> Unusable:
        return Unusable(rule, problem, fix, site=self.site, subject=self.subject, **kw)

    # -- identity -------------------------------------------------------------------------
    def read_meta(self) -> tuple[dict[str, str], _FieldMap]:
        if META_SHEET not in self.sheet_names:
            raise Unusable("NOT-A-CRF-WORKBOOK", "this workbook has no hidden _meta sheet, so it was not made for this study "
                           "(or the data were copied into a new workbook)", FIX_SEND_ORIGINAL)
        head = _meta_head(self.package.sheet_xml.get(self.package.sheet_parts.get(META_SHEET, ""), b""))
        if head is not None:  # the workbook as the study wrote it: keys read from the XML, map left unread
            keys, start = head
            return keys, _FieldMap(lambda: self.rows(META_SHEET), start, self.package.sheet_xml.get(self.package.sheet_parts.get(META_SHEET, ""), b""))
        rows = self.rows(META_SHEET)  # saved by a spreadsheet program (shared strings): read it all
        keys = {}
        start = len(rows)
        for i, row in enumerate(rows):
            first = clean_text(str(row[0])) if row else ""
            if first == "path":
                start = i + 1
                break
            if len(row) >= 2 and first and first != "key":
                keys[first] = clean_text(_text(row[1]))
        return keys, _FieldMap(lambda: rows, start)

    def check_identity(self, keys: dict[str, str]) -> None:
        study = self.study
        names = self.package.names
        self.site = keys.get("site", "")
        self.subject = keys.get("subject", "")
        for key, attr in (("SITE_ID", "site"), ("SUBJECT_ID", "subject")):
            ref = parse_reference(names.get(key, ""))
            typed = clean_text(_text(self.cell_value(ref))) if ref and ref.sheet in self.sheet_names else ""
            if typed and not getattr(self, attr):
                setattr(self, attr, typed)
            elif typed and typed != getattr(self, attr):
                self.findings.append(file_finding(
                    self.display, "SUBJECT-CHANGED", f"the {attr} number typed here is '{typed}' but the workbook was issued for {attr} "
                    f"'{getattr(self, attr)}'", f"Check which {attr} this workbook belongs to and tell the data manager; the workbook was read as {attr} '{getattr(self, attr)}'",
                    sheet=ref.sheet if ref else "", cell=ref.cell if ref else "", site=self.site, subject=self.subject, category="identity"))
        study_id = keys.get("study_id", "")
        if study_id != study.id:
            raise self.unusable("WRONG-STUDY", f"this workbook belongs to study '{study_id or 'unknown'}', not to {study.id}",
                                f"Send it to that study's data manager; for {study.id}, use the {study.id} workbook of this subject",
                                sheet=META_SHEET, category="identity")
        version = keys.get("form_version", "")
        if version != study.form_version:
            raise self.unusable("FORM-VERSION", f"this workbook has form version {version or 'unknown'}, but {study.id} now uses "
                                f"form version {study.form_version}", f"Copy the data into the form version {study.form_version} workbook the "
                                "data manager sends you, and return that one", sheet=META_SHEET, category="identity")
        if keys.get("definition_hash", "") != study.definition_hash:
            self.findings.append(file_finding(
                self.display, "DEFINITION-CHANGED", "the workbook was made from an earlier edit of the same form version",
                "Nothing to do for the site; the data manager should check that no item changed meaning",
                severity=Severity.WARNING, sheet=META_SHEET, site=self.site, subject=self.subject, category="identity"))
        if not self.subject:
            raise self.unusable("SUBJECT-MISSING", "no subject number is given (Instructions sheet, cell 'Subject')",
                                "Type the subject number on the Instructions sheet and send the workbook again", category="identity")

    # -- the record -----------------------------------------------------------------------
    def locate(self, fields: list[_Spec], fieldmap: _FieldMap) -> dict[str, CellRef]:
        located, findings = locate(self.package.key, self.package.names, self.sheet_names, fields, fieldmap,
                                   Where(self.display, self.site, self.subject))
        self.findings.extend(findings)
        return located

    def read(self) -> ReadSubject:
        keys, fieldmap = self.read_meta()
        self.check_identity(keys)
        study = self.study
        fields = field_table(study)
        located = self.locate(fields, fieldmap)
        record = SubjectRecord(study=study.id, site=self.site, subject=self.subject, form_version=keys.get("form_version"),
                               definition_hash=keys.get("definition_hash"), source=self.display)
        result = ReadSubject(record)
        result.unknown.update(f.path for f in fields if f.path not in located and f.item.is_input)
        self.report_sheets(fields, located, fieldmap, result)
        by_sheet, reported = read_values(study, self, self.display, fields, located, result)
        read_cells: dict[str, set[tuple[int, int]]] = defaultdict(set)
        for sheet, entries in by_sheet.items():
            read_cells[sheet].update((ref.row, ref.col) for _, ref in entries)
        for f in fields:  # derived and fixed cells are the study's, read or not
            ref = located.get(f.path)
            if ref is not None:
                read_cells[ref.sheet].add((ref.row, ref.col))
        self.report_cut_cells(reported)
        self.findings.extend(sheet_scan.stray_values(study, self.display, self.site, self.subject, self.sheet_names, read_cells,
                                                     self.rows, {sheet: entries[0][0].container for sheet, entries in by_sheet.items() if entries}))
        return result

    def report_cut_cells(self, reported: set[tuple[str, str]]) -> None:
        """Cells taken out before the reader saw them and not reported on a field: located findings, one kind per sheet."""
        for sheet, scan in sorted(self.scans.items()):
            for cut in scan.dropped:
                if cut.reason == "value" and (sheet, cut.cell) not in reported:
                    self.findings.append(file_finding(
                        self.display, "CELL-UNREADABLE", f"{show_value(cut.value)} {cut.detail}", sheet=sheet, cell=cut.cell,
                        site=self.site, subject=self.subject, value=cut.value))
            for reason, rule in (("far", "VALUE-OUTSIDE-FORM"), ("reference", "CELL-REFERENCE-INVALID")):
                cuts = [c for c in scan.dropped if c.reason == reason]
                if not cuts:
                    continue
                more = f" and {len(cuts) - 1} more cell(s) of this sheet" if len(cuts) > 1 else ""
                if reason == "far":
                    problem = (f"{cuts[0].detail} was typed at {cuts[0].cell}, far outside the form{more}, so it was not read")
                    fix = "Type each value in its input cell of the form; delete whatever was typed or pasted far outside it"
                    cell = cuts[0].cell
                else:
                    problem = (f"a cell has the impossible reference '{cuts[0].cell}' (it holds {cuts[0].detail}){more}; "
                               "it was not read")
                    fix = "The file was damaged or made by another program: open it in Excel, save it again as .xlsx and send that copy"
                    cell = ""
                self.findings.append(file_finding(self.display, rule, problem, fix, sheet=sheet, cell=cell, site=self.site,
                                                  subject=self.subject, category="structure", value=cuts[0].detail))

    def renamed(self, sheet: str, sheet_fields: list[_Spec], fieldmap: _FieldMap) -> bool:
        """The field map names another sheet for this sheet's first field (Excel renamed the names with the sheet)."""
        ref = fieldmap.get(sheet_fields[0].path, sheet_fields[0].index)
        return ref is not None and ref.sheet != sheet

    def report_sheets(self, fields: list[_Spec], located: dict[str, CellRef], fieldmap: _FieldMap, result: ReadSubject) -> None:
        """One finding per missing, renamed, damaged or oversized sheet; its fields become unknown."""
        by_sheet: dict[str, list[_Spec]] = defaultdict(list)
        for f in fields:
            ref = located.get(f.path)
            if ref is not None:
                by_sheet[ref.sheet].append(f)
        # Each file is looked at on its own: whether a sheet was renamed depends on its _meta field map too, so no
        # answer is kept from another file (the look reads one row of the field map per sheet, from the XML)
        check_renames = True
        for sheet, sheet_fields in sorted(by_sheet.items()):
            if sheet in self.sheet_names:
                if check_renames and self.renamed(sheet, sheet_fields, fieldmap):
                    old = next((ref.sheet for ref in (fieldmap.get(f.path, f.index) for f in sheet_fields[:1]) if ref), "")
                    self.findings.append(file_finding(
                        self.display, "SHEET-RENAMED", f"the sheet '{old}' was renamed to '{sheet}'",
                        "Its data were read through the cell names and nothing was lost; please do not rename sheets",
                        severity=Severity.WARNING, sheet=sheet, site=self.site, subject=self.subject, category="structure"))
                try:
                    self.rows(sheet)
                    continue
                except _SheetDamaged as exc:
                    problem, fix, rule = (f"the sheet cannot be read ({exc.detail})", "Open the file in Excel, save it and send it again", "SHEET-DAMAGED")
            else:
                forms = sorted({(f.container, f.form if not f.is_log else "") for f in sheet_fields})
                what = ", ".join(f"{c} {fm}".strip() for c, fm in forms[:4]) + (" ..." if len(forms) > 4 else "")
                problem = f"the sheet '{sheet}' is missing (deleted or renamed), with {len(sheet_fields)} fields ({what})"
                fix = "Send the complete workbook the study issued, with every sheet; these fields were not checked"
                rule = "SHEET-MISSING"
            visits = {f.container for f in sheet_fields}
            self.findings.append(file_finding(
                self.display, rule, problem, fix, sheet=sheet, site=self.site, subject=self.subject, category="structure",
                visit=visits.pop() if len(visits) == 1 else ""))
            result.unknown.update(f.path for f in sheet_fields)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return safe_text(str(value))


def read_workbook(data: bytes, display: str, study: Study, limits: safety.Limits = safety.DEFAULT_LIMITS) -> tuple[ReadSubject, list]:
    """Parse a workbook held in memory into a subject and the reader's own findings (sheets, names, identity).

    Raises Unusable for a file that cannot be checked at all.
    """
    package = _open_package(data, display, limits)
    try:
        book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    except python_calamine.PasswordError:
        raise Unusable("PASSWORD-PROTECTED", "the workbook is protected by a password", "Remove the password and send it again")
    except Exception as exc:  # calamine raises several types for damaged packages
        raise Unusable("FILE-UNREADABLE", f"the workbook cannot be read ({type(exc).__name__}: {str(exc)[:120]})",
                       "Open it in Excel; if it opens, save it again as .xlsx and send that copy")
    reader = _Reader(study, display, package, book)
    try:
        subject = reader.read()
    except _SheetDamaged as exc:  # a sheet the reader needs before any field (Instructions, _meta)
        raise Unusable("SHEET-DAMAGED", f"the sheet '{exc.sheet}' is damaged and cannot be read ({exc.detail})",
                       "Open the file in Excel, save it again as .xlsx and send that copy", sheet=exc.sheet)
    finally:
        book.close()
        sanitised = reader.__dict__.get("_sanitised")
        if sanitised is not None:
            sanitised.close()
    return subject, reader.findings
