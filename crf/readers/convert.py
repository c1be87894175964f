"""Turn what a site typed into a cell into the JSON value the schema describes.

Lenient where the meaning is certain (numbers stored as text, decimal commas, stray spaces, code
labels instead of codes, Excel date serials in either date system), strict where it is not: an
ambiguous date such as 03/04/2025 is reported, never guessed. A value that cannot be converted
gives a ValueIssue and stays out of the record, so the schema does not report it a second time.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any, Optional, Union

from ..contract import MULTI_SPLIT
from ..model import Item, ItemKind

_EPOCH_1900 = dt.date(1899, 12, 30)  # serial 1 = 1900-01-01 once Excel's phantom 1900-02-29 is skipped
_EPOCH_1904 = dt.date(1904, 1, 1)
_MAX_SERIAL = 2958465  # 9999-12-31
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_MONTHS.update({name: i for i, name in enumerate(
    ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"), start=1)})
_MONTHS["sept"] = 9
_UNKNOWN = {"un", "unk", "uk", "xx", "x", "--", "nk"}

_NUMBER = re.compile(r"^[+-]?(?:\d+(?:[.,]\d+)?|[.,]\d+)$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:[ '\u202f]\d{3})+(?:[.,]\d+)?$")
_ISO = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
_NUMERIC_DMY = re.compile(r"^(\d{1,2})([-/.])(\d{1,2})\2(\d{2}|\d{4})$")
_TEXT_MONTH_DMY = re.compile(r"^(\d{1,2})[-/ .]?([a-z]{3,9})\.?[-/ .,]*(\d{4})$")
_TEXT_MONTH_MDY = re.compile(r"^([a-z]{3,9})\.?[-/ .]*(\d{1,2})(?:st|nd|rd|th)?,?[-/ .]+(\d{4})$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_PARTIAL = re.compile(r"^(\d{4})(?:[-/.](\d{1,2}|[a-z]{2,3}))?(?:[-/.](\d{1,2}|[a-z]{2,3}))?$")
_PARTIAL_DMY = re.compile(r"^([a-z]{2,3}|\d{1,2})[-/ .]([a-z]{2,9}|\d{1,2})[-/ .](\d{4})$")
_MONTH_YEAR = re.compile(r"^([a-z]{3,9}|\d{1,2})[-/ .](\d{4})$")
_TIME = re.compile(r"^(\d{1,2})[:.h](\d{2})(?::(\d{2})(?:\.\d+)?)?\s*(am|pm|a\.m\.|p\.m\.)?$")
_TIME_COMPACT = re.compile(r"^(\d{2})(\d{2})$")
_TIME_AMPM = re.compile(r"^(\d{1,2})\s*(am|pm)$")


@dataclass(frozen=True)
class ValueIssue:
    """A cell whose content could not be turned into a value of its item."""

    rule: str  # NOT-A-NUMBER, DATE-AMBIGUOUS...
    raw: Any
    problem: str  # "'seventy' is not a number"
    fix: str  # "Enter the weight in kg, e.g. 71.5."
    expected: str


Converted = Union[Any, ValueIssue]


# Characters that must not travel from an input into a report or a terminal: C0/C1 controls except tab and
# line feed (ESC would drive the terminal, CR rewrite the line), DEL, and lone UTF-16 surrogates (not encodable).
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]|\r\n?")


def _visible(match: "re.Match[str]") -> str:
    ch = match[0]
    if ch[0] == "\r":
        return "\n"  # a line end as Windows or an old Mac writes it
    return f"\\u{ord(ch):04x}" if ord(ch) > 0xFF else f"\\x{ord(ch):02x}"


def safe_text(value: str) -> str:
    """`value` with each unsafe character written out visibly ('\\x1b', '\\udfff'): what was sent stays readable, and
    every report writer and terminal gets text it can carry. Applied once, where values enter from an input."""
    if _UNSAFE.search(value) is None:
        return value
    return _UNSAFE.sub(_visible, value)


def safe_value(value: Any) -> Any:
    """safe_text through a JSON value (strings and keys of objects and lists)."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, list):
        return [safe_value(v) for v in value]
    if isinstance(value, dict):
        return {safe_text(k) if isinstance(k, str) else k: safe_value(v) for k, v in value.items()}
    return value


def clean_text(value: str) -> str:
    """Strip stray spaces, including the non-breaking ones pasted from other programs."""
    return value.replace("\u00a0", " ").replace("\u202f", " ").strip()


def excel_serial_to_date(serial: float, date1904: bool) -> Optional[dt.date]:
    if not math.isfinite(serial) or serial < 1 or serial > _MAX_SERIAL:
        return None
    whole = int(serial)
    if date1904:
        return _EPOCH_1904 + dt.timedelta(days=whole)
    if whole < 60:  # before Excel's phantom 1900-02-29
        return dt.date(1899, 12, 31) + dt.timedelta(days=whole)
    if whole == 60:
        return None
    return _EPOCH_1900 + dt.timedelta(days=whole)


def convert(item: Item, raw: Any, date1904: bool = False) -> Converted:
    """The JSON value of `raw` for `item`, None when blank, or a ValueIssue."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = clean_text(safe_text(raw))
        if raw == "":
            return None
    elif raw.__class__ is float and not math.isfinite(raw):  # <v>1e309</v>: no JSON report may carry Infinity or NaN
        shown = "NaN" if raw != raw else "Infinity" if raw > 0 else "-Infinity"
        return ValueIssue("NOT-A-NUMBER", shown, f"'{shown}' is not a number (the cell holds a number too large for any program)",
                          "Type the value again", "a number")
    kind = item.kind
    if kind is ItemKind.INTEGER:
        return _to_number(item, raw, integer=True)
    if kind is ItemKind.DECIMAL:
        return _to_number(item, raw, integer=False)
    if kind is ItemKind.DATE:
        return _to_date(item, raw, date1904)
    if kind is ItemKind.PARTIAL_DATE:
        return _to_partial_date(item, raw, date1904)
    if kind is ItemKind.TIME:
        return _to_time(item, raw)
    if kind is ItemKind.CHOICE:
        return _to_code(item, raw)
    if kind is ItemKind.MULTI_CHOICE:
        return _to_codes(item, raw)
    return _to_text(raw)


def _example(item: Item) -> str:
    low, high = (item.soft or item.hard).low, (item.soft or item.hard).high
    if low is not None and high is not None:
        value = (low + high) / 2
    elif low is not None:
        value = low + 1
    elif high is not None:
        value = high / 2
    else:
        value = 12
    if item.kind is ItemKind.INTEGER:
        return str(int(round(value)))
    return f"{value:.{max(item.decimals, 1)}f}"


def _number_fix(item: Item, integer: bool) -> str:
    what = item.question[0].lower() + item.question[1:] if item.question else "value"
    unit = f" in {item.unit}" if item.unit else ""
    kind = "a whole number" if integer else "the number"
    return f"Enter {kind}{unit} for {what}, e.g. {_example(item)}."


def _to_number(item: Item, raw: Any, integer: bool) -> Converted:
    expected = "a whole number" if integer else "a number"
    value: Optional[float] = None
    if isinstance(raw, bool) or isinstance(raw, (dt.date, dt.time, dt.timedelta)):
        value = None
    elif isinstance(raw, (int, float)):
        value = float(raw)
    elif isinstance(raw, str):
        text = raw
        if item.unit and text.lower().endswith(item.unit.lower()):
            text = text[: -len(item.unit)].strip()  # "71.5 kg" where the unit is kg
        if _THOUSANDS.match(text):
            text = re.sub(r"[ '\u202f]", "", text)
        if _NUMBER.match(text):
            value = float(text.replace(",", "."))
    if value is None or not math.isfinite(value):
        shown = _show(raw)
        return ValueIssue("NOT-A-NUMBER", _plain(raw), f"{shown} is not a number", _number_fix(item, integer), expected)
    if integer:
        if not value.is_integer():
            return ValueIssue("NOT-AN-INTEGER", _plain(raw), f"{_show(raw)} is not a whole number",
                              _number_fix(item, integer), expected)
        return int(value)
    return int(value) if value.is_integer() and isinstance(raw, int) else value


def _date_fix(partial: bool = False) -> str:
    if partial:
        return "Enter the date as YYYY-MM-DD, e.g. 2025-03-14; if the day or month is unknown, enter YYYY-MM or YYYY."
    return "Enter the date as YYYY-MM-DD, e.g. 2025-03-14 (or choose it from the calendar)."


def _make_date(raw: Any, year: int, month: int, day: int, partial: bool = False) -> Converted:
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return ValueIssue("DATE-INVALID", _plain(raw), f"{_show(raw)} is not a real date (there is no day {day} in month {month} of {year})" if 1 <= month <= 12 else f"{_show(raw)} is not a real date (there is no month {month})",
                          _date_fix(partial), "a real calendar date")


def _month(token: str) -> Optional[int]:
    return _MONTHS.get(token.lower())


def _to_date(item: Item, raw: Any, date1904: bool, partial: bool = False) -> Converted:
    if isinstance(raw, dt.datetime):
        return raw.date().isoformat()
    if isinstance(raw, dt.date):
        return raw.isoformat()
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        day = excel_serial_to_date(float(raw), date1904)
        if day is None:
            return ValueIssue("DATE-INVALID", _plain(raw), f"{_show(raw)} is not a date", _date_fix(partial), "a date")
        return day.isoformat()
    if not isinstance(raw, str):
        return ValueIssue("DATE-FORMAT", _plain(raw), f"{_show(raw)} is not a date", _date_fix(partial), "a date (YYYY-MM-DD)")
    text = raw.lower()
    m = _ISO.match(text) or _COMPACT.match(text)
    if m:
        return _make_date(raw, int(m[1]), int(m[2]), int(m[3]), partial)
    m = _NUMERIC_DMY.match(text)
    if m:
        a, b, year = int(m[1]), int(m[3]), m[4]
        if len(year) == 2:
            return ValueIssue("DATE-AMBIGUOUS", raw, f"{_show(raw)} has a two-digit year", _date_fix(partial), "a four-digit year")
        if a > 12 and b <= 12:
            return _make_date(raw, int(year), b, a, partial)  # day first: 25/03/2025
        if b > 12 and a <= 12:
            return _make_date(raw, int(year), a, b, partial)  # month first: 03/25/2025
        if a == b:
            return _make_date(raw, int(year), a, b, partial)
        if a > 12 and b > 12:
            return ValueIssue("DATE-INVALID", raw, f"{_show(raw)} is not a real date", _date_fix(partial), "a real calendar date")
        return ValueIssue(
            "DATE-AMBIGUOUS", raw,
            f"{_show(raw)} is ambiguous: it may be {dt.date(int(year), b, a):%d %B %Y} or {dt.date(int(year), a, b):%d %B %Y}"
            if _valid(int(year), b, a) and _valid(int(year), a, b) else f"{_show(raw)} is ambiguous (day and month order unknown)",
            _date_fix(partial), "an unambiguous date (YYYY-MM-DD)")
    m = _TEXT_MONTH_DMY.match(text)
    if m and _month(m[2]):
        return _make_date(raw, int(m[3]), _month(m[2]) or 0, int(m[1]), partial)
    m = _TEXT_MONTH_MDY.match(text)
    if m and _month(m[1]):
        return _make_date(raw, int(m[3]), _month(m[1]) or 0, int(m[2]), partial)
    return ValueIssue("DATE-FORMAT", raw, f"{_show(raw)} is not a date in a form we can read", _date_fix(partial), "a date (YYYY-MM-DD)")


def _valid(year: int, month: int, day: int) -> bool:
    try:
        dt.date(year, month, day)
        return True
    except ValueError:
        return False


def _to_partial_date(item: Item, raw: Any, date1904: bool) -> Converted:
    if not isinstance(raw, str):
        if isinstance(raw, (int, float)) and not isinstance(raw, bool) and float(raw).is_integer() and 1900 <= raw <= 2100:
            return str(int(raw))  # a year typed into a number-formatted cell
        return _to_date(item, raw, date1904, partial=True)
    text = raw.lower()
    if re.fullmatch(r"\d{4}", text):
        return text
    m = _PARTIAL.match(text)
    if m and (m[2] is None or not m[2].isdigit() or m[3] is None or not m[3].isdigit()):
        year, month, day = m[1], m[2], m[3]
        if month is None or month in _UNKNOWN:
            if day is not None and day not in _UNKNOWN:
                return ValueIssue("DATE-FORMAT", raw, f"{_show(raw)} gives a day without a month", _date_fix(True), "YYYY, YYYY-MM or YYYY-MM-DD")
            return year
        mon = int(month) if month.isdigit() else _month(month)
        if not mon or not 1 <= mon <= 12:
            return ValueIssue("DATE-INVALID", raw, f"{_show(raw)} is not a real month", _date_fix(True), "YYYY, YYYY-MM or YYYY-MM-DD")
        if day is None or day in _UNKNOWN:
            return f"{year}-{mon:02d}"
    m = _PARTIAL_DMY.match(text)
    if m and (m[1] in _UNKNOWN or m[2] in _UNKNOWN):
        day, month, year = m[1], m[2], m[3]
        if month in _UNKNOWN:
            return year
        mon = int(month) if month.isdigit() else _month(month)
        if not mon or not 1 <= mon <= 12:
            return ValueIssue("DATE-INVALID", raw, f"{_show(raw)} is not a real month", _date_fix(True), "YYYY, YYYY-MM or YYYY-MM-DD")
        return f"{year}-{mon:02d}"
    m = _MONTH_YEAR.match(text)
    if m:
        mon = int(m[1]) if m[1].isdigit() else _month(m[1])
        if mon and 1 <= mon <= 12:
            return f"{m[2]}-{mon:02d}"
    return _to_date(item, raw, date1904, partial=True)


def _time_fix() -> str:
    return "Enter the time on the 24-hour clock as HH:MM, e.g. 14:30."


def _to_time(item: Item, raw: Any) -> Converted:
    if isinstance(raw, dt.datetime):
        return f"{raw.hour:02d}:{raw.minute:02d}"
    if isinstance(raw, dt.time):
        return f"{raw.hour:02d}:{raw.minute:02d}"
    if isinstance(raw, dt.timedelta):
        minutes = round(raw.total_seconds() / 60)
        if 0 <= minutes < 24 * 60:
            return f"{minutes // 60:02d}:{minutes % 60:02d}"
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        fraction = float(raw) % 1 if float(raw) >= 1 else float(raw)
        if 0 <= float(raw) < 1 or float(raw) >= 1 and fraction:
            minutes = round(fraction * 24 * 60) % (24 * 60)
            return f"{minutes // 60:02d}:{minutes % 60:02d}"
        return ValueIssue("TIME-INVALID", _plain(raw), f"{_show(raw)} is not a time", _time_fix(), "HH:MM")
    if not isinstance(raw, str):
        return ValueIssue("TIME-INVALID", _plain(raw), f"{_show(raw)} is not a time", _time_fix(), "HH:MM")
    text = raw.lower()
    m = _TIME.match(text)
    hour = minute = None
    suffix = None
    if m:
        hour, minute, suffix = int(m[1]), int(m[2]), m[4]
    elif _TIME_COMPACT.match(text):
        hour, minute = int(text[:2]), int(text[2:])
    elif m2 := _TIME_AMPM.match(text):
        hour, minute, suffix = int(m2[1]), 0, m2[2]
    if hour is None or minute is None:
        return ValueIssue("TIME-INVALID", raw, f"{_show(raw)} is not a time", _time_fix(), "HH:MM")
    if suffix:
        if not 1 <= hour <= 12:
            return ValueIssue("TIME-INVALID", raw, f"{_show(raw)} is not a real time", _time_fix(), "HH:MM")
        hour = hour % 12 + (12 if suffix.startswith("p") else 0)
    if hour > 23 or minute > 59:
        return ValueIssue("TIME-INVALID", raw, f"{_show(raw)} is not a real time", _time_fix(), "HH:MM (00:00 to 23:59)")
    return f"{hour:02d}:{minute:02d}"


def _code_of(item: Item, raw: Any) -> Any:
    """The code meant by `raw`: the code itself, its label, or a number typed as text; else raw."""
    codelist = item.codelist
    if codelist is None:
        return raw
    values = codelist.values
    if item.value_type in ("integer", "number"):
        number = raw
        if isinstance(raw, str):
            text = raw.replace(",", ".")
            if _NUMBER.match(text):
                number = float(text)
            else:
                for c in codelist.codes:
                    if c.label.lower() == raw.lower():
                        return c.code
                return raw
        if isinstance(number, (int, float)) and not isinstance(number, bool):
            for code in values:
                if float(code) == float(number):
                    return code
            return int(number) if item.value_type == "integer" and float(number).is_integer() else number
        return raw
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raw = str(int(raw)) if float(raw).is_integer() else str(raw)
    if not isinstance(raw, str):
        return raw
    if raw in values:
        return raw
    low = raw.lower()
    for c in codelist.codes:
        if str(c.code).lower() == low or c.label.lower() == low:
            return c.code
    # common short forms of the not-done / unknown codes, only where the list has them
    aliases = {"nd": "NOT DONE", "n/d": "NOT DONE", "not done": "NOT DONE", "unk": "UNKNOWN", "unknown": "UNKNOWN",
               "u": "U", "n/a": "NA", "na": "NA", "not applicable": "NA", "yes": "Y", "no": "N"}
    alias = aliases.get(low)
    if alias in values:
        return alias
    return raw


def _to_code(item: Item, raw: Any) -> Converted:
    if isinstance(raw, (dt.date, dt.time, dt.timedelta)):
        return _to_text(raw)
    return _code_of(item, raw)


def _to_codes(item: Item, raw: Any) -> Converted:
    if isinstance(raw, str):
        parts = [clean_text(p) for p in MULTI_SPLIT.split(raw)]
    else:
        parts = [raw]
    codes: list[Any] = []
    for part in parts:
        if part == "" or part is None:
            continue
        code = _code_of(item, part)
        if code not in codes:
            codes.append(code)
    return codes or None


def _to_text(raw: Any) -> str:
    if isinstance(raw, bool):
        return "TRUE" if raw else "FALSE"
    if isinstance(raw, float):
        return str(int(raw)) if raw.is_integer() else repr(raw)
    if isinstance(raw, dt.datetime):
        return raw.isoformat(sep=" ")
    if isinstance(raw, dt.date):
        return raw.isoformat()
    if isinstance(raw, dt.time):
        return f"{raw.hour:02d}:{raw.minute:02d}"
    return str(raw)


def _plain(raw: Any) -> Any:
    """A JSON-friendly copy of a raw cell value for reports."""
    if isinstance(raw, (dt.date, dt.time, dt.datetime)):
        return raw.isoformat()
    if isinstance(raw, dt.timedelta):
        return str(raw)
    return raw


def _show(raw: Any, limit: int = 60) -> str:
    text = _to_text(raw) if not isinstance(raw, str) else raw
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"'{text}'"


show_value = _show
