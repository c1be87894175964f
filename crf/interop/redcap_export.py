"""The study model -> a REDCap project: data dictionary, events, instrument-event mapping, and the list of
what REDCap cannot express (docs/interop.md).

One instrument per form instance name (VS_PRE and VS_POST are two: REDCap shows an instrument once per event);
field names are `<instance>_<item>` in lower case, so that names are unique in the project as REDCap requires.
Running logs become instruments to be made repeating in REDCap's project setup (a dictionary cannot say so).
Everything the export cannot carry is listed in the report, never dropped silently.
"""
from __future__ import annotations

import ast
import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from ..model import Form, FormInstance, Item, ItemKind, Study
from .redcap import DISPLAY_HEADERS

RECORD_ID = "subject_id"
_REDCAP_CODE = re.compile(r"^-?[A-Za-z0-9_]+$")


@dataclass
class _Instrument:
    name: str  # REDCap instrument name
    title: str
    form: Form
    instance: Optional[FormInstance]
    prefix: str
    log: Optional[str] = None


@dataclass
class RedcapProject:
    dictionary: bytes
    events: bytes
    mapping: bytes
    not_expressible: list[str] = field(default_factory=list)
    instruments: dict[tuple[str, str], str] = field(default_factory=dict)  # (visit id, form instance name) -> instrument

    def report(self, study: Study) -> str:
        lines = [f"# What REDCap cannot express: {study.id}", "",
                 "The REDCap data dictionary, events and instrument-event mapping of this study leave these out or change them:", ""]
        lines += [f"- {line}" for line in self.not_expressible]
        return "\n".join(lines) + "\n"


def _csv(rows: list[list[str]], bom: bool = False) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(rows)
    return (b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode("utf-8")


def unique_event_name(label: str, taken: set[str]) -> str:
    """REDCap's own rule: the label in lower case with underscores, cut at 18 characters, plus the arm."""
    base = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:18].strip("_") or "event"
    candidate, n = f"{base}_arm_1", 1
    while candidate in taken:
        n += 1
        candidate = f"{base[:18 - len(str(n))]}{n}_arm_1"
    taken.add(candidate)
    return candidate


class _Exporter:
    def __init__(self, study: Study):
        self.study = study
        self.missing: list[str] = []
        self.instruments: list[_Instrument] = []
        self.instance_of: dict[tuple[str, str], _Instrument] = {}
        self.recoded: dict[str, dict[Any, str]] = {}  # code list id -> our code -> REDCap code

    def lost(self, text: str) -> None:
        if text not in self.missing:
            self.missing.append(text)

    def collect(self) -> None:
        taken: set[str] = set()
        for visit in self.study.visits:
            for inst in visit.forms:
                same = next((i for i in self.instruments if i.instance is not None and i.instance.name == inst.name and i.instance == inst), None)
                if same is None:
                    name = inst.name.lower()
                    if name in taken:
                        name = f"{name}_{visit.id.lower()}"
                        self.lost(f"instance {inst.name} differs between visits (omitted or fixed items); visit {visit.id} gets its own instrument {name}")
                    taken.add(name)
                    same = _Instrument(name, inst.title, inst.form, inst, name)
                    self.instruments.append(same)
                self.instance_of[(visit.id, inst.name)] = same
        for log in self.study.logs:
            name = f"log_{log.id.lower()}"
            taken.add(name)
            self.instruments.append(_Instrument(name, log.label, log.form, None, name, log=log.id))
        if self.study.logs:
            self.lost("running logs (" + ", ".join(lg.id for lg in self.study.logs) + ") are instruments log_*: make them repeating instruments in "
                      "REDCap's project setup (a data dictionary cannot say so); they are designated to the first event; "
                      "the number of rows offered on paper (x-rows) has no REDCap equivalent")

    def codes(self, item: Item) -> list[tuple[str, str]]:
        assert item.codelist is not None
        cl = item.codelist
        if all(_REDCAP_CODE.match(str(c.code)) for c in cl.codes):
            return [(str(c.code), c.label) for c in cl.codes]
        recode = self.recoded.setdefault(cl.id, {c.code: str(n) for n, c in enumerate(cl.codes, 1)})
        self.lost(f"code list {cl.id}: codes {', '.join(repr(c.code) for c in cl.codes if not _REDCAP_CODE.match(str(c.code)))} are not REDCap codes "
                  f"(letters, digits, _); the list is written with codes 1..{len(cl.codes)} in order: "
                  + ", ".join(f"{n} = {c.code}" for c, n in ((c, recode[c.code]) for c in cl.codes)))
        return [(recode[c.code], c.label) for c in cl.codes]

    def code_text(self, item: Item, value: Any) -> str:
        if item.codelist is not None and item.codelist.id in self.recoded:
            return self.recoded[item.codelist.id].get(value, str(value))
        return str(value)

    def rows(self) -> list[list[str]]:
        rows = [list(DISPLAY_HEADERS)]
        first = True
        for ins in self.instruments:
            if first:
                rows.append([RECORD_ID, ins.name, "", "text", "Subject number", "", "", "", "", "", "", "", "", "", "", "", "", ""])
                first = False
            items = ins.instance.items if ins.instance is not None else ins.form.items
            for n, it in enumerate(items):
                rows.append(self.field(ins, it, section=(ins.title if n == 0 else "")))
        return rows

    def field_name(self, ins: _Instrument, item_id: str) -> str:
        return f"{ins.prefix}_{item_id.lower()}"

    def field(self, ins: _Instrument, it: Item, section: str) -> list[str]:
        where = f"{ins.name}.{it.id}"
        ftype, choices, validation, minimum, maximum = "text", "", "", "", ""
        note = it.help or ""
        if it.unit:
            note = (note + " " if note else "") + f"Unit: {it.unit}"
        annotation = []
        if it.kind is ItemKind.CHOICE:
            pairs = self.codes(it)
            ftype = "radio" if len(pairs) <= 5 else "dropdown"
            choices = " | ".join(f"{c}, {label}" for c, label in pairs)
        elif it.kind is ItemKind.MULTI_CHOICE:
            ftype = "checkbox"
            choices = " | ".join(f"{c}, {label}" for c, label in self.codes(it))
            if it.min_items:
                self.lost(f"{where}: at least {it.min_items} ticks (minItems) has no REDCap equivalent")
        elif it.kind is ItemKind.TEXT:
            ftype = "notes" if (it.max_length or 0) > 255 else "text"
            if it.pattern:
                self.lost(f"{where}: the pattern {it.pattern} has no REDCap validation type")
            if it.max_length and ftype == "text":
                annotation.append(f"@CHARLIMIT={it.max_length}")
        elif it.kind is ItemKind.INTEGER:
            validation = "integer"
        elif it.kind is ItemKind.DECIMAL:
            validation = f"number_{it.decimals}dp" if 1 <= it.decimals <= 4 else "number"
        elif it.kind is ItemKind.DATE:
            validation = "date_ymd"
        elif it.kind is ItemKind.PARTIAL_DATE:
            self.lost(f"{where}: partial dates (YYYY or YYYY-MM) have no REDCap validation type; a text field")
        elif it.kind is ItemKind.TIME:
            validation = "time"
        if it.is_number:
            limits = it.soft or it.hard
            minimum = _num(limits.low) if limits.low is not None else ""
            maximum = _num(limits.high) if limits.high is not None else ""
            if it.soft and not it.hard.is_empty:
                self.lost(f"{where}: hard limits {it.hard.describe()} (REDCap's min/max are soft; the soft limits {it.soft.describe()} are written)")
            elif not it.hard.is_empty:
                self.lost(f"{where}: hard limits {it.hard.describe()} become REDCap's min/max, which only warn")
            if (it.soft and (it.soft.exclusive_minimum is not None or it.soft.exclusive_maximum is not None)) or \
               (not it.soft and (it.hard.exclusive_minimum is not None or it.hard.exclusive_maximum is not None)):
                self.lost(f"{where}: an exclusive limit (< or >) is written as REDCap's inclusive min/max")
            if it.soft_message:
                self.lost(f"{where}: the soft-limit message '{it.soft_message}' (REDCap shows its own)")
        if it.derived:
            calc = self.calculation(ins, it)
            if calc is not None:
                ftype, choices, validation, minimum, maximum = "calc", calc, "", "", ""
            else:
                annotation.append("@READONLY")
                note = (note + " " if note else "") + f"Derived: {it.derived}"
        if it.fixed is not None:
            annotation += [f'@DEFAULT="{self.code_text(it, it.fixed)}"', "@READONLY"]
        branching = ""
        if it.condition:
            trigger = ins.form.item(it.condition.item)  # the loader guarantees the same form
            branching = " or ".join(f"[{self.field_name(ins, trigger.id)}] = '{self.code_text(trigger, v)}'" for v in it.condition.values)
        if it.required_with:
            self.lost(f"{where}: required once {', '.join(it.required_with)} is filled (dependentRequired) has no REDCap equivalent")
        if it.reference_range:
            self.lost(f"{where}: the laboratory reference range {it.reference_range.describe()}")
        if it.sdtm.submitted:
            annotation.append(f"SDTM {it.sdtm.domain}.{it.sdtm.variable}" + (f" where {it.sdtm.where}" if it.sdtm.where else ""))
        required = "y" if it.required or it.condition else ""
        return [self.field_name(ins, it.id), ins.name, section, ftype, it.question, choices, note, validation, minimum, maximum,
                "", branching, required, "", "", "", "", " ".join(annotation)]

    def calculation(self, ins: _Instrument, it: Item) -> Optional[str]:
        """Our expression as a REDCap calculation, when it is arithmetic on numbers of the same instrument."""
        assert it.derived is not None
        try:
            tree = ast.parse(it.derived, mode="eval")
        except SyntaxError:
            tree = None

        def render(node: ast.AST) -> str:
            if isinstance(node, ast.Expression):
                return render(node.body)
            if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
                return _num(node.value)
            if isinstance(node, ast.Name) and ins.form.has(node.id):
                return f"[{self.field_name(ins, node.id)}]"
            if isinstance(node, ast.BinOp):
                op = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "^"}.get(type(node.op))
                if op:
                    return f"({render(node.left)}{op}{render(node.right)})"
            if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
                return f"-{render(node.operand)}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("round", "floor", "abs", "min", "max") and not node.keywords:
                name = {"floor": "rounddown"}.get(node.func.id, node.func.id)
                return f"{name}({','.join(render(a) for a in node.args)})"
            raise ValueError(ast.dump(node)[:60])

        try:
            if tree is None:
                raise ValueError("does not parse")
            return render(tree)
        except ValueError:
            self.lost(f"{ins.name}.{it.id}: the derivation {it.derived} is not arithmetic on fields of the same instrument; a read-only field with the formula in its note")
            return None

    def events(self) -> tuple[list[list[str]], list[list[str]]]:
        events = [["event_name", "arm_num", "day_offset", "offset_min", "offset_max", "unique_event_name", "custom_event_label"]]
        mapping = [["arm_num", "unique_event_name", "form"]]
        taken: set[str] = set()
        first_event = None
        for visit in self.study.visits:
            unique = unique_event_name(visit.label, taken)
            first_event = first_event or unique
            events.append([visit.label, "1", "" if visit.day is None else str(visit.day), str(visit.window.before), str(visit.window.after), unique, visit.id])
            if visit.day is None:
                self.lost(f"visit {visit.id} ({visit.kind}) has no protocol day; REDCap events are ordered by day offset (left empty)")
            if visit.window.anchor != "day0":
                self.lost(f"visit {visit.id}: the window counts from {visit.window.anchor}, REDCap's offsets from the first event")
            for inst in visit.forms:
                mapping.append(["1", unique, self.instance_of[(visit.id, inst.name)].name])
        for ins in self.instruments:
            if ins.log and first_event:
                mapping.append(["1", first_event, ins.name])
        return events, mapping


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def study_to_redcap(study: Study) -> RedcapProject:
    exporter = _Exporter(study)
    exporter.collect()
    rows = exporter.rows()
    events, mapping = exporter.events()
    exporter.lost("the edit checks and deviations of rules/ (REDCap's data quality rules are set up in the project, not in a dictionary)")
    if study.dosing is not None:
        exporter.lost(f"the dosing rule ({study.dosing.drug} {study.dosing.dose_mg_per_kg:g} mg/kg, vials {', '.join(_num(v) for v in study.dosing.vial_sizes_mg)} mg)")
    exporter.lost("SDTM targets are written in the Field Annotation as text ('SDTM VS.VSORRES where ...'); units in the Field Note ('Unit: mmHg')")
    exporter.lost("form versions, form codes and the study's protocol and form versions")
    return RedcapProject(_csv(rows, bom=True), _csv(events), _csv(mapping), exporter.missing,
                         {key: ins.name for key, ins in exporter.instance_of.items()})


def file_names(study: Study) -> dict[str, str]:
    base = study.id
    return {"dictionary": f"{base}-redcap-dictionary.csv", "events": f"{base}-redcap-events.csv",
            "mapping": f"{base}-redcap-instrument-events.csv", "report": f"{base}-redcap-not-expressible.md"}


