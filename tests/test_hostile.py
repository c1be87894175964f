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
