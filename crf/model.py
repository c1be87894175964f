"""The study model: an immutable, typed view of a study definition.

Renderers (PDF, Excel), readers and checks see only these objects, never raw JSON.
The loader (`crf.loader`) builds them and guarantees their invariants: item ids unique
within a form, soft limits inside hard limits, code lists well formed, visit forms existing.
"""
from __future__ import annotations

import enum
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Union

from .plugin import NO_FUNCTIONS, StudyFunctions

Scalar = Union[str, int, float]


class ItemKind(str, enum.Enum):
    TEXT = "text"
    INTEGER = "integer"
    DECIMAL = "decimal"
    DATE = "date"
    PARTIAL_DATE = "partial-date"
    TIME = "time"
    CHOICE = "choice"
    MULTI_CHOICE = "multi-choice"


@dataclass(frozen=True)
class Limits:
    """A numeric range; any bound may be absent."""

    minimum: Optional[float] = None
    maximum: Optional[float] = None
    exclusive_minimum: Optional[float] = None
    exclusive_maximum: Optional[float] = None

    @property
    def is_empty(self) -> bool:
        return all(b is None for b in (self.minimum, self.maximum, self.exclusive_minimum, self.exclusive_maximum))

    @property
    def low(self) -> Optional[float]:
        return self.minimum if self.minimum is not None else self.exclusive_minimum

    @property
    def high(self) -> Optional[float]:
        return self.maximum if self.maximum is not None else self.exclusive_maximum

    def contains(self, value: float) -> bool:
        if self.minimum is not None and value < self.minimum:
            return False
        if self.exclusive_minimum is not None and value <= self.exclusive_minimum:
            return False
        if self.maximum is not None and value > self.maximum:
            return False
        if self.exclusive_maximum is not None and value >= self.exclusive_maximum:
            return False
        return True

    def describe(self) -> str:
        parts = []
        if self.minimum is not None:
            parts.append(f">= {_num(self.minimum)}")
        if self.exclusive_minimum is not None:
            parts.append(f"> {_num(self.exclusive_minimum)}")
        if self.maximum is not None:
            parts.append(f"<= {_num(self.maximum)}")
        if self.exclusive_maximum is not None:
            parts.append(f"< {_num(self.exclusive_maximum)}")
        return " and ".join(parts)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class Code:
    code: Scalar
    label: str


@dataclass(frozen=True)
class CodeList:
    id: str
    codes: tuple[Code, ...]
    c_code: Optional[str] = None

    @functools.cached_property
    def values(self) -> tuple[Scalar, ...]:
        # cached: readers look codes up for every cell of every returned workbook
        return tuple(c.code for c in self.codes)

    def label(self, code: Scalar) -> str:
        for c in self.codes:
            if c.code == code:
                return c.label
        return str(code)


@dataclass(frozen=True)
class SdtmTarget:
    """Where an item goes in SDTM; `domain is None` means NOT SUBMITTED."""

    domain: Optional[str] = None
    variable: Optional[str] = None
    where: Optional[str] = None

    @property
    def submitted(self) -> bool:
        return self.domain is not None

    def annotation(self) -> str:
        if not self.submitted:
            return "NOT SUBMITTED"
        text = f"{self.variable}"
        if self.where:
            text += f" where {self.where}"
        return text


@dataclass(frozen=True)
class Condition:
    """The item is required (and shown) when `item` holds one of `values`."""

    item: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Item:
    id: str
    question: str
    kind: ItemKind
    value_type: str  # JSON type of one value: string, integer or number
    sdtm: SdtmTarget
    pointer: str  # "forms/vital-signs.json#/properties/SYSBP", for messages
    required: bool = False
    condition: Optional[Condition] = None
    required_with: tuple[str, ...] = ()  # dependentRequired: required once any of these is filled
    help: Optional[str] = None
    unit: Optional[str] = None
    decimals: int = 0
    hard: Limits = field(default_factory=Limits)
    soft: Optional[Limits] = None
    soft_message: Optional[str] = None
    codelist: Optional[CodeList] = None
    max_length: Optional[int] = None
    pattern: Optional[str] = None
    min_items: Optional[int] = None
    derived: Optional[str] = None
    derived_label: Optional[str] = None  # x-derived-label: what the site reads instead of the expression
    reference_range: Optional[Limits] = None  # the central laboratory's range, used when the site gives none
    local_range: Optional[tuple[str, str]] = None  # items holding the site laboratory's low and high limit
    assumption: Optional[str] = None
    fixed: Optional[Any] = None  # value fixed for this form instance

    @property
    def is_input(self) -> bool:
        """Entered by the site (not derived, not fixed)."""
        return self.derived is None and self.fixed is None

    @property
    def is_number(self) -> bool:
        return self.kind in (ItemKind.INTEGER, ItemKind.DECIMAL)


@dataclass(frozen=True)
class FormRole:
    """What a form is for, declared in its schema (`x-role`), so that generic code (the synthetic generator)
    finds the consent, the pregnancy test, the infusion... by role, never by sniffing for item ids.

    `items` names the form's items by slot (`{"date": <item id>}`; a slot may list several), `codes` the
    codes that slots mean (`{"positive": "POSITIVE"}`), `tables` any data the role needs beyond them
    (kept as canonical JSON so that the model stays hashable). docs/study-definition.md lists the roles.
    """

    name: str
    items: tuple[tuple[str, Union[str, tuple[str, ...]]], ...] = ()
    codes: tuple[tuple[str, Any], ...] = ()
    tables_json: str = "{}"

    def item(self, slot: str) -> Optional[str]:
        found = dict(self.items).get(slot)
        return found if isinstance(found, str) else None

    def item_list(self, slot: str) -> tuple[str, ...]:
        found = dict(self.items).get(slot)
        return found if isinstance(found, tuple) else (found,) if isinstance(found, str) else ()

    def code(self, slot: str) -> Any:
        return dict(self.codes).get(slot)

    @functools.cached_property
    def tables(self) -> dict[str, Any]:
        return json.loads(self.tables_json)


@dataclass(frozen=True)
class Form:
    """A form (module) as written once in `forms/`, or as instantiated in a visit."""

    id: str
    title: str
    version: str
    items: tuple[Item, ...]
    source: str  # relative path of the form schema
    code: Optional[str] = None
    domain: Optional[str] = None
    description: Optional[str] = None
    role: Optional[FormRole] = None  # x-role: what the form is for

    def item(self, item_id: str) -> Item:
        for it in self.items:
            if it.id == item_id:
                return it
        raise KeyError(item_id)

    def has(self, item_id: str) -> bool:
        return any(it.id == item_id for it in self.items)


@dataclass(frozen=True)
class FormInstance:
    """One form as collected at one visit: `name` is its key in the visit CRF (VS_PRE)."""

    name: str
    title: str
    form: Form

    @property
    def items(self) -> tuple[Item, ...]:
        return self.form.items


@dataclass(frozen=True)
class Window:
    before: int
    after: int
    anchor: str = "day0"
    assumption: Optional[str] = None


REPEAT_MARK = "#"  # a repeating visit's instances are keyed ATT#1, ATT#2 ... in a subject document


def visit_key(visit_id: str, repeat: Optional[int] = None) -> str:
    """The key of one visit instance in a subject document: `V1`, or `ATT#2` for a repeating visit."""
    return visit_id if repeat is None else f"{visit_id}{REPEAT_MARK}{repeat}"


def split_visit_key(key: str) -> tuple[str, Optional[int]]:
    """`ATT#2` -> ("ATT", 2); `V1` -> ("V1", None); a malformed repeat number (`ATT#0`, `ATT#x`) -> (key, None)."""
    base, mark, number = key.partition(REPEAT_MARK)
    if not mark:
        return key, None
    if number.isdigit() and not number.startswith("0") and len(number) <= 4:
        return base, int(number)
    return key, None


@dataclass(frozen=True)
class RepeatLink:
    """A repeating visit's instance belongs to one row of a log: `form.item` holds that row's `log_item`."""

    form: str  # form instance of the visit (ATT)
    item: str  # its item naming the row (CESPID)
    log: str  # the log (CE)
    log_item: str  # the row's identifying item (CESPID)


@dataclass(frozen=True)
class Visit:
    id: str
    label: str
    kind: str  # screening, scheduled, unscheduled
    day: Optional[int]
    week: Optional[int]
    window: Window
    infusion: Optional[int]
    crf: str  # relative path of the visit CRF schema
    forms: tuple[FormInstance, ...]
    repeating: bool = False  # any number of instances per subject, keyed ID#1, ID#2 ...
    repeat_sheets: int = 0  # blank instances a new subject workbook offers (a sheet each)
    link: Optional[RepeatLink] = None  # the log row each instance belongs to

    @property
    def scheduled(self) -> bool:
        return self.day is not None

    def key(self, repeat: Optional[int] = None) -> str:
        return visit_key(self.id, repeat if self.repeating else None)

    @property
    def workbook_keys(self) -> tuple[str, ...]:
        """The instances a new workbook (and the PDF) offers: the visit itself, or ID#1..ID#n."""
        if not self.repeating:
            return (self.id,)
        return tuple(visit_key(self.id, n) for n in range(1, self.repeat_sheets + 1))

    def form(self, name: str) -> FormInstance:
        for f in self.forms:
            if f.name == name:
                return f
        raise KeyError(name)

    def has(self, name: str) -> bool:
        return any(f.name == name for f in self.forms)


@dataclass(frozen=True)
class Log:
    id: str
    label: str
    form: Form
    rows: int
    schema: str  # relative path of the log schema
    starts: Optional[str] = None


@dataclass(frozen=True)
class Dosing:
    drug: str
    dose_mg_per_kg: float
    vial_sizes_mg: tuple[float, ...]
    route: Optional[str] = None
    infusions: Optional[int] = None
    loading_infusions: int = 0
    min_interval_loading_days: Optional[int] = None
    min_interval_maintenance_days: Optional[int] = None
    last_infusion_max_day: Optional[int] = None
    weight_source: Optional[str] = None
    assumption: Optional[str] = None


@dataclass(frozen=True)
class FieldRef:
    """An item of a form, written FORM.ITEM in the study definition (e.g. SV.SVSTDAT)."""

    form: str
    item: str

    @classmethod
    def parse(cls, text: str) -> Optional["FieldRef"]:
        form, dot, item = text.partition(".")
        return cls(form, item) if dot and form and item and "." not in item else None

    def __str__(self) -> str:
        return f"{self.form}.{self.item}"


@dataclass(frozen=True)
class ScheduleConfig:
    """Where the schedule's dates are recorded (study.json `schedule`), parsed once by the loader.

    Day 0 is the date of the first infusion given: `infusion_date` on the `infusion_form` where
    `infusion_given` holds. Empty for a study without a schedule of infusions (imported from ODM or REDCap).
    """

    visit_date: Optional[FieldRef] = None  # the date of every visit
    infusion_form: str = ""
    infusion_given: str = "False"  # expression on the infusion form
    infusion_not_given: str = "False"
    infusion_status_item: str = ""  # the item that says whether it was given (where a missed infusion is reported)
    infusion_date: str = ""
    end_of_study_form: str = ""
    end_of_study_date: str = ""
    treatment_end_date: str = ""
    early_termination_visits: tuple[str, ...] = ()
    anchors: tuple[tuple[str, FieldRef], ...] = ()  # window anchor name -> the date it counts from

    def anchor(self, name: str) -> Optional[FieldRef]:
        return dict(self.anchors).get(name)


@dataclass(frozen=True)
class Assumption:
    where: str  # file#pointer or an id from study.json
    text: str


@dataclass(frozen=True)
class Study:
    id: str
    title: str
    protocol_version: str
    form_version: str
    dosing: Optional[Dosing]  # None: no dosing rule (a study imported from ODM or REDCap)
    visits: tuple[Visit, ...]
    logs: tuple[Log, ...]
    codelists: tuple[CodeList, ...]
    assumptions: tuple[Assumption, ...]
    folder: Path
    definition_hash: str  # SHA-256 over every file of the study definition
    registry_id: Optional[str] = None
    sponsor: Optional[str] = None
    form_definitions: tuple[Form, ...] = ()  # each form as written in forms/, before instance overrides
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    functions: StudyFunctions = NO_FUNCTIONS  # the study's own expression functions (study.json "functions")
    schemas: "SchemaSet" = field(default=None, compare=False, repr=False)  # type: ignore[assignment]  # set by the loader right after construction; never None once loaded

    def visit(self, visit_id: str) -> Visit:
        for v in self.visits:
            if v.id == visit_id:
                return v
        raise KeyError(visit_id)

    def visit_of(self, key: str) -> Optional[Visit]:
        """The visit of a subject document's visit key (`V1`, `ATT#2`); None for a key the study has not.

        A repeating visit is only ever keyed with its number, a visit that does not repeat never is.
        """
        base, repeat = split_visit_key(key)
        visit = self._visits_by_id.get(base)
        if visit is None or visit.repeating != (repeat is not None):
            return None
        return visit

    def visit_keys(self, keys: Iterable[str]) -> list[tuple[str, Visit]]:
        """(key, visit) for each known key among `keys`, in schedule order, repeats by number."""
        found = []
        for key in keys:
            visit = self.visit_of(key)
            if visit is not None:
                found.append((self._visit_order[visit.id], split_visit_key(key)[1] or 0, key, visit))
        found.sort(key=lambda t: (t[0], t[1]))
        return [(key, visit) for _, _, key, visit in found]

    @functools.cached_property
    def _visits_by_id(self) -> dict[str, Visit]:
        return {v.id: v for v in self.visits}

    @functools.cached_property
    def _visit_order(self) -> dict[str, int]:
        return {v.id: i for i, v in enumerate(self.visits)}

    def log(self, log_id: str) -> Log:
        for lg in self.logs:
            if lg.id == log_id:
                return lg
        raise KeyError(log_id)

    def forms(self) -> tuple[Form, ...]:
        """Every distinct form definition (as written, before instance overrides), in order of first use."""
        return self.form_definitions

    def item_count(self) -> int:
        return sum(len(i.items) for v in self.visits for i in v.forms) + sum(len(lg.form.items) for lg in self.logs)

    def iter_fields(self) -> Iterator[tuple[str, str, Item]]:
        """(visit or log id, form instance name, item) for every collected item."""
        for v in self.visits:
            for inst in v.forms:
                for it in inst.items:
                    yield v.id, inst.name, it
        for lg in self.logs:
            for it in lg.form.items:
                yield lg.id, lg.form.id, it


@dataclass(frozen=True)
class SchemaSet:
    """The raw JSON Schemas of a study with a `referencing` registry, for the validator."""

    registry: Any  # referencing.Registry
    base_uri: str
    visit_uris: dict[str, str]  # visit id -> URI of its visit CRF schema
    log_uris: dict[str, str]  # log id -> URI of its log schema
