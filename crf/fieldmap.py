"""Where every input of a subject lives: the contract between the workbook writer and the readers.

Each input cell of a subject workbook has a workbook-level defined name built here, and a row in
the hidden `_meta` sheet's field map (docs/workbook-format.md). A field's *path* is its JSON pointer
in the subject document (crf.subject): `/visits/V1/VS_PRE/WEIGHT`, `/logs/AE/0/AETERM`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Optional

from .model import REPEAT_MARK, Item, Study, visit_key

_NAME = re.compile(r"^(?:F_(?P<visit>[A-Z0-9]+)(?:_(?P<repeat>[1-9][0-9]*))?__(?P<form>[A-Z0-9_]+?)__(?P<item>[A-Z0-9_]+)"
                   r"|L_(?P<log>[A-Z0-9]+)__R(?P<row>\d{3})__(?P<litem>[A-Z0-9_]+))$")


@dataclass(frozen=True, slots=True)
class FieldPath:
    """Where a value lives in a subject document (crf.subject), as its JSON pointer: `/visits/V1/VS_PRE/WEIGHT`
    (visit key, form instance, item) or `/logs/AE/0/AETERM` (log id, row counted from 0, item). Findings, the
    readers' locations and issues, the derived values and the study store are keyed by `str(path)`."""

    container: str  # visit key (V1, ATT#2: crf.model.visit_key) or log id
    form: str  # form instance name; "" in a log
    item: str
    row: Optional[int] = None  # a log's row, from 0; None in a visit

    @classmethod
    def visit(cls, key: str, form: str, item: str) -> FieldPath:
        return cls(key, form, item)

    @classmethod
    def log(cls, log_id: str, row: int, item: str) -> FieldPath:
        return cls(log_id, "", item, row)

    @property
    def is_log(self) -> bool:
        return self.row is not None

    def __str__(self) -> str:
        if self.row is None:
            return f"/visits/{self.container}/{self.form}/{self.item}"
        return f"/logs/{self.container}/{self.row}/{self.item}"

    @classmethod
    def parse(cls, path: str) -> Optional[FieldPath]:
        """The FieldPath written as `path`, or None when it is not a field's path (a row that is not a number)."""
        parts = path.strip("/").split("/")
        if len(parts) != 4:
            return None
        if parts[0] == "visits":
            return cls(parts[1], parts[2], parts[3])
        if parts[0] == "logs" and parts[2].isascii() and parts[2].isdigit():
            return cls(parts[1], "", parts[3], int(parts[2]))
        return None


@dataclass(frozen=True)
class Field:
    """One input of a subject: a visit item, or one cell of a log row (row counts from 0)."""

    container: str  # visit key (V1, ATT#2: crf.model.visit_key) or log id
    form: str  # form instance name (visits) or log form id (logs)
    item: Item
    row: Optional[int] = None

    @property
    def is_log(self) -> bool:
        return self.row is not None

    @property
    def path(self) -> str:
        return str(FieldPath.visit(self.container, self.form, self.item.id) if self.row is None else
                   FieldPath.log(self.container, self.row, self.item.id))

    @property
    def defined_name(self) -> str:
        return defined_name(self.container, self.form, self.item.id, self.row)


def defined_name(container: str, form: str, item_id: str, row: Optional[int] = None) -> str:
    """Excel-safe name: letters, digits and underscores, never mistakable for a cell reference.

    A repeating visit's instance ATT#2 becomes F_ATT_2__... (visit ids have no underscore).
    """
    if row is None:
        return f"F_{container.replace(REPEAT_MARK, '_')}__{form}__{item_id}"
    return f"L_{container}__R{row + 1:03d}__{item_id}"


def parse_defined_name(name: str) -> Optional[tuple[str, str, str, Optional[int]]]:
    """(container, form or '', item id, row) from a defined name, or None when it is not one of ours."""
    m = _NAME.match(name)
    if not m:
        return None
    if m["visit"]:
        return visit_key(m["visit"], int(m["repeat"]) if m["repeat"] else None), m["form"], m["item"], None
    return m["log"], "", m["litem"], int(m["row"]) - 1


def iter_fields(study: Study, inputs_only: bool = True) -> Iterator[Field]:
    """Every field of one subject workbook in schedule order: visits (each blank instance a new workbook
    offers of a repeating one), then log rows."""
    for visit in study.visits:
        for key in visit.workbook_keys:
            for inst in visit.forms:
                for item in inst.items:
                    if item.is_input or not inputs_only:
                        yield Field(key, inst.name, item)
    for log in study.logs:
        for row in range(log.rows):
            for item in log.form.items:
                if item.is_input or not inputs_only:
                    yield Field(log.id, log.form.id, item, row)
