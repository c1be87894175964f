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


# -- 2, 3, 9, 10. text and numbers are made safe where they enter; every report parses strictly ------------------
def _strict_json(data: bytes):
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(data, parse_constant=refuse)


def _hostile_inputs(good: bytes) -> dict[str, bytes]:
    doc = json.loads(SUBJECT.read_text())
    doc["logs"]["AE"][0]["AETERM"] = "Head\udfffache \x1b[2J\rgone"
    surrogate = json.dumps(doc).encode()  # json.dumps writes the lone surrogate as \\udfff: valid JSON, not valid UTF-16
    doc = json.loads(SUBJECT.read_text())
    doc["visits"]["V1"]["VS_PRE"]["WEIGHT"] = "@"
    text = json.dumps(doc)
    return {
        "surrogate.json": surrogate,
        "infinite.json": text.replace('"@"', "1e400").encode(),
        "nan.json": text.replace('"@"', "NaN").encode(),
        "digits.json": text.replace('"@"', "7" * 5000).encode(),
        "escape.xlsx": hostile.text_value(good, "Head\x1b[2Jache\rgone"),
        "infinite.xlsx": hostile.number_cell(good, "1e309"),
        "meta-not-utf8.xlsx": hostile.meta_not_utf8(good),
    }


def test_values_that_no_report_can_carry_are_findings_and_every_report_parses(study, good, tmp_path):
    folder = tmp_path / "in"
    for name, data in _hostile_inputs(good).items():
        _write(folder, name, data)
    result = validate(study, [folder], jobs=1, today=TODAY, base=tmp_path)
    by_file = _by_file(result)
    for name in ("infinite.json", "nan.json", "digits.json", "infinite.xlsx"):
        [weight] = [f for f in by_file[f"in/{name}"] if f.field == "WEIGHT"]
        assert weight.rule == "NOT-A-NUMBER", (name, weight)
    assert "5,000 digits" in [f for f in by_file["in/digits.json"] if f.field == "WEIGHT"][0].message
    [meta] = by_file["in/meta-not-utf8.xlsx"]
    assert meta.rule == "SHEET-DAMAGED" and meta.sheet == "_meta"  # the file's own damage, named, not "save it again as .xlsx"
    for fmt in ("json", "text", "csv", "html", "xlsx"):
        out = tmp_path / f"report.{fmt}"
        proc = _cli([str(folder), "--format", fmt, "--output", str(out)], tmp_path)
        assert proc.returncode == 1, (fmt, proc.stderr[-2000:])
        assert b"Traceback" not in proc.stderr, fmt
        data = out.read_bytes()
        if fmt == "json":
            doc = _strict_json(data)
            assert {f["file"] for f in doc["inputs"]} == {f"in/{n}" for n in _hostile_inputs(good)}  # every input named
            terms = [f for f in doc["findings"] if "Head" in json.dumps(f, ensure_ascii=False)]
            assert terms == [] or all("\x1b" not in json.dumps(t, ensure_ascii=False) for t in terms)
        if fmt in ("text", "csv", "html"):
            text = data.decode("utf-8")  # strict: no lone surrogate could be encoded
            assert "\x1b" not in text and "\r" not in text.replace("\r\n", "\n") if fmt == "text" else "\x1b" not in text


def test_terminal_escapes_from_values_and_file_names_are_shown_not_sent(study, good, tmp_path):
    folder = tmp_path / "in"
    _write(folder, "escape.xlsx", hostile.text_value(good, "Nausea", name="F_V1__VS_PRE__WEIGHT"))
    _write(folder, "name\x1b[2J.xlsx", hostile.text_value(good, "\x1b]0;owned\x07seventy\r", name="F_V1__VS_PRE__WEIGHT"))
    proc = _cli([str(folder)], tmp_path)
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr
    assert b"\x1b" not in proc.stdout and b"\r" not in proc.stdout and b"\x07" not in proc.stdout
    assert b"\\x1b" in proc.stdout  # what was sent stays visible


def test_a_json_document_with_20000_log_rows_is_bounded_and_said_so(study, tmp_path):
    doc = json.loads(SUBJECT.read_text())
    doc["logs"]["AE"] = [dict(doc["logs"]["AE"][0], AESPID=i + 1) for i in range(20_000)]
    path = _write(tmp_path, "many.json", json.dumps(doc).encode())
    result = validate(study, [path], jobs=1, today=TODAY, base=tmp_path)
    [finding] = [f for f in result.findings if f.rule == "LOG-STRUCTURE"]
    assert "20,000 rows" in finding.message and finding.form == "AE"


def test_formula_scan_is_linear(study, good, tmp_path):
    from crf.readers.xlsx import _open_package, _Reader
    from crf.readers.safety import DEFAULT_LIMITS

    small, large = hostile.many_empty_formulas(good, 2_000), hostile.many_empty_formulas(good, 40_000)
    counts = []
    for data in (small, large):
        from types import SimpleNamespace
        reader = _Reader(study, "f.xlsx", _open_package(data, "f.xlsx", DEFAULT_LIMITS), SimpleNamespace(sheet_names=[]))
        calls = 0
        original = bytes.find

        xml = reader.package.sheet_xml[reader.package.sheet_parts[hostile.VISIT_SHEET]]

        class Counting(bytes):
            def find(self, *args):  # type: ignore[override]
                nonlocal calls
                calls += 1
                return original(self, *args)

            def rfind(self, sub, start=0, end=None):  # type: ignore[override]
                nonlocal calls
                calls += (end if end is not None else len(self)) - start  # bytes looked at, at most
                return bytes.rfind(self, sub, start, end if end is not None else len(self))

        reader.package.sheet_xml[reader.package.sheet_parts[hostile.VISIT_SHEET]] = Counting(xml)
        reader.formula_cells_without_value(hostile.VISIT_SHEET)
        counts.append(calls)
    assert counts[1] < counts[0] * 40  # 20 times the formulas: about 20 times the work, not 400


# -- 7. findings are a function of the file's bytes and the options --------------------------------------------
def test_whether_a_sheet_was_renamed_does_not_depend_on_files_read_before(study, good, tmp_path):
    renamed = hostile.meta_says_renamed(good)
    alone = validate(study, [_write(tmp_path / "alone", "b.xlsx", renamed)], jobs=1, today=TODAY, stage_names=("fields",))
    assert [f.rule for f in alone.findings] == ["SHEET-RENAMED"]
    both = tmp_path / "both"
    _write(both, "a.xlsx", good)
    _write(both, "b.xlsx", renamed)
    after = validate(study, [both], jobs=1, today=TODAY, stage_names=("fields",), base=both)
    assert [f.rule for f in after.findings if f.file == "b.xlsx" and f.rule != "DUPLICATE-SUBJECT"] == ["SHEET-RENAMED"]


def test_the_same_findings_in_any_order_and_with_any_jobs(study, good, tmp_path):
    import random

    corpus = {"good": good, "renamed": hostile.meta_says_renamed(good), "huge": hostile.huge_reference(good),
              "far": hostile.stray_far_cell(good), **hostile.unreadable_values(good)}
    corpus.update({k.replace(".", "-"): v for k, v in _hostile_inputs(good).items()})
    suffix = {k: ".json" if k.endswith("-json") else ".xlsx" for k in corpus}
    runs = []
    for jobs, seed in ((1, 1), (2, 2), (1, 3)):
        names = list(corpus)
        random.Random(seed).shuffle(names)  # the order the files are read in follows their names
        folder = tmp_path / f"run{seed}"
        content_of = {}
        for i, key in enumerate(names):
            name = f"{i:02d}{suffix[key]}"
            _write(folder, name, corpus[key])
            content_of[name] = key
        result = validate(study, [folder], jobs=jobs, today=TODAY, base=folder)
        runs.append(sorted((content_of[f.file], f.rule, f.sheet, f.cell, f.visit, f.field, f.row,
                            f.message.replace(f.file, "FILE")) for f in result.findings if f.rule != "DUPLICATE-SUBJECT"))
    assert runs[0] == runs[1] == runs[2]


def test_workbook_xml_parser_refuses_what_defusedxml_refuses():
    """xl/workbook.xml is parsed by expat directly, with defusedxml's handlers: no DTD, no entities, no external references."""
    from defusedxml.common import DefusedXmlException

    from crf.readers.xlsx.package import XmlDamaged, _Handler, _sax_parse, xml_text

    hostile = [b'<?xml version="1.0"?><!DOCTYPE w [<!ENTITY a "aaaa">]><workbook>&a;</workbook>',
               b'<?xml version="1.0"?><!DOCTYPE w SYSTEM "file:///etc/passwd"><workbook/>']
    for data in hostile:
        with pytest.raises(DefusedXmlException):
            _sax_parse(data, _Handler())
    with pytest.raises(XmlDamaged):
        _sax_parse(b"<workbook><sheets></workbook>", _Handler())
    _sax_parse(b'<?xml version="1.0" encoding="UTF-8"?><workbook><sheets/></workbook>', _Handler())
    assert xml_text("a &lt;b&gt; &amp;&amp; &quot;c&quot; &apos;d&apos; &#233;&#x4E2D;&#0;") == "a <b> && \"c\" 'd' é中&#0;"
