"""Write an imported study as a study definition folder, all or nothing.

Importers (ODM, REDCap) describe the study as a `DraftStudy`: forms with item schemas, visits with form
instances, logs, code lists, and the notes of what was kept, mapped approximately or dropped. `write_study`
writes every file into a temporary folder beside the target, loads it with the ordinary loader (so an
importer bug is caught here, not by the data manager), and only then renames it into place. The notes go to
IMPORT-NOTES.md in the folder (not a .json file, so the loader does not read it) and are returned for printing.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..loader import CRF_META_ID, STUDY_META_ID, StudyDefinitionError, load_study
from ..model import Study

NOTE_KINDS = ("refused", "warning", "approximate", "dropped", "kept")


@dataclass(frozen=True)
class Note:
    """One line of what an import did: `where` names the source file and line, row or element."""

    kind: str  # one of NOTE_KINDS
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.where}: {self.message}"


class ImportRefused(Exception):
    """The source cannot be imported; nothing was written. Every note says where and why."""

    def __init__(self, notes: list[Note]):
        self.notes = notes
        super().__init__("\n".join(map(str, notes)))


@dataclass
class DraftForm:
    id: str  # ^[A-Z][A-Z0-9]{1,9}$
    title: str
    items: dict[str, dict[str, Any]]  # item id -> item schema (JSON), in printed order
    version: str = "1.0"
    description: Optional[str] = None
    domain: Optional[str] = None
    code: Optional[str] = None
    required: list[str] = field(default_factory=list)
    conditions: list[tuple[str, list[Any], list[str]]] = field(default_factory=list)  # (trigger, values, items required)
    dependent_required: dict[str, list[str]] = field(default_factory=dict)
    source_ids: dict[str, str] = field(default_factory=dict)  # the source's name of each item (ODM OID) -> item id

    def file(self) -> str:
        return f"forms/{self.id.lower()}.json"

    def schema(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"id": self.id, "version": self.version}
        if self.code:
            meta["code"] = self.code
        if self.domain:
            meta["domain"] = self.domain
        doc: dict[str, Any] = {"$schema": CRF_META_ID, "title": self.title}
        if self.description:
            doc["description"] = self.description
        doc.update({"x-form": meta, "type": "object", "properties": self.items})
        if self.required:
            doc["required"] = self.required
        if self.conditions:
            doc["allOf"] = [
                {"if": {"properties": {trigger: {"const": values[0]} if len(values) == 1 else {"enum": values}}, "required": [trigger]},
                 "then": {"required": names}}
                for trigger, values, names in self.conditions
            ]
        if self.dependent_required:
            doc["dependentRequired"] = self.dependent_required
        doc["additionalProperties"] = False
        return doc


@dataclass
class DraftInstance:
    name: str  # ^[A-Z0-9_]+$, unique in the visit
    form: str  # DraftForm id
    title: Optional[str] = None
    fixed: dict[str, Any] = field(default_factory=dict)
    omit: list[str] = field(default_factory=list)
    required: list[str] = field(default_factory=list)


@dataclass
class DraftVisit:
    id: str  # ^[A-Z][A-Z0-9]{0,7}$
    label: str
    kind: str  # screening, scheduled, unscheduled
    day: Optional[int]
    instances: list[DraftInstance]
    week: Optional[int] = None
    before: int = 0
    after: int = 0
    anchor: Optional[str] = None
    assumption: Optional[str] = None
    infusion: Optional[int] = None
    repeating: Optional[dict[str, Any]] = None  # study.json's "repeating" ({"sheets": n, "link": ...})


@dataclass
class DraftLog:
    id: str
    label: str
    form: str
    rows: int
    starts: Optional[str] = None


@dataclass
class DraftStudy:
    id: str
    title: str
    protocol_version: str
    form_version: str
    forms: dict[str, DraftForm] = field(default_factory=dict)
    visits: list[DraftVisit] = field(default_factory=list)
    logs: list[DraftLog] = field(default_factory=list)
    codelists: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {"x-codelist", "type", "enum", "x-labels"}
    registry_id: Optional[str] = None
    sponsor: Optional[str] = None
    dosing: Optional[dict[str, Any]] = None
    assumptions: list[dict[str, str]] = field(default_factory=list)
    source: str = ""  # what was imported, for IMPORT-NOTES.md
    notes: list[Note] = field(default_factory=list)

    def note(self, kind: str, where: str, message: str) -> None:
        assert kind in NOTE_KINDS, kind
        self.notes.append(Note(kind, where, message))

    def files(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        study: dict[str, Any] = {"$schema": STUDY_META_ID, "id": self.id, "title": self.title}
        if self.registry_id:
            study["registry_id"] = self.registry_id
        if self.sponsor:
            study["sponsor"] = self.sponsor
        study.update({"protocol_version": self.protocol_version, "form_version": self.form_version})
        if self.dosing:
            study["dosing"] = self.dosing
        study.update({"visits": [], "logs": []})
        for v in self.visits:
            crf = f"visits/{v.id.lower()}.json"
            window: dict[str, Any] = {"before": v.before, "after": v.after}
            if v.anchor:
                window["anchor"] = v.anchor
            if v.assumption:
                window["assumption"] = v.assumption
            entry: dict[str, Any] = {"id": v.id, "label": v.label, "kind": v.kind, "week": v.week, "day": v.day, "window": window}
            if v.infusion is not None:
                entry["infusion"] = v.infusion
            entry.update({"crf": crf, "forms": [i.name for i in v.instances]})
            if v.repeating is not None:
                entry["repeating"] = v.repeating
            study["visits"].append(entry)
            props: dict[str, Any] = {}
            for inst in v.instances:
                node: dict[str, Any] = {"$ref": "../" + self.forms[inst.form].file()}
                if inst.title:
                    node["title"] = inst.title
                if inst.fixed:
                    node["x-fixed"] = inst.fixed
                if inst.omit:
                    node["x-omit"] = inst.omit
                if inst.required:
                    node["required"] = inst.required
                props[inst.name] = node
            out[crf] = {"$schema": CRF_META_ID, "title": v.label, "x-visit": {"id": v.id}, "type": "object",
                        "properties": props, "additionalProperties": False}
        for lg in self.logs:
            schema = f"logs/{lg.id.lower()}.json"
            entry = {"id": lg.id, "label": lg.label, "schema": schema}
            if lg.starts:
                entry["starts"] = lg.starts
            study["logs"].append(entry)
            out[schema] = {"$schema": CRF_META_ID, "title": lg.label, "x-log": {"id": lg.id}, "type": "array",
                           "maxItems": lg.rows, "x-rows": lg.rows, "items": {"$ref": "../" + self.forms[lg.form].file()}}
        for form in self.forms.values():
            out[form.file()] = form.schema()
        out["codelists.json"] = {"$schema": CRF_META_ID, "title": "Code lists of the study",
                                 "description": f"Imported from {self.source}.", "$defs": self.codelists}
        if self.assumptions:
            study["assumptions"] = self.assumptions
        out["study.json"] = study
        return out

    def notes_markdown(self) -> str:
        lines = [f"# Import notes: {self.id}", "", f"Imported from {self.source}.", "",
                 "What the source held and how it arrived here. `kept`: carried over as it was; `approximate`: carried over with a "
                 "change of meaning or form (read it); `dropped`: not carried over (the study folder cannot express it); "
                 "`warning`: something odd in the source.", ""]
        for kind in NOTE_KINDS:
            chosen = [n for n in self.notes if n.kind == kind]
            if chosen:
                lines += [f"## {kind} ({len(chosen)})", ""] + [f"- {n.where}: {n.message}" for n in chosen] + [""]
        return "\n".join(lines)


def write_study(draft: DraftStudy, target: Path, overwrite: bool = False) -> Study:
    """Write the draft as a study folder at `target`; nothing is left behind if anything fails."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise ImportRefused([Note("refused", str(target), "the folder already exists; choose another --out or remove it first (an import never overwrites a study)")])
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.importing-", dir=target.parent))
    try:
        for rel, doc in draft.files().items():
            path = work / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        (work / "IMPORT-NOTES.md").write_text(draft.notes_markdown(), encoding="utf-8")
        try:
            load_study(work)
        except StudyDefinitionError as exc:  # an importer bug: say so plainly, with the loader's own words
            raise ImportRefused([Note("refused", f"{target} (as written)", f"the imported study does not pass check: {p}") for p in exc.problems])
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return load_study(target)


# -- names --------------------------------------------------------------------------------------
def identifier(text: str, max_length: int, taken: set[str], allow_underscore: bool = True, fallback: str = "X", min_length: int = 1) -> str:
    """An upper-case id made from a foreign name (OID, REDCap variable), unique among `taken`, which it joins."""
    base = re.sub(r"[^A-Z0-9_]+", "_", text.upper()).strip("_")
    if not allow_underscore:
        base = base.replace("_", "")
    if not base or not base[0].isalpha():
        base = fallback + base
    base = base[:max_length]
    if len(base) < min_length:
        base = (base + "X" * min_length)[:min_length]
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        suffix = str(n)
        candidate = base[: max_length - len(suffix)] + suffix
    taken.add(candidate)
    return candidate
