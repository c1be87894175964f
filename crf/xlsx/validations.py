"""The data validations and conditional formats of the input cells: what Excel refuses (hard limits, code lists,
date, time and text formats) and what it colours amber (soft limits), with the prompts and messages a site sees.
Pure functions of an item; the layout (crf.xlsx.layout) shares one validation between the cells of a sheet with
the same rule.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional

from ..contract import MULTI_SEPARATOR
from ..model import CodeList, Item, ItemKind, Limits

INLINE_LIST_LIMIT = 255  # Excel's limit on an in-formula list "A,B,C"
EARLIEST_DATE = "DATE(1900,1,1)"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))



def inline_list(codelist: CodeList) -> Optional[str]:
    """The in-formula list '"A,B,C"' when Excel accepts it, else None (use the lists sheet)."""
    codes = codelist.values
    if not all(isinstance(c, str) and c and "," not in c and '"' not in c for c in codes):
        return None
    joined = ",".join(str(c) for c in codes)
    if len(joined) > INLINE_LIST_LIMIT:
        return None
    return f'"{joined}"'


def list_name(codelist: CodeList) -> str:
    return "LST_" + re.sub(r"[^A-Za-z0-9_]", "_", codelist.id)


def whole_bounds(lim: Limits) -> tuple[Optional[int], Optional[int]]:
    lo = hi = None
    if lim.minimum is not None:
        lo = math.ceil(lim.minimum)
    if lim.exclusive_minimum is not None:
        lo = math.floor(lim.exclusive_minimum) + 1
    if lim.maximum is not None:
        hi = math.floor(lim.maximum)
    if lim.exclusive_maximum is not None:
        hi = math.ceil(lim.exclusive_maximum) - 1
    return lo, hi


def describe_range(item: Item) -> str:
    lim = item.hard
    if lim.is_empty:
        return ""
    unit = f" {item.unit}" if item.unit else ""
    if item.kind == ItemKind.INTEGER:
        lo, hi = whole_bounds(lim)
        if lo is not None and hi is not None:
            return f"{lo} to {hi}{unit}"
        return (f">= {lo}" if lo is not None else f"<= {hi}") + unit
    return lim.describe() + unit


def describe_soft(item: Item) -> str:
    if not item.soft or item.soft.is_empty:
        return ""
    s = item.soft
    unit = f" {item.unit}" if item.unit else ""
    if s.low is not None and s.high is not None and s.minimum is not None and s.maximum is not None:
        return f"{_num(s.minimum)}-{_num(s.maximum)}{unit}"
    return s.describe() + unit


def codes_text(codelist: CodeList, limit: int = 10_000) -> str:
    text = "; ".join(f"{c.code} = {c.label}" if str(c.code) != c.label else str(c.code) for c in codelist.codes)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Rule:
    """A data validation shared by every cell with the same rule on one sheet."""

    type: str
    operator: Optional[str] = None
    formula1: Optional[str] = None
    formula2: Optional[str] = None
    prompt_title: str = ""
    prompt: str = ""
    error: str = ""
    relative: bool = False  # formula refers to the cell itself ({cell}); one rule per column


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def rule_for(item: Item) -> Optional[Rule]:
    """The data validation of one input item, or None when none applies."""
    unit = f" ({item.unit})" if item.unit else ""
    soft = describe_soft(item)
    soft_txt = f" Expected {soft}; outside it the cell turns amber: check and confirm." if soft else ""
    k = item.kind
    if k in (ItemKind.INTEGER, ItemKind.DECIMAL):
        lim = item.hard
        if k == ItemKind.INTEGER:
            typ, what = "whole", "a whole number"
            lo, hi = whole_bounds(lim)
            los, his = (str(lo) if lo is not None else None), (str(hi) if hi is not None else None)
            lo_op, hi_op = "greaterThanOrEqual", "lessThanOrEqual"
            mixed = False
        else:
            typ = "decimal"
            what = f"a number with {item.decimals} decimal{'s' if item.decimals != 1 else ''}" if item.decimals else "a whole number"
            los = _num(lim.low) if lim.low is not None else None
            his = _num(lim.high) if lim.high is not None else None
            lo_op = "greaterThan" if lim.minimum is None and lim.exclusive_minimum is not None else "greaterThanOrEqual"
            hi_op = "lessThan" if lim.maximum is None and lim.exclusive_maximum is not None else "lessThanOrEqual"
            mixed = los is not None and his is not None and (lo_op, hi_op) != ("greaterThanOrEqual", "lessThanOrEqual")
        rng = describe_range(item)
        prompt = f"Enter {what}{unit}" + (f", {rng}." if rng else ".") + soft_txt
        error = f"Not allowed: enter {what}" + (f", {rng}" if rng else "") + "."
        title = _clip(f"Number{unit}", 32)
        if mixed:
            lo_c = ">" if lo_op == "greaterThan" else ">="
            hi_c = "<" if hi_op == "lessThan" else "<="
            return Rule("custom", None, f"AND(ISNUMBER({{cell}}),{{cell}}{lo_c}{los},{{cell}}{hi_c}{his})",
                        None, title, prompt, error, relative=True)
        if los is not None and his is not None:
            return Rule(typ, "between", los, his, title, prompt, error)
        if los is not None:
            return Rule(typ, lo_op, los, None, title, prompt, error)
        if his is not None:
            return Rule(typ, hi_op, his, None, title, prompt, error)
        return Rule(typ, "between", "-1000000000", "1000000000", title, prompt, error)
    if k == ItemKind.DATE:
        return Rule("date", "between", EARLIEST_DATE, "TODAY()", "Date (DD-MMM-YYYY)",
                    "Enter a date, e.g. 05-Mar-2025 or 2025-03-05; from 01-Jan-1900 to today. Shown as DD-MMM-YYYY.",
                    "Not a date between 01-Jan-1900 and today. Type e.g. 2025-03-05.")
    if k == ItemKind.TIME:
        f = ('AND(LEN({cell})=5,MID({cell},3,1)=":",ISNUMBER(FIND(MID({cell},1,1),"012")),'
             'ISNUMBER(FIND(MID({cell},2,1),"0123456789")),LEFT({cell},2)<"24",'
             'ISNUMBER(FIND(MID({cell},4,1),"012345")),ISNUMBER(FIND(MID({cell},5,1),"0123456789")))')
        return Rule("custom", None, f, None, "Time (HH:MM, 24 h)",
                    "Enter the time as HH:MM on the 24-hour clock, e.g. 09:05 or 14:30. It is kept as text.",
                    "Not a time: type HH:MM on the 24-hour clock, e.g. 09:05 or 14:30.", relative=True)
    if k == ItemKind.PARTIAL_DATE:
        f = ('AND(OR(LEN({cell})=4,LEN({cell})=7,LEN({cell})=10),ISERROR(SEARCH("e",{cell})),'
             'ISNUMBER(-LEFT({cell},4)),LEFT({cell},4)>="1900",LEFT({cell},4)<="2100",'
             'OR(LEN({cell})=4,AND(MID({cell},5,1)="-",MID({cell},6,2)>="01",MID({cell},6,2)<="12")),'
             'OR(LEN({cell})<10,ISNUMBER(DATEVALUE({cell}))))')
        return Rule("custom", None, f, None, "Partial date",
                    "Enter YYYY, YYYY-MM or YYYY-MM-DD (e.g. 2019, 2019-06 or 2019-06-14): leave out the day or "
                    "month when unknown. Kept as text.",
                    "Not a (partial) date: type YYYY, YYYY-MM or YYYY-MM-DD, e.g. 2019-06.", relative=True)
    if k == ItemKind.CHOICE and item.codelist:
        cl = item.codelist
        inline = inline_list(cl)
        return Rule("list", None, inline or list_name(cl), None, "Choose from the list",
                    _clip("Choose from the dropdown: " + codes_text(cl), 255),
                    _clip("Not in the code list. Choose one of: " + ", ".join(map(str, cl.values)), 255))
    if k == ItemKind.MULTI_CHOICE and item.codelist:
        cl = item.codelist
        limit = sum(len(str(c)) for c in cl.values) + len(MULTI_SEPARATOR) * (len(cl.values) - 1)
        return Rule("textLength", "lessThanOrEqual", str(limit), None, "Several codes allowed",
                    _clip("Type every code that applies, separated by '; ' (e.g. A; B). Codes: "
                          + ", ".join(map(str, cl.values)), 255),
                    "Too long for a list of these codes: type codes separated by '; '.")
    if k == ItemKind.TEXT:
        n = item.max_length or 200
        extra = f" Format: {item.pattern.strip('^$')}." if item.pattern else ""
        return Rule("textLength", "lessThanOrEqual", str(n), None, "Text",
                    _clip(f"Free text, at most {n} characters.{extra}", 255), f"At most {n} characters.")
    return None


def soft_formula(item: Item) -> Optional[str]:
    """Conditional-format test (over {cell}) that is true outside the soft limits."""
    s = item.soft
    if not s or s.is_empty or not item.is_number:
        return None
    tests = []
    if s.minimum is not None:
        tests.append(f"{{cell}}<{_num(s.minimum)}")
    if s.exclusive_minimum is not None:
        tests.append(f"{{cell}}<={_num(s.exclusive_minimum)}")
    if s.maximum is not None:
        tests.append(f"{{cell}}>{_num(s.maximum)}")
    if s.exclusive_maximum is not None:
        tests.append(f"{{cell}}>={_num(s.exclusive_maximum)}")
    return f"AND(ISNUMBER({{cell}}),OR({','.join(tests)}))"

