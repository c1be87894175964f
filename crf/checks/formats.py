"""The string formats the study's schemas use, checked without importing jsonschema.

The compiled field checks (crf.checks.fastschema) test formats here; jsonschema, imported only when a form
fails its compiled check, gets the same functions through `jsonschema_checker()`, so both agree.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Callable

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)  # jsonschema's own "date" pattern
_PARTIAL_DATE = re.compile(r"^\d{4}(?:-(0[1-9]|1[0-2])(?:-\d{2})?)?$")
_TIME_HM = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$")


def _real_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def is_date(value: object) -> bool:
    return not isinstance(value, str) or bool(_DATE.fullmatch(value)) and _real_date(value)


def is_partial_date(value: object) -> bool:
    """YYYY, YYYY-MM or a real YYYY-MM-DD (a day of unknown month is not a partial date)."""
    if not isinstance(value, str):
        return True
    if not _PARTIAL_DATE.match(value):
        return False
    return len(value) != 10 or _real_date(value)


def is_time_hm(value: object) -> bool:
    return not isinstance(value, str) or bool(_TIME_HM.match(value))


FORMATS: dict[str, Callable[[object], bool]] = {"date": is_date, "partial-date": is_partial_date, "time-hm": is_time_hm}


class Formats:
    """`conforms(value, format)` as jsonschema's FormatChecker answers it: an unknown format always conforms."""

    def conforms(self, instance: object, format: str) -> bool:
        check = FORMATS.get(format)
        return check is None or check(instance)


def jsonschema_checker() -> Any:
    """A jsonschema FormatChecker running the same functions (imports jsonschema)."""
    from jsonschema import FormatChecker

    checker = FormatChecker(formats=())
    for name, check in FORMATS.items():
        checker.checks(name)(check)
    return checker
