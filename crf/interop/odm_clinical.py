"""Returned data -> CDISC ODM 1.3.2 ClinicalData (`validate.py ... --format odm`), valid against the official XSD.

The file holds the study's metadata (as `build_crf.py odm` writes it) and one SubjectData per subject of the
files the run read: StudyEventData per visit, FormData per form instance, ItemGroupData (log rows with their
repeat key, from 1) and ItemData with the values as read. Multi-select values are the codes separated by
"|" (codes may hold spaces). The run's findings travel as Annotations: on the ItemData they are about, else on the SubjectData,
their Comment being the severity, rule, message and finding id. Deterministic like every report.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional

from lxml import etree

from ..findings import Finding
from ..model import Item, ItemKind, Study, split_visit_key
from ..readers import read_file
from ..subject import SubjectRecord
from . import odm as o
from .odm_export import LOGS_EVENT_OID, _el, _num, item_oid, log_form_oid, metadata_tree, serialise, visit_oid


MULTI_SEPARATOR = "|"


def _value(item: Item, value: Any) -> str:
    if isinstance(value, list):  # codes may hold spaces (OPTIC NEURITIS): "|" separates them
        return MULTI_SEPARATOR.join(_value(item, v) for v in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return _num(value) if item.kind is not ItemKind.DECIMAL else f"{value:.{item.decimals}f}"
    return str(value)


def _annotations(parent: etree._Element, findings: Iterable[Finding]) -> None:
    for n, f in enumerate(findings, 1):
        note = _el(parent, "Annotation", {"SeqNum": str(n)})
        _el(note, "Comment", {"SponsorOrSite": "Sponsor"}, f"[{f.severity.value}] {f.rule}: {f.message} (finding {f.finding_id})")


def records_of(result: Any, base: Optional[Path] = None) -> list[SubjectRecord]:
    """The subject records of the files a run read, read again (the run keeps findings, not data)."""
    records = []
    for outcome in result.files:
        if not outcome.usable:
            continue
        path = Path(outcome.file)
        if not path.is_absolute() and base is not None:
            path = base / path
        read = read_file(path, outcome.file, result.study)
        if read.subject is not None:
            records.append(read.subject.record)
    return records


def clinical_odm(study: Study, records: list[SubjectRecord], findings: list[Finding]) -> bytes:
    root, instance_oid = metadata_tree(study)
    root.set("Granularity", "All")
    root.set("FileOID", root.get("FileOID", "") + ".data")
    clinical = _el(root, "ClinicalData", {"StudyOID": study.id, "MetaDataVersionOID": f"MDV.{study.form_version}"})
    by_subject: dict[tuple[str, str], list[Finding]] = {}
    for f in findings:
        by_subject.setdefault((f.site, f.subject), []).append(f)
    for record in sorted(records, key=lambda r: (r.site, r.subject, r.source or "")):
        subject_findings = by_subject.get((record.site, record.subject), [])
        placed: set[int] = set()
        subject = _el(clinical, "SubjectData", {"SubjectKey": record.subject or "(none)"})
        holders: list[tuple[etree._Element, list[Finding]]] = []
        events = []
        for key, visit in study.visit_keys(record.visits):
            forms = record.visits.get(key) or {}
            if not forms:
                continue
            repeat = split_visit_key(key)[1]
            event = etree.Element(o.odm("StudyEventData"), {"StudyEventOID": visit_oid(visit.id),
                                                            **({"StudyEventRepeatKey": str(repeat)} if repeat is not None else {})})
            for inst in visit.forms:
                values = forms.get(inst.name) or {}
                items = [(it, values[it.id]) for it in inst.items if values.get(it.id) not in (None, "", [])]
                if not items:
                    continue
                form = _el(event, "FormData", {"FormOID": instance_oid[(visit.id, inst.name)]})
                group = _el(form, "ItemGroupData", {"ItemGroupOID": "IG." + instance_oid[(visit.id, inst.name)][2:]})
                for it, value in items:
                    data = _el(group, "ItemData", {"ItemOID": item_oid(inst.form.id, it.id), "Value": _value(it, value)})
                    mine = [f for f in subject_findings if f.visit == key and f.form == inst.name and f.field == it.id and f.row is None]
                    placed.update(id(f) for f in mine)
                    holders.append((data, mine))
            if len(event):
                events.append(event)
        logs = etree.Element(o.odm("StudyEventData"), {"StudyEventOID": LOGS_EVENT_OID})
        for log in study.logs:
            rows = [r for r in record.logs.get(log.id) or [] if isinstance(r, dict) and any(v not in (None, "", []) for v in r.values())]
            if not rows:
                continue
            form = _el(logs, "FormData", {"FormOID": log_form_oid(log.id)})
            for number, row in enumerate(rows, 1):
                group = _el(form, "ItemGroupData", {"ItemGroupOID": "IG.LOG." + log.id, "ItemGroupRepeatKey": str(number)})
                for it in log.form.items:
                    if row.get(it.id) not in (None, "", []):
                        _el(group, "ItemData", {"ItemOID": item_oid(log.form.id, it.id), "Value": _value(it, row[it.id])})
        if len(logs):
            events.append(logs)
        _annotations(subject, [f for f in subject_findings if id(f) not in placed])
        for event in events:
            subject.append(event)
        for data, mine in holders:
            _annotations(data, mine)
    return serialise(root)


def render_odm(result: Any) -> bytes:
    """The report writer for `--format odm`: the data of the files the run read, with its findings."""
    return clinical_odm(result.study, records_of(result, Path.cwd()), result.findings)
