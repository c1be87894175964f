"""A validation result written by hand (not by crf.synth, not by the checks) for the report writers' reference run.

tests/fixtures/reports/reference.* are the bytes the writers produced for `reference_result()` before they were
made streaming (issue 13); tests/test_report_streaming.py checks that they still do. The findings are chosen for
what a writer can get wrong: text a spreadsheet would run as a formula, line breaks, quotes and markup, non-ASCII
(incl. outside the BMP), list and float values, log rows, file-level findings without a subject, every severity.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from crf.findings import Finding, Severity
from crf.validation import FileOutcome, SubjectSummary, ValidationResult, VisitState

REFERENCE = Path(__file__).resolve().parent / "fixtures" / "reports"
FORMATS = ("text", "json", "csv", "html", "xlsx")
SUFFIX = {"text": "txt", "json": "json", "csv": "csv", "html": "html", "xlsx": "xlsx"}


def _findings() -> list[Finding]:
    a, b = "returned/MINI_01-001.xlsx", "returned/MINI_01-002.xlsx"
    return [
        Finding("FILE-NOT-XLSX", Severity.ERROR, "file", "returned/notes.docx: this is not an Excel workbook. Send the subject's workbook.",
                file="returned/notes.docx", value=None, expected=".xlsx"),
        Finding("REQUIRED", Severity.ERROR, "completeness", "Baseline, Vitals, sheet BASE, cell D7 (Heart rate): no value. Enter the heart rate.",
                subject="01-001", site="01", visit="BASE", form="VIT", field="HR", file=a, sheet="BASE", cell="D7", expected="a value"),
        Finding("SOFT-LIMIT", Severity.QUERY, "range", "Follow-up, Vitals, sheet FUP, cell D7 (Heart rate): 38 /min is below 40. Confirm or correct.",
                subject="01-001", site="01", visit="FUP", form="VIT", field="HR", file=a, sheet="FUP", cell="D7", value=38.0, expected="40 to 150"),
        Finding("TYPE", Severity.ERROR, "type", "Follow-up, Outcome, sheet FUP, cell D12: '=HYPERLINK(\"http://x\")' is text where a number is expected.",
                subject="01-001", site="01", visit="FUP", form="OUT", field="SCORE", file=a, sheet="FUP", cell="D12",
                value="=HYPERLINK(\"http://x\")", expected="a number"),
        Finding("EC-01", Severity.MAJOR, "dosing", "Baseline: the dose given (1,5 mg/kg) is not the protocol's 1 mg/kg.\nRecord a deviation.",
                subject="01-001", site="01", visit="BASE", form="VIT", field="DOSE", file=a, sheet="BASE", cell="D20",
                value=[1.5, "mg/kg"], expected="1 mg/kg"),
        Finding("PD-02", Severity.MINOR, "visit window", "Follow-up: the visit on day 37 is outside its window (25 to 35) <late>.",
                subject="01-001", site="01", visit="FUP", file=a, sheet="FUP", cell="D5", value="2026-02-07", expected="day 25 to 35"),
        Finding("LOG-TEXT", Severity.WARNING, "text", "Notes, row 2, cell C6: the note 'Fièvre 39,2 °C — « vu » 🙂' has a tab\tin it.",
                subject="01-001", site="01", form="NOTE", field="TEXT", row=2, file=a, sheet="NOTE", cell="C6",
                value="+Fièvre 39,2 °C — « vu » 🙂", expected=""),
        Finding("REQUIRED", Severity.ERROR, "completeness", "Baseline, Vitals, sheet BASE, cell D5 (Date): no value. Enter the visit date.",
                subject="01-002", site="01", visit="BASE", form="VIT", field="VDAT", file=b, sheet="BASE", cell="D5", expected="a value"),
        Finding("RANGE", Severity.QUERY, "range", "Baseline, Vitals, sheet BASE, cell D9 (Cigarettes per day): 120 is above 100. Correct it.",
                subject="01-002", site="01", visit="BASE", form="VIT", field="CIGS", file=b, sheet="BASE", cell="D9", value=120, expected="1 to 100"),
        Finding("PD-02", Severity.MAJOR, "visit window", "Follow-up was not done though a later visit exists & is recorded.",
                subject="01-002", site="01", visit="FUP", file=b, value=None, expected="a visit"),
        Finding("FREE-TEXT", Severity.QUERY, "text", " Notes, row 1: the note begins with a space and has a line break\r\nin it.  ",
                subject="02-001", site="02", form="NOTE", field="TEXT", row=1, file="returned/MINI_02-001.xlsx", sheet="NOTE", cell="C5",
                value="  Fièvre\r\n39,2 °C 🙂 ", expected="ç ∑ \u2028 end"),
        Finding("REQUIRED", Severity.ERROR, "completeness", "Baseline, Vitals, sheet BASE, cell D7: no value. \"Enter\" the heart rate.",
                subject="02-001", site="02", visit="BASE", form="VIT", field="HR", file="returned/MINI_02-001.xlsx", sheet="BASE", cell="D7"),
    ]


def reference_result(study: Any) -> ValidationResult:
    findings = _findings()
    subjects = [
        SubjectSummary("01", "01-001", "returned/MINI_01-001.xlsx",
                       {"BASE": VisitState(True, "2026-01-05", "in", 0), "FUP": VisitState(True, "2026-02-11", "out", 37)}),
        SubjectSummary("01", "01-002", "returned/MINI_01-002.xlsx",
                       {"BASE": VisitState(True, None, None, None), "FUP": VisitState(False)}),
        SubjectSummary("02", "02-001", "returned/MINI_02-001.xlsx",
                       {"BASE": VisitState(True, "2026-03-01", "in", 0), "FUP": VisitState(False)}),
    ]
    by_file: dict[str, list[Finding]] = {}
    for f in findings:
        by_file.setdefault(f.file, []).append(f)
    files = [FileOutcome("returned/MINI_01-001.xlsx", "a" * 64, "xlsx", 51234, by_file["returned/MINI_01-001.xlsx"], subjects[0]),
             FileOutcome("returned/MINI_01-002.xlsx", "b" * 64, "xlsx", 50999, by_file["returned/MINI_01-002.xlsx"], subjects[1]),
             FileOutcome("returned/MINI_02-001.xlsx", "c" * 64, "xlsx", 50001, by_file["returned/MINI_02-001.xlsx"], subjects[2]),
             FileOutcome("returned/notes.docx", "d" * 64, "unknown", 1234, by_file["returned/notes.docx"], None)]
    from crf.validation import reading_order

    findings.sort(key=reading_order(study))
    return ValidationResult(study, files, findings, subjects, ["fields", "rules"], generated="2026-11-30T10:00")


def many_findings(study: Any, n: int) -> ValidationResult:
    """`n` findings over n // 10 subjects, made from the hand-written ones (for the size-dependent paths)."""
    base = [f for f in _findings() if f.subject]
    findings: list[Finding] = []
    subjects: list[SubjectSummary] = []
    files: list[FileOutcome] = []
    import dataclasses

    per = 10
    for s in range(max(1, n // per)):
        subject = f"{1 + s // 1000:02d}-{s % 1000:03d}"
        site = subject[:2]
        name = f"returned/MINI_{subject}.xlsx"
        mine = [dataclasses.replace(base[i % len(base)], subject=subject, site=site, file=name, extra_key=str(i))
                for i in range(per)]
        findings += mine
        summary = SubjectSummary(site, subject, name, {"BASE": VisitState(True, "2026-01-05", "in", 0), "FUP": VisitState(False)})
        subjects.append(summary)
        files.append(FileOutcome(name, f"{s:064x}", "xlsx", 50000 + s, mine, summary))
    from crf.validation import reading_order

    findings.sort(key=reading_order(study))
    return ValidationResult(study, files, findings, subjects, ["fields", "rules"], generated="2026-11-30T10:00")
