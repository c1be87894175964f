"""Hostile and damaged returns (issue 11): no crash, no hang, no lost sheet, the same answer every time.

Each case's input is made by tests/badfiles/hostile.py from the workbook of a hand-written subject.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crf.subject import SubjectRecord
from crf.validation import validate
from crf.workers import Failure, can_isolate, run_isolated
from crf.xlsx import workbook_bytes
from tests.badfiles import hostile

ROOT = Path(__file__).resolve().parent.parent
SUBJECT = ROOT / "tests" / "fixtures" / "subjects" / "01-901.json"
TODAY = dt.date(2026, 11, 25)
needs_fork = pytest.mark.skipif(not can_isolate(), reason="isolated reading needs fork (POSIX)")


@pytest.fixture(scope="session")
def good(study) -> bytes:
    record = SubjectRecord.from_json(json.loads(SUBJECT.read_text()))
    return workbook_bytes(study, record.site, record.subject, record)


def _write(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def _by_file(result) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in result.findings:
        out.setdefault(f.file, []).append(f)
    return out


def _cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "validate.py"), *args, "--today", TODAY.isoformat()],
                          capture_output=True, cwd=cwd, timeout=timeout)


# -- 1. one file cannot bring the run down -----------------------------------------------------------
@needs_fork
def test_a_child_that_aborts_or_hangs_becomes_a_failure_and_the_others_finish():
    def work(task: str) -> str:
        if task == "abort":
            os.abort()
        if task == "hang":
            time.sleep(60)
        if task == "raise":
            raise KeyboardInterrupt  # not an Exception, like a Rust panic
        return task.upper()

    start = time.monotonic()
    out = sorted(run_isolated(["a", "abort", "b", "hang", "raise", "c"], work, 2, 3.0, 0,
                              lambda task, failure: f"{task}:{failure.kind}"))
    assert out == ["A", "B", "C", "abort:crashed", "hang:timeout", "raise:crashed"]
    assert time.monotonic() - start < 30


@needs_fork
def test_memory_limit_stops_a_child_not_the_run():
    def work(task: int) -> int:
        blob = bytearray(task)  # more than the budget: MemoryError in the child, which becomes a failure
        return len(blob)

    failures: list[Failure] = []
    out = list(run_isolated([10, 4 * 1024 ** 3], work, 1, 30.0, 256 * 1024 ** 2, lambda t, f: failures.append(f) or -1))
    assert sorted(out) == [-1, 10] and "MemoryError" in failures[0].detail


@needs_fork
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_reference_that_would_abort_the_reader_is_one_finding_and_the_others_are_checked(study, good, tmp_path, jobs):
    folder = tmp_path / "in"
    _write(folder, "a.xlsx", good)
    _write(folder, "huge-reference.xlsx", hostile.huge_reference(good))
    for name in ("b.xlsx", "c.xlsx", "d.xlsx"):
        _write(folder, name, good)
    result = validate(study, [folder], jobs=jobs, today=TODAY, base=tmp_path)
    by_file = _by_file(result)
    assert len(result.files) == 5
    bad = by_file["in/huge-reference.xlsx"]
    assert bad, "the hostile file is named"
    assert len([o for o in result.files if o.usable]) >= 4  # the good files were all read and checked
    assert {f.rule for f in by_file["in/a.xlsx"]} == {"DUPLICATE-SUBJECT"}


# -- 8. the file system -------------------------------------------------------------------------------
def test_fifo_device_link_are_refused_by_name_and_never_read(study, good, tmp_path):
    folder = tmp_path / "in"
    _write(folder, "ok.xlsx", good)
    os.mkfifo(folder / "pipe.xlsx")
    (folder / "zero.json").symlink_to("/dev/zero")
    pipe_alone = tmp_path / "pipe2.json"
    os.mkfifo(pipe_alone)
    start = time.monotonic()
    result = validate(study, [folder, pipe_alone], jobs=1, today=TODAY, base=tmp_path)
    assert time.monotonic() - start < 120
    by_file = _by_file(result)
    for name in ("in/pipe.xlsx", "in/zero.json", "pipe2.json"):
        assert [f.rule for f in by_file[name]] == ["FILE-NOT-REGULAR"], (name, by_file.get(name))
    assert "named pipe" in by_file["in/pipe.xlsx"][0].message and "device" in by_file["in/zero.json"][0].message


def test_output_that_is_a_hard_link_of_an_input_is_refused(good, tmp_path):
    source = _write(tmp_path / "in", "s.xlsx", good)
    link = tmp_path / "report.json"
    os.link(source, link)
    proc = _cli([str(source), "--format", "json", "--output", str(link)], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert b"never overwritten" in proc.stderr
    assert source.read_bytes() == good


# -- 1 and 6. an absurd or far reference is one located finding; memory follows the real content -------------
def _read(study, tmp_path, name: str, data: bytes):
    from crf.readers import read_file
    return read_file(_write(tmp_path, name, data), name, study)


def test_impossible_reference_is_cut_before_the_reader_and_reported_on_its_sheet(study, good, tmp_path):
    result = _read(study, tmp_path, "huge.xlsx", hostile.huge_reference(good))
    assert result.subject is not None  # the workbook is read and checked
    [finding] = [f for f in result.findings if f.rule == "CELL-REFERENCE-INVALID"]
    assert finding.sheet == hostile.VISIT_SHEET and "D99999999999" in finding.message


@pytest.mark.parametrize("maker, cell", [(hostile.last_row_first, "XFD1048576"), (hostile.stray_far_cell, "XFD3051")])
def test_a_cell_far_outside_the_form_is_reported_where_it_is_and_costs_no_grid(study, good, tmp_path, maker, cell):
    from crf.readers import sheet_xml
    from tests.badfiles import parts, sheet_part

    data = maker(good)
    files = parts(data)
    scan = sheet_xml.prescan(files[sheet_part(files, hostile.VISIT_SHEET)], (200, 6))
    assert [(d.cell, d.reason) for d in scan.dropped] == [(cell, "far")]
    assert scan.xml is not None and cell.encode() not in scan.xml  # calamine never sees it, so never sizes a grid to it
    result = _read(study, tmp_path, "far.xlsx", data)
    [finding] = [f for f in result.findings if f.rule == "VALUE-OUTSIDE-FORM"]
    assert (finding.sheet, finding.cell) == (hostile.VISIT_SHEET, cell)
    assert result.subject is not None and result.subject.record.visits["V1"]


def test_common_sheets_are_not_rewritten(good):
    from crf.readers import sheet_xml
    from tests.badfiles import parts

    for name, xml in parts(good).items():
        if name.startswith("xl/worksheets/"):
            scan = sheet_xml.prescan(xml, (300, 10))
            assert scan.xml is None and not scan.dropped, name


# -- 4. one bad cell is a finding on that cell; the rest of the sheet is still checked ---------------------------
@pytest.mark.parametrize("case", ["boolean-holding-x", "unknown-error-value", "shared-string-past-table", "date-minus-1e309"])
def test_a_value_that_cannot_be_read_is_a_finding_on_its_cell(study, good, tmp_path, case):
    data = hostile.unreadable_values(good)[case]
    result = validate(study, [_write(tmp_path, f"{case}.xlsx", data)], jobs=1, today=TODAY, base=tmp_path, stage_names=("fields",))
    rules = [(f.rule, f.visit, f.field) for f in result.findings]
    assert "SHEET-DAMAGED" not in {r for r, _, _ in rules}
    field = "WEIGHT" if case != "date-minus-1e309" else "SVSTDAT"
    [finding] = [f for f in result.findings if f.field == field]
    assert finding.rule == "CELL-UNREADABLE" and finding.cell and finding.sheet, finding
    assert "Traceback" not in finding.message and "Panic" not in finding.message
    clean = validate(study, [_write(tmp_path / "clean", "clean.xlsx", good)], jobs=1, today=TODAY, stage_names=("fields",))
    assert len(result.findings) == len(clean.findings) + 1  # every other field of that sheet was read and checked as before
    outcome = result.files[0]
    assert outcome.subject is not None


def test_damaged_instructions_sheet_names_the_sheet(study, good, tmp_path):
    from tests.badfiles import pack, parts, sheet_part

    files = parts(good)
    part = sheet_part(files, "Instructions")
    files[part] = files[part][: len(files[part]) // 2]
    result = _read(study, tmp_path, "damaged.xlsx", pack(files))
    [finding] = result.findings
    assert finding.rule == "SHEET-DAMAGED" and finding.sheet == "Instructions"


# -- 5. an Excel error value is not a blank -------------------------------------------------------------------
@pytest.mark.parametrize("error", ["#NUM!", "#VALUE!", "#N/A", "#DIV/0!"])
def test_excel_error_value_in_an_input_is_reported_as_such(study, good, tmp_path, error):
    data = hostile.set_named_cell(good, hostile.WEIGHT, lambda c: f'<c r="{c}" t="e"><v>{error}</v></c>')
    result = validate(study, [_write(tmp_path, "e.xlsx", data)], jobs=1, today=TODAY, base=tmp_path, stage_names=("fields",))
    [finding] = [f for f in result.findings if f.field == "WEIGHT"]
    assert finding.rule == "CELL-ERROR" and error in finding.message and "blank" not in finding.message
