"""Field checks: every visit and log against its JSON Schema, soft limits, and values that could not be read.

Each schema is compiled once (crf.checks.fastschema); a form it finds invalid is validated again by jsonschema,
imported then, whose errors the findings are made from.
Each schema error is mapped back to its field and cell and explained for a site coordinator;
fields the reader could not find or convert are reported by the reader and skipped here, so one
problem gives one finding.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Optional

from ..catalogue import code, problem_text
from ..findings import Finding
from ..messages import Locator, render
from ..fieldmap import FieldPath
from ..model import Item, ItemKind, Limits, Log, Study, Visit
from ..readers.base import ReadSubject
from ..readers.convert import ValueIssue, show_value
from ..subject import Location, SubjectRecord
from .derive import Disagreement
from .fastschema import Predicate, compile_schemas
from .formats import Formats, jsonschema_checker
from .stage import CheckStage, derive

if TYPE_CHECKING:
    from jsonschema import ValidationError

_QUOTED = re.compile(r"^'(.+?)' is (?:a required property|a dependency of '(.+)')$")
MAX_CHOICES_LISTED = 8


@dataclass(frozen=True)
class _Where:
    """Everything a message needs about one field."""

    visit: str
    form: str
    item: Optional[Item]
    row: Optional[int]  # log row as the site sees it (from 1)
    location: Location
    container_label: str
    form_title: str


class FieldChecks(CheckStage):
    """The field-check stage; build once per study, then `check` each subject."""

    name = "fields"

    def __init__(self, study: Study):
        self.study = study
        registry = study.schemas.registry
        self._validators: dict[str, Any] = {}  # uri -> jsonschema validator, made when a form first fails
        uris = sorted({*study.schemas.visit_uris.values(), *study.schemas.log_uris.values()})
        self._fast: dict[str, Optional[Predicate]] = compile_schemas(registry, uris, Formats())  # shared parts compiled once
        self._logs = {lg.id: lg for lg in study.logs}
        self.locator = Locator(study)

    # -- public -------------------------------------------------------------------------
    def check(self, read: ReadSubject) -> Iterator[Finding]:
        record = read.record
        derive(self.study, read)  # done already in a run (crf.validation); a caller of this stage alone gets it here
        derived = read.derived
        yield from self._issues(read)
        yield from self._disagreements(read, read.disagreements)
        for key, visit in self.study.visit_keys(record.visits):
            forms = record.visits[key]
            uri = self.study.schemas.visit_uris[visit.id]
            seen: set[tuple[str, str]] = set()
            for error in self._errors(uri, forms):
                yield from self._visit_error(read, key, visit, error, derived, seen)
            yield from self._soft_visit(read, key, visit, forms)
        for log in self.study.logs:
            rows = record.logs.get(log.id)
            if rows is None:
                continue
            seen = set()
            for error in self._errors(self.study.schemas.log_uris[log.id], rows):
                yield from self._log_error(read, log, error, derived, seen)
            yield from self._soft_log(read, log, rows)

    def _errors(self, uri: str, instance: Any) -> Iterator[ValidationError]:
        fast = self._fast.get(uri)
        if fast is not None and fast(instance):
            return iter(())  # valid: jsonschema would find nothing
        return self.validator(uri).iter_errors(instance)

    def validator(self, uri: str) -> Any:
        """jsonschema's validator of one schema, which words the findings; made when a form first fails.

        jsonschema takes 0.05 s to import: a run whose forms all pass their compiled checks never imports it.
        """
        validator = self._validators.get(uri)
        if validator is None:
            from jsonschema import Draft202012Validator

            validator = self._validators[uri] = Draft202012Validator(
                {"$ref": uri}, registry=self.study.schemas.registry, format_checker=jsonschema_checker())
        return validator

    # -- where ----------------------------------------------------------------------------
    def _visit_where(self, record: SubjectRecord, key: str, visit: Visit, form: str, item_id: Optional[str]) -> _Where:
        inst = visit.form(form) if visit.has(form) else None
        item = inst.form.item(item_id) if inst is not None and item_id and inst.form.has(item_id) else None
        if item_id:
            location = record.location(str(FieldPath.visit(key, form, item_id)))
        else:
            location = self._form_location(record, key, visit, form)
        return _Where(key, form, item, None, location, f"Visit {key} '{visit.label}'",
                      inst.title if inst else form)

    def _form_location(self, record: SubjectRecord, key: str, visit: Visit, form: str) -> Location:
        inst = visit.form(form) if visit.has(form) else None
        if inst is not None:
            for item in inst.items:
                loc = record.locations.get(str(FieldPath.visit(key, form, item.id)))
                if loc is not None and item.is_input:
                    return loc
        return Location(record.source or "?")

    def _log_where(self, read: ReadSubject, log: Log, index: Optional[int], item_id: Optional[str]) -> _Where:
        record = read.record
        numbers = read.log_rows.get(log.id, [])
        row = numbers[index] if index is not None and index < len(numbers) else (index + 1 if index is not None else None)
        item = log.form.item(item_id) if item_id and log.form.has(item_id) else None
        if index is not None and item_id:
            location = record.location(str(FieldPath.log(log.id, index, item_id)))
        elif index is not None:
            location = next((loc for key, loc in sorted(record.locations.items()) if key.startswith(f"/logs/{log.id}/{index}/")),
                            Location(record.source or "?"))
            if location.cell:
                location = Location(location.file, location.sheet, f"row {location.cell.lstrip('ABCDEFGHIJKLMNOPQRSTUVWXYZ')}")
            elif location.sheet:  # a fillable PDF's "page 12, field L_AE__R001__AETERM": the row is on that page, not that field
                location = Location(location.file, location.sheet.split(", field ")[0])
        else:
            location = next((loc for key, loc in sorted(record.locations.items()) if key.startswith(f"/logs/{log.id}/")),
                            Location(record.source or "?"))
            location = Location(location.file, location.sheet.split(", field ")[0] if location.sheet else location.sheet)
        label = f"{log.label} log" + (f", row {row}" if row is not None else "")
        return _Where("", log.id, item, row, location, label, log.form.title)

    # -- findings -------------------------------------------------------------------------
    def _finding(self, record: SubjectRecord, where: _Where, rule: str, problem: str, fix: str = "", value: Any = None,
                 expected: str = "", extra_key: str = "") -> Finding:
        """A finding of a catalogued code (severity and category from crf.catalogue), its message in the one shape."""
        entry = code(rule)
        place = self.locator.place(where.visit, where.form, where.item.id if where.item else "", where.row,
                                   where.location.sheet or "", where.location.cell or "", form_level=where.item is None)
        return Finding(
            rule=rule, severity=entry.severity, category=entry.category, message=render(place, problem, fix or entry.fix),
            subject=record.subject, site=record.site, visit=where.visit, form=where.form,
            field=where.item.id if where.item else "", row=where.row, file=where.location.file or (record.source or ""),
            sheet=where.location.sheet or "", cell=where.location.cell or "", value=_report_value(value), expected=expected,
            extra_key=extra_key)

    def _issues(self, read: ReadSubject) -> Iterator[Finding]:
        record = read.record
        for path, issue in sorted(read.issues.items()):
            where = self._where_of(read, path)
            if where is None:
                continue
            yield self._finding(record, where, issue.rule, f"{show_value(issue.raw) if issue.rule != 'FORMULA-NO-VALUE' else 'the cell'} "
                                f"{_problem_tail(issue)}", issue.fix, value=issue.raw, expected=issue.expected)

    def _where_of(self, read: ReadSubject, path: str) -> Optional[_Where]:
        p = FieldPath.parse(path)
        visit = self.study.visit_of(p.container) if p is not None and not p.is_log else None
        if p is not None and visit is not None:
            return self._visit_where(read.record, p.container, visit, p.form, p.item)
        if p is not None and p.row is not None and p.container in self._logs:
            return self._log_where(read, self._logs[p.container], p.row, p.item)
        return None

    def _disagreements(self, read: ReadSubject, found: list[Disagreement]) -> Iterator[Finding]:
        """A calculated item sent with another value than its calculation: a formula typed over, or an export that disagrees."""
        for d in found:
            where = self._where_of(read, d.path)
            if where is None:
                continue
            sent, computed = _shown(d.item, d.sent), _shown(d.item, d.computed)
            yield self._finding(read.record, where, "DERIVED-MISMATCH", problem_text("DERIVED-MISMATCH", sent=sent, computed=computed),
                                "Do not type over a calculated cell: correct the answers it is calculated from, or clear the cell "
                                "so that its formula is restored (ask the data manager for a fresh workbook if it is lost)",
                                value=d.sent, expected=f"{computed} (calculated)")

    def _skip(self, read: ReadSubject, path: str, derived: set[str]) -> bool:
        return path in read.issues or path in read.unknown or path in derived

    def _visit_error(self, read: ReadSubject, key: str, visit: Visit, error: ValidationError, derived: set[str],
                     seen: set[tuple[str, str]]) -> Iterator[Finding]:
        record = read.record
        path = list(error.absolute_path)
        if error.validator in ("required", "dependentRequired"):
            missing = _missing_name(error)
            if missing is None:
                return
            if not path:  # a whole form instance is missing from the visit
                form = missing
                if (form, "") in seen or self._form_unknown(read, key, visit, form):
                    return
                seen.add((form, ""))
                inputs = [it for it in visit.form(form).items if it.is_input] if visit.has(form) else []
                if len(inputs) == 1:  # a one-question form: ask for the question
                    where = self._visit_where(record, key, visit, form, inputs[0].id)
                    yield self._required(record, where, error)
                    return
                where = self._visit_where(record, key, visit, form, None)
                where = _Where(where.visit, where.form, None, None, where.location, where.container_label, where.form_title)
                yield self._finding(record, where, "FORM-MISSING", problem_text("FORM-MISSING", form_title=where.form_title),
                                    "Fill it in, or tell the data manager why it was not done")
                return
            form = str(path[0])
            field_path = str(FieldPath.visit(key, form, missing))
            if (form, missing) in seen or self._skip(read, field_path, derived):
                return
            seen.add((form, missing))
            where = self._visit_where(record, key, visit, form, missing)
            yield self._required(record, where, error)
            return
        if not path:
            if error.validator == "additionalProperties":  # a form the visit does not collect (an unscheduled visit allows only some)
                allowed = ", ".join(f.name for f in visit.forms)
                for form in sorted(set(error.instance) - self._visit_form_names(visit)):
                    if (form, "") in seen:
                        continue
                    seen.add((form, ""))
                    where = self._visit_where(record, key, visit, form, None)
                    yield self._finding(record, where, "FORM-UNKNOWN", problem_text("FORM-UNKNOWN", form=form),
                                        f"{visit.label} collects only these forms: {allowed}; put the data of '{form}' at a visit "
                                        "that collects it, or remove it")
            return
        form = str(path[0])
        item_id = str(path[1]) if len(path) > 1 else None
        if item_id is None:
            if error.validator == "additionalProperties":
                where = self._visit_where(record, key, visit, form, None)
                yield self._finding(record, where, "FIELD-UNKNOWN", error.message, "Remove items that are not on the form")
            elif error.validator in ("type",) and form not in self._visit_form_names(visit):
                where = self._visit_where(record, key, visit, form, None)
                yield self._finding(record, where, "FORM-UNKNOWN", problem_text("FORM-UNKNOWN", form=form),
                                    "Remove it, or put its data in the right visit")
            elif error.validator == "additionalProperties" or error.validator == "type":
                where = self._visit_where(record, key, visit, form, None)
                yield self._finding(record, where, "FIELD-TYPE", error.message, "Fix the export")
            return
        field_path = str(FieldPath.visit(key, form, item_id))
        if self._skip(read, field_path, derived) or (form, item_id) in seen:
            return
        seen.add((form, item_id))
        where = self._visit_where(record, key, visit, form, item_id)
        yield self._value_error(record, where, error)

    def _visit_form_names(self, visit: Visit) -> set[str]:
        return {f.name for f in visit.forms}

    def _form_unknown(self, read: ReadSubject, key: str, visit: Visit, form: str) -> bool:
        if not visit.has(form):
            return False
        inputs = [str(FieldPath.visit(key, form, it.id)) for it in visit.form(form).items if it.is_input]
        return bool(inputs) and all(p in read.unknown for p in inputs)

    def _log_error(self, read: ReadSubject, log: Log, error: ValidationError, derived: set[str],
                   seen: set[tuple[str, str]]) -> Iterator[Finding]:
        record = read.record
        path = list(error.absolute_path)
        if not path:
            where = self._log_where(read, log, None, None)
            problem = error.message
            if error.validator == "maxItems":
                problem = f"the log has {len(error.instance)} rows; at most {error.validator_value} are allowed"
            yield self._finding(record, where, "LOG-STRUCTURE", problem, "Tell the data manager")
            return
        index = int(path[0])
        if error.validator in ("required", "dependentRequired") and len(path) == 1:
            missing = _missing_name(error)
            if missing is None:
                return
            field_path = str(FieldPath.log(log.id, index, missing))
            if (str(index), missing) in seen or self._skip(read, field_path, derived):
                return
            seen.add((str(index), missing))
            where = self._log_where(read, log, index, missing)
            yield self._required(record, where, error)
            return
        item_id = str(path[1]) if len(path) > 1 else None
        if item_id is None:
            where = self._log_where(read, log, index, None)
            yield self._finding(record, where, "FIELD-UNKNOWN" if error.validator == "additionalProperties" else "LOG-STRUCTURE", error.message, "Remove items that are not on the form")
            return
        field_path = str(FieldPath.log(log.id, index, item_id))
        if self._skip(read, field_path, derived) or (str(index), item_id) in seen:
            return
        seen.add((str(index), item_id))
        where = self._log_where(read, log, index, item_id)
        yield self._value_error(record, where, error)

    def _required(self, record: SubjectRecord, where: _Where, error: ValidationError) -> Finding:
        item = where.item
        reason = ""
        if error.validator == "dependentRequired":
            m = _QUOTED.match(error.message)
            trigger = m[2] if m and m[2] else ""
            reason = f" because '{self._question(where, trigger)}' is filled in"
        elif "then" in error.schema_path and item is not None and item.condition is not None:
            cond = item.condition
            shown = " or ".join(f"'{self._label(where, cond.item, v)}'" for v in cond.values)
            reason = f" because '{self._question(where, cond.item)}' is {shown}"
        fix = "Enter it" + (", or tell the data manager why it is not available" if not reason else "")
        return self._finding(record, where, "FIELD-REQUIRED", f"this is blank but required{reason}", fix + ".", expected="a value")

    def _question(self, where: _Where, item_id: str) -> str:
        form = self._form_of(where)
        if form is not None and form.has(item_id):
            return form.item(item_id).question
        return item_id

    def _label(self, where: _Where, item_id: str, code: Any) -> str:
        form = self._form_of(where)
        if form is not None and form.has(item_id) and form.item(item_id).codelist:
            return form.item(item_id).codelist.label(code)
        return str(code)

    def _form_of(self, where: _Where) -> Any:
        visit = self.study.visit_of(where.visit)
        if visit is not None and visit.has(where.form):
            return visit.form(where.form).form
        if where.row is not None and where.form in self._logs:
            return self._logs[where.form].form
        return None

    def _value_error(self, record: SubjectRecord, where: _Where, error: ValidationError) -> Finding:
        item = where.item
        value = error.instance if not isinstance(error.instance, (list, dict)) or error.validator in ("minItems", "uniqueItems") else error.instance
        shown = show_value(value) if not isinstance(value, (int, float)) or isinstance(value, bool) else _num(value)
        v = error.validator
        unit = f" {item.unit}" if item is not None and item.unit else ""
        if item is None:
            return self._finding(record, where, "FIELD-UNKNOWN", error.message,
                                 "Remove items that are not on the form", value=value)
        if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            return self._finding(record, where, "FIELD-RANGE", problem_text("FIELD-RANGE", value=f"{shown}{unit}", limits=_range_text(item.hard, unit)),
                                 "Check the source document and correct the value", value=value, expected=_range_text(item.hard, unit))
        if v == "enum" or v == "const":
            choices = _choices(item)
            return self._finding(record, where, "FIELD-CHOICE", problem_text("FIELD-CHOICE", value=shown),
                                 f"Choose one of: {choices}" if choices else "Choose a value from the list", value=value,
                                 expected=choices or "a listed code")
        if v == "maxLength":
            length = len(value) if isinstance(value, str) else 0
            return self._finding(record, where, "FIELD-TOO-LONG", problem_text("FIELD-TOO-LONG", length=f"{length:,}", maximum=error.validator_value),
                                 "Shorten it (put details in the source document)", value=value, expected=f"at most {error.validator_value} characters")
        if v == "format":
            expected = {"date": "a date YYYY-MM-DD", "partial-date": "YYYY, YYYY-MM or YYYY-MM-DD", "time-hm": "a time HH:MM"}.get(
                str(error.validator_value), str(error.validator_value))
            rule = "DATE-INVALID" if "date" in str(error.validator_value) else "TIME-INVALID"
            return self._finding(record, where, rule, f"{shown} is not a valid {'date' if rule == 'DATE-INVALID' else 'time'}", f"Enter {expected}",
                                 value=value, expected=expected)
        if v == "type":
            expected = _type_text(item)
            rule = "NOT-A-NUMBER" if item.is_number else "FIELD-TYPE"
            return self._finding(record, where, rule, f"{shown} is not {expected}",
                                 f"Enter {expected}", value=value, expected=expected)
        if v == "minItems":
            return self._finding(record, where, "FIELD-REQUIRED", "nothing is ticked",
                                 "Tick at least one", value=value, expected="at least one choice")
        if v == "uniqueItems":
            return self._finding(record, where, "FIELD-CHOICE", "a choice is given twice",
                                 "Give each choice once", value=value)
        if v == "pattern":
            return self._finding(record, where, "FIELD-FORMAT", f"{shown} does not have the expected form",
                                 "Enter it as described on the form", value=value, expected=f"matching {error.validator_value}")
        return self._finding(record, where, "FIELD-INVALID", f"{shown}: {error.message}",
                             "Correct the value", value=value)

    # -- soft limits ----------------------------------------------------------------------
    def _soft_visit(self, read: ReadSubject, key: str, visit: Visit, forms: dict[str, Any]) -> Iterator[Finding]:
        for inst in visit.forms:
            values = forms.get(inst.name)
            if not isinstance(values, dict):
                continue
            for item in inst.items:
                if item.soft is None or not item.is_input:
                    continue
                value = values.get(item.id)
                if _outside_soft(item, value):
                    where = self._visit_where(read.record, key, visit, inst.name, item.id)
                    yield self._soft(read.record, where, item, value)

    def _soft_log(self, read: ReadSubject, log: Log, rows: list[Any]) -> Iterator[Finding]:
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                continue
            for item in log.form.items:
                if item.soft is not None and item.is_input and _outside_soft(item, row.get(item.id)):
                    yield self._soft(read.record, self._log_where(read, log, index, item.id), item, row.get(item.id))

    def _soft(self, record: SubjectRecord, where: _Where, item: Item, value: Any) -> Finding:
        unit = f" {item.unit}" if item.unit else ""
        assert item.soft is not None
        expected = _range_text(item.soft, unit)
        note = f" {item.soft_message}" if item.soft_message else ""
        return self._finding(record, where, "SOFT-LIMIT", problem_text("SOFT-LIMIT", value=f"{_num(value)}{unit}", limits=expected),
                             f"Confirm it against the source document, or correct it.{note}".rstrip("."),
                             value=value, expected=expected)


def _shown(item: Item, value: Any) -> str:
    if item.codelist is not None and not isinstance(value, (list, dict)):
        label = item.codelist.label(value)
        if label and str(label) != str(value):
            return f"{show_value(value)} ({label})"
    return show_value(value) if not isinstance(value, (int, float)) or isinstance(value, bool) else _num(value)


def _outside_soft(item: Item, value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or item.soft is None:
        return False
    return item.hard.contains(value) and not item.soft.contains(value)


def _missing_name(error: ValidationError) -> Optional[str]:
    m = _QUOTED.match(error.message)
    if m:
        return m[1]
    if isinstance(error.instance, dict) and isinstance(error.validator_value, list):
        missing = [p for p in error.validator_value if p not in error.instance]
        return missing[0] if missing else None
    return None


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _range_text(limits: Limits, unit: str) -> str:
    low = limits.low
    high = limits.high
    low_text = f"more than {_num(limits.exclusive_minimum)}" if limits.minimum is None and limits.exclusive_minimum is not None else None
    high_text = f"less than {_num(limits.exclusive_maximum)}" if limits.maximum is None and limits.exclusive_maximum is not None else None
    if low is not None and high is not None:
        if low_text or high_text:
            return f"{low_text or 'at least ' + _num(low)} and {high_text or 'at most ' + _num(high)}{unit}"
        return f"between {_num(low)} and {_num(high)}{unit}"
    if low is not None:
        return f"{low_text or 'at least ' + _num(low)}{unit}"
    if high is not None:
        return f"{high_text or 'at most ' + _num(high)}{unit}"
    return "within limits"


def _choices(item: Item) -> str:
    if item.codelist is None:
        return ""
    codes = item.codelist.codes
    listed = [c.label if str(c.code) == c.label else f"{c.code} ({c.label})" for c in codes[:MAX_CHOICES_LISTED]]
    text = ", ".join(listed)
    if len(codes) > MAX_CHOICES_LISTED:
        text += f" ... ({len(codes)} choices: pick from the list in the cell)"
    return text


def _type_text(item: Item) -> str:
    if item.kind is ItemKind.INTEGER:
        return "a whole number"
    if item.kind is ItemKind.DECIMAL:
        return "a number"
    if item.kind is ItemKind.MULTI_CHOICE:
        return "a list of choices"
    return "text"


def _problem_tail(issue: ValueIssue) -> str:
    problem = issue.problem
    shown = show_value(issue.raw)
    if problem.startswith(shown):
        return problem[len(shown):].lstrip()
    return problem


def _report_value(value: Any) -> Any:
    """Values in reports: JSON-friendly, long text shortened."""
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + f"… ({len(value):,} characters)"
    if isinstance(value, (list, tuple)):
        return [_report_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _report_value(v) for k, v in list(value.items())[:20]}
    return value
