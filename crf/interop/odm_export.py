"""The study model -> one CDISC ODM 1.3.2 metadata file, valid against the official XSD.

Mapping (docs/interop.md): visit -> StudyEventDef (Protocol lists them in schedule order), running logs ->
one StudyEventDef of Type "Common" whose forms hold a repeating ItemGroupDef, form instance -> FormDef
(one per distinct content: VS_PRE and VS_POST are two), item -> ItemDef (one per item of a form as written),
code list -> CodeList, hard and soft limits -> RangeCheck, conditions -> ConditionDef with an XPath and an
open-ecrf FormalExpression, derived items -> MethodDef. What ODM has no element for (visit windows, Day 0
offsets, fixed values, partial dates, multi-selects) travels in Alias elements of the `open-ecrf:` contexts
listed in crf.interop.odm, which keeps the file schema-valid and lets `import odm` read it back.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from lxml import etree

from .. import __version__
from ..model import CodeList, Condition, Form, FormInstance, Item, ItemKind, Limits, Study, Visit
from . import odm as o

FIXED_CREATION = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)  # as the workbooks: same inputs, same bytes


def creation_time() -> dt.datetime:
    """SOURCE_DATE_EPOCH when set (reproducible builds), else a fixed moment: never the clock."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        return dt.datetime.fromtimestamp(int(epoch), tz=dt.timezone.utc)
    return FIXED_CREATION


def odm_datetime(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def unit_oid(unit: str) -> str:
    return "MU." + re.sub(r"\s+", "_", unit)


def item_oid(form_id: str, item_id: str) -> str:
    return f"IT.{form_id}.{item_id}"


def codelist_oid(codelist: CodeList) -> str:
    return f"CL.{codelist.id}"


def visit_oid(visit_id: str) -> str:
    return f"SE.{visit_id}"


LOGS_EVENT_OID = "SE.LOGS"


def log_form_oid(log_id: str) -> str:
    return f"F.LOG.{log_id}"


def _el(parent: etree._Element, tag: str, attrs: Optional[Mapping[str, Optional[str]]] = None, text: Optional[str] = None) -> etree._Element:
    node = etree.SubElement(parent, o.odm(tag), {k: v for k, v in (attrs or {}).items() if v is not None})
    if text is not None:
        node.text = text
    return node


def _translated(parent: etree._Element, tag: str, text: str) -> etree._Element:
    holder = _el(parent, tag)
    t = _el(holder, "TranslatedText", text=text)
    t.set(f"{{{o.XML_NS}}}lang", "en")
    return holder


def _alias(parent: etree._Element, context: str, name: Any) -> None:
    _el(parent, "Alias", {"Context": context, "Name": name if isinstance(name, str) else json.dumps(name, sort_keys=True)})


def _sas_name(name: str) -> Optional[str]:
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,7}", name) else None


def data_type(item: Item) -> str:
    if item.kind in (ItemKind.CHOICE, ItemKind.MULTI_CHOICE):
        return {"integer": "integer", "number": "float"}.get(item.value_type, "text") if item.kind is ItemKind.CHOICE else "text"
    return {
        ItemKind.TEXT: "text", ItemKind.INTEGER: "integer", ItemKind.DECIMAL: "float", ItemKind.DATE: "date",
        ItemKind.PARTIAL_DATE: "partialDate", ItemKind.TIME: "time",
    }[item.kind]


def codelist_data_type(codelist: CodeList) -> str:
    types = {type(c.code) for c in codelist.codes}
    if types == {int}:
        return "integer"
    if types <= {int, float}:
        return "float"
    return "text"


def _length(item: Item) -> Optional[int]:
    if item.kind is ItemKind.TEXT:
        return item.max_length
    if item.codelist is not None:
        width = max(len(str(c.code)) for c in item.codelist.codes)
        if item.kind is ItemKind.MULTI_CHOICE:  # codes separated by "|" (docs/interop.md)
            return sum(len(str(c.code)) + 1 for c in item.codelist.codes)
        return width
    if item.is_number:
        bounds = [b for b in (item.hard.low, item.hard.high) if b is not None]
        digits = max((len(str(int(abs(b)))) for b in bounds), default=8)
        return digits + (item.decimals if item.kind is ItemKind.DECIMAL else 0)
    return None


@dataclass(frozen=True)
class _FormDef:
    oid: str
    instance: FormInstance
    visit: Optional[Visit]


class _Exporter:
    def __init__(self, study: Study):
        self.study = study
        self.form_defs: list[_FormDef] = []
        self.instance_oid: dict[tuple[str, str], str] = {}  # (visit id, instance name) -> FormDef OID
        self.conditions: dict[tuple[str, str, tuple[Any, ...]], str] = {}  # (form id, item, values) -> OID
        self.units: list[str] = []

    # -- collection ------------------------------------------------------------------------
    def collect(self) -> None:
        for visit in self.study.visits:
            for inst in visit.forms:
                oid = None
                for fd in self.form_defs:
                    if fd.instance.name == inst.name and fd.instance == inst:
                        oid = fd.oid
                        break
                if oid is None:
                    taken = {fd.oid for fd in self.form_defs}
                    oid = f"F.{inst.name}" if f"F.{inst.name}" not in taken else f"F.{inst.name}.{visit.id}"
                    self.form_defs.append(_FormDef(oid, inst, visit))
                self.instance_oid[(visit.id, inst.name)] = oid
        for fd in self.form_defs:
            for it in fd.instance.items:
                if it.condition:
                    self.condition_oid(fd.instance.form.id, it.condition)
        for log in self.study.logs:
            for it in log.form.items:
                if it.condition:
                    self.condition_oid(log.form.id, it.condition)
        for form in self.study.forms():
            for it in form.items:
                if it.unit and it.unit not in self.units:
                    self.units.append(it.unit)

    def condition_oid(self, form_id: str, cond: Condition) -> str:
        key = (form_id, cond.item, cond.values)
        if key not in self.conditions:
            n = sum(1 for k in self.conditions if k[:2] == key[:2]) + 1
            self.conditions[key] = f"COND.{form_id}.{cond.item}" + ("" if n == 1 else f".{n}")
        return self.conditions[key]

    # -- writing ---------------------------------------------------------------------------
    def build(self) -> etree._Element:
        self.collect()
        s = self.study
        root = etree.Element(o.odm("ODM"), nsmap={None: o.ODM_NS})
        for k, v in (("FileType", "Snapshot"), ("Granularity", "Metadata"), ("FileOID", f"{s.id}.{s.form_version}.{s.definition_hash[:12]}"),
                     ("CreationDateTime", odm_datetime(creation_time())), ("ODMVersion", "1.3.2"),
                     ("Originator", "open-ecrf"), ("SourceSystem", "open-ecrf"), ("SourceSystemVersion", __version__)):
            root.set(k, v)
        study = _el(root, "Study", {"OID": s.id})
        gv = _el(study, "GlobalVariables")
        _el(gv, "StudyName", text=s.id)
        _el(gv, "StudyDescription", text=s.title)
        _el(gv, "ProtocolName", text=s.registry_id or s.id)
        if self.units:
            bd = _el(study, "BasicDefinitions")
            for unit in self.units:
                mu = _el(bd, "MeasurementUnit", {"OID": unit_oid(unit), "Name": unit})
                _translated(mu, "Symbol", unit)
        mdv = _el(study, "MetaDataVersion", {"OID": f"MDV.{s.form_version}", "Name": f"{s.id} form version {s.form_version}",
                                             "Description": f"Protocol version {s.protocol_version}"})
        self.protocol(mdv)
        for visit in s.visits:
            self.study_event(mdv, visit)
        if s.logs:
            ev = _el(mdv, "StudyEventDef", {"OID": LOGS_EVENT_OID, "Name": "Running logs", "Repeating": "No", "Type": "Common"})
            for n, log in enumerate(s.logs, 1):
                _el(ev, "FormRef", {"FormOID": log_form_oid(log.id), "OrderNumber": str(n), "Mandatory": "No"})
        for fd in self.form_defs:
            self.form_def(mdv, fd.oid, fd.instance.title, fd.instance.form, fd.instance)
        for log in s.logs:
            self.form_def(mdv, log_form_oid(log.id), log.label, log.form, None, log=log)
        for fd in self.form_defs:
            self.item_group(mdv, "IG." + fd.oid[2:], fd.instance.form, repeating=False)
        for log in s.logs:
            self.item_group(mdv, "IG.LOG." + log.id, log.form, repeating=True)
        for form in s.forms():
            for it in form.items:
                self.item_def(mdv, form, it)
        for cl in s.codelists:
            self.codelist(mdv, cl)
        for (form_id, item_id, values), oid in self.conditions.items():
            self.condition_def(mdv, oid, form_id, item_id, values)
        for form in s.forms():
            for it in form.items:
                if it.derived:
                    self.method_def(mdv, form, it)
        return root

    def protocol(self, mdv: etree._Element) -> None:
        proto = _el(mdv, "Protocol")
        _translated(proto, "Description", f"{self.study.title} (protocol version {self.study.protocol_version})")
        n = 0
        for n, visit in enumerate(self.study.visits, 1):
            _el(proto, "StudyEventRef", {"StudyEventOID": visit_oid(visit.id), "OrderNumber": str(n),
                                         "Mandatory": "No" if visit.kind == "unscheduled" else "Yes"})
        if self.study.logs:
            _el(proto, "StudyEventRef", {"StudyEventOID": LOGS_EVENT_OID, "OrderNumber": str(n + 1), "Mandatory": "Yes"})
        if self.study.sponsor:
            _alias(proto, o.ALIAS_SPONSOR, self.study.sponsor)
        if self.study.dosing is not None:
            d = self.study.dosing
            dosing = {"drug": d.drug, "dose_mg_per_kg": d.dose_mg_per_kg, "route": d.route, "vial_sizes_mg": list(d.vial_sizes_mg),
                      "infusions": d.infusions, "loading_infusions": d.loading_infusions, "min_interval_loading_days": d.min_interval_loading_days,
                      "min_interval_maintenance_days": d.min_interval_maintenance_days, "last_infusion_max_day": d.last_infusion_max_day,
                      "weight_source": d.weight_source, "assumption": d.assumption}
            _alias(proto, o.ALIAS_DOSING, {k: v for k, v in dosing.items() if v is not None})
        window_assumptions = {v.window.assumption for v in self.study.visits}
        for a in self.study.assumptions:
            if not a.where.startswith(("study.json#", "forms/", "visits/", "logs/", "codelists")) and a.text not in window_assumptions:
                _alias(proto, f"{o.ALIAS_STUDY_ASSUMPTION}:{a.where}", a.text)  # Alias contexts are unique per element

    def study_event(self, mdv: etree._Element, visit: Visit) -> None:
        ev = _el(mdv, "StudyEventDef", {"OID": visit_oid(visit.id), "Name": visit.label, "Repeating": "Yes" if visit.repeating else "No",
                                        "Type": "Unscheduled" if visit.kind == "unscheduled" else "Scheduled"})
        for n, inst in enumerate(visit.forms, 1):
            _el(ev, "FormRef", {"FormOID": self.instance_oid[(visit.id, inst.name)], "OrderNumber": str(n), "Mandatory": "Yes"})
        _alias(ev, o.ALIAS_VISIT, visit.id)
        _alias(ev, o.ALIAS_KIND, visit.kind)
        if visit.repeating:
            _alias(ev, o.ALIAS_REPEAT_SHEETS, str(visit.repeat_sheets))
        if visit.link is not None:
            _alias(ev, o.ALIAS_REPEAT_LINK, {"item": f"{visit.link.form}.{visit.link.item}", "log": visit.link.log, "log_item": visit.link.log_item})
        if visit.day is not None:
            _alias(ev, o.ALIAS_DAY, str(visit.day))
        if visit.week is not None:
            _alias(ev, o.ALIAS_WEEK, str(visit.week))
        _alias(ev, o.ALIAS_WINDOW, f"-{visit.window.before}/+{visit.window.after}")
        if visit.window.assumption:
            _alias(ev, o.ALIAS_WINDOW_ASSUMPTION, visit.window.assumption)
        if visit.window.anchor != "day0":
            _alias(ev, o.ALIAS_ANCHOR, visit.window.anchor)
        if visit.infusion is not None:
            _alias(ev, o.ALIAS_INFUSION, str(visit.infusion))

    def form_def(self, mdv: etree._Element, oid: str, name: str, form: Form, inst: Optional[FormInstance], log: Any = None) -> None:
        fd = _el(mdv, "FormDef", {"OID": oid, "Name": name, "Repeating": "No"})
        if form.description:
            _translated(fd, "Description", form.description)
        _el(fd, "ItemGroupRef", {"ItemGroupOID": "IG." + oid[2:], "Mandatory": "Yes", "OrderNumber": "1"})
        _alias(fd, o.ALIAS_FORM, form.id)
        _alias(fd, o.ALIAS_FORM_VERSION, form.version)
        if form.code:
            _alias(fd, o.ALIAS_FORM_CODE, form.code)
        if inst is not None:
            _alias(fd, o.ALIAS_INSTANCE, inst.name)
            fixed = {it.id: it.fixed for it in inst.items if it.fixed is not None}
            if fixed:
                _alias(fd, o.ALIAS_FIXED, fixed)
        if log is not None:
            _alias(fd, o.ALIAS_LOG, log.id)
            _alias(fd, o.ALIAS_ROWS, str(log.rows))
            if log.starts:
                _alias(fd, "open-ecrf:log-starts", log.starts)

    def item_group(self, mdv: etree._Element, oid: str, form: Form, repeating: bool) -> None:
        ig = _el(mdv, "ItemGroupDef", {"OID": oid, "Name": form.title, "Repeating": "Yes" if repeating else "No", "Domain": form.domain})
        for n, it in enumerate(form.items, 1):
            # a conditional item is mandatory whenever it is collected: Mandatory="Yes" with its exception condition
            attrs = {"ItemOID": item_oid(form.id, it.id), "OrderNumber": str(n), "Mandatory": "Yes" if it.required or it.condition else "No"}
            if it.condition and not it.required:
                attrs["CollectionExceptionConditionOID"] = self.condition_oid(form.id, it.condition)
            if it.derived:
                attrs["MethodOID"] = f"MT.{form.id}.{it.id}"
            _el(ig, "ItemRef", attrs)

    def item_def(self, mdv: etree._Element, form: Form, it: Item) -> None:
        length = _length(it)
        attrs: dict[str, Optional[str]] = {"OID": item_oid(form.id, it.id), "Name": it.id, "DataType": data_type(it),
                 "Length": str(length) if length else None,
                 "SignificantDigits": str(it.decimals) if it.kind is ItemKind.DECIMAL or it.decimals else None,
                 "SASFieldName": _sas_name(it.id), "SDSVarName": it.sdtm.variable if it.sdtm.submitted else None,
                 "Origin": "Derived" if it.derived else "CRF"}
        idef = _el(mdv, "ItemDef", attrs)
        if it.help:
            _translated(idef, "Description", it.help)
        _translated(idef, "Question", it.question)
        if it.unit:
            _el(idef, "MeasurementUnitRef", {"MeasurementUnitOID": unit_oid(it.unit)})
        self.range_checks(idef, it.hard, "Hard", None)
        if it.soft:
            self.range_checks(idef, it.soft, "Soft", it.soft_message)
        if it.codelist:
            _el(idef, "CodeListRef", {"CodeListOID": codelist_oid(it.codelist)})
        _alias(idef, "SDTM", f"{it.sdtm.domain}.{it.sdtm.variable}" if it.sdtm.submitted else "NOT SUBMITTED")
        if it.sdtm.where:
            _alias(idef, o.ALIAS_SDTM_WHERE, it.sdtm.where)
        if it.kind in (ItemKind.PARTIAL_DATE, ItemKind.MULTI_CHOICE, ItemKind.TIME):
            _alias(idef, o.ALIAS_FORMAT, it.kind.value)
        if it.pattern:
            _alias(idef, o.ALIAS_PATTERN, it.pattern)
        if it.min_items is not None:
            _alias(idef, o.ALIAS_MIN_ITEMS, str(it.min_items))
        if it.reference_range:
            _alias(idef, o.ALIAS_REFERENCE_RANGE, [it.reference_range.low, it.reference_range.high])
        if it.local_range:
            _alias(idef, o.ALIAS_LOCAL_RANGE, list(it.local_range))
        if it.required_with:
            _alias(idef, o.ALIAS_REQUIRED_WITH, list(it.required_with))
        if it.assumption:
            _alias(idef, "open-ecrf:assumption", it.assumption)

    def range_checks(self, idef: etree._Element, limits: Limits, soft_hard: str, message: Optional[str]) -> None:
        for comparator, bound in (("GE", limits.minimum), ("GT", limits.exclusive_minimum), ("LE", limits.maximum), ("LT", limits.exclusive_maximum)):
            if bound is None:
                continue
            rc = _el(idef, "RangeCheck", {"Comparator": comparator, "SoftHard": soft_hard})
            _el(rc, "CheckValue", text=_num(bound))
            if message:  # only the study's own words: an invented message would come back as if the study had it
                _translated(rc, "ErrorMessage", message)

    def codelist(self, mdv: etree._Element, cl: CodeList) -> None:
        node = _el(mdv, "CodeList", {"OID": codelist_oid(cl), "Name": cl.id, "DataType": codelist_data_type(cl)})
        for code in cl.codes:
            cli = _el(node, "CodeListItem", {"CodedValue": _code_text(code.code)})
            _translated(cli, "Decode", code.label)
        if cl.c_code:
            _alias(node, o.ALIAS_C_CODE, cl.c_code)

    def condition_def(self, mdv: etree._Element, oid: str, form_id: str, item_id: str, values: tuple[Any, ...]) -> None:
        form = next(f for f in self.study.forms() if f.id == form_id)
        trigger = form.item(item_id) if form.has(item_id) else None
        labels = [trigger.codelist.label(v) if trigger is not None and trigger.codelist else str(v) for v in values]
        question = trigger.question if trigger is not None else item_id
        node = _el(mdv, "ConditionDef", {"OID": oid, "Name": f"{item_id} in {', '.join(map(_code_text, values))}"})
        _translated(node, "Description", f"Not collected unless '{question}' is {' or '.join(labels)}")
        tests = " or ".join(f"@Value='{_code_text(v)}'" for v in values)
        _el(node, "FormalExpression", {"Context": o.XPATH_CONTEXT}, f"not(../ItemData[@ItemOID='{item_oid(form_id, item_id)}'][{tests}])")
        _el(node, "FormalExpression", {"Context": o.EXPRESSION_CONTEXT}, f"not ({item_id} in {json.dumps(list(values))})")

    def method_def(self, mdv: etree._Element, form: Form, it: Item) -> None:
        node = _el(mdv, "MethodDef", {"OID": f"MT.{form.id}.{it.id}", "Name": f"Derivation of {form.id}.{it.id}", "Type": "Computation"})
        _translated(node, "Description", f"{it.question}: computed by the eCRF as {it.derived}")
        _el(node, "FormalExpression", {"Context": o.EXPRESSION_CONTEXT}, it.derived)
        if it.derived_label:
            _alias(node, o.ALIAS_DERIVED_LABEL, it.derived_label)


def _code_text(code: Any) -> str:
    return _num(code) if isinstance(code, float) else str(code)


def metadata_tree(study: Study) -> tuple[etree._Element, dict[tuple[str, str], str]]:
    """The ODM root with the study's metadata, and the FormDef OID of each (visit id, form instance name)."""
    exporter = _Exporter(study)
    return exporter.build(), exporter.instance_oid


def serialise(root: etree._Element) -> bytes:
    etree.indent(root, space="  ")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def study_to_odm(study: Study) -> bytes:
    """The ODM 1.3.2 metadata file of a study: deterministic bytes (UTF-8, indented)."""
    return serialise(metadata_tree(study)[0])


def metadata_file_name(study: Study) -> str:
    return f"{study.id}-odm-metadata.xml"

