"""An ODM 1.3 / 1.3.1 / 1.3.2 metadata file -> a study definition folder (docs/interop.md).

The file is parsed as untrusted input (crf.interop.odm.parse_untrusted). ODMVersion is read but not
trusted: ODM 2.0 constructs are refused whatever the label says. Vendor extensions (OpenClinica, REDCap,
any namespace other than ODM's) are ignored with one note per namespace, except the REDCap event day
offsets, which are the visit days and windows. Everything that is not carried over exactly gets a note
naming the line it came from; the notes are printed and written to IMPORT-NOTES.md in the study folder.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from lxml import etree

from .. import expressions
from ..loader import _code_key
from ..model import ItemKind, Study
from . import odm as o
from .redcap import translate_branching
from .studywriter import DraftForm, DraftInstance, DraftLog, DraftStudy, DraftVisit, ImportRefused, Note, identifier

ODM2_NS = "http://www.cdisc.org/ns/odm/v2.0"
REDCAP_NS = "https://projectredcap.org"
DEFAULT_LOG_ROWS = 10
DEFAULT_DECIMALS = 2
VISIT_ID_LENGTH = 8
FORM_ID_LENGTH = 10
ITEM_ID_LENGTH = 32
_DATETIME_PATTERN = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?)?$"
_XPATH_EQUALS = re.compile(r"^(?:\.\./ItemGroupData\[@ItemGroupOID='[^']*'\]/)?(?:\.\./)?ItemData\[@ItemOID='(?P<item>[^']+)'\]\[@Value='(?P<value>[^']*)'\]$")
_XPATH_NOT_IN = re.compile(r"^not\(\.\./ItemData\[@ItemOID='(?P<item>[^']+)'\]\[(?P<tests>@Value='[^']*'(?: or @Value='[^']*')*)\]\)$")
_OURS_NOT_IN = re.compile(r"^not \((?P<item>[A-Z0-9_]+) in (?P<values>\[.*\])\)$")


def _language_functions() -> frozenset[str]:
    from ..rules.functions import known_function_names  # here, not at the top: crf.rules loads studies

    return known_function_names()


def _local(node: etree._Element) -> str:
    return etree.QName(node).localname


def _children(node: etree._Element, tag: str) -> list[etree._Element]:
    return node.findall(o.odm(tag))


def _text(node: Optional[etree._Element], tag: str) -> Optional[str]:
    """The English (or first non-empty) TranslatedText under node/tag, or node/tag's own text."""
    if node is None:
        return None
    holder = node.find(o.odm(tag))
    if holder is None:
        return None
    texts = [(t.get(f"{{{o.XML_NS}}}lang"), (t.text or "").strip()) for t in holder.findall(o.odm("TranslatedText"))]
    texts = [(lang, t) for lang, t in texts if t]
    for lang, t in texts:
        if lang in (None, "en") or (lang or "").startswith("en"):
            return t
    if texts:
        return texts[0][1]
    return (holder.text or "").strip() or None


def _aliases(node: etree._Element) -> dict[str, str]:
    out: dict[str, str] = {}
    for a in _children(node, "Alias"):
        out.setdefault(a.get("Context", ""), a.get("Name", ""))
    return out


def _number(text: Optional[str]) -> Optional[float | int]:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return int(value) if value.is_integer() and re.fullmatch(r"-?\d+", text.strip()) else value


@dataclass
class _Item:
    """An ItemDef read once; its schema is placed in every form that references it."""

    oid: str
    id: str
    schema: dict[str, Any]
    codelist: Optional[str] = None  # draft code list id
    codes: tuple[Any, ...] = ()
    line: int = 0
    redcap_variable: Optional[str] = None  # REDCap's ODM: the field's variable name and branching logic (vendor attributes)
    redcap_branching: Optional[str] = None


@dataclass
class _Importer:
    path: Path
    display: str
    tree: etree._ElementTree
    draft: DraftStudy = field(init=False)
    defs: dict[str, dict[str, etree._Element]] = field(default_factory=dict)
    items: dict[str, _Item] = field(default_factory=dict)
    codelist_ids: dict[str, str] = field(default_factory=dict)  # CodeList OID -> draft id
    units: dict[str, str] = field(default_factory=dict)
    early_notes: list[Note] = field(default_factory=list)  # notes made before the draft study exists
    item_domains: dict[str, str] = field(default_factory=dict)  # ItemOID -> its item group's SDTM domain
    sdtm_unplaced: list[str] = field(default_factory=list)
    maps: "OdmMaps" = field(default_factory=lambda: OdmMaps())

    def where(self, node: Optional[etree._Element]) -> str:
        return f"{self.display}, line {node.sourceline}" if node is not None and node.sourceline else self.display

    def note(self, kind: str, node: Optional[etree._Element], message: str) -> None:
        if not hasattr(self, "draft"):  # before the study is named: kept until the draft exists
            self.early_notes.append(Note(kind, self.where(node), message))
            return
        self.draft.note(kind, self.where(node), message)

    # -- checks before anything is read --------------------------------------------------
    def check_document(self) -> etree._Element:
        root = self.tree.getroot()
        qname = etree.QName(root)
        if qname.namespace == ODM2_NS:
            raise ImportRefused([Note("refused", self.where(root), "this is an ODM 2.0 file; import reads ODM 1.3, 1.3.1 and 1.3.2 (export ODM 1.3.2 from the source system)")])
        if qname.localname != "ODM" or qname.namespace != o.ODM_NS:
            raise ImportRefused([Note("refused", self.where(root), f"the root element is {{{qname.namespace or ''}}}{qname.localname}, not an ODM 1.3 <ODM> in namespace {o.ODM_NS}; this is not a CDISC ODM file")])
        version = root.get("ODMVersion")
        if version is not None and version not in o.ACCEPTED_VERSIONS:
            raise ImportRefused([Note("refused", self.where(root), f"ODMVersion {version!r} is not one this import reads ({', '.join(o.ACCEPTED_VERSIONS)})")])
        odm2 = []
        for node in root.iter(o.odm("StudyEventDef")):
            for ref in _children(node, "ItemGroupRef"):
                odm2.append((ref, "ItemGroupRef inside StudyEventDef (ODM 2.0 puts item groups in events; 1.3 has FormRef there)"))
        for node in root.iter(o.odm("ItemGroupDef")):
            if node.get("Type") is not None:
                odm2.append((node, f"ItemGroupDef/@Type=\"{node.get('Type')}\" (an ODM 2.0 attribute)"))
            for ref in _children(node, "ItemGroupRef"):
                odm2.append((ref, "ItemGroupRef nested inside ItemGroupDef (ODM 2.0 nesting)"))
        if odm2:
            raise ImportRefused([Note("refused", self.where(node), f"the file says ODMVersion=\"{version}\" but uses ODM 2.0 structure: {what}; "
                                      "it cannot be read as ODM 1.3 (export it again as ODM 1.3.2, or convert it)") for node, what in odm2])
        if version is None:
            self.note("warning", root, "the file has no ODMVersion; read as ODM 1.3.2")
        return root

    def note_extensions(self, root: etree._Element) -> None:
        elements: Counter[str] = Counter()
        attributes: Counter[str] = Counter()
        first: dict[str, etree._Element] = {}
        for node in root.iter():
            if not isinstance(node.tag, str):
                continue
            ns = etree.QName(node).namespace
            if ns not in o.STANDARD_NAMESPACES:
                elements[ns or ""] += 1
                first.setdefault(ns or "", node)
            for name in node.attrib:
                ans = etree.QName(name).namespace
                if ans and ans not in o.STANDARD_NAMESPACES:
                    attributes[ans] += 1
                    first.setdefault(ans, node)
        used = " (except the event day offsets and windows, used for the visit days, and the branching logic, translated where it can be)" if REDCAP_NS in first else ""
        for ns in sorted(first):
            self.note("dropped", first[ns], f"vendor extension namespace {ns}: {elements[ns]} element(s) and {attributes[ns]} attribute(s) ignored"
                      + (used if ns == REDCAP_NS else "") + "; only standard ODM is imported")

    # -- study and metadata version ------------------------------------------------------
    def choose(self, root: etree._Element) -> tuple[etree._Element, etree._Element]:
        studies = _children(root, "Study")
        if not studies:
            raise ImportRefused([Note("refused", self.where(root), "the file has no <Study>: there is no study design to import")])
        chosen = None
        for study in studies:
            for mdv in _children(study, "MetaDataVersion"):
                if mdv.find(o.odm("FormDef")) is not None:
                    chosen = (study, mdv)
                    break
            if chosen:
                break
        if chosen is None:
            raise ImportRefused([Note("refused", self.where(studies[0]), "no MetaDataVersion of the file defines a form (FormDef); a file of clinical data alone cannot make a study definition")])
        for study in studies:
            if study is not chosen[0]:
                self.note("dropped", study, f"Study {study.get('OID')} ignored: one study is imported, {chosen[0].get('OID')} (site-level studies share its design)")
        for mdv in _children(chosen[0], "MetaDataVersion"):
            if mdv is not chosen[1]:
                self.note("dropped", mdv, f"MetaDataVersion {mdv.get('OID')} ignored: one version is imported, {chosen[1].get('OID')}")
        if chosen[1].find(o.odm("Include")) is not None:
            self.note("dropped", chosen[1].find(o.odm("Include")), "Include of another metadata version is not followed: only what this file defines is imported")
        if root.find(o.odm("ClinicalData")) is not None:
            self.note("dropped", root.find(o.odm("ClinicalData")), "ClinicalData (subject data) is not part of a study definition and was not imported")
        return chosen

    def read(self) -> DraftStudy:
        root = self.check_document()
        study, mdv = self.choose(root)
        gv = study.find(o.odm("GlobalVariables"))
        self.check_global_variables(gv, study)
        study_name = (gv.findtext(o.odm("StudyName")) if gv is not None else None) or study.get("OID") or "IMPORTED"
        description = (gv.findtext(o.odm("StudyDescription")) if gv is not None else None) or ""
        protocol_name = (gv.findtext(o.odm("ProtocolName")) if gv is not None else None) or ""
        m = re.fullmatch(r"Protocol version (.+)", mdv.get("Description") or "")
        form_version = re.fullmatch(r".* form version (.+)", mdv.get("Name") or "")
        study_id = identifier(study.get("OID") or study_name, 40, set(), fallback="S").replace("_", "-")
        self.draft = DraftStudy(
            id=study_id, title=" ".join(description.split()) or study_name.strip(),
            protocol_version=m.group(1) if m else (mdv.get("Name") or mdv.get("OID") or "1"),
            form_version=form_version.group(1) if form_version else (mdv.get("OID") or "1"),
            registry_id=protocol_name.strip() if protocol_name.strip() and protocol_name.strip() != study_name.strip() else None,
            source=f"{self.path.name} (CDISC ODM {root.get('ODMVersion') or '1.3.2'}, {root.get('SourceSystem') or 'unknown system'}; Study {study.get('OID')}, MetaDataVersion {mdv.get('OID')})",
        )
        self.draft.notes.extend(self.early_notes)
        protocol = mdv.find(o.odm("Protocol"))
        protocol_aliases = _aliases(protocol) if protocol is not None else {}
        self.draft.sponsor = protocol_aliases.get(o.ALIAS_SPONSOR)
        if o.ALIAS_DOSING in protocol_aliases:
            self.draft.dosing = json.loads(protocol_aliases[o.ALIAS_DOSING])
        if protocol is not None:
            for a in _children(protocol, "Alias"):
                if a.get("Context", "").startswith(o.ALIAS_STUDY_ASSUMPTION + ":"):
                    self.draft.assumptions.append({"id": a.get("Context", "")[len(o.ALIAS_STUDY_ASSUMPTION) + 1:], "text": a.get("Name", "")})
        self.note_extensions(root)
        for tag in ("StudyEventDef", "FormDef", "ItemGroupDef", "ItemDef", "CodeList", "ConditionDef", "MethodDef"):
            table: dict[str, etree._Element] = {}
            for node in _children(mdv, tag):
                oid = node.get("OID", "")
                if oid in table:
                    self.note("warning", node, f"{tag} OID {oid} is defined twice; the first definition (line {table[oid].sourceline}) is used")
                    continue
                table[oid] = node
            self.defs[tag] = table
        for mu in study.iter(o.odm("MeasurementUnit")):
            self.units[mu.get("OID", "")] = _text(mu, "Symbol") or mu.get("Name", "")
        for group in self.defs["ItemGroupDef"].values():  # the domain of an item's group completes a bare SDTM variable
            if re.fullmatch(r"[A-Z]{2}", group.get("Domain") or ""):
                for iref in _children(group, "ItemRef"):
                    self.item_domains.setdefault(iref.get("ItemOID", ""), group.get("Domain"))
        self.read_codelists()
        self.read_items()
        self.read_schedule(mdv)
        for tag in ("ImputationMethod", "Presentation"):
            for node in _children(mdv, tag):
                self.note("dropped", node, f"{tag} {node.get('OID')} is not imported")
        return self.draft

    def check_global_variables(self, gv: Optional[etree._Element], study: etree._Element) -> None:
        """The one place the importer reads fixed element names: say clearly when they are misspelt."""
        expected = ("StudyName", "StudyDescription", "ProtocolName")
        if gv is None:
            self.early_notes.append(Note("warning", self.where(study), "the Study has no GlobalVariables; the study is named after its OID"))
            return
        for child in gv:
            if isinstance(child.tag, str) and etree.QName(child).namespace == o.ODM_NS and _local(child) not in expected:
                close = [e for e in expected if e.lower() == _local(child).lower()]
                hint = f" (misspelt {close[0]}? ODM element names are case-sensitive)" if close else ""
                self.early_notes.append(Note("warning", self.where(child), f"<{_local(child)}> is not an ODM element of GlobalVariables{hint}; it was ignored. "
                                             "The file is not valid ODM 1.3.2; import --xsd checks it against the schema"))
        for name in expected:
            if gv.find(o.odm(name)) is None:
                self.early_notes.append(Note("warning", self.where(gv), f"GlobalVariables has no <{name}>, which ODM requires"))

    # -- code lists and items ------------------------------------------------------------
    def read_codelists(self) -> None:
        taken: set[str] = set()
        for oid, node in self.defs["CodeList"].items():
            ident = identifier(node.get("Name") if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,39}", node.get("Name") or "") else oid, 40, taken, fallback="CL")
            dtype = node.get("DataType", "text")
            raw: list[tuple[str, str]] = []
            for cli in _children(node, "CodeListItem"):
                raw.append((cli.get("CodedValue", ""), _text(cli, "Decode") or cli.get("CodedValue", "")))
            for ei in _children(node, "EnumeratedItem"):
                raw.append((ei.get("CodedValue", ""), ei.get("CodedValue", "")))
            if node.find(o.odm("ExternalCodeList")) is not None:
                ext = node.find(o.odm("ExternalCodeList"))
                self.note("dropped", ext, f"code list {oid} is an external dictionary ({ext.get('Dictionary')} {ext.get('Version') or ''}); its items become free text")
                continue
            if not raw:
                self.note("dropped", node, f"code list {oid} has no items; items using it become free text")
                continue
            codes: list[Any] = []
            labels: dict[str, str] = {}
            numeric = dtype in ("integer", "float", "double", "boolean") and all(_number(c) is not None for c, _ in raw)
            if dtype in ("integer", "float", "double") and not numeric:
                self.note("approximate", node, f"code list {oid} is DataType {dtype} but has codes that are not numbers; its codes are kept as text")
            for code_text, label in raw:
                code: Any = _number(code_text) if numeric else code_text
                if dtype in ("float", "double") and numeric:
                    code = float(code)
                key = _code_key(code)
                if key in labels:
                    self.note("warning", node, f"code {code_text!r} appears twice in code list {oid}; the first is kept")
                    continue
                codes.append(code)
                labels[key] = " ".join(label.split()) or code_text
            json_type = "string" if not numeric else ("integer" if all(isinstance(c, int) for c in codes) else "number")
            spec: dict[str, Any] = {"x-codelist": {"id": ident}, "type": json_type, "enum": codes, "x-labels": labels}
            c_code = _aliases(node).get(o.ALIAS_C_CODE)
            if c_code:
                spec["x-codelist"]["c_code"] = c_code
            if dtype == "boolean":
                self.note("approximate", node, f"code list {oid} is DataType boolean (not an ODM 1.3.2 code list type); read as codes {', '.join(map(str, codes))}")
            self.draft.codelists[ident] = spec
            self.codelist_ids[oid] = ident

    def item_id(self, node: etree._Element) -> str:
        aliases = _aliases(node)
        if o.ALIAS_ITEM in aliases:
            return aliases[o.ALIAS_ITEM]
        for candidate in (node.get("SASFieldName"), node.get("Name"), node.get("OID")):
            if candidate:
                tail = candidate.split(".")[-1]
                if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,31}", tail):
                    return tail.upper()
        return node.get("OID") or "ITEM"

    def read_items(self) -> None:
        for oid, node in self.defs["ItemDef"].items():
            self.items[oid] = self.read_item(oid, node)

    def read_item(self, oid: str, node: etree._Element) -> _Item:
        aliases = _aliases(node)
        dtype = node.get("DataType", "text")
        kind = aliases.get(o.ALIAS_FORMAT)
        question = _text(node, "Question") or node.get("Name") or oid
        schema: dict[str, Any] = {"title": " ".join(question.split())}
        help_text = _text(node, "Description")
        if help_text and help_text != schema["title"]:
            schema["description"] = " ".join(help_text.split())
        cl_ref = node.find(o.odm("CodeListRef"))
        codelist = self.codelist_ids.get(cl_ref.get("CodeListOID", "")) if cl_ref is not None else None
        if cl_ref is not None and codelist is None and cl_ref.get("CodeListOID") not in self.defs["CodeList"]:
            self.note("warning", cl_ref, f"item {oid} refers to code list {cl_ref.get('CodeListOID')}, which the file does not define; the item becomes free text")
        codes: tuple[Any, ...] = ()
        if codelist:
            codes = tuple(self.draft.codelists[codelist]["enum"])
            ref = {"$ref": f"../codelists.json#/$defs/{codelist}"}
            if kind == "multi-choice":
                schema.update({"type": "array", "items": ref, "uniqueItems": True})
            else:
                schema.update(ref)
            digits = node.get("SignificantDigits")
            if digits and digits.isdigit() and 0 < int(digits) <= 6:
                schema["x-decimals"] = int(digits)
        elif dtype in ("integer",):
            schema["type"] = "integer"
        elif dtype in ("float", "double"):
            schema["type"] = "number"
            digits = node.get("SignificantDigits")
            if digits and digits.isdigit() and int(digits) <= 6:
                schema["x-decimals"] = int(digits)
            else:
                schema["x-decimals"] = DEFAULT_DECIMALS
                self.note("approximate", node, f"item {oid} is DataType {dtype} without SignificantDigits; {DEFAULT_DECIMALS} decimals are collected")
        elif dtype == "date":
            schema.update({"type": "string", "format": "date"})
        elif dtype in ("partialDate", "incompleteDate"):
            schema.update({"type": "string", "format": "partial-date"})
        elif dtype in ("time", "partialTime", "incompleteTime"):
            schema.update({"type": "string", "format": "time-hm"})
            if kind != "time":
                self.note("approximate", node, f"item {oid} is DataType {dtype} (HH:MM:SS); collected as HH:MM (minutes, 24 h clock)")
        elif dtype in ("datetime", "partialDatetime", "incompleteDatetime"):
            schema.update({"type": "string", "pattern": _DATETIME_PATTERN, "maxLength": 19})
            self.note("approximate", node, f"item {oid} is DataType {dtype}: the forms have no date-and-time field, so it is a text field checked as YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]")
        elif dtype == "boolean":
            ident = "BOOLEAN"
            self.draft.codelists.setdefault(ident, {"x-codelist": {"id": ident}, "type": "integer", "enum": [1, 0], "x-labels": {"1": "Yes", "0": "No"}})
            schema.update({"$ref": f"../codelists.json#/$defs/{ident}"})
            codelist, codes = ident, (1, 0)
            self.note("approximate", node, f"item {oid} is DataType boolean: a Yes (1) / No (0) choice")
        else:
            schema["type"] = "string"
            if dtype not in ("text", "string"):
                self.note("approximate", node, f"item {oid} is DataType {dtype}: collected as free text")
            length = node.get("Length")
            if length and length.isdigit() and int(length) > 0:
                schema["maxLength"] = int(length)
        if o.ALIAS_PATTERN in aliases and "pattern" not in schema:
            schema["pattern"] = aliases[o.ALIAS_PATTERN]
        if o.ALIAS_MIN_ITEMS in aliases and schema.get("type") == "array":
            schema["minItems"] = int(aliases[o.ALIAS_MIN_ITEMS])
        unit_ref = node.find(o.odm("MeasurementUnitRef"))
        if unit_ref is not None:
            unit = self.units.get(unit_ref.get("MeasurementUnitOID", ""))
            if unit:
                schema["x-unit"] = unit
            if len(_children(node, "MeasurementUnitRef")) > 1:
                self.note("dropped", unit_ref, f"item {oid} allows several units; the first, {unit}, is printed and the others are dropped")
        self.read_ranges(oid, node, schema)
        if o.ALIAS_REFERENCE_RANGE in aliases:
            low, high = json.loads(aliases[o.ALIAS_REFERENCE_RANGE])
            schema["x-reference-range"] = {k: v for k, v in (("low", low), ("high", high)) if v is not None}
        if o.ALIAS_LOCAL_RANGE in aliases:
            low_item, high_item = json.loads(aliases[o.ALIAS_LOCAL_RANGE])
            schema["x-local-range"] = {"low": low_item, "high": high_item}
        if "open-ecrf:assumption" in aliases:
            schema["x-assumption"] = aliases["open-ecrf:assumption"]
        schema["x-sdtm"] = self.sdtm(node, aliases)
        return _Item(oid, self.item_id(node), schema, codelist, codes, node.sourceline or 0,
                     node.get(f"{{{REDCAP_NS}}}Variable"), node.get(f"{{{REDCAP_NS}}}BranchingLogic"))

    def read_ranges(self, oid: str, node: etree._Element, schema: dict[str, Any]) -> None:
        numeric = schema.get("type") in ("integer", "number")
        hard: dict[str, Any] = {}
        soft: dict[str, Any] = {}
        keyword = {"GE": "minimum", "GT": "exclusiveMinimum", "LE": "maximum", "LT": "exclusiveMaximum"}
        for rc in _children(node, "RangeCheck"):
            comparator, strength = rc.get("Comparator"), rc.get("SoftHard", "Hard")
            values = [cv.text for cv in _children(rc, "CheckValue")]
            if not numeric:
                self.note("dropped", rc, f"range check {comparator} {' '.join(v or '' for v in values)} on {schema.get('format') or 'text'} item {oid}: only number items have limits here")
                continue
            if comparator not in keyword or len(values) != 1 or _number(values[0]) is None:
                self.note("dropped", rc, f"range check {comparator} {', '.join(v or '' for v in values) or '(formal expression)'} on item {oid} cannot be written as a minimum or maximum")
                continue
            target = hard if strength == "Hard" else soft
            if keyword[comparator] in target:
                self.note("warning", rc, f"item {oid} has a second {strength.lower()} {comparator} range check (another unit?); the first is kept")
                continue
            target[keyword[comparator]] = _number(values[0])
            if target is soft:
                message = _text(rc, "ErrorMessage")
                if message and "message" not in soft:
                    soft["message"] = " ".join(message.split())
        schema.update(hard)
        bounds = {k: v for k, v in soft.items() if k != "message"}
        if bounds:
            outside = [v for v in bounds.values() if not _inside(v, hard)]
            if outside:
                self.note("dropped", node, f"item {oid}: soft limits {', '.join(map(str, outside))} lie outside its hard limits, so they were dropped")
            else:
                schema["x-soft"] = soft

    def sdtm(self, node: etree._Element, aliases: dict[str, str]) -> Any:
        text = aliases.get("SDTM") or aliases.get("CDASH/SDTM") or node.get("SDSVarName")
        if not text or text == "NOT SUBMITTED":
            return "NOT SUBMITTED"
        domain, _, variable = text.rpartition(".")
        domain = domain or self.item_domains.get(node.get("OID", ""), "")
        if not domain and re.fullmatch(r"[A-Z][A-Z0-9]{2,7}", variable):
            # SDTM variables carry their domain as prefix (AETERM in AE); take it when the item's OID names that domain
            tokens = set(re.split(r"[._]", node.get("OID", "").upper()))
            if variable[:2] in tokens:
                domain = variable[:2]
        if re.fullmatch(r"[A-Z]{2}|SUPP[A-Z]{2}", domain) and re.fullmatch(r"[A-Z][A-Z0-9]{0,7}", variable):
            out = {"domain": domain, "variable": variable}
            if aliases.get(o.ALIAS_SDTM_WHERE):
                out["where"] = aliases[o.ALIAS_SDTM_WHERE]
            return out
        if domain or variable:
            self.sdtm_unplaced.append(f"{node.get('OID')} ({text})")
        return "NOT SUBMITTED"

    # -- schedule: events, forms, item groups --------------------------------------------
    def read_schedule(self, mdv: etree._Element) -> None:
        protocol = mdv.find(o.odm("Protocol"))
        refs = [r.get("StudyEventOID", "") for r in _children(protocol, "StudyEventRef")] if protocol is not None else []
        events = [self.defs["StudyEventDef"][r] for r in refs if r in self.defs["StudyEventDef"]]
        for oid in refs:
            if oid not in self.defs["StudyEventDef"]:
                self.note("warning", protocol, f"Protocol lists StudyEventDef {oid}, which the file does not define")
        events += [e for e in self.defs["StudyEventDef"].values() if e not in events]
        visit_ids: set[str] = set()
        last_day: Optional[int] = None
        self.form_cache: dict[str, Optional[tuple[DraftForm, list[tuple[_Item, etree._Element]]]]] = {}
        self.form_ids: set[str] = set()
        self.log_ids: set[str] = set()
        self.logs_by_group: dict[str, DraftLog] = {}
        base_forms = self.group_our_instances()
        for event in events:
            aliases = _aliases(event)
            refs_in_event = sorted(_children(event, "FormRef"), key=lambda r: int(r.get("OrderNumber") or 0))
            if event.get("Type") == "Common" and all(o.ALIAS_LOG in _aliases(self.defs["FormDef"].get(r.get("FormOID", ""), etree.Element("x"))) for r in refs_in_event) and refs_in_event:
                for ref in refs_in_event:
                    self.our_log(self.defs["FormDef"][ref.get("FormOID")], base_forms)
                continue
            visit_id = aliases.get(o.ALIAS_VISIT) or identifier(event.get("OID", ""), VISIT_ID_LENGTH, visit_ids, allow_underscore=False, fallback="V")
            visit_ids.add(visit_id)
            kind = aliases.get(o.ALIAS_KIND) or ("unscheduled" if event.get("Type") in ("Unscheduled", "Common") else "scheduled")
            if event.get("Type") == "Common" and o.ALIAS_KIND not in aliases:
                self.note("approximate", event, f"event {event.get('OID')} is of Type Common (forms collected at any time); it becomes an unscheduled visit {visit_id}")
            day, before, after = self.event_timing(event, aliases)
            if day is not None and last_day is not None and day <= last_day:
                self.note("dropped", event, f"event {event.get('OID')} has day {day}, not after the previous event's day {last_day}; its day was dropped")
                day = None
            if day is not None:
                last_day = day
            repeating = self.repeating(event, aliases, visit_id, day)
            instances: list[DraftInstance] = []
            names: set[str] = set()
            for ref in refs_in_event:
                form_def = self.defs["FormDef"].get(ref.get("FormOID", ""))
                if form_def is None:
                    self.note("warning", ref, f"event {event.get('OID')} refers to FormDef {ref.get('FormOID')}, which the file does not define")
                    continue
                if ref.get("CollectionExceptionConditionOID"):
                    self.note("dropped", ref, f"form {ref.get('FormOID')} at event {event.get('OID')} has a collection condition ({ref.get('CollectionExceptionConditionOID')}); forms are always offered here")
                inst = self.instance(form_def, base_forms, names, visit_id)
                if inst is not None:
                    instances.append(inst)
                    self.maps.instances[(event.get("OID", ""), form_def.get("OID", ""))] = (inst.name, inst.form)
            if not instances:
                self.note("dropped", event, f"event {event.get('OID')} ({event.get('Name')}) collects no form with items; it was not imported")
                continue
            week = aliases.get(o.ALIAS_WEEK)
            infusion = aliases.get(o.ALIAS_INFUSION)
            label = " ".join((event.get("Name") or visit_id).split()) or visit_id
            self.maps.visits[event.get("OID", "")] = visit_id
            if repeating is not None:
                self.maps.repeating.add(visit_id)
            self.draft.visits.append(DraftVisit(visit_id, label, kind if kind in ("screening", "scheduled", "unscheduled") else "scheduled", day, instances,
                                                week=int(week) if week else None, before=before, after=after, anchor=aliases.get(o.ALIAS_ANCHOR),
                                                assumption=aliases.get(o.ALIAS_WINDOW_ASSUMPTION),
                                                infusion=int(infusion) if infusion else None, repeating=repeating))
        if not self.draft.visits:
            first = next(iter(self.defs["StudyEventDef"].values()), None)
            raise ImportRefused([Note("refused", self.where(first), "no event (StudyEventDef) collects a form with items; there is no visit to import")])
        if self.sdtm_unplaced:
            self.note("approximate", None, f"{len(self.sdtm_unplaced)} SDTM annotation(s) name no valid domain and variable and became NOT SUBMITTED: "
                      + ", ".join(self.sdtm_unplaced[:8]) + (" ..." if len(self.sdtm_unplaced) > 8 else ""))

    def repeating(self, event: etree._Element, aliases: dict[str, str], visit_id: str, day: Optional[int]) -> Optional[dict[str, Any]]:
        """study.json's `repeating` of an event with Repeating="Yes": instances keyed VISIT#n, StudyEventRepeatKey n in clinical data."""
        if event.get("Repeating") != "Yes":
            return None
        if day is not None:  # the study model repeats only visits off the schedule
            self.note("approximate", event, f"event {event.get('OID')} repeats but has protocol day {day}; it becomes visit {visit_id}, collected once")
            return None
        sheets = aliases.get(o.ALIAS_REPEAT_SHEETS, "")
        out: dict[str, Any] = {"sheets": int(sheets) if sheets.isdigit() and 1 <= int(sheets) <= 20 else DEFAULT_REPEAT_SHEETS}
        if not sheets:
            self.note("approximate", event, f"event {event.get('OID')} repeats: visit {visit_id} repeats (keys {visit_id}#1, {visit_id}#2 ...), "
                      f"with {out['sheets']} blank sheets in a new subject workbook")
        if o.ALIAS_REPEAT_LINK in aliases:
            try:
                link = json.loads(aliases[o.ALIAS_REPEAT_LINK])
                out["link"] = {k: str(link[k]) for k in ("item", "log", "log_item")}
            except (ValueError, KeyError, TypeError):
                self.note("dropped", event, f"event {event.get('OID')}: its {o.ALIAS_REPEAT_LINK} alias is not a link; the visit repeats unlinked")
        return out

    def event_timing(self, event: etree._Element, aliases: dict[str, str]) -> tuple[Optional[int], int, int]:
        if o.ALIAS_DAY in aliases or o.ALIAS_WINDOW in aliases:
            day = int(aliases[o.ALIAS_DAY]) if o.ALIAS_DAY in aliases else None
            m = re.fullmatch(r"-(\d+)/\+(\d+)", aliases.get(o.ALIAS_WINDOW, "-0/+0"))
            return day, int(m.group(1)) if m else 0, int(m.group(2)) if m else 0
        offset = event.get(f"{{{REDCAP_NS}}}DayOffset")
        if offset is not None and _number(offset) is not None:
            day = int(float(offset))
            before = _number(event.get(f"{{{REDCAP_NS}}}OffsetMin") or "0") or 0
            after = _number(event.get(f"{{{REDCAP_NS}}}OffsetMax") or "0") or 0
            self.note("kept", event, f"event {event.get('OID')}: REDCap day offset {day} (window -{int(before)}/+{int(after)} days) is the visit day; REDCap counts from the first event, so check that it means Day 0 here")
            return day, int(before), int(after)
        return None, 0, 0

    # -- our own export: instances of one form are regrouped into that form ----------------
    def group_our_instances(self) -> dict[str, list[etree._Element]]:
        base: dict[str, list[etree._Element]] = {}
        for fd in self.defs["FormDef"].values():
            form_id = _aliases(fd).get(o.ALIAS_FORM)
            if form_id:
                base.setdefault(form_id, []).append(fd)
        return base

    def form_items(self, form_def: etree._Element) -> list[tuple[etree._Element, list[tuple[_Item, etree._Element]], bool]]:
        """(ItemGroupDef, [(item, ItemRef)], repeating) for every item group of a FormDef, in order."""
        out = []
        for gref in sorted(_children(form_def, "ItemGroupRef"), key=lambda r: int(r.get("OrderNumber") or 0)):
            group = self.defs["ItemGroupDef"].get(gref.get("ItemGroupOID", ""))
            if group is None:
                self.note("warning", gref, f"form {form_def.get('OID')} refers to ItemGroupDef {gref.get('ItemGroupOID')}, which the file does not define")
                continue
            pairs = []
            for iref in sorted(_children(group, "ItemRef"), key=lambda r: int(r.get("OrderNumber") or 0)):
                item = self.items.get(iref.get("ItemOID", ""))
                if item is None:
                    self.note("warning", iref, f"item group {group.get('OID')} refers to ItemDef {iref.get('ItemOID')}, which the file does not define")
                    continue
                pairs.append((item, iref))
            out.append((group, pairs, group.get("Repeating") == "Yes"))
        return out

    def build_form(self, form_id: str, title: str, pairs: list[tuple[_Item, etree._Element]], where: etree._Element,
                   description: Optional[str] = None, version: str = "1.0", code: Optional[str] = None, domain: Optional[str] = None) -> Optional[DraftForm]:
        form = DraftForm(form_id, title, {}, version=version, description=description, code=code, domain=domain)
        oid_to_id: dict[str, str] = {}
        taken: set[str] = set()
        for item, iref in pairs:
            if item.oid in oid_to_id:
                continue
            item_id = identifier(item.id, ITEM_ID_LENGTH, taken, fallback="I")
            if item_id != item.id:
                self.note("approximate", iref, f"item {item.oid} is named {item_id} in form {form_id} (item names are upper-case letters, digits and _, unique in a form)")
            oid_to_id[item.oid] = item_id
            form.items[item_id] = dict(item.schema)
        for item, iref in pairs:
            item_id = oid_to_id[item.oid]
            method = iref.get("MethodOID")
            if method:
                self.derivation(form, item_id, method, iref)
            cond = iref.get("CollectionExceptionConditionOID")
            if cond:
                self.condition(form, item_id, cond, iref, oid_to_id, iref.get("Mandatory") == "Yes")
            elif iref.get("Mandatory") == "Yes" and "x-derived" not in form.items[item_id] and item_id not in form.required:
                form.required.append(item_id)
            if iref.get("Role") or iref.get("RoleCodeListOID"):
                self.note("dropped", iref, f"role of item {item.oid} in form {form_id} is not imported")
        if not form.items:
            return None
        form.source_ids = oid_to_id
        self.redcap_branching(form, pairs, oid_to_id)
        return form

    def redcap_branching(self, form: DraftForm, pairs: list[tuple[_Item, etree._Element]], oid_to_id: dict[str, str]) -> None:
        """REDCap's ODM keeps branching logic only as redcap:BranchingLogic: translate it as a dictionary import would."""
        by_variable = {item.redcap_variable: oid_to_id[item.oid] for item, _ in pairs if item.redcap_variable}
        if not any(item.redcap_branching for item, _ in pairs):
            return
        codes_of = {var: (None if (codes := self.trigger_codes(form, item_id)) is None else [_code_key(c) for c in codes])
                    for var, item_id in by_variable.items()}
        conditioned = {name for _, _, names in form.conditions for name in names}
        for item, iref in pairs:
            item_id = oid_to_id[item.oid]
            if not item.redcap_branching or item_id in conditioned:
                continue
            where = f"{self.display}, line {item.line}"
            translated = translate_branching(item.redcap_branching, codes_of)
            if isinstance(translated, str):
                self.draft.note("dropped", where, f"REDCap branching logic of {item.oid} {item.redcap_branching!r} cannot be translated: {translated}; the item is always shown")
                continue
            trigger = by_variable[translated[0]]
            values = [self.typed_code(form, trigger, v) for v in translated[1]]
            if item_id in form.required:
                form.required.remove(item_id)
            self.draft.note("kept", where, f"REDCap branching logic of {item.oid} {item.redcap_branching!r} is the condition {trigger} in {values}")
            for existing in form.conditions:
                if existing[0] == trigger and existing[1] == values:
                    existing[2].append(item_id)
                    break
            else:
                form.conditions.append((trigger, values, [item_id]))

    def derivation(self, form: DraftForm, item_id: str, method_oid: str, where: etree._Element) -> None:
        method = self.defs["MethodDef"].get(method_oid)
        if method is None:
            self.note("warning", where, f"item {item_id} refers to MethodDef {method_oid}, which the file does not define; it stays an entry field")
            return
        ours = [e.text for e in _children(method, "FormalExpression") if e.get("Context") == o.EXPRESSION_CONTEXT and e.text]
        if ours:
            try:
                own = sorted(expressions.parse(ours[0]).functions() - _language_functions())
                if own:  # a function of the exporting study's own (its functions.py), which the imported study has not
                    self.note("dropped", method, f"derivation of {item_id} ({ours[0]!r}) calls {', '.join(f + '()' for f in own)}, a function of "
                                                 "the exporting study's own (study.json \"functions\"); it stays an entry field")
                    return
                form.items[item_id]["x-derived"] = ours[0]
                label = _aliases(method).get(o.ALIAS_DERIVED_LABEL)
                if label:
                    form.items[item_id]["x-derived-label"] = label
                return
            except expressions.ExpressionError as exc:
                self.note("dropped", method, f"derivation of {item_id} ({ours[0]!r}) does not parse: {exc}; it stays an entry field")
                return
        contexts = ", ".join(sorted({e.get("Context") or "no context" for e in _children(method, "FormalExpression")})) or "a description only"
        self.note("dropped", method, f"derivation {method_oid} of item {item_id} ({contexts}: {_text(method, 'Description') or ''}) cannot be run here; {item_id} stays an entry field for the site to fill")

    def condition(self, form: DraftForm, item_id: str, cond_oid: str, where: etree._Element, oid_to_id: dict[str, str], mandatory: bool) -> None:
        cond = self.defs["ConditionDef"].get(cond_oid)
        if cond is None:
            self.note("warning", where, f"item {item_id} refers to ConditionDef {cond_oid}, which the file does not define; the item is always offered")
            return
        parsed = self.translate_condition(cond, form, oid_to_id)
        if isinstance(parsed, str):
            self.note("dropped", cond, f"condition {cond_oid} of item {item_id} in form {form.id} ({parsed}); the item is offered unconditionally and not required")
            return
        trigger, values = parsed
        if trigger == item_id:
            self.note("dropped", cond, f"condition {cond_oid} of item {item_id} depends on the item itself; dropped")
            return
        if not mandatory:
            self.note("approximate", where, f"item {item_id} in form {form.id}: ODM says 'not collected unless {trigger} is {', '.join(map(str, values))}' and not mandatory; here it is required when {trigger} is {', '.join(map(str, values))}")
        for existing in form.conditions:
            if existing[0] == trigger and existing[1] == values:
                existing[2].append(item_id)
                return
        form.conditions.append((trigger, values, [item_id]))

    def translate_condition(self, cond: etree._Element, form: DraftForm, oid_to_id: dict[str, str]) -> tuple[str, list[Any]] | str:
        exprs = {e.get("Context"): (e.text or "").strip() for e in _children(cond, "FormalExpression")}
        ours = _OURS_NOT_IN.match(exprs.get(o.EXPRESSION_CONTEXT, ""))
        if ours and ours.group("item") in form.items:
            return ours.group("item"), json.loads(ours.group("values"))
        xpath = exprs.get(o.XPATH_CONTEXT) or next((v for k, v in exprs.items() if k and k.lower().startswith("xpath")), "")
        if not xpath:
            return f"no XPath expression: {_text(cond, 'Description') or 'description only'}"
        id_by_oid = dict(oid_to_id)
        m = _XPATH_NOT_IN.match(xpath)
        if m and m.group("item") in id_by_oid:
            trigger = id_by_oid[m.group("item")]
            return trigger, [self.typed_code(form, trigger, v) for v in re.findall(r"@Value='([^']*)'", m.group("tests"))]
        m = _XPATH_EQUALS.match(xpath)
        if m:
            if m.group("item") not in id_by_oid:
                return f"{xpath!r} refers to item {m.group('item')}, which is not in this form"
            trigger = id_by_oid[m.group("item")]
            codes = self.trigger_codes(form, trigger)
            if codes is None:
                return f"{xpath!r}: item {trigger} has no code list, so 'collected unless it is {m.group('value')}' cannot be listed as values"
            value = self.typed_code(form, trigger, m.group("value"))
            rest = [c for c in codes if _code_key(c) != _code_key(value)]
            if len(rest) == len(codes):
                return f"{xpath!r}: {m.group('value')!r} is not a code of {trigger}"
            return trigger, rest
        return f"XPath {xpath!r} is not a simple comparison of one item with a code"

    def trigger_codes(self, form: DraftForm, trigger: str) -> Optional[list[Any]]:
        ref = form.items[trigger].get("$ref", "")
        ident = ref.rpartition("/")[2]
        return list(self.draft.codelists[ident]["enum"]) if ident in self.draft.codelists else None

    def typed_code(self, form: DraftForm, trigger: str, text: str) -> Any:
        codes = self.trigger_codes(form, trigger) or []
        if text in ("true", "false") and {_code_key(c) for c in codes} == {"1", "0"}:
            text = "1" if text == "true" else "0"  # an XPath on a boolean item, whose codes are 1/0 here
        for code in codes:
            if _code_key(code) == text or str(code) == text:
                return code
        return _number(text) if form.items[trigger].get("type") in ("integer", "number") else text

    def instance(self, form_def: etree._Element, base_forms: dict[str, list[etree._Element]], names: set[str], visit_id: str) -> Optional[DraftInstance]:
        aliases = _aliases(form_def)
        if o.ALIAS_FORM in aliases:
            return self.our_instance(form_def, aliases, base_forms)
        oid = form_def.get("OID", "")
        if oid not in self.form_cache:
            groups = self.form_items(form_def)
            if form_def.get("Repeating") != "Yes" and all(repeating for _, pairs, repeating in groups if pairs) and groups:
                # every group of a non-repeating form says it repeats (some EDCs mark all groups so): one form, collected once
                self.note("approximate", form_def, f"form {oid}: its item groups are marked repeating but the form is not; it is collected once per visit")
                groups = [(g, pairs, False) for g, pairs, _ in groups]
            flat = [pair for _, pairs, repeating in groups if not repeating for pair in pairs]
            name = " ".join((form_def.get("Name") or oid).split())
            form_id = identifier(oid, FORM_ID_LENGTH, self.form_ids, allow_underscore=False, fallback="F", min_length=2)
            domains = {g.get("Domain") for g, _, _ in groups if re.fullmatch(r"[A-Z]{2}", g.get("Domain") or "")}
            form = self.build_form(form_id, name, flat, form_def, description=_text(form_def, "Description"),
                                   domain=domains.pop() if len(domains) == 1 else None) if flat else None
            if form is not None:
                self.draft.forms[form.id] = form
            for group, pairs, repeating in groups:
                if repeating and pairs:
                    self.repeating_group(form_def, group, pairs)
            if form_def.get("Repeating") == "Yes" and form is not None:
                self.note("approximate", form_def, f"form {oid} repeats within its event; it is collected once per visit here (repeating forms become logs only when their item group repeats)")
            self.form_cache[oid] = (form, flat) if form is not None else None
        cached = self.form_cache[oid]
        if cached is None:
            return None
        form = cached[0]
        name = form.id
        if name in names:
            self.note("dropped", form_def, f"form {oid} is listed twice at visit {visit_id}; it is collected once")
            return None
        names.add(name)
        return DraftInstance(name, form.id)

    def repeating_group(self, form_def: etree._Element, group: etree._Element, pairs: list[tuple[_Item, etree._Element]]) -> None:
        goid = group.get("OID", "")
        if goid in self.logs_by_group:
            return
        log_id = identifier(goid, FORM_ID_LENGTH, self.log_ids, allow_underscore=False, fallback="L", min_length=2)
        form_id = identifier(goid, FORM_ID_LENGTH, self.form_ids, allow_underscore=False, fallback="F", min_length=2)
        title = " ".join((group.get("Name") or form_def.get("Name") or goid).split()) or goid
        domain = group.get("Domain") if re.fullmatch(r"[A-Z]{2}", group.get("Domain") or "") else None
        form = self.build_form(form_id, title, pairs, group, domain=domain)
        if form is None:
            return
        self.draft.forms[form.id] = form
        log = DraftLog(log_id, title, form.id, DEFAULT_LOG_ROWS)
        self.draft.logs.append(log)
        self.logs_by_group[goid] = log
        self.maps.logs[goid] = (log.id, form.id)
        self.note("approximate", group, f"repeating item group {goid} ({title}) of form {form_def.get('OID')} becomes running log {log_id} with {DEFAULT_LOG_ROWS} rows; its rows are not tied to a visit")

    def our_base_form(self, form_id: str, base_forms: dict[str, list[etree._Element]]) -> tuple[DraftForm, dict[str, str]]:
        """The form as written, rebuilt from all its instances in our export; item OID -> item id."""
        key = "base:" + form_id
        if key in self.form_cache:
            form, _ = self.form_cache[key]  # type: ignore[misc]  # the cache holds base forms under "base:" keys
            return form, form.source_ids
        instances = base_forms[form_id]
        prefix = f"IT.{form_id}."
        order = [oid for oid in self.defs["ItemDef"] if oid.startswith(prefix)]
        refs: dict[str, list[etree._Element]] = {}
        for fd in instances:
            for _, pairs, _ in self.form_items(fd):
                for item, iref in pairs:
                    refs.setdefault(item.oid, []).append(iref)
        group = self.defs["ItemGroupDef"].get("IG." + instances[0].get("OID", "")[2:])
        first = instances[0]
        a = _aliases(first)
        pairs = []
        for oid in order:
            if oid not in refs:
                continue
            iref_list = refs[oid]
            # The form's own condition is on some instance's ItemRef; an item mandatory (without condition) in every
            # instance is required by the form; mandatory in some instances only, it is those instances' requirement.
            conditional = next((r for r in iref_list if r.get("CollectionExceptionConditionOID")), None)
            if conditional is not None:
                chosen = conditional
            elif all(r.get("Mandatory") == "Yes" for r in iref_list):
                chosen = iref_list[0]
            else:
                chosen = _with(iref_list[0], Mandatory="No")
            pairs.append((self.items[oid], chosen))
        title = group.get("Name") if group is not None else first.get("Name")
        form = self.build_form(form_id, title or form_id, pairs, first, description=_text(first, "Description"),
                               version=a.get(o.ALIAS_FORM_VERSION, "1.0"), code=a.get(o.ALIAS_FORM_CODE),
                               domain=group.get("Domain") if group is not None else None)
        assert form is not None
        for oid, node in self.defs["ItemDef"].items():
            if oid.startswith(prefix) and o.ALIAS_REQUIRED_WITH in _aliases(node):
                for trigger in json.loads(_aliases(node)[o.ALIAS_REQUIRED_WITH]):
                    form.dependent_required.setdefault(trigger, []).append(form.source_ids[oid])
        self.draft.forms[form.id] = form
        self.form_ids.add(form.id)
        self.form_cache[key] = (form, pairs)
        return form, form.source_ids

    def our_instance(self, form_def: etree._Element, aliases: dict[str, str], base_forms: dict[str, list[etree._Element]]) -> DraftInstance:
        form, ids = self.our_base_form(aliases[o.ALIAS_FORM], base_forms)
        present: dict[str, etree._Element] = {}
        for _, pairs, _ in self.form_items(form_def):
            for item, iref in pairs:
                present[ids[item.oid]] = iref
        omit = [i for i in form.items if i not in present]
        base_required = set(form.required)
        conditional = {name for _, _, names in form.conditions for name in names}
        required = [i for i, r in present.items() if r.get("Mandatory") == "Yes" and i not in base_required and "x-derived" not in form.items[i]
                    and not (i in conditional and r.get("CollectionExceptionConditionOID"))]
        fixed = json.loads(aliases[o.ALIAS_FIXED]) if o.ALIAS_FIXED in aliases else {}
        title = form_def.get("Name")
        return DraftInstance(aliases.get(o.ALIAS_INSTANCE, form.id), form.id, title=title if title != form.title else None,
                             fixed=fixed, omit=omit, required=required)

    def our_log(self, form_def: etree._Element, base_forms: dict[str, list[etree._Element]]) -> None:
        aliases = _aliases(form_def)
        form, _ = self.our_base_form(aliases[o.ALIAS_FORM], base_forms)
        self.draft.logs.append(DraftLog(aliases[o.ALIAS_LOG], form_def.get("Name") or aliases[o.ALIAS_LOG], form.id,
                                        int(aliases.get(o.ALIAS_ROWS, DEFAULT_LOG_ROWS)), aliases.get("open-ecrf:log-starts")))
        for gref in _children(form_def, "ItemGroupRef"):
            self.maps.logs[gref.get("ItemGroupOID", "")] = (aliases[o.ALIAS_LOG], form.id)


def _with(node: etree._Element, **attrs: str) -> etree._Element:
    copy = etree.Element(node.tag, dict(node.attrib))
    copy.sourceline = node.sourceline
    for k, v in attrs.items():
        copy.set(k, v)
    return copy


def _inside(value: float, hard: dict[str, float]) -> bool:
    if "minimum" in hard and value < hard["minimum"]:
        return False
    if "exclusiveMinimum" in hard and value <= hard["exclusiveMinimum"]:
        return False
    if "maximum" in hard and value > hard["maximum"]:
        return False
    if "exclusiveMaximum" in hard and value >= hard["exclusiveMaximum"]:
        return False
    return True


DEFAULT_REPEAT_SHEETS = 3  # blank sheets of a repeating visit imported without our alias


@dataclass
class OdmMaps:
    """Where the source's OIDs went: what turns the file's ClinicalData into subject documents."""

    visits: dict[str, str] = field(default_factory=dict)  # StudyEventOID -> visit id
    instances: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)  # (StudyEventOID, FormOID) -> (instance, form id)
    logs: dict[str, tuple[str, str]] = field(default_factory=dict)  # ItemGroupOID of a repeating group -> (log id, form id)
    items: dict[str, dict[str, str]] = field(default_factory=dict)  # form id -> ItemOID -> item id
    repeating: set[str] = field(default_factory=set)  # visit ids whose events repeat (StudyEventRepeatKey n -> VISIT#n)


def read_odm(path: Path, xsd: Optional[Path] = None) -> DraftStudy:
    """Read an ODM metadata file into a draft study; raise ImportRefused (located notes) when it cannot be."""
    return read_odm_with_maps(path, xsd)[0]


def read_odm_with_maps(path: Path, xsd: Optional[Path] = None) -> tuple[DraftStudy, OdmMaps]:
    path = Path(path)
    try:
        tree = o.parse_untrusted(path)
    except o.OdmFileError as exc:
        raise ImportRefused([Note("refused", f"{p.file}" + (f", line {p.line}" if p.line else "") + (f", column {p.column}" if p.column else ""), p.message) for p in exc.problems])
    if xsd is not None:
        errors = o.xsd_errors(tree, xsd)
        if errors:
            raise ImportRefused([Note("refused", f"{path}, {e.split(':', 1)[0]}", f"not valid against {xsd.name}: {e.split(':', 1)[1].strip()}") for e in errors])
    importer = _Importer(path, str(path), tree)
    draft = importer.read()
    importer.maps.items = {f.id: dict(f.source_ids) for f in draft.forms.values()}
    return draft, importer.maps


def clinical_to_documents(path: Path, maps: OdmMaps, study: Study) -> tuple[list[dict[str, Any]], list[Note]]:
    """The file's ClinicalData -> one subject document per SubjectData (crf.subject's JSON form), with notes."""
    tree = o.parse_untrusted(Path(path))
    display = str(path)
    notes: list[Note] = []
    docs: list[dict[str, Any]] = []
    forms = {f.id: f for f in study.forms()}
    skipped: Counter[str] = Counter()

    def where(node: etree._Element) -> str:
        return f"{display}, line {node.sourceline}"

    for clinical in tree.getroot().iter(o.odm("ClinicalData")):
        for subject in _children(clinical, "SubjectData"):
            site_ref = subject.find(o.odm("SiteRef"))
            doc: dict[str, Any] = {"study": study.id, "form_version": study.form_version, "definition_hash": study.definition_hash,
                                   "site": site_ref.get("LocationOID", "") if site_ref is not None else "", "subject": subject.get("SubjectKey", ""),
                                   "visits": {}, "logs": {}}
            for event in _children(subject, "StudyEventData"):
                event_oid = event.get("StudyEventOID", "")
                visit_id = maps.visits.get(event_oid)
                repeat_key = event.get("StudyEventRepeatKey") or ""
                if visit_id is not None and visit_id in maps.repeating:
                    if not repeat_key.isdigit() or int(repeat_key) < 1:
                        skipped[f"data of repeating event {event_oid} without a positive StudyEventRepeatKey"] += 1
                        continue
                    visit_id = f"{visit_id}#{int(repeat_key)}"
                elif repeat_key not in ("", "1") and visit_id is not None:
                    skipped["a repeat of an event that does not repeat (repeat key > 1): visits are collected once here"] += 1
                    continue
                for form_data in _children(event, "FormData"):
                    target = maps.instances.get((event_oid, form_data.get("FormOID", "")))
                    for group in _children(form_data, "ItemGroupData"):
                        log = maps.logs.get(group.get("ItemGroupOID", ""))
                        form_id = log[1] if log else (target[1] if target else None)
                        if form_id is None or (log is None and visit_id is None):
                            skipped[f"data of event {event_oid} / form {form_data.get('FormOID')}, which the study does not collect"] += 1
                            continue
                        values = _item_values(group, forms[form_id], maps.items.get(form_id, {}), skipped)
                        if not values:
                            continue
                        if log:
                            doc["logs"].setdefault(log[0], []).append(values)
                        else:
                            doc["visits"].setdefault(visit_id, {}).setdefault(target[0], {}).update(values)  # type: ignore[index]  # doc is a JSON document being built: visits is a dict
            docs.append(doc)
    for what, count in sorted(skipped.items()):
        notes.append(Note("dropped", display, f"{count} x {what}"))
    return docs, notes


def _item_values(group: etree._Element, form: Any, ids: dict[str, str], skipped: Counter[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for data in _children(group, "ItemData"):
        item_id = ids.get(data.get("ItemOID", ""))
        if item_id is None or not form.has(item_id):
            skipped[f"value of item {data.get('ItemOID')}, which the form does not have"] += 1
            continue
        text = data.get("Value")
        if text is None or data.get("IsNull") == "Yes" or text.strip() == "":
            continue
        item = form.item(item_id)
        values[item_id] = _typed_value(item, text.strip())
    return values


def _typed_value(item: Any, text: str) -> Any:
    def one(t: str) -> Any:
        if item.codelist is not None:
            for code in item.codelist.values:
                if _code_key(code) == t or str(code) == t:
                    return code
            if t in ("true", "false") and {_code_key(c) for c in item.codelist.values} == {"1", "0"}:
                return 1 if t == "true" else 0
            if item.value_type in ("integer", "number") and _number(t) is not None:
                return _number(t)  # not one of the codes: the validator says so (FIELD-CHOICE), at its field
            return t
        if item.kind is ItemKind.INTEGER:
            return int(t) if re.fullmatch(r"-?\d+", t) else t
        if item.kind is ItemKind.DECIMAL:
            return float(t) if re.fullmatch(r"-?\d+(\.\d*)?|-?\.\d+", t) else t
        if item.kind is ItemKind.TIME and re.fullmatch(r"\d{2}:\d{2}:\d{2}", t):
            return t[:5]
        return t

    if item.kind is ItemKind.MULTI_CHOICE:  # as validate.py --format odm writes them (crf.interop.odm_clinical)
        return [one(t.strip()) for t in text.split("|") if t.strip()]
    return one(text)
