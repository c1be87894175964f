"""Read a returned fillable PDF CRF (crf.pdf_fillable) into a SubjectRecord, as a workbook is read.

Every item is found through its field, named by the workbook's defined name (crf.fieldmap); the
hidden `_meta` field says which study, CRF version and subject the file was issued for. Values are
what the PDF reader stored (/V): text as typed, a radio field's on-state (the option's code), the
ticked check boxes of a multi-choice item, a list's export value (the code). They are converted by
the workbook's converter, so the same text gives the same value and the same findings. A location
names the page and the field: "page 12, field F_V1__VS_PRE__WEIGHT".

The file is opened read-only from memory by pikepdf (qpdf); a PDF qpdf has to repair is refused
rather than read in part.
"""
from __future__ import annotations

import io
import re
from collections import defaultdict
from typing import Any, Optional

import pikepdf

from ..findings import Severity
from ..fieldmap import FieldPath
from ..model import Item, Study
from ..pdf_fillable import HEADER_FIELD, KEYS_SEPARATOR, META_FIELD, SITE_FIELD, SUBJECT_FIELD
from ..subject import Location, SubjectRecord
from .base import ReadSubject, Unusable, file_finding
from .convert import ValueIssue, clean_text, convert
from .xlsx import field_table

FIX_SEND_FILLABLE = "Fill in the fillable PDF the study sent for this subject in a PDF reader, save it (File > Save) and send that file"
MAX_FIELDS = 50_000  # the shipped study has ~3,200; a file with far more is not one of ours


def pdf_place(page: Optional[int], name: str) -> str:
    """The location of a field of a fillable PDF as findings print it (in the place of a sheet)."""
    return f"page {page}, field {name}" if page else f"field {name}"


def read_pdf(data: bytes, display: str, study: Study) -> tuple[ReadSubject, list]:
    try:
        pdf = pikepdf.open(io.BytesIO(data))
    except pikepdf.PasswordError:
        raise Unusable("PASSWORD-PROTECTED", "the PDF is protected by a password, so it cannot be read",
                       "Remove the password (save a copy without security) and send it again")
    except (pikepdf.PdfError, ValueError, OSError) as exc:
        raise Unusable("FILE-DAMAGED", f"the PDF is damaged or was not copied completely ({str(exc)[:120]})",
                       "Copy or download the saved file again and send it again")
    with pdf:
        read = _Reader(pdf, display, study).read()
        warnings = pdf.get_warnings()
        if warnings:  # qpdf repaired the file while reading it: what it lost cannot be told, so nothing is taken from it
            raise Unusable("FILE-DAMAGED", f"the PDF is damaged ({str(warnings[0])[:120]})",
                           "Copy or download the saved file again and send it again; if it stays damaged, save it again from the PDF reader")
        return read


def _name_text(value: Any) -> str:
    """A PDF name as text (/NOT#20DONE -> NOT DONE)."""
    return str(value)[1:] if isinstance(value, pikepdf.Name) else str(value)


class _Reader:
    def __init__(self, pdf: pikepdf.Pdf, display: str, study: Study):
        self.pdf = pdf
        self.display = display
        self.study = study
        self.findings: list = []
        self.site = ""
        self.subject = ""
        self.pages: dict[tuple[int, int], int] = {}  # widget object -> page number (from 1)

    def fields(self) -> dict[str, Any]:
        """Every field by its full name (partial names joined by '.'), with the terminal dictionaries."""
        root = self.pdf.Root
        form = root.get("/AcroForm")
        if form is None or form.get("/Fields") is None or not len(form.Fields):
            raise Unusable("NOT-A-CRF-PDF", "this PDF has no form fields: it is another document, or the fillable CRF was printed, "
                           "scanned or 'flattened' to PDF, which removes the fields and their values", FIX_SEND_FILLABLE)
        out: dict[str, Any] = {}
        stack = [(f, "") for f in reversed(list(form.Fields))]
        seen: set[tuple[int, int]] = set()
        while stack:
            node, prefix = stack.pop()
            if not isinstance(node, pikepdf.Dictionary) or node.objgen in seen:
                continue  # a loop or a broken reference: skip, the field will be reported missing
            seen.add(node.objgen)
            if len(seen) > MAX_FIELDS:
                raise Unusable("NOT-A-CRF-PDF", f"this PDF has more than {MAX_FIELDS} fields, far more than a CRF", FIX_SEND_FILLABLE)
            partial = node.get("/T")
            name = f"{prefix}.{partial}" if prefix and partial is not None else (str(partial) if partial is not None else prefix)
            out.setdefault(name, node)
            kids = node.get("/Kids")
            if kids is not None and name not in (HEADER_FIELD,):
                stack.extend((k, name) for k in reversed(list(kids)) if isinstance(k, pikepdf.Dictionary) and "/T" in k)
        for number, page in enumerate(self.pdf.pages, 1):
            for annot in page.obj.get("/Annots") or []:
                if isinstance(annot, pikepdf.Dictionary):
                    self.pages.setdefault(annot.objgen, number)
        return out

    def page_of(self, node: Any) -> Optional[int]:
        if node.objgen in self.pages:
            return self.pages[node.objgen]
        for kid in node.get("/Kids") or []:
            if isinstance(kid, pikepdf.Dictionary) and kid.objgen in self.pages:
                return self.pages[kid.objgen]
        return None

    def place(self, node: Any, name: str) -> str:
        return pdf_place(self.page_of(node), name)

    @staticmethod
    def text(node: Any) -> str:
        value = node.get("/V")
        if value is None:
            parent = node.get("/Parent")
            value = parent.get("/V") if isinstance(parent, pikepdf.Dictionary) else None
        if isinstance(value, pikepdf.String):
            return clean_text(str(value))
        if isinstance(value, pikepdf.Array):  # a list box with several choices
            return KEYS_SEPARATOR.join(clean_text(str(v)) for v in value)
        return "" if value is None else clean_text(_name_text(value))

    # -- identity ---------------------------------------------------------------------------------------
    def check_identity(self, fields: dict[str, Any]) -> dict[str, str]:
        meta_node = fields.get(META_FIELD)
        if meta_node is None:
            raise Unusable("NOT-A-CRF-PDF", "this PDF has form fields but not the hidden _meta field of a study's fillable CRF, "
                           "so it was not made for this study", FIX_SEND_FILLABLE)
        keys: dict[str, str] = {}
        for line in str(meta_node.get("/V", "")).splitlines():
            key, _, value = line.partition("=")
            if key.strip():
                keys[key.strip()] = value.strip()
        study = self.study
        self.site, self.subject = keys.get("site", ""), keys.get("subject", "")
        for name, attr in ((SITE_FIELD, "site"), (SUBJECT_FIELD, "subject")):
            node = fields.get(name)
            typed = self.text(node) if node is not None else ""
            if typed and not getattr(self, attr):
                setattr(self, attr, typed)
            elif typed and typed != getattr(self, attr):
                self.findings.append(file_finding(
                    self.display, "SUBJECT-CHANGED", f"the {attr} number typed here is '{typed}' but the PDF was issued for {attr} "
                    f"'{getattr(self, attr)}'", f"Check which {attr} this PDF belongs to and tell the data manager; it was read as {attr} "
                    f"'{getattr(self, attr)}'", sheet=self.place(node, name), site=self.site, subject=self.subject, category="identity"))
        if keys.get("study_id", "") != study.id:
            raise Unusable("WRONG-STUDY", f"this PDF belongs to study '{keys.get('study_id') or 'unknown'}', not to {study.id}",
                           f"Send it to that study's data manager; for {study.id}, use the {study.id} fillable PDF of this subject",
                           sheet=self.place(meta_node, META_FIELD), category="identity", site=self.site, subject=self.subject)
        version = keys.get("form_version", "")
        if version != study.form_version:
            raise Unusable("FORM-VERSION", f"this PDF has CRF version {version or 'unknown'}, but {study.id} now uses CRF version "
                           f"{study.form_version}", f"Copy the data into the CRF version {study.form_version} PDF the data manager sends you, "
                           "and return that one", sheet=self.place(meta_node, META_FIELD), category="identity", site=self.site, subject=self.subject)
        if keys.get("definition_hash", "") != study.definition_hash:
            self.findings.append(file_finding(
                self.display, "DEFINITION-CHANGED", "the PDF was made from an earlier edit of the same CRF version",
                "Nothing to do for the site; the data manager should check that no item changed meaning",
                severity=Severity.WARNING, sheet=self.place(meta_node, META_FIELD), site=self.site, subject=self.subject, category="identity"))
        if not self.subject:
            raise Unusable("SUBJECT-MISSING", "no subject number is given (cover page, field 'Subject')",
                           "Type the subject number on the cover page and send the PDF again", category="identity", site=self.site)
        return keys

    # -- values -----------------------------------------------------------------------------------------
    def raw_value(self, item: Item, node: Any) -> Any:
        """What the site entered in the field, as the converter takes a cell: text, or codes for ticks."""
        kids = [k for k in node.get("/Kids") or [] if isinstance(k, pikepdf.Dictionary)]
        field_type = node.get("/FT") or (kids[0].get("/FT") if kids else None)
        if field_type == pikepdf.Name.Btn and node.get("/FT") is None:  # a multi-choice item: one check box per option
            ticked = []
            for kid in kids:
                state = kid.get("/V", kid.get("/AS"))
                if isinstance(state, pikepdf.Name) and state != pikepdf.Name.Off:
                    ticked.append(_name_text(state))
            return KEYS_SEPARATOR.join(ticked)
        if field_type == pikepdf.Name.Btn:  # a choice: the radio field's on-state is the code
            state = node.get("/V")
            if not isinstance(state, pikepdf.Name):  # some readers set only the widgets' /AS
                state = next((k.get("/AS") for k in kids if k.get("/AS") not in (None, pikepdf.Name.Off)), None)
            return "" if state is None or state == pikepdf.Name.Off else _name_text(state)
        text = self.text(node)
        if item.kind.value == "multi-choice" and text:  # a log's key numbers as printed under the table, or codes
            return self.keys_to_codes(item, text)
        return text

    @staticmethod
    def keys_to_codes(item: Item, text: str) -> str:
        codes = [str(c.code) for c in item.codelist.codes] if item.codelist else []
        out = []
        for part in re.split(r"[;,\n]", text):
            part = part.strip()
            if part.isdigit() and 1 <= int(part) <= len(codes) and part not in codes:
                out.append(codes[int(part) - 1])
            elif part:
                out.append(part)
        return KEYS_SEPARATOR.join(out)

    def read(self) -> tuple[ReadSubject, list]:
        fields = self.fields()
        keys = self.check_identity(fields)
        study = self.study
        record = SubjectRecord(study=study.id, site=self.site, subject=self.subject, form_version=keys.get("form_version"),
                               definition_hash=keys.get("definition_hash"), source=self.display)
        result = ReadSubject(record)
        missing = []
        visit_values: dict[str, dict[str, dict[str, Any]]] = {}
        log_rows: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        log_places: dict[str, dict[int, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))
        log_issues: dict[str, dict[int, dict[str, ValueIssue]]] = defaultdict(lambda: defaultdict(dict))
        for spec in field_table(study):
            item = spec.item
            if not item.is_input:
                continue
            node = fields.get(spec.defined_name)
            if node is None:
                missing.append(spec)
                result.unknown.add(spec.path)
                continue
            where = self.place(node, spec.defined_name)
            raw = self.raw_value(item, node)
            value, issue = None, None
            if raw != "":
                converted = convert(item, raw)
                if isinstance(converted, ValueIssue):
                    issue = converted
                else:
                    value = converted
            if spec.row is not None:
                log_places[spec.container][spec.row][item.id] = where
                if value is not None:
                    log_rows[spec.container].setdefault(spec.row, {})[item.id] = value
                elif issue is not None:
                    log_rows[spec.container].setdefault(spec.row, {})
                    log_issues[spec.container][spec.row][item.id] = issue
                continue
            record.locations[spec.path] = Location(self.display, where)
            if value is not None:
                visit_values.setdefault(spec.container, {}).setdefault(spec.form, {})[item.id] = value
            elif issue is not None:
                visit_values.setdefault(spec.container, {}).setdefault(spec.form, {})
                result.issues[spec.path] = issue
        for key, visit in study.visit_keys(visit_values):  # schedule order, only visits with something entered
            record.visits[key] = {inst.name: visit_values[key][inst.name] for inst in visit.forms if inst.name in visit_values[key]}
        for log in study.logs:
            rows = log_rows.get(log.id)
            if not rows:
                continue
            record.logs[log.id], result.log_rows[log.id] = [], []
            for row in sorted(rows):
                index = len(record.logs[log.id])
                record.logs[log.id].append(rows[row])
                result.log_rows[log.id].append(row + 1)
                for item_id, where in log_places[log.id][row].items():
                    record.locations[str(FieldPath.log(log.id, index, item_id))] = Location(self.display, where)
                for item_id, issue in log_issues[log.id][row].items():
                    result.issues[str(FieldPath.log(log.id, index, item_id))] = issue
        if missing:
            first = missing[0]
            self.findings.append(file_finding(
                self.display, "PDF-FIELD-MISSING", f"{len(missing)} field(s) of the form are missing from the PDF (first: {first.defined_name}, "
                f"{first.item.question}); they were deleted or the file was edited", "These fields were not checked; " + FIX_SEND_FILLABLE,
                site=self.site, subject=self.subject, category="structure"))
        return result, self.findings
