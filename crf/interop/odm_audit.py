"""The study store's audit trail -> a transactional CDISC ODM 1.3.2 file (`validate.py store odm`).

Each usable return of a subject, in order, is one SubjectData transaction: the first return inserts every value
it held, each later one updates (or removes) the values that changed from the previous return, as the store's
`value_changes` recorded them. Every ItemData carries its AuditRecord: who (the site, a User of AdminData),
where (the site's Location), when (the time the return was received), why (first return / changed from the
previous value, with the file, sheet and cell) and the source (the file's SHA-256). The study's queries travel
as Annotations on the ItemData of the transaction that last saw them, with their status. Valid against the
official XSD; same store, same bytes.
"""
from __future__ import annotations

import json
from typing import Any, Optional

from lxml import etree
from sqlalchemy import select

from ..fieldmap import FieldPath
from ..model import Item, Study, split_visit_key
from ..store import schema as db
from . import odm as o
from .odm_clinical import _value
from .odm_export import LOGS_EVENT_OID, _el, item_oid, log_form_oid, metadata_tree, serialise, visit_oid


def _user(site: str) -> str:
    return f"USR.SITE.{site or 'UNKNOWN'}"


def _location(site: str) -> str:
    return f"LOC.SITE.{site or 'UNKNOWN'}"


def _odm_time(received: str) -> str:
    text = received if "T" in received else received + "T00:00:00"
    if len(text) == 16:
        text += ":00"
    return text if text.endswith(("Z", "+00:00")) or "+" in text[10:] else text + "+00:00"


class _Paths:
    """A store path (/visits/V1/VS_PRE/WEIGHT, /logs/AE/0/AETERM) -> the ODM OIDs and the item."""

    def __init__(self, study: Study, instance_oid: dict[tuple[str, str], str]):
        self.study, self.instance_oid = study, instance_oid

    def place(self, path: str) -> Optional[tuple[str, str, str, Optional[int], str, Item]]:
        """(StudyEventOID with its repeat key as "SE.ATT|2", FormOID, ItemGroupOID, item group repeat key, ItemOID, item)."""
        p = FieldPath.parse(path)
        if p is not None and p.row is None:
            key, name, item_id = p.container, p.form, p.item
            visit = self.study.visit_of(key)
            if visit is None or not visit.has(name):
                return None
            inst = visit.form(name)
            if not inst.form.has(item_id) or (visit.id, name) not in self.instance_oid:
                return None
            form_oid = self.instance_oid[(visit.id, name)]
            repeat = split_visit_key(key)[1]
            event = visit_oid(visit.id) + (f"|{repeat}" if repeat is not None else "")
            return event, form_oid, "IG." + form_oid[2:], None, item_oid(inst.form.id, item_id), inst.form.item(item_id)
        if p is not None and p.row is not None:
            log_id, row, item_id = p.container, p.row, p.item
            try:
                log = self.study.log(log_id)
            except KeyError:
                return None
            if not log.form.has(item_id):
                return None
            return LOGS_EVENT_OID, log_form_oid(log_id), "IG.LOG." + log_id, row + 1, item_oid(log.form.id, item_id), log.form.item(item_id)
        return None


def store_to_odm(conn: Any, study: Study) -> bytes:
    root, instance_oid = metadata_tree(study)
    root.set("FileType", "Transactional")
    root.set("Granularity", "All")
    root.set("FileOID", root.get("FileOID", "") + ".audit")
    paths = _Paths(study, instance_oid)
    returns = conn.execute(select(db.inputs).where(db.inputs.c.usable.is_(True), db.inputs.c.return_number.is_not(None))
                           .order_by(db.inputs.c.site, db.inputs.c.subject, db.inputs.c.return_number)).mappings().all()
    sites = sorted({r["site"] for r in returns})
    admin = etree.Element(o.odm("AdminData"))
    for site in sites:
        user = _el(admin, "User", {"OID": _user(site), "UserType": "Other"})
        _el(user, "DisplayName", text=f"Staff of site {site or '(none)'}")
        _el(user, "LocationRef", {"LocationOID": _location(site)})
    first_day = min((r["received"][:10] for r in returns), default="2000-01-01")
    for site in sites:
        loc = _el(admin, "Location", {"OID": _location(site), "Name": f"Site {site or '(none)'}", "LocationType": "Site"})
        _el(loc, "MetaDataVersionRef", {"StudyOID": study.id, "MetaDataVersionOID": f"MDV.{study.form_version}", "EffectiveDate": first_day})
    if sites:
        root.append(admin)
    clinical = _el(root, "ClinicalData", {"StudyOID": study.id, "MetaDataVersionOID": f"MDV.{study.form_version}"})
    queries = conn.execute(select(db.queries).order_by(db.queries.c.id)).mappings().all()
    for ret in returns:
        if ret["return_number"] == 1:
            rows = conn.execute(select(db.item_values).where(db.item_values.c.input_id == ret["id"]).order_by(db.item_values.c.path)).mappings().all()
            changes: list[tuple[str, Optional[str], Optional[str], str, str]] = [
                (r["path"], None, r["value"], r["sheet"], r["cell"]) for r in rows]
        else:
            rows = conn.execute(select(db.value_changes).where(db.value_changes.c.input_id == ret["id"]).order_by(db.value_changes.c.path)).mappings().all()
            changes = [(r["path"], r["old_value"], r["new_value"], r["sheet"], r["cell"]) for r in rows]
        mine = {q["id"]: q for q in queries if q["last_input_id"] == ret["id"]}
        _transaction(clinical, paths, ret, changes, list(mine.values()))
    return serialise(root)


def _transaction(clinical: etree._Element, paths: _Paths, ret: Any, changes: list[tuple[str, Optional[str], Optional[str], str, str]],
                 queries: list[Any]) -> None:
    subject = _el(clinical, "SubjectData", {"SubjectKey": ret["subject"] or "(none)",
                                            "TransactionType": "Insert" if ret["return_number"] == 1 else "Update"})
    _el(subject, "SiteRef", {"LocationOID": _location(ret["site"])})
    events: dict[str, etree._Element] = {}
    forms: dict[tuple[str, str], etree._Element] = {}
    groups: dict[tuple[str, str, Optional[int]], etree._Element] = {}
    for path, old, new, sheet, cell in changes:
        place = paths.place(path)
        if place is None:
            continue
        event_oid, form_oid, group_oid, repeat, oid, item = place
        event = events.get(event_oid)
        if event is None:
            se_oid, _, se_repeat = event_oid.partition("|")
            event = events[event_oid] = _el(subject, "StudyEventData", {"StudyEventOID": se_oid,
                                                                        **({"StudyEventRepeatKey": se_repeat} if se_repeat else {}),
                                                                        "TransactionType": "Upsert"})
        form = forms.get((event_oid, form_oid))
        if form is None:
            form = forms[(event_oid, form_oid)] = _el(event, "FormData", {"FormOID": form_oid, "TransactionType": "Upsert"})
        group = groups.get((event_oid, form_oid, repeat))
        if group is None:
            attrs = {"ItemGroupOID": group_oid, "TransactionType": "Upsert"}
            if repeat is not None:
                attrs["ItemGroupRepeatKey"] = str(repeat)
            group = groups[(event_oid, form_oid, repeat)] = _el(form, "ItemGroupData", attrs)
        value = json.loads(new) if new is not None else None
        kind = "Insert" if old is None and ret["return_number"] == 1 else ("Remove" if new is None else ("Insert" if old is None else "Update"))
        attrs = {"ItemOID": oid, "TransactionType": kind}
        if value is not None:
            attrs["Value"] = _value(item, value)
        data = _el(group, "ItemData", attrs)
        audit = _el(data, "AuditRecord")
        _el(audit, "UserRef", {"UserOID": _user(ret["site"])})
        _el(audit, "LocationRef", {"LocationOID": _location(ret["site"])})
        _el(audit, "DateTimeStamp", text=_odm_time(ret["received"]))
        where = f"{ret['file']}" + (f", sheet '{sheet}', cell {cell}" if sheet and cell else "")
        reason = (f"Return {ret['return_number']} ({where})" if old is None and ret["return_number"] == 1
                  else f"Changed in return {ret['return_number']} from {json.loads(old) if old is not None else 'blank'!r} ({where})")
        _el(audit, "ReasonForChange", text=reason)
        _el(audit, "SourceID", text=ret["sha256"])
        _query_notes(data, [q for q in queries if _query_path(q) == path])
    placed = {_query_path(q) for q in queries} & {c[0] for c in changes if paths.place(c[0]) is not None}
    rest = [q for q in queries if _query_path(q) not in placed]
    if rest:  # queries about a value this return did not change, or about no single value: on the subject
        holder = etree.Element("holder")
        _query_notes(holder, rest)
        at = list(subject).index(subject.find(o.odm("SiteRef"))) + 1
        for offset, note in enumerate(list(holder)):
            subject.insert(at + offset, note)


def _query_notes(parent: etree._Element, queries: list[Any]) -> None:
    for n, q in enumerate(queries, 1):
        note = _el(parent, "Annotation", {"SeqNum": str(n)})
        _el(note, "Comment", {"SponsorOrSite": "Sponsor"}, f"Query {q['id']} ({q['status']}, {q['severity']}) {q['rule']}: {q['message']}")


def _query_path(q: Any) -> str:
    if q["log_row"] is not None:
        return str(FieldPath.log(q["visit"] or q["form"], q["log_row"] - 1, q["field"]))
    return str(FieldPath.visit(q["visit"], q["form"], q["field"]))
