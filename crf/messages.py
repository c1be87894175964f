"""One shape for every message a site reads: location first, then the problem (with the value), then what to do.

    Visit V3 'Week 4 (Day 28), infusion 3', form 'Vital signs and weight: pre-infusion', sheet 'V3 Day 28',
    cell D37 (Weight): 'seventy' is not a number. Enter the number in kg, e.g. 80.0.

The field checks, the readers and the rules engine all write their messages with `render`; the
location comes from `Locator.place` (visit, log row, form, sheet, cell, question) or, for a problem
with the file itself, from `file_place`.
"""
from __future__ import annotations

from typing import Optional

from .model import Study, split_visit_key


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?" else text + "."


def render(place: str, problem: str, fix: str = "") -> str:
    """'<place>: <problem>. <fix>.' (the problem may already end with what to do, as a rule's message does)."""
    body = _sentence(problem)
    if fix:
        body += " " + _sentence(fix)
    if not place:
        return body[:1].upper() + body[1:]
    return f"{place}: {body}"


def continuing(template: str) -> str:
    """A message template as it reads after the location: 'The dose...' -> 'the dose...'.

    Applied to the template, not to the filled text, so that a value at the start ({CMTRT}) keeps its case;
    a first word like 'EDSS', 'IN01' or 'AE' stays as written.
    """
    return _lower_first(template)


def _lower_first(text: str) -> str:
    """After the location the sentence goes on: 'The dose...' -> 'the dose...', but 'EDSS', 'IN01', 'AE 3' stay."""
    first = text.split(" ", 1)[0]
    if sum(ch.isupper() or ch.isdigit() for ch in first) >= 2 or not first[:1].isupper():
        return text
    return text[:1].lower() + text[1:]


def sheet_words(sheet: str) -> str:
    """"sheet 'V1 Day 0'"; a fillable PDF's place ("page 12, field F_V1__VS_PRE__WEIGHT", crf/readers/pdf.py) as it is."""
    return sheet if sheet.startswith(("page ", "field ")) else f"sheet '{sheet}'"


def file_place(file: str, sheet: str = "", cell: str = "") -> str:
    where = f"File {file}"
    if sheet:
        where += f", {sheet_words(sheet)}"
    if cell:
        where += f", cell {cell}"
    return where


class Locator:
    """Names a place in a subject's data as a site coordinator finds it on the forms; built once per study."""

    def __init__(self, study: Study):
        self.study = study
        self.logs = {lg.id: lg for lg in study.logs}

    def place(self, visit: str = "", form: str = "", field: str = "", row: Optional[int] = None,
              sheet: str = "", cell: str = "", file: str = "", form_level: bool = False) -> str:
        """visit or log row, form, sheet, cell, (question). `row` is the log row as the site sees it (from 1).

        `form_level`: the problem is the form as a whole, so its cell is where the form starts.
        """
        parts: list[str] = []
        question = ""
        log = self.logs.get(form) if row is not None or (not visit and form in self.logs) else None
        if log is not None:
            parts.append(f"{log.label} log" + (f", row {row}" if row is not None else ""))
            if field and log.form.has(field):
                question = log.form.item(field).question
        elif visit and self.study.visit_of(visit) is not None:
            v = self.study.visit_of(visit)
            assert v is not None
            repeat = split_visit_key(visit)[1]
            parts.append(f"Visit {visit} '{v.label}" + (f" {repeat}'" if repeat is not None else "'"))
            if form and v.has(form):
                inst = v.form(form)
                parts.append(f"form '{inst.title}'")
                if field and inst.form.has(field):
                    question = inst.form.item(field).question
            elif form:
                parts.append(f"form '{form}'")
        elif file:
            parts.append(f"File {file}")
        if sheet:
            parts.append(sheet_words(sheet))
        if cell:
            parts.append(f"from cell {cell}" if form_level and not field else f"cell {cell}")
        text = ", ".join(parts)
        if question:
            text += f" ({question})"
        return text
