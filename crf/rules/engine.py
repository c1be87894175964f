"""The rules engine: load the study's rules files once, then check batches of subject records.

    ruleset = RuleSet.load(study)                 # reads <study>/rules/*.json, validates, compiles
    for finding in ruleset.check(records): ...    # records of one batch (one subject may span files)

A rules file (`schemas/meta/rules.schema.json`) holds `constants` and `rules`. A rule is either

- `"kind": "expression"`: one or more `checks`, each evaluated `for_each` unit (the subject once,
  each instance of a form at any visit, each row of a log): the check fails when its `when` holds
  and its `fail_if` holds; or
- `"kind": "python"`: a function registered in `crf.rules.functions.PYTHON_RULES` (schedule,
  limits from the schemas, missed doses), with the rule's `params`.

Expressions are parsed and compiled once, here; names and functions are checked at load, so that a
misspelt item is a load error naming the rules file and JSON pointer, never a silent blank.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence


from .. import defcache
from ..expressions import BUILTINS, MISSING, Compiled, Expression, ExpressionError, compile_expression, parse
from ..findings import Finding, Severity
from ..loader import META_DIR, Problem, StudyDefinitionError
from ..messages import Locator, continuing
from ..messages import render as render_message
from ..fieldmap import FieldPath
from ..model import Item, Study, Visit, split_visit_key
from ..subject import SubjectRecord
from . import schedule as _schedule  # noqa: F401  (registers the schedule rules)
from .context import SPECIAL_NAMES, Frame, SubjectContext
from .functions import CONTEXT_FUNCTIONS, PYTHON_RULES, Hit, functions_of
from .supersede import Supersession, parse_entries

SEVERITIES = {"error": Severity.ERROR, "query": Severity.QUERY, "major": Severity.MAJOR, "minor": Severity.MINOR}
RULES_SCHEMA = META_DIR / "rules.schema.json"
_STRUCTURAL = re.compile(r"^[A-Z]+(?:-[A-Z]+)+$")  # FIELD-REQUIRED ... (the catalogue of structural codes)
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")
# functions whose first argument names a log or a form (its rows / instances become the inner frame)


@dataclass(frozen=True)
class StudyLayout:
    """Lookups over the study model, built once per rule set."""

    visits: dict[str, Visit]
    instance_items: dict[tuple[str, str], dict[str, Item]]
    instance_form_id: dict[tuple[str, str], str]
    instances_of_form: dict[str, tuple[tuple[str, str], ...]]  # form id -> (visit, instance) in schedule order
    log_items: dict[str, dict[str, Item]]
    form_items: dict[str, dict[str, Item]]  # form id -> union of items over its instances
    instance_names: frozenset[str]
    study: Optional[Study] = None

    def visit(self, key: str) -> Optional[Visit]:
        """The visit of a visit key (V1, ATT#2)."""
        if key in self.visits:
            found = self.visits[key]
            return None if found.repeating else found
        return self.study.visit_of(key) if self.study is not None else None

    def base(self, key: str) -> str:
        """The visit id of a visit key: ATT#2 -> ATT."""
        return key if key in self.visits else split_visit_key(key)[0]

    def label(self, key: str) -> str:
        """A visit key as the site reads it: 'Attack visit 2' for ATT#2."""
        visit = self.visit(key)
        repeat = split_visit_key(key)[1]
        if visit is None:
            return key
        return visit.label if repeat is None else f"{visit.label} {repeat}"

    @classmethod
    def of(cls, study: Study) -> "StudyLayout":
        instance_items: dict[tuple[str, str], dict[str, Item]] = {}
        instance_form_id: dict[tuple[str, str], str] = {}
        of_form: dict[str, list[tuple[str, str]]] = {}
        form_items: dict[str, dict[str, Item]] = {}
        for visit in study.visits:
            for inst in visit.forms:
                instance_items[(visit.id, inst.name)] = {it.id: it for it in inst.items}
                instance_form_id[(visit.id, inst.name)] = inst.form.id
                of_form.setdefault(inst.form.id, []).append((visit.id, inst.name))
                form_items.setdefault(inst.form.id, {}).update({it.id: it for it in inst.items})
        log_items = {lg.id: {it.id: it for it in lg.form.items} for lg in study.logs}
        return cls({v.id: v for v in study.visits}, instance_items, instance_form_id,
                   {k: tuple(v) for k, v in of_form.items()}, log_items, form_items,
                   frozenset(n for _, n in instance_items), study)


@dataclass(frozen=True)
class ForEach:
    kind: str  # subject, form, log
    target: str = ""  # form id or log id
    visits: Optional[frozenset[str]] = None  # restrict form instances to these visits

    def describe(self) -> str:
        if self.kind == "subject":
            return "subject"
        where = f" at {', '.join(sorted(self.visits))}" if self.visits else ""
        return f"each {self.target} {'row' if self.kind == 'log' else 'form'}{where}"


@dataclass(frozen=True)
class Check:
    key: str
    for_each: ForEach
    when: Optional[Expression]
    fail_if: Expression
    field: str
    message: str
    severity: Severity
    values: tuple[tuple[str, Expression], ...] = ()
    # dataclasses.field: a class attribute above is named `field`
    _when: Optional[Compiled] = dataclasses.field(default=None, compare=False, repr=False)
    _fail: Optional[Compiled] = dataclasses.field(default=None, compare=False, repr=False)
    _values: tuple[tuple[str, Compiled], ...] = dataclasses.field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    forms: tuple[str, ...]
    severity: Severity
    category: str
    message: str
    kind: str  # expression or python
    source: str  # rules/<file>.json#/rules/<n>
    assumption: Optional[str] = None
    note: Optional[str] = None
    related: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()
    first_match: bool = False
    function: Optional[str] = None
    params: Mapping[str, Any] = field(default_factory=dict)
    messages: Mapping[str, str] = field(default_factory=dict)
    supersedes: tuple[Supersession, ...] = ()  # findings this rule's finding makes redundant (crf.rules.supersede)

    @property
    def is_deviation(self) -> bool:
        return self.severity in (Severity.MAJOR, Severity.MINOR)


class RuleSet:
    """The compiled rules of one study. Build once per run with `RuleSet.load(study)`."""

    def __init__(self, study: Study, rules: Sequence[Rule], constants: Mapping[str, Any], today: Optional[dt.date] = None):
        self.study = study
        self.rules = tuple(rules)
        self.constants = dict(constants)
        self.today = today
        self.layout = StudyLayout.of(study)
        self.locator = Locator(study)  # every message starts with where: visit or log row, form, sheet, cell, question
        self.functions = {**BUILTINS, **CONTEXT_FUNCTIONS, **{f.name: f.fn for f in study.functions.functions}}
        self._by_unit: dict[tuple[str, str], list[tuple[Rule, list[Check]]]] = {}
        for rule in self.rules:
            if rule.kind != "expression":
                continue
            groups: dict[tuple[str, str], list[Check]] = {}
            for check in rule.checks:
                groups.setdefault((check.for_each.kind, check.for_each.target), []).append(check)
            for unit, checks in groups.items():
                self._by_unit.setdefault(unit, []).append((rule, checks))
        self._python = [r for r in self.rules if r.kind == "python"]

    # -- loading -----------------------------------------------------------------------------
    @classmethod
    def load(cls, study: Study, *, today: Optional[dt.date] = None, only: Optional[Iterable[str]] = None) -> "RuleSet":
        """Read and compile <study folder>/rules/*.json; raise StudyDefinitionError naming every problem.

        `only` keeps the listed rule ids (tests, or switching rules off); `today` fixes the date the
        future-date and overdue checks use (default: the day `check` runs).
        """
        rules, constants = _RuleLoader(study).load()
        if only is not None:
            wanted = set(only)
            rules = [r for r in rules if r.id in wanted]
        return cls(study, rules, constants, today)

    @property
    def supersession_policy(self) -> dict[str, tuple[Supersession, ...]]:
        """rule id -> what its findings supersede (the one-problem-one-finding policy of the study)."""
        return {r.id: r.supersedes for r in self.rules if r.supersedes}

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    # -- checking ----------------------------------------------------------------------------
    def check(self, records: Sequence[SubjectRecord], today: Optional[dt.date] = None) -> Iterator[Finding]:
        """Findings of every rule for every subject of the batch (records of one subject are merged)."""
        day = today or self.today or dt.date.today()
        for record in merge_records(records):
            yield from self.check_subject(record, day)

    def context(self, record: SubjectRecord, today: Optional[dt.date] = None) -> SubjectContext:
        return SubjectContext(self.study, record, today or self.today or dt.date.today(), self.constants, self.functions, self.layout)

    @classmethod
    def shared(cls, study: Study) -> "RuleSet":
        """One compiled rule set per study definition and process (derivations for readers and the generator)."""
        found = _SHARED.get(study.definition_hash)
        if found is None or found.study is not study:
            found = _SHARED[study.definition_hash] = cls.load(study)
        return found

    def derived_values(self, record: SubjectRecord, today: Optional[dt.date] = None) -> dict[str, Any]:
        """Every x-derived item the record's filled forms and log rows give, by field path.

        The one implementation of derived values (age, planned dose, converted FS scores, attack
        counts, EDSS by the algorithm...): the generator fills records with it, the rules read it.
        Dates come back as ISO text, as in a subject document; items that cannot be computed are absent.
        """
        ctx = self.context(record, today)
        out: dict[str, Any] = {}

        def put(path: str, value: Any) -> None:
            if value is MISSING or value is None or isinstance(value, bool):
                return
            out[path] = value.isoformat() if isinstance(value, dt.date) else value

        for key, visit in self.study.visit_keys(record.visits):
            for inst in visit.forms:
                frame = ctx.form_frame(key, inst.name)
                if frame is None:
                    continue
                for item in inst.items:
                    if item.derived:
                        put(str(FieldPath.visit(key, inst.name, item.id)), frame.compute(item))
        for log in self.study.logs:
            for index, row in enumerate(ctx.rows(log.id)):
                if not any(v not in (None, "", []) for v in row.values()):
                    continue
                frame = ctx.row_frame(log.id, index)
                for item in log.form.items:
                    if item.derived:
                        put(str(FieldPath.log(log.id, index, item.id)), frame.compute(item))
        return out

    def check_subject(self, record: SubjectRecord, today: dt.date) -> Iterator[Finding]:
        ctx = self.context(record, today)
        for (kind, target), entries in self._by_unit.items():
            if kind == "subject":
                frames: Iterable[Frame] = [ctx.subject_frame()]
            elif kind == "form":
                frames = ctx.form_frames(target)
            else:
                frames = list(ctx.row_frames(target))
            for frame in frames:
                for rule, checks in entries:
                    yield from self._run_checks(ctx, frame, rule, checks)
        for rule in self._python:
            try:
                for hit in PYTHON_RULES[rule.function or ""](ctx, rule):
                    yield self._from_hit(ctx, rule, hit)
            except Exception as exc:  # a rule must never stop the run: report it instead
                yield self._broken(ctx, rule, exc)

    def _run_checks(self, ctx: SubjectContext, frame: Frame, rule: Rule, checks: list[Check]) -> Iterator[Finding]:
        reported: set[str] = set()  # one finding per rule, unit and field: the first failing check says it
        for check in checks:
            if check.for_each.visits and self.layout.base(frame.visit or "") not in check.for_each.visits:
                continue
            if check.field and check.field in reported:
                continue
            try:
                if check._when is not None and not bool(check._when(frame)):
                    continue
                if not bool(check._fail(frame)):  # type: ignore[misc]  # compiled when the rule set is loaded
                    continue
                values = {name: fn(frame) for name, fn in check._values}
                reported.add(check.field)
                yield self._finding(ctx, frame, rule, check, values)
            except Exception as exc:
                yield self._broken(ctx, rule, exc, frame)
                return
            if rule.first_match:
                return

    def _finding(self, ctx: SubjectContext, frame: Frame, rule: Rule, check: Check, values: dict[str, Any]) -> Finding:
        visit, form, item, row, path = frame.path(check.field) if check.field else frame.path("")
        raw = _raw_value(ctx.record, path) if check.field else None
        message = render(continuing(check.message), lambda name: values[name] if name in values else frame.resolve(name))
        loc = ctx.record.location(path) if path else ctx.record.location("")
        place = self.locator.place(visit if row is None else "", form, item, None if row is None else row + 1, loc.sheet or "", loc.cell or "")
        return Finding(
            rule=rule.id, severity=check.severity, category=rule.category, message=render_message(place, message),
            subject=ctx.record.subject, site=ctx.record.site, visit=visit, form=form, field=item,
            row=None if row is None else row + 1, file=loc.file, sheet=loc.sheet or "", cell=loc.cell or "",
            value=raw, expected=rule.title, extra_key=check.key,
        )

    def _from_hit(self, ctx: SubjectContext, rule: Rule, hit: Hit) -> Finding:
        if hit.row is not None:
            path = str(FieldPath.log(hit.form, hit.row, hit.field))
        elif hit.visit and hit.form:
            path = str(FieldPath.visit(hit.visit, hit.form, hit.field)) if hit.field else f"/visits/{hit.visit}/{hit.form}"
        else:
            path = ""
        template = rule.messages.get(hit.message) or rule.message
        loc = ctx.record.location(path)
        severity = SEVERITIES[hit.severity] if hit.severity else rule.severity
        frame = (ctx.row_frame(hit.form, hit.row) if hit.row is not None
                 else ctx.form_frame(hit.visit, hit.form) if hit.visit and hit.form else None) or ctx.subject_frame()

        def lookup(name: str) -> Any:
            return hit.values[name] if name in hit.values else frame.resolve(name)
        place = self.locator.place(hit.visit if hit.row is None else "", hit.form, hit.field, None if hit.row is None else hit.row + 1,
                                   loc.sheet or "", loc.cell or "")
        return Finding(
            rule=rule.id, severity=severity, category=rule.category,
            message=render_message(place, render(continuing(template), lookup)),
            subject=ctx.record.subject, site=ctx.record.site, visit=hit.visit if hit.row is None else "", form=hit.form,
            field=hit.field, row=None if hit.row is None else hit.row + 1, file=loc.file, sheet=loc.sheet or "",
            cell=loc.cell or "", value=hit.value, expected=rule.title, extra_key=hit.key,
        )

    def _broken(self, ctx: SubjectContext, rule: Rule, exc: Exception, frame: Optional[Frame] = None) -> Finding:
        visit, form, _, row, _ = frame.path("") if frame is not None else ("", "", "", None, "")
        return Finding(
            rule=rule.id, severity=Severity.WARNING, category=rule.category,
            message=f"Rule {rule.id} could not be evaluated here ({type(exc).__name__}: {exc}); check this subject by hand and tell the data manager.",
            subject=ctx.record.subject, site=ctx.record.site, visit=visit, form=form, row=None if row is None else row + 1,
            file=ctx.record.source or "", extra_key="engine-error",
        )


_SHARED: dict[str, "RuleSet"] = {}


def _raw_value(record: SubjectRecord, path: str) -> Any:
    p = FieldPath.parse(path)
    try:
        if p is not None and p.row is None:
            return record.visits[p.container][p.form].get(p.item)
        if p is not None and p.row is not None:
            return record.logs[p.container][p.row].get(p.item)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        return None
    return None


def format_value(value: Any) -> str:
    if value is MISSING or value is None:
        return "blank"
    if value == "":
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") if not value.is_integer() else str(int(value))
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value) or "none"
    return str(value)


def render(template: str, lookup: Any) -> str:
    """Fill {placeholders}: a rule's named values, else names resolved like expression names."""
    def one(match: re.Match[str]) -> str:
        try:
            return format_value(lookup(match.group(1)))
        except Exception:
            return "?"
    return _PLACEHOLDER.sub(one, template)


def merge_records(records: Sequence[SubjectRecord]) -> list[SubjectRecord]:
    """One record per (study, site, subject): a subject returned in several files is checked as a whole.

    Visit forms and log rows of later records are added; a form present twice keeps the first copy
    (the validator reports the duplicate).
    """
    merged: dict[tuple[str, str, str], SubjectRecord] = {}
    copied: set[tuple[str, str, str]] = set()  # merged into a copy: the callers' records are never changed
    for rec in records:
        key = (rec.study, rec.site, rec.subject)
        if key not in merged:
            merged[key] = rec
            continue
        base = merged[key]
        if key not in copied:
            base = SubjectRecord(base.study, base.site, base.subject, {v: dict(f) for v, f in base.visits.items()},
                                 {k: list(r) for k, r in base.logs.items()}, base.form_version, base.definition_hash,
                                 base.source, dict(base.locations))
            copied.add(key)
            merged[key] = base
        for visit, forms in rec.visits.items():
            target = base.visits.setdefault(visit, {})
            for name, data in forms.items():
                target.setdefault(name, data)
        for log, rows in rec.logs.items():
            base.logs.setdefault(log, []).extend(rows)
        for path, loc in rec.locations.items():
            base.locations.setdefault(path, loc)
    return list(merged.values())


# -- loading and compiling -------------------------------------------------------------------------

class _RuleLoader:
    def __init__(self, study: Study):
        self.study = study
        self.layout = StudyLayout.of(study)
        self.problems: list[Problem] = []
        self.specs = functions_of(study)
        self.functions = frozenset(self.specs)

    def problem(self, file: str, pointer: str, message: str) -> None:
        self.problems.append(Problem(file, pointer, message))

    def load(self) -> tuple[list[Rule], dict[str, Any]]:
        folder = self.study.folder / "rules"
        # the study's definition hash covers the rules files: the same bytes passed the schema before
        checked = defcache.was_checked("rules", self.study.definition_hash)
        validator: Any = None
        if not checked:  # jsonschema only when the rules changed (0.05 s to import)
            import jsonschema

            validator = jsonschema.Draft202012Validator(json.loads(RULES_SCHEMA.read_text(encoding="utf-8")))
        docs: list[tuple[str, Any]] = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            rel = path.relative_to(self.study.folder).as_posix()
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                self.problem(rel, "", f"not valid JSON: {exc}")
                continue
            for error in validator.iter_errors(doc) if validator is not None else ():
                ptr = "".join(f"/{p}" for p in error.absolute_path)
                self.problem(rel, ptr, f"{error.message} (see schemas/meta/rules.schema.json)")
            docs.append((rel, doc))
        if self.problems:
            raise StudyDefinitionError(folder, self.problems)
        if not checked:
            defcache.remember_checked("rules", self.study.definition_hash)
        constants: dict[str, Any] = {}
        for rel, doc in docs:
            for name, value in doc.get("constants", {}).items():
                if name in constants:
                    self.problem(rel, f"/constants/{name}", f"constant {name!r} is defined in two rules files")
                constants[name] = value
        self.constants = constants
        for name in self.study.functions.constants:
            if name not in constants:
                self.problem(self.study.functions.file, "CONSTANTS", f"the study's functions read constant {name!r}, which no rules file defines; "
                                                                      "add it to a rules file's constants")
        rules: list[Rule] = []
        seen: dict[str, str] = {}
        for rel, doc in docs:
            for i, raw in enumerate(doc.get("rules", [])):
                src = f"{rel}#/rules/{i}"
                if raw["id"] in seen:
                    self.problem(rel, f"/rules/{i}/id", f"rule {raw['id']} is also defined at {seen[raw['id']]}; rule ids are unique")
                seen[raw["id"]] = src
                rule = self.build(rel, f"/rules/{i}", raw)
                if rule is not None:
                    rules.append(rule)
        ids = {r.id for r in rules}
        for rel, doc in docs:
            for i, raw in enumerate(doc.get("rules", [])):
                for j, entry in enumerate(raw.get("supersedes", [])):
                    target = entry if isinstance(entry, str) else entry.get("finding", "")
                    if target not in ids and not _STRUCTURAL.match(target):
                        self.problem(rel, f"/rules/{i}/supersedes/{j}", f"rule {raw['id']}: supersedes {target!r}, which is neither a rule id nor a finding code")
                    elif target == raw["id"]:
                        self.problem(rel, f"/rules/{i}/supersedes/{j}", f"rule {raw['id']} cannot supersede itself")
        if self.problems:
            raise StudyDefinitionError(folder, self.problems)
        return sorted(rules, key=_rule_order), constants

    def build(self, file: str, ptr: str, raw: dict[str, Any]) -> Optional[Rule]:
        start = len(self.problems)
        severity = SEVERITIES[raw["severity"]]
        for form in raw.get("forms", []):
            if form not in self.layout.form_items and form not in self.layout.log_items:
                self.problem(file, f"{ptr}/forms", f"rule {raw['id']}: {form!r} is neither a form id nor a log id of the study")
        checks: list[Check] = []
        if raw["kind"] == "python":
            if raw.get("function") not in PYTHON_RULES:
                self.problem(file, f"{ptr}/function", f"rule {raw['id']}: no Python rule function {raw.get('function')!r}; registered: {', '.join(sorted(PYTHON_RULES))}")
        else:
            specs = raw.get("checks") or [{k: raw[k] for k in ("fail_if", "field", "when", "values") if k in raw}]
            for j, spec in enumerate(specs):
                cptr = f"{ptr}/checks/{j}" if "checks" in raw else ptr
                check = self.build_check(file, cptr, raw, spec, j, severity)
                if check is not None:
                    checks.append(check)
            if raw.get("first_match") and len({c.for_each for c in checks}) > 1:
                self.problem(file, f"{ptr}/first_match", "first_match needs every check on the same for_each")
        if len(self.problems) > start:
            return None
        return Rule(
            id=raw["id"], title=raw["title"], forms=tuple(raw.get("forms", [])), severity=severity, category=raw["category"],
            message=raw.get("message", ""), kind=raw["kind"], source=f"{file}#{ptr}", assumption=raw.get("assumption"),
            note=raw.get("note"), related=tuple(raw.get("related", [])), checks=tuple(checks),
            first_match=bool(raw.get("first_match")), function=raw.get("function"), params=raw.get("params", {}),
            messages=raw.get("messages", {}), supersedes=tuple(parse_entries(raw.get("supersedes", ()))),
        )

    def build_check(self, file: str, ptr: str, rule: dict[str, Any], spec: dict[str, Any], index: int, default: Severity) -> Optional[Check]:
        scope = self.for_each(file, ptr, spec.get("for_each", rule.get("for_each", "subject")))
        if scope is None:
            return None
        exprs: dict[str, Optional[Expression]] = {}
        for key in ("when", "fail_if"):
            text = spec.get(key, rule.get(key) if key == "when" else None)
            exprs[key] = self.expression(file, f"{ptr}/{key}", text, scope) if text else None
        if exprs["fail_if"] is None:
            self.problem(file, ptr, f"rule {rule['id']}: a check needs fail_if")
            return None
        values = []
        for name, text in {**rule.get("values", {}), **spec.get("values", {})}.items():
            expr = self.expression(file, f"{ptr}/values/{name}", text, scope)
            if expr is not None:
                values.append((name, expr))
        message = spec.get("message", rule.get("message", ""))
        field_name = spec.get("field", rule.get("field", ""))
        for placeholder in _PLACEHOLDER.findall(message):
            if placeholder not in dict(values):
                self.check_name(file, f"{ptr}/message", placeholder, scope, set())
        if field_name:
            self.check_name(file, f"{ptr}/field", field_name, scope, set())
        severity = SEVERITIES[spec["severity"]] if "severity" in spec else default
        check = Check(spec.get("key", str(index + 1)), scope, exprs["when"], exprs["fail_if"], field_name, message, severity, tuple(values))
        object.__setattr__(check, "_when", compile_expression(check.when) if check.when else None)
        object.__setattr__(check, "_fail", compile_expression(check.fail_if))
        object.__setattr__(check, "_values", tuple((n, compile_expression(e)) for n, e in check.values))
        return check

    def for_each(self, file: str, ptr: str, raw: Any) -> Optional[ForEach]:
        if raw == "subject":
            return ForEach("subject")
        if "form" in raw:
            if raw["form"] not in self.layout.form_items:
                self.problem(file, f"{ptr}/for_each/form", f"{raw['form']!r} is not a form id used at any visit")
                return None
            visits = raw.get("visits")
            for v in visits or ():
                if (v, raw["form"]) not in {(vv, self.layout.instance_form_id[(vv, n)]) for (vv, n) in self.layout.instance_items if vv == v}:
                    self.problem(file, f"{ptr}/for_each/visits", f"visit {v!r} has no form {raw['form']!r}")
            return ForEach("form", raw["form"], frozenset(visits) if visits else None)
        if raw["log"] not in self.layout.log_items:
            self.problem(file, f"{ptr}/for_each/log", f"{raw['log']!r} is not a log id of the study")
            return None
        return ForEach("log", raw["log"])

    def expression(self, file: str, ptr: str, text: str, scope: ForEach) -> Optional[Expression]:
        try:
            expr = parse(text)
        except ExpressionError as exc:
            self.problem(file, ptr, str(exc))
            return None
        for name in expr.functions():
            if name not in self.functions:
                self.problem(file, ptr, f"unknown function {name}() in {text!r}; known: {', '.join(sorted(self.functions))}")
        inner: set[str] = set()
        skip: set[str] = set()  # ids given to a function as ids (a log, form or visit), not names to resolve
        import ast
        for node in expr.nodes:
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)) or node.func.id not in self.specs:
                continue
            spec = self.specs[node.func.id]
            wrong = spec.wrong_arity(len(node.args))
            if wrong:
                self.problem(file, ptr, f"{wrong}, in {text!r}")
                continue
            target = node.args[0] if node.args else None
            if isinstance(target, ast.Name) and spec.first_kind in ("container", "visit"):
                skip.add(target.id)
            if spec.first_kind == "container":
                if not isinstance(target, ast.Name) or (target.id not in self.layout.form_items and target.id not in self.layout.log_items):
                    self.problem(file, ptr, f"{spec.name}() needs a log id or form id as first argument in {text!r}")
                else:
                    inner |= set(self.layout.log_items.get(target.id) or self.layout.form_items[target.id])
            elif spec.first_kind == "visit":
                if not isinstance(target, ast.Name) or target.id not in self.layout.visits:
                    self.problem(file, ptr, f"{spec.name}() needs a visit id as argument in {text!r}")
        for name in expr.references() - skip:
            self.check_name(file, ptr, name, scope, inner)
        return expr

    def check_name(self, file: str, ptr: str, name: str, scope: ForEach, inner: set[str]) -> None:
        parts = name.split(".")
        if len(parts) == 1:
            own = (self.layout.form_items.get(scope.target, {}) if scope.kind == "form"
                   else self.layout.log_items.get(scope.target, {}) if scope.kind == "log" else {})
            if name in own or name in inner or name in SPECIAL_NAMES or name in self.constants:
                return
            self.problem(file, ptr, f"{name!r} is not an item of {scope.describe()}, a constant or one of {', '.join(sorted(SPECIAL_NAMES))}")
        elif len(parts) == 2:
            if scope.kind == "form":
                visits = [v for (v, n), fid in self.layout.instance_form_id.items() if fid == scope.target
                          and (not scope.visits or v in scope.visits)]
                if any((v, parts[0]) in self.layout.instance_items and parts[1] in self.layout.instance_items[(v, parts[0])] for v in visits):
                    return
            self.problem(file, ptr, f"{name!r}: FORM.ITEM names a form instance of the same visit, and no visit of {scope.describe()} has it; write VISIT.FORM.ITEM")
        elif len(parts) == 3:
            items = self.layout.instance_items.get((parts[0], parts[1]))
            if items is None or parts[2] not in items:
                self.problem(file, ptr, f"{name!r}: visit {parts[0]} has no form instance {parts[1]} with item {parts[2]}")
        else:
            self.problem(file, ptr, f"{name!r}: too many dots")


def _rule_order(rule: Rule) -> tuple[str, int]:
    prefix, _, number = rule.id.partition("-")
    return (prefix, int(number) if number.isdigit() else 0)
