"""Load a study folder into the typed model, reporting every problem with file and JSON pointer.

Steps: parse every JSON file (duplicate keys are errors), check each against its meta-schema
(the strict CRF vocabulary, or the study-file schema), resolve `$ref` with `referencing`, then
build forms, visits and logs while checking what JSON Schema cannot: item kinds, soft limits
inside hard limits, code lists, conditions naming existing items, the schedule naming existing
form instances, expressions that parse.
"""
from __future__ import annotations



import hashlib
import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Optional
from urllib.parse import urldefrag, urljoin

import referencing
import referencing.exceptions
import referencing.jsonschema

from . import defcache, expressions, plugin
from .plugin import NO_FUNCTIONS, StudyFunctions
from .model import (
    Assumption, Code, CodeList, Condition, Dosing, FieldRef, Form, FormInstance, FormRole, Item, ItemKind, Limits, Log,
    RepeatLink, ScheduleConfig, SchemaSet, SdtmTarget, Study, Visit, Window,
)

META_DIR = Path(__file__).resolve().parent.parent / "schemas" / "meta"
CRF_META_ID = "https://open-ecrf.org/meta/2026-11/crf"
STUDY_META_ID = "https://open-ecrf.org/meta/2026-11/study"
BASE_URI = "file:///"  # every study file is registered as file:///<path relative to the study folder>
FORMATS = {"date": ItemKind.DATE, "partial-date": ItemKind.PARTIAL_DATE, "time-hm": ItemKind.TIME}
DEFAULT_TEXT_LENGTH = 200


@dataclass(frozen=True)
class Problem:
    file: str
    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}#{self.pointer}: {self.message}"


class StudyDefinitionError(Exception):
    def __init__(self, folder: Path, problems: list[Problem]):
        self.folder = folder
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in study definition {folder}:\n" + "\n".join(map(str, problems)))


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _pointer(parts: Iterable[Any]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


VOCABULARIES = ("core", "applicator", "unevaluated", "validation", "meta-data", "format-annotation", "content")


def _static_refs(node: Any) -> Any:
    """Replace the vocabularies' {"$dynamicRef": "#meta"} with a plain {"$ref": "#"}."""
    if isinstance(node, dict):
        if node.get("$dynamicRef") == "#meta":
            return {"$ref": "#"}
        return {k: _static_refs(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_static_refs(v) for v in node]
    return node


@lru_cache(maxsize=None)
def flat_crf_meta_schema() -> dict[str, Any]:
    """schemas/meta/crf-vocabulary.json compiled into one static schema.

    The published meta-schema extends 2020-12 through $dynamicRef and stays strict with
    unevaluatedProperties, which jsonschema evaluates very slowly (7 s for the shipped study).
    This equivalent merges every vocabulary's keywords and ours into one `properties` with
    `additionalProperties: false`: the same keywords are accepted, in 0.1 s.
    """
    registry = _build_meta_registry()
    ours = registry.contents(CRF_META_ID)
    properties: dict[str, Any] = {}
    defs: dict[str, Any] = {}
    for name in VOCABULARIES:
        vocab = registry.contents(f"https://json-schema.org/draft/2020-12/meta/{name}")
        properties.update(_static_refs(vocab.get("properties", {})))
        defs.update(_static_refs(vocab.get("$defs", {})))
    properties.update(ours["properties"])
    properties["$schema"] = {"const": CRF_META_ID, "description": "every study schema declares our meta-schema"}
    return {"$defs": defs, "type": ["object", "boolean"], "properties": properties, "additionalProperties": False}


@lru_cache(maxsize=None)
def _meta_validators() -> tuple[Any, Any]:
    """jsonschema validators of the meta-schemas (jsonschema is imported only when a definition is checked)."""
    import jsonschema

    registry = _build_meta_registry()
    return (
        jsonschema.Draft202012Validator(flat_crf_meta_schema()),
        jsonschema.Draft202012Validator(registry.contents(STUDY_META_ID), registry=registry),
    )


@lru_cache(maxsize=None)
def _build_meta_registry() -> referencing.Registry:
    from jsonschema_specifications import REGISTRY as SPEC_REGISTRY

    registry = SPEC_REGISTRY
    for name in ("crf-vocabulary.json", "study.schema.json"):
        contents = json.loads((META_DIR / name).read_text(encoding="utf-8"))
        registry = registry.with_resource(contents["$id"], referencing.Resource.from_contents(contents))
    return registry.crawl()


def load_study(folder: str | Path) -> Study:
    """Load and check a study folder; raise StudyDefinitionError listing every problem."""
    return _Loader(Path(folder)).load()


class _Loader:
    def __init__(self, folder: Path):
        self.folder = folder
        self.problems: list[Problem] = []
        self.docs: dict[str, Any] = {}  # relative path -> parsed JSON
        # the study's own schemas only: they are resolved among themselves; the meta-schemas check them (check_meta)
        self.registry: referencing.Registry = referencing.Registry()
        self.forms: dict[str, Optional[Form]] = {}
        self.assumptions: list[Assumption] = []
        self.doc_logs: list[dict[str, Any]] = []

    # -- helpers -------------------------------------------------------------------------
    def problem(self, file: str, pointer: str, message: str) -> None:
        found = Problem(file, pointer, message)
        if found not in self.problems:  # a visit CRF shared by several visits reports once
            self.problems.append(found)

    def fail(self) -> StudyDefinitionError:
        return StudyDefinitionError(self.folder, self.problems)

    # -- steps ---------------------------------------------------------------------------
    def load(self) -> Study:
        if not (self.folder / "study.json").is_file():
            self.problem(str(self.folder), "", "no study.json here: a study folder holds study.json, codelists.json, forms/, visits/ and logs/")
            raise self.fail()
        self.read_files()
        study_doc = self.docs.get("study.json")
        if study_doc is None or self.problems:
            raise self.fail()
        if not defcache.was_checked("meta", self.definition_hash):  # the same bytes passed before: skip the slow part
            self.check_meta()
            if self.problems:
                raise self.fail()
            defcache.remember_checked("meta", self.definition_hash)
        study = self.build_study(study_doc)
        if self.problems:
            raise self.fail()
        return study

    def read_files(self) -> None:
        digest = hashlib.sha256()
        for path in sorted(p for p in self.folder.rglob("*.json") if p.is_file()):
            rel = path.relative_to(self.folder).as_posix()
            raw = path.read_bytes()
            digest.update(rel.encode() + b"\0" + raw + b"\0")
            try:
                doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
            except UnicodeDecodeError:
                self.problem(rel, "", "file is not UTF-8 text; save it as UTF-8")
                continue
            except _DuplicateKey as exc:
                self.problem(rel, "", f"key {exc} appears twice in one object (a duplicate item?); each key must be unique, rename or remove one")
                continue
            except json.JSONDecodeError as exc:
                self.problem(rel, "", f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
                continue
            self.docs[rel] = doc
            if rel != "study.json" and not rel.startswith("rules/"):
                self.registry = self.registry.with_resource(BASE_URI + rel, referencing.Resource.from_contents(doc, default_specification=referencing.jsonschema.DRAFT202012))
        # a study's own functions (crf/plugin.py) are part of its definition: a changed plug-in is a changed study
        for path in sorted(p for p in self.folder.rglob("*.py") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(path.relative_to(self.folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
        self.definition_hash = digest.hexdigest()
        self.registry = self.registry.crawl()

    def check_meta(self) -> None:
        crf_meta, study_meta = _meta_validators()
        for rel, doc in self.docs.items():
            if rel.startswith("rules/"):
                continue
            validator = study_meta if rel == "study.json" else crf_meta
            errors = list(validator.iter_errors(doc))
            pointers = [_pointer(e.absolute_path) for e in errors]
            for error, ptr in zip(errors, pointers):
                # the strict meta-schema also rejects every parent of a bad node: report the deepest only
                if any(other != ptr and other.startswith(ptr + "/") for other in pointers):
                    continue
                self.problem(rel, ptr, _explain_meta_error(error))

    # -- references ----------------------------------------------------------------------
    def resolve(self, file: str, pointer: str, ref: str) -> Optional[tuple[str, str, Any]]:
        """Resolve a $ref written in `file`; return (target file, target pointer, contents)."""
        uri = urljoin(BASE_URI + file, ref)
        try:
            resolved = self.registry.resolver(BASE_URI + file).lookup(ref)
        except referencing.exceptions.Unresolvable:
            target = urldefrag(uri)[0].removeprefix(BASE_URI)
            hint = "" if target in self.docs else f" (there is no file {target})"
            self.problem(file, pointer, f"$ref {ref!r} cannot be resolved{hint}; fix the path or the #/$defs/ name")
            return None
        target_uri, fragment = urldefrag(uri)
        return target_uri.removeprefix(BASE_URI), fragment, resolved.contents

    def deref(self, file: str, pointer: str, node: dict[str, Any]) -> Optional[dict[str, Any]]:
        """A node with its $ref target merged under its own keywords (one level, as our schemas use)."""
        if "$ref" not in node:
            return node
        target = self.resolve(file, pointer + "/$ref", node["$ref"])
        if target is None:
            return None
        merged = dict(target[2]) if isinstance(target[2], dict) else {}
        merged.update({k: v for k, v in node.items() if k != "$ref"})
        return merged

    # -- study ---------------------------------------------------------------------------
    def build_study(self, doc: dict[str, Any]) -> Study:
        self.functions = self.load_functions(doc.get("functions"))  # before the forms: x-derived items call them
        d = doc.get("dosing")
        dosing = None if d is None else Dosing(
            drug=d["drug"], dose_mg_per_kg=d["dose_mg_per_kg"], vial_sizes_mg=tuple(d["vial_sizes_mg"]),
            route=d.get("route"), infusions=d.get("infusions"), loading_infusions=d.get("loading_infusions", 0),
            min_interval_loading_days=d.get("min_interval_loading_days"),
            min_interval_maintenance_days=d.get("min_interval_maintenance_days"),
            last_infusion_max_day=d.get("last_infusion_max_day"), weight_source=d.get("weight_source"),
            assumption=d.get("assumption"),
        )
        for a in doc.get("assumptions", []):
            self.assumptions.append(Assumption(a["id"], a["text"]))
        visits = []
        self.doc_logs = doc["logs"]
        seen_ids: set[str] = set()
        for i, v in enumerate(doc["visits"]):
            ptr = f"/visits/{i}"
            if v["id"] in seen_ids:
                self.problem("study.json", ptr + "/id", f"visit id {v['id']} is used twice; visit ids must be unique")
            seen_ids.add(v["id"])
            visit = self.build_visit(v, ptr)
            if visit:
                visits.append(visit)
        self.check_schedule_order(doc["visits"])
        logs = []
        for i, lg in enumerate(doc["logs"]):
            log = self.build_log(lg, f"/logs/{i}")
            if log:
                logs.append(log)
        codelists = self.collect_codelists()
        schedule = self.build_schedule(doc.get("schedule"), visits)
        self.check_function_uses(logs)
        schemas = SchemaSet(
            registry=self.registry, base_uri=BASE_URI,
            visit_uris={v["id"]: BASE_URI + v["crf"] for v in doc["visits"]},
            log_uris={lg["id"]: BASE_URI + lg["schema"] for lg in doc["logs"]},
        )
        return Study(
            id=doc["id"], title=doc["title"], protocol_version=doc["protocol_version"],
            form_version=doc["form_version"], dosing=dosing, visits=tuple(visits), logs=tuple(logs),
            codelists=codelists, assumptions=tuple(self.assumptions), folder=self.folder,
            definition_hash=self.definition_hash, registry_id=doc.get("registry_id"), sponsor=doc.get("sponsor"),
            form_definitions=tuple(f for f in self.forms.values() if f is not None),
            schemas=schemas, schedule=schedule, functions=self.functions,
        )

    def load_functions(self, file: Optional[str]) -> StudyFunctions:
        """study.json `functions`: the study's plug-in module, run and checked (crf/plugin.py)."""
        if not file:
            return NO_FUNCTIONS
        try:
            return plugin.load(self.folder, file, _known_functions())
        except plugin.PluginError as exc:
            self.problem(file, "", f"the study's functions module (study.json \"functions\") {exc}")
            return NO_FUNCTIONS

    def check_function_uses(self, logs: list[Log]) -> None:
        """Every form, log and item id the plug-in's code names (its USES) is one of the study."""
        if not self.functions.uses:
            return
        items = {form.id: {it.id for it in form.items} for form in self.forms.values() if form is not None}
        items.update({lg.id: {it.id for it in lg.form.items} for lg in logs})
        for container, wanted in self.functions.uses:
            if container not in items:
                self.problem(self.functions.file, "USES", f"{container!r} is not a form or log id of the study; "
                                                          "fix USES (and the code that names it)")
                continue
            for item in wanted:
                if item not in items[container]:
                    self.problem(self.functions.file, "USES", f"{item!r} is not an item of {container}; fix USES (and the code that names it)")

    def build_schedule(self, doc: Optional[dict[str, Any]], visits: list[Visit]) -> ScheduleConfig:
        """study.json `schedule`: each FORM.ITEM must name a form of some visit and an item of it."""
        if not doc:
            return ScheduleConfig()
        items_of: dict[str, set[str]] = {}
        for visit in visits:
            for inst in visit.forms:
                items_of.setdefault(inst.name, set()).update(it.id for it in inst.items)

        def ref(text: str, ptr: str) -> Optional[FieldRef]:
            found = FieldRef.parse(text)
            if found is None or found.item not in items_of.get(found.form, ()):
                self.problem("study.json", ptr, f"{text!r} is not FORM.ITEM of a form that some visit collects")
                return None
            return found

        def form_item(form: str, item: str, ptr: str) -> None:
            if item and item not in items_of.get(form, ()):
                self.problem("study.json", ptr, f"{item!r} is not an item of form {form!r} at any visit")

        form = doc.get("infusion_form", "")
        eos = doc.get("end_of_study_form", "")
        form_item(form, doc.get("infusion_date", ""), "/schedule/infusion_date")
        form_item(form, doc.get("infusion_status_item", ""), "/schedule/infusion_status_item")
        form_item(eos, doc.get("end_of_study_date", ""), "/schedule/end_of_study_date")
        form_item(eos, doc.get("treatment_end_date", ""), "/schedule/treatment_end_date")
        anchors = []
        for name, text in sorted(doc.get("anchors", {}).items()):
            anchor = ref(text, f"/schedule/anchors/{name}")
            if anchor is not None:
                anchors.append((name, anchor))
        return ScheduleConfig(
            visit_date=ref(doc["visit_date"], "/schedule/visit_date") if doc.get("visit_date") else None,
            infusion_form=form, infusion_given=doc.get("infusion_given", "False"),
            infusion_not_given=doc.get("infusion_not_given", "False"), infusion_date=doc.get("infusion_date", ""),
            infusion_status_item=doc.get("infusion_status_item", ""),
            end_of_study_form=eos, end_of_study_date=doc.get("end_of_study_date", ""),
            treatment_end_date=doc.get("treatment_end_date", ""),
            early_termination_visits=tuple(doc.get("early_termination_visits", ())), anchors=tuple(anchors),
        )

    def check_schedule_order(self, visits: list[dict[str, Any]]) -> None:
        last = None
        for i, v in enumerate(visits):
            if v["day"] is None:
                continue
            if last is not None and v["day"] <= last:
                self.problem("study.json", f"/visits/{i}/day", f"day {v['day']} is not after the previous scheduled visit's day {last}; list visits in schedule order")
            last = v["day"]

    def build_visit(self, v: dict[str, Any], ptr: str) -> Optional[Visit]:
        crf_file = v["crf"]
        doc = self.docs.get(crf_file)
        if doc is None:
            self.problem("study.json", ptr + "/crf", f"visit {v['id']} names CRF schema {crf_file!r}, which does not exist (or did not parse)")
            return None
        if "x-visit" not in doc:
            self.problem(crf_file, "", "a visit CRF schema needs \"x-visit\": {\"id\": ...}")
        props = doc.get("properties", {})
        for j, name in enumerate(v["forms"]):
            if name not in props:
                self.problem("study.json", f"{ptr}/forms/{j}", f"visit {v['id']} lists form {name!r}, but {crf_file} has no property {name!r}; add it there or remove it here")
        for name in props:
            if name not in v["forms"]:
                self.problem(crf_file, f"/properties/{name}", f"form {name!r} is in the visit CRF but not in the schedule of visit {v['id']} in study.json; list it there")
        instances = []
        for name in v["forms"]:
            if name in props:
                inst = self.build_instance(crf_file, f"/properties/{name}", name, props[name], doc.get("required", []))
                if inst:
                    instances.append(inst)
        w = v.get("window") or {"before": 0, "after": 0}
        window = Window(w["before"], w["after"], w.get("anchor", "day0"), w.get("assumption"))
        if window.assumption:
            self.assumptions.append(Assumption(f"study.json#{ptr}/window", window.assumption))
        repeating = v.get("repeating")
        link = None
        if repeating and repeating.get("link"):
            lk = repeating["link"]
            form, _, item = lk["item"].partition(".")
            link = RepeatLink(form, item, lk["log"], lk["log_item"])
            inst_found = next((i for i in instances if i.name == form), None)
            if inst_found is None or not inst_found.form.has(item):
                self.problem("study.json", ptr + "/repeating/link/item", f"visit {v['id']} links its instances through {lk['item']}, "
                             f"but it has no form instance {form} with item {item}")
            if lk["log"] not in {lg["id"] for lg in self.doc_logs}:
                self.problem("study.json", ptr + "/repeating/link/log", f"visit {v['id']} links its instances to log {lk['log']}, which the study has not")
        if repeating and v["day"] is not None:
            self.problem("study.json", ptr + "/repeating", f"visit {v['id']} has a protocol day; only a visit off the schedule (day null) can repeat")
        return Visit(v["id"], v["label"], v["kind"], v["day"], v.get("week"), window, v.get("infusion"), crf_file, tuple(instances),
                     repeating=bool(repeating), repeat_sheets=int(repeating["sheets"]) if repeating else 0, link=link)

    def build_instance(self, file: str, ptr: str, name: str, node: Any, visit_required: list[str]) -> Optional[FormInstance]:
        if not isinstance(node, dict) or "$ref" not in node:
            self.problem(file, ptr, f"form instance {name!r} must be {{\"$ref\": \"../forms/<form>.json\"}}")
            return None
        target = self.resolve(file, ptr + "/$ref", node["$ref"])
        if target is None:
            return None
        form = self.build_form(target[0])
        if form is None:
            return None
        omit = node.get("x-omit", [])
        fixed = node.get("x-fixed", {})
        extra_required = node.get("required", [])
        for key, names in (("x-omit", omit), ("x-fixed", list(fixed)), ("required", extra_required)):
            for n in names:
                if not form.has(n):
                    self.problem(file, f"{ptr}/{key}", f"{n!r} is not an item of form {form.id} ({form.source})")
        for n, value in fixed.items():
            if form.has(n):
                it = form.item(n)
                if it.codelist and value not in it.codelist.values:
                    self.problem(file, f"{ptr}/x-fixed/{n}", f"fixed value {value!r} is not a code of {it.codelist.id}")
        items = []
        for it in form.items:
            if it.id in omit:
                continue
            if it.id in fixed:
                it = replace(it, fixed=fixed[it.id])
            if it.id in extra_required:
                it = replace(it, required=True, condition=None)
            items.append(it)
        instance_form = replace(form, items=tuple(items))
        return FormInstance(name, node.get("title", form.title), instance_form)

    def build_log(self, lg: dict[str, Any], ptr: str) -> Optional[Log]:
        file = lg["schema"]
        doc = self.docs.get(file)
        if doc is None:
            self.problem("study.json", ptr + "/schema", f"log {lg['id']} names schema {file!r}, which does not exist (or did not parse)")
            return None
        if doc.get("type") != "array" or not isinstance(doc.get("items"), dict) or "$ref" not in doc["items"]:
            self.problem(file, "", "a log schema is {\"type\": \"array\", \"maxItems\": N, \"x-rows\": N, \"items\": {\"$ref\": \"../forms/<row form>.json\"}}")
            return None
        if doc.get("x-log", {}).get("id") != lg["id"]:
            self.problem(file, "/x-log", f"x-log id must be {lg['id']!r}, the id study.json gives this log")
        target = self.resolve(file, "/items/$ref", doc["items"]["$ref"])
        if target is None:
            return None
        form = self.build_form(target[0])
        if form is None:
            return None
        rows = doc.get("x-rows") or doc.get("maxItems")
        if not rows:
            self.problem(file, "", "give the number of rows the log offers with x-rows (and maxItems)")
            return None
        if doc.get("maxItems") is not None and rows > doc["maxItems"]:
            self.problem(file, "/x-rows", f"x-rows {rows} exceeds maxItems {doc['maxItems']}")
        return Log(lg["id"], lg["label"], form, rows, file, lg.get("starts"))

    # -- forms and items -----------------------------------------------------------------
    def build_form(self, file: str) -> Optional[Form]:
        if file in self.forms:
            return self.forms[file]
        self.forms[file] = None
        doc = self.docs.get(file)
        if not isinstance(doc, dict) or "x-form" not in doc:
            self.problem(file, "", "this schema is used as a form but has no \"x-form\": {\"id\", \"version\"}")
            return None
        meta = doc["x-form"]
        props = doc.get("properties")
        if not isinstance(props, dict) or not props:
            self.problem(file, "/properties", "a form needs at least one item under properties")
            return None
        if doc.get("additionalProperties") is not False:
            self.problem(file, "/additionalProperties", "set \"additionalProperties\": false so that a misspelt item in returned data is reported")
        required = set(doc.get("required", []))
        for j, name in enumerate(doc.get("required", [])):
            if name not in props:
                self.problem(file, f"/required/{j}", f"required item {name!r} is not under properties")
        conditions = self.conditions(file, doc, props)
        dependents: dict[str, list[str]] = {}
        for trigger, names in doc.get("dependentRequired", {}).items():
            for n in [trigger, *names]:
                if n not in props:
                    self.problem(file, f"/dependentRequired/{trigger}", f"{n!r} is not an item of this form")
            for n in names:
                dependents.setdefault(n, []).append(trigger)
        self.note_assumption(file, "", doc)
        items = []
        for name, node in props.items():
            item = self.build_item(file, f"/properties/{name}", name, node, name in required, conditions.get(name), tuple(dependents.get(name, ())))
            if item:
                items.append(item)
        for name, item in ((i.id, i) for i in items):
            if item.condition and item.condition.item not in props:
                self.problem(file, "/allOf", f"condition of {name} names {item.condition.item!r}, which is not an item of this form")
        by_id = {i.id: i for i in items}
        for item in items:
            for end, companion in zip(("low", "high"), item.local_range or ()):
                other = by_id.get(companion)
                if other is None or not other.is_number or not other.is_input:
                    self.problem(file, f"/properties/{item.id}/x-local-range/{end}",
                                 f"x-local-range of {item.id} names {companion!r}, which is not a number item the site enters on this form")
                elif other.unit != item.unit:
                    self.problem(file, f"/properties/{companion}/x-unit",
                                 f"{companion} is the {end} end of {item.id}'s local range, so it needs the same unit ({item.unit or 'none'})")
        role = self.form_role(file, doc.get("x-role"), by_id)
        form = Form(meta["id"], doc.get("title", meta["id"]), meta["version"], tuple(items), file, meta.get("code"), meta.get("domain"),
                    doc.get("description"), role)
        self.forms[file] = form
        return form

    def conditions(self, file: str, doc: dict[str, Any], props: dict[str, Any]) -> dict[str, Condition]:
        out: dict[str, Condition] = {}
        clauses = [(f"/allOf/{k}", c) for k, c in enumerate(doc.get("allOf", []))]
        if "if" in doc:
            clauses.append(("", doc))
        for ptr, clause in clauses:
            cond = _parse_condition(clause)
            if cond is None:
                self.problem(file, ptr, "conditional not understood: write {\"if\": {\"properties\": {\"X\": {\"const\": v}}, \"required\": [\"X\"]}, \"then\": {\"required\": [...]}}")
                continue
            if cond.item not in props:
                self.problem(file, ptr + "/if", f"condition names {cond.item!r}, which is not an item of this form")
            for j, name in enumerate(clause["then"]["required"]):
                if name not in props:
                    self.problem(file, f"{ptr}/then/required/{j}", f"{name!r} is not an item of this form")
                elif name in out:
                    self.problem(file, f"{ptr}/then/required/{j}", f"{name!r} already has a condition; one condition per item")
                else:
                    out[name] = cond
        return out

    def note_assumption(self, file: str, ptr: str, node: dict[str, Any]) -> None:
        if isinstance(node, dict) and "x-assumption" in node:
            self.assumptions.append(Assumption(f"{file}#{ptr}", node["x-assumption"]))

    def build_item(self, file: str, ptr: str, name: str, node: Any, required: bool,
                   condition: Optional[Condition], required_with: tuple[str, ...]) -> Optional[Item]:
        if not isinstance(node, dict):
            self.problem(file, ptr, "an item must be an object schema")
            return None
        spec = self.deref(file, ptr, node)
        if spec is None:
            return None
        self.note_assumption(file, ptr, node)
        start = len(self.problems)
        question = spec.get("title")
        if not question:
            self.problem(file, ptr, f"item {name} has no title: give the question as printed on the form")
        sdtm_raw = spec.get("x-sdtm")
        if sdtm_raw is None:
            self.problem(file, ptr, f"item {name} has no x-sdtm: give its SDTM domain and variable, or \"NOT SUBMITTED\"")
            sdtm = SdtmTarget()
        elif sdtm_raw == "NOT SUBMITTED":
            sdtm = SdtmTarget()
        else:
            sdtm = SdtmTarget(sdtm_raw["domain"], sdtm_raw["variable"], sdtm_raw.get("where"))
        json_type = spec.get("type")
        codelist = None
        min_items = None
        if json_type == "array":
            inner = spec.get("items")
            inner = self.deref(file, ptr + "/items", inner) if isinstance(inner, dict) else None
            if not inner or "enum" not in inner:
                self.problem(file, ptr + "/items", f"item {name}: an array item is a multi-select and needs items with an enum (a code list)")
                return None
            kind, value_type = ItemKind.MULTI_CHOICE, inner.get("type", "string")
            codelist = self.codelist(file, ptr + "/items", name, inner)
            min_items = spec.get("minItems")
        elif "enum" in spec:
            kind, value_type = ItemKind.CHOICE, json_type or "string"
            codelist = self.codelist(file, ptr, name, spec)
        elif json_type == "integer":
            kind, value_type = ItemKind.INTEGER, "integer"
        elif json_type == "number":
            kind, value_type = ItemKind.DECIMAL, "number"
            if "x-decimals" not in spec and "x-derived" not in spec:
                self.problem(file, ptr, f"item {name} is a number: give x-decimals (how many decimals are collected)")
        elif json_type == "string" and "format" in spec:
            if spec["format"] not in FORMATS:
                self.problem(file, ptr + "/format", f"item {name}: format {spec['format']!r} is not one the forms can show; use one of {', '.join(FORMATS)}")
                return None
            kind, value_type = FORMATS[spec["format"]], "string"
        elif json_type == "string":
            kind, value_type = ItemKind.TEXT, "string"
        else:
            self.problem(file, ptr + "/type", f"item {name}: type {json_type!r} cannot be shown on a form; use string, integer, number, or array (multi-select)")
            return None
        hard = Limits(spec.get("minimum"), spec.get("maximum"), spec.get("exclusiveMinimum"), spec.get("exclusiveMaximum"))
        soft = None
        soft_raw = spec.get("x-soft")
        if soft_raw:
            soft = Limits(soft_raw.get("minimum"), soft_raw.get("maximum"), soft_raw.get("exclusiveMinimum"), soft_raw.get("exclusiveMaximum"))
            if kind not in (ItemKind.INTEGER, ItemKind.DECIMAL):
                self.problem(file, ptr + "/x-soft", f"item {name}: soft limits apply to numbers only")
            for bound in (soft.low, soft.high):
                if bound is not None and not hard.contains(bound):
                    self.problem(file, ptr + "/x-soft", f"item {name}: soft limit {bound} lies outside the hard limits ({hard.describe() or 'none'}); soft limits must lie inside the hard ones")
        ref_raw = spec.get("x-reference-range")
        derived = spec.get("x-derived")
        if derived:
            try:
                parsed = expressions.parse(derived)
                unknown = sorted(parsed.functions() - _known_functions() - set(self.functions.by_name()))
                if unknown:
                    self.problem(file, ptr + "/x-derived", f"item {name}: unknown function {', '.join(f + '()' for f in unknown)} in {derived!r}; see docs/edit-checks.md for the functions")
                for wrong in expressions.arity_problems(parsed, self.functions.by_name()):
                    self.problem(file, ptr + "/x-derived", f"item {name}: {wrong}")
            except expressions.ExpressionError as exc:
                self.problem(file, ptr + "/x-derived", f"item {name}: {exc}")
        elif spec.get("x-derived-label"):
            self.problem(file, ptr + "/x-derived-label", f"item {name}: x-derived-label without x-derived; remove it or add the expression")
        max_length = spec.get("maxLength")
        if kind == ItemKind.TEXT and max_length is None and not derived:
            max_length = DEFAULT_TEXT_LENGTH
        if len(self.problems) > start:
            return None
        return Item(
            id=name, question=str(question), kind=kind, value_type=value_type, sdtm=sdtm, pointer=f"{file}#{ptr}",
            required=required and not derived, condition=condition, required_with=required_with,
            help=spec.get("description"), unit=spec.get("x-unit"), decimals=spec.get("x-decimals", 0),
            hard=hard, soft=soft, soft_message=(soft_raw or {}).get("message"), codelist=codelist,
            max_length=max_length, pattern=spec.get("pattern"), min_items=min_items, derived=derived,
            derived_label=spec.get("x-derived-label"),
            reference_range=Limits(ref_raw.get("low"), ref_raw.get("high")) if ref_raw else None,
            local_range=(spec["x-local-range"]["low"], spec["x-local-range"]["high"]) if spec.get("x-local-range") else None,
            assumption=spec.get("x-assumption"),
        )

    def form_role(self, file: str, raw: Optional[dict[str, Any]], items: dict[str, Item]) -> Optional[FormRole]:
        """x-role: every item a slot names is an item of this form, every code a code of one of its items."""
        if not raw:
            return None
        slots: list[tuple[str, str | tuple[str, ...]]] = []
        for slot, named in sorted(raw.get("items", {}).items()):
            for item_id in [named] if isinstance(named, str) else named:
                if item_id not in items:
                    self.problem(file, f"/x-role/items/{slot}", f"x-role {raw['role']!r}: {slot} names {item_id!r}, which is not an item of this form")
            slots.append((slot, named if isinstance(named, str) else tuple(named)))
        codes = {c for it in items.values() if it.codelist for c in it.codelist.values}
        for slot, code in sorted(raw.get("codes", {}).items()):
            if code not in codes:
                self.problem(file, f"/x-role/codes/{slot}", f"x-role {raw['role']!r}: {slot} is {code!r}, which is not a code of any item of this form")
        return FormRole(raw["role"], tuple(slots), tuple(sorted(raw.get("codes", {}).items())),
                        json.dumps(raw.get("tables", {}), sort_keys=True, ensure_ascii=False))

    def codelist(self, file: str, ptr: str, name: str, spec: dict[str, Any]) -> Optional[CodeList]:
        codes = spec["enum"]
        labels = spec.get("x-labels")
        ident = spec.get("x-codelist", {}).get("id", name)
        ok = True
        if len(set(map(json.dumps, codes))) != len(codes):
            self.problem(file, ptr + "/enum", f"code list of {name} has a code twice; codes must be unique")
            ok = False
        if labels is None:
            self.problem(file, ptr, f"code list of {name} has no x-labels: give the printed label of every code")
            return None
        keys = {_code_key(c) for c in codes}
        for code in codes:
            if _code_key(code) not in labels:
                self.problem(file, ptr + "/x-labels", f"code {code!r} of {name} has no label in x-labels")
                ok = False
        for key in labels:
            if key not in keys:
                self.problem(file, ptr + "/x-labels", f"label {key!r} of {name} is not a code in enum; remove it or add the code")
                ok = False
        if not ok:
            return None
        return CodeList(ident, tuple(Code(c, labels[_code_key(c)]) for c in codes), spec.get("x-codelist", {}).get("c_code"))

    def collect_codelists(self) -> tuple[CodeList, ...]:
        seen: dict[str, CodeList] = {}
        for form in self.forms.values():
            for it in (form.items if form else ()):
                if it.codelist:
                    seen.setdefault(it.codelist.id, it.codelist)
        return tuple(sorted(seen.values(), key=lambda c: c.id))


def _known_functions() -> frozenset[str]:
    """Functions an x-derived expression may call: the builtins and the rules engine's subject functions."""
    from .rules.functions import known_function_names  # here, not at the top: crf.rules imports this module

    return known_function_names()


def _code_key(code: Any) -> str:
    if isinstance(code, float) and code.is_integer():
        return str(int(code)) if code == 0 else f"{code:.1f}"
    return str(code)


def _parse_condition(clause: Any) -> Optional[Condition]:
    try:
        cond_if, then = clause["if"], clause["then"]
        (item, test), = cond_if["properties"].items()
        if cond_if.get("required") != [item] or set(then) != {"required"}:
            return None
        if "const" in test and len(test) == 1:
            values = (test["const"],)
        elif "enum" in test and len(test) == 1:
            values = tuple(test["enum"])
        else:
            return None
        return Condition(item, values)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _explain_meta_error(error: Any) -> str:  # a jsonschema.ValidationError
    if error.validator in ("unevaluatedProperties", "additionalProperties") and "x-form" in error.schema.get("properties", {}):
        return f"{error.message}: not a JSON Schema 2020-12 keyword nor one of the x- annotations in schemas/meta/crf-vocabulary.json (misspelt?)"
    if error.validator == "additionalProperties":
        return f"{error.message}: see schemas/meta/study.schema.json for the allowed keys"
    return error.message
