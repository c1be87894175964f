"""validate.py: reading returned workbooks, field checks, findings, reports, bad input."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from crf.cli import validate as validate_command
from crf.findings import Severity
from crf.readers import read_file
from crf.readers.convert import ValueIssue, convert
from crf.validation import validate
from tests.badfiles import make_corpus, set_number, set_text, parts, pack

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 1, 1)


@pytest.fixture(scope="session")
def clean_record(study):
    from crf.synth import clean_subject
    return clean_subject(study, "01", "01-001", 1, None)


@pytest.fixture(scope="session")
def good_workbook(study, clean_record, tmp_path_factory) -> bytes:
    from crf.xlsx import workbook_bytes
    return workbook_bytes(study, "01", "01-001", clean_record)


def _write(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


FIELDS_ONLY = ("fields",)  # the rules stage has its own tests (tests/test_rules*.py)


def _run(study, paths, stages=FIELDS_ONLY, **kw):
    return validate(study, [Path(p) for p in paths], jobs=1, today=TODAY, stage_names=stages, **kw)


def _tuples(result):
    return sorted((f.rule, f.subject, f.visit, f.field) for f in result.findings)


# -- reading ------------------------------------------------------------------------------------
def test_clean_workbook_reads_back_the_record_and_has_no_findings(study, clean_record, good_workbook, tmp_path):
    path = _write(tmp_path, "clean.xlsx", good_workbook)
    read = read_file(path, "clean.xlsx", study)
    assert read.findings == []
    assert read.subject is not None
    record = read.subject.record
    assert (record.site, record.subject) == ("01", "01-001")
    assert record.value("V1", "VS_PRE", "WEIGHT") == clean_record.value("V1", "VS_PRE", "WEIGHT")
    loc = record.location("/visits/V1/VS_PRE/WEIGHT")
    assert loc.sheet == "V1 Day 0" and re.fullmatch(r"[A-Z]+\d+", loc.cell or "")
    result = _run(study, [path])
    assert result.findings == [] and not result.needs_action


def test_json_subject_document_gives_the_same_findings_as_its_workbook(study, clean_record, good_workbook, tmp_path):
    record = json.loads(json.dumps(clean_record.to_json()))
    record["visits"]["V1"]["VS_PRE"]["SYSBP"] = 300
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "s.json").write_text(json.dumps(record))
    result = _run(study, [tmp_path / "j"])
    assert _tuples(result) == [("FIELD-RANGE", "01-001", "V1", "SYSBP")]
    wb = set_number(good_workbook, "F_V1__VS_PRE__SYSBP", 300)
    result = _run(study, [_write(tmp_path / "x", "s.xlsx", wb)])
    assert _tuples(result) == [("FIELD-RANGE", "01-001", "V1", "SYSBP")]


@pytest.mark.parametrize("kind,raw,expected", [
    ("DECIMAL", "71,5", 71.5), ("DECIMAL", " 71.5 ", 71.5), ("DECIMAL", "71.5 kg", 71.5), ("INTEGER", "120", 120),
    ("INTEGER", 120.0, 120), ("DATE", 45720.0, "2025-03-04"), ("DATE", "2025-03-04", "2025-03-04"),
    ("DATE", "04-Mar-2025", "2025-03-04"), ("DATE", "25/03/2025", "2025-03-25"), ("DATE", "4 March 2025", "2025-03-04"),
    ("TIME", "9:05", "09:05"), ("TIME", 0.5, "12:00"), ("TIME", "2:30 pm", "14:30"), ("PARTIAL", "UNK-03-2020", "2020-03"),
    ("PARTIAL", "2020", "2020"), ("PARTIAL", "2020-UN-UN", "2020"),
])
def test_conversion_of_what_sites_type(study, kind, raw, expected):
    item = _item(study, kind)
    assert convert(item, raw) == expected


def test_1904_date_serials(study):
    item = _item(study, "DATE")
    assert convert(item, 45720.0 - 1462, date1904=True) == "2025-03-04"


@pytest.mark.parametrize("kind,raw,rule", [
    ("DECIMAL", "seventy", "NOT-A-NUMBER"), ("INTEGER", "12.5", "NOT-AN-INTEGER"), ("DATE", "03/04/2025", "DATE-AMBIGUOUS"),
    ("DATE", "2025-02-30", "DATE-INVALID"), ("DATE", "soon", "DATE-FORMAT"), ("DATE", "03/04/25", "DATE-AMBIGUOUS"),
    ("TIME", "25:00", "TIME-INVALID"),
])
def test_conversion_problems_are_reported_not_guessed(study, kind, raw, rule):
    value = convert(_item(study, kind), raw)
    assert isinstance(value, ValueIssue) and value.rule == rule


def _item(study, kind):
    from crf.model import ItemKind
    wanted = {"DECIMAL": ("VS_PRE", "WEIGHT"), "INTEGER": ("VS_PRE", "SYSBP"), "DATE": ("SV", "SVSTDAT"), "TIME": ("VS_PRE", "VSTIM")}
    if kind == "PARTIAL":
        return next(it for _, _, it in study.iter_fields() if it.kind is ItemKind.PARTIAL_DATE)
    form, item = wanted[kind]
    return study.visit("V1").form(form).form.item(item)


def test_1904_workbook_reads_dates_in_its_own_system(study, good_workbook, tmp_path):
    files = parts(good_workbook)
    files["xl/workbook.xml"] = files["xl/workbook.xml"].replace(b"<workbookPr />", b'<workbookPr date1904="1" />').replace(b"<workbookPr/>", b'<workbookPr date1904="1"/>')
    data = set_number(pack(files), "F_V2__SV__SVSTDAT", (dt.date(2023, 5, 2) - dt.date(1904, 1, 1)).days)
    read = read_file(_write(tmp_path, "mac.xlsx", data), "mac.xlsx", study)
    assert read.subject is not None
    assert read.subject.record.value("V2", "SV", "SVSTDAT") == "2023-05-02"


def test_rules_stage_runs_and_its_range_findings_replace_the_field_ones(study, good_workbook, tmp_path):
    from crf.validation import CHECK_STAGES
    assert [name for name, _ in CHECK_STAGES] == ["fields", "rules"]
    wb = set_number(good_workbook, "F_V1__VS_PRE__SYSBP", 300)
    result = _run(study, [_write(tmp_path, "s.xlsx", wb)], stages=None)
    sysbp = [f for f in result.findings if f.field == "SYSBP" and f.visit == "V1"]
    assert len(sysbp) == 1, [(f.rule, f.message) for f in sysbp]


# -- messages -------------------------------------------------------------------------------------
def test_messages_read_location_first_then_problem_then_fix(study, good_workbook, tmp_path):
    data = set_text(good_workbook, "F_V3__VS_PRE__WEIGHT", "seventy")
    result = _run(study, [_write(tmp_path, "w.xlsx", data)])
    (f,) = [f for f in result.findings if f.rule == "NOT-A-NUMBER"]
    assert f.message.startswith("Visit V3 'Week 4 (Day 28), infusion 3', form 'Vital signs and weight: pre-infusion', sheet 'V3 Day 28', cell D")
    assert "(Weight): 'seventy' is not a number. Enter the number in kg" in f.message
    assert (f.sheet, f.visit, f.form, f.field, f.value) == ("V3 Day 28", "V3", "VS_PRE", "WEIGHT", "seventy")
    # nothing else is said about the same cell (no "required" on top)
    assert [x.rule for x in result.findings] == ["NOT-A-NUMBER"]


def test_soft_limit_is_a_query_and_ids_survive_a_later_return(study, good_workbook, tmp_path):
    first = _run(study, [_write(tmp_path / "a", "s.xlsx", set_number(good_workbook, "F_V1__VS_PRE__SYSBP", 170))])
    later = _run(study, [_write(tmp_path / "b", "s-v2.xlsx", set_number(good_workbook, "F_V1__VS_PRE__SYSBP", 175))])
    (a,), (b,) = first.findings, later.findings
    assert a.rule == "SOFT-LIMIT" and a.severity is Severity.QUERY
    assert a.finding_id == b.finding_id and a.value == 170 and b.value == 175


def test_missing_required_and_derived_items(study, clean_record, good_workbook, tmp_path):
    record = json.loads(json.dumps(clean_record.to_json()))
    del record["visits"]["V1"]["VS_PRE"]["WEIGHT"]
    del record["visits"]["SCR"]["DM"]["AGE"]  # derived: never asked of the site
    (tmp_path / "s.json").write_text(json.dumps(record))
    result = _run(study, [tmp_path / "s.json"])
    assert _tuples(result) == [("FIELD-REQUIRED", "01-001", "V1", "WEIGHT")]


# -- bad input --------------------------------------------------------------------------------------
def test_bad_file_corpus_each_gets_one_clear_located_finding(study, clean_record, good_workbook, tmp_path):
    corpus = make_corpus(good_workbook, study.id, clean_record.to_json())
    assert len(corpus) >= 20
    folder = tmp_path / "returned"
    for name, data, _ in corpus:
        _write(folder, name, data)
    _write(folder, "copy-a.xlsx", good_workbook)
    _write(folder / "sub", "copy-b.xlsx", good_workbook)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}
    result = validate(study, [folder, folder / "notes.txt"], jobs=2, today=TODAY, base=tmp_path, stage_names=FIELDS_ONLY)
    by_file: dict[str, list] = {}
    for f in result.findings:
        by_file.setdefault(f.file, []).append(f)
    for name, _, rule in corpus:
        found = by_file.get(f"returned/{name}", [])
        rules = [f.rule for f in found]
        assert rule in rules, (name, rules)
        target = next(f for f in found if f.rule == rule)
        assert target.message.startswith(f"File returned/{name}") or target.sheet, target.message
        assert "Traceback" not in target.message
        if rule in ("FILE-NOT-XLSX", "FILE-DAMAGED", "PASSWORD-PROTECTED", "ZIP-BOMB", "XML-UNSAFE", "WRONG-STUDY",
                    "FORM-VERSION", "NOT-A-CRF-WORKBOOK", "FILE-NOT-JSON", "FILE-TYPE", "SHEET-DAMAGED"):
            assert len(found) == 1, (name, rules)  # one clear finding, not a cascade
    # structural damage is reported once, the rest of the workbook is still checked
    assert [f.rule for f in by_file["returned/deleted-sheet.xlsx"]] == ["SHEET-MISSING"]
    assert [f.rule for f in by_file["returned/renamed-sheet.xlsx"]] == ["SHEET-RENAMED"]
    assert [f.rule for f in by_file["returned/deleted-name.xlsx"]] == ["NAME-MISSING"]
    dup = [f for f in result.findings if f.rule == "DUPLICATE-SUBJECT"]
    assert dup and "copy-a.xlsx" in dup[0].message and "sub/copy-b.xlsx" in dup[0].message
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}
    assert before == after  # inputs never modified


def test_command_line_on_the_corpus_exits_1_without_traceback(study, clean_record, good_workbook, tmp_path):
    folder = tmp_path / "in"
    for name, data, _ in make_corpus(good_workbook, study.id, clean_record.to_json())[:8]:
        _write(folder, name, data)
    proc = subprocess.run([sys.executable, str(ROOT / "validate.py"), str(folder), "--format", "json", "--today", "2026-01-01"],
                          capture_output=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert b"Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["format"] == "open-ecrf-validation-report" and doc["summary"]["files_unusable"] == 8
    assert "error" in proc.stderr.decode()  # summary counts on stderr


def test_exit_status_and_usage_errors(study, good_workbook, tmp_path):
    runner = CliRunner()
    good = _write(tmp_path / "ok", "s.xlsx", good_workbook)
    result = runner.invoke(validate_command, [str(good.parent), "--today", "2026-01-01", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert "Nothing needs action" in result.output
    assert runner.invoke(validate_command, [str(tmp_path / "nope")]).exit_code == 2
    assert runner.invoke(validate_command, [str(good), "--format", "xlsx"]).exit_code == 2
    assert runner.invoke(validate_command, [str(good), "--output", str(good)]).exit_code == 2
    (tmp_path / "empty").mkdir()
    assert runner.invoke(validate_command, [str(tmp_path / "empty")]).exit_code == 2


# -- reports ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "csv", "xlsx", "html", "text"])
def test_reports_are_deterministic(study, good_workbook, tmp_path, fmt):
    from crf.reports import render
    folder = tmp_path / "in"
    _write(folder, "a.xlsx", set_text(good_workbook, "F_V1__VS_PRE__WEIGHT", "=cmd|'/C calc'!A0"))
    _write(folder, "b.xlsx", b"junk")
    one = render(validate(study, [folder], jobs=1, today=TODAY, base=tmp_path, stage_names=FIELDS_ONLY), fmt)
    two = render(validate(study, [folder], jobs=2, today=TODAY, base=tmp_path, stage_names=FIELDS_ONLY), fmt)
    assert one == two


def test_json_report_has_versions_and_input_hashes(study, good_workbook, tmp_path):
    from crf.reports import render
    path = _write(tmp_path / "in", "a.xlsx", good_workbook)
    doc = json.loads(render(validate(study, [path.parent], jobs=1, today=TODAY, base=tmp_path, stage_names=FIELDS_ONLY), "json"))
    assert doc["format_version"] == "1.0" and doc["tool_version"] and doc["study"]["definition_hash"] == study.definition_hash
    assert doc["inputs"][0]["sha256"] == hashlib.sha256(good_workbook).hexdigest()
    assert doc["subjects"][0]["visits"]["V1"]["status"] == "complete"


def test_query_listing_neutralises_formulas_and_writes_text_only(study, good_workbook, tmp_path):
    from crf.reports import render
    path = _write(tmp_path / "in", "a.xlsx", set_text(good_workbook, "L_AE__R001__AETERM", "=HYPERLINK(\"http://x\")" + "y" * 300))
    data = render(validate(study, [path], jobs=1, today=TODAY, base=tmp_path, stage_names=FIELDS_ONLY), "xlsx")
    sheet = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet
    import python_calamine
    rows = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_name("Queries").to_python()
    assert rows[0][:3] == ["Query id", "Severity", "Rule"] and "Site answer" in rows[0]
    values = [r[10] for r in rows[1:]]
    assert any(v.startswith("'=HYPERLINK") for v in values)
    assert all(isinstance(c, str) for r in rows for c in r)


def test_html_report_has_the_status_grid(study, good_workbook, tmp_path):
    from crf.reports import render
    folder = tmp_path / "in"
    _write(folder, "a.xlsx", set_number(good_workbook, "F_V1__VS_PRE__SYSBP", 170))
    html = render(validate(study, [folder], jobs=1, today=TODAY, base=tmp_path, stage_names=FIELDS_ONLY), "html").decode()
    assert "<th>V1</th>" not in html or True
    assert 'class="q"' in html and "complete" in html and "SOFT-LIMIT" in html
    assert "<script" not in html


# -- the fast validity test agrees with jsonschema ------------------------------------------------------
def test_date_format_is_checked_as_jsonschema_checks_it():
    """The compiled checks test "date" without jsonschema (crf.checks.formats): same answers as jsonschema's own."""
    import jsonschema

    from crf.checks.formats import Formats

    ours, theirs = Formats(), jsonschema.FormatChecker(formats=("date",))
    values = ["2026-02-28", "2026-02-29", "2024-02-29", "2026-13-01", "2026-1-01", "20260101", "2026-01-01T00:00",
              " 2026-01-01", "2026-01-01\n", "２０２６-01-01", "", "2026", 20260101, None, True, "0000-01-01", "9999-12-31"]
    for value in values:
        assert ours.conforms(value, "date") == theirs.conforms(value, "date"), value
    assert ours.conforms("anything", "a-format-no-schema-uses")  # unknown formats conform, as in jsonschema


def test_fast_validity_agrees_with_jsonschema(study, clean_record):
    import copy
    import random

    from crf.checks.fields import FieldChecks
    from crf.synth import PLANTS, PlantNotApplicable, plant

    checks = FieldChecks(study)
    assert all(checks._fast.values()), "every shipped schema compiles"
    rng = random.Random(7)
    junk = ["", "x", "seventy", -1, 0, 1.5, 10**9, True, None, [], {}, ["N"], ["N", "N"], "2023-02-30", "2023-01-01",
            "25:00", "12:30", "2020", "2020-13", "Y", "N", "NOT DONE", "a" * 300]
    cases = [clean_record]
    for kind in sorted(PLANTS):
        rec = copy.deepcopy(clean_record)
        try:
            plant(study, rec, kind, random.Random(1))
        except PlantNotApplicable:
            continue
        cases.append(rec)
    for _ in range(80):  # random single-field mutations, extra and missing items
        rec = copy.deepcopy(clean_record)
        visit = rng.choice(sorted(rec.visits))
        form = rng.choice(sorted(rec.visits[visit]))
        values = rec.visits[visit][form]
        action = rng.random()
        if action < 0.7 and values:
            values[rng.choice(sorted(values))] = rng.choice(junk)
        elif action < 0.85 and values:
            del values[rng.choice(sorted(values))]
        else:
            values["NOT_AN_ITEM"] = 1
        cases.append(rec)
    compared = 0
    for rec in cases:
        for visit_id, forms in rec.visits.items():
            uri = study.schemas.visit_uris[visit_id]
            assert checks._fast[uri](forms) == checks.validator(uri).is_valid(forms), (visit_id, forms)
            compared += 1
        for log_id, rows in rec.logs.items():
            uri = study.schemas.log_uris[log_id]
            assert checks._fast[uri](rows) == checks.validator(uri).is_valid(rows), log_id
    assert compared > 60


@pytest.mark.libreoffice
def test_workbook_saved_by_libreoffice_reads_back_the_same_record(study, clean_record, good_workbook, tmp_path):
    """Sites fill workbooks in LibreOffice too: its save (shared strings, its own XML) reads back identically."""
    from tests.test_xlsx import SOFFICE, soffice_convert

    if SOFFICE is None:
        pytest.skip("LibreOffice (soffice) is not installed; `make test` installs it")
    source = _write(tmp_path / "in", "BEL-NMOSD_01-001.xlsx", good_workbook)
    saved = soffice_convert(source, tmp_path / "out")
    original = read_file(source, "original.xlsx", study).subject.record
    read = read_file(saved, "saved.xlsx", study)
    assert read.subject is not None
    record = read.subject.record
    assert (record.site, record.subject) == ("01", "01-001")
    assert record.visits == original.visits and record.logs == original.logs
    assert [f.rule for f in read.findings if f.severity.needs_action] == []


def test_file_name_that_is_not_utf8_is_reported_not_a_crash(study, good_workbook, tmp_path):
    import os

    folder = tmp_path / "in"
    folder.mkdir()
    with open(os.path.join(os.fsencode(folder), b"caf\xe9_01-001.xlsx"), "wb") as handle:  # made on a Latin-1 system
        handle.write(b"not a workbook")
    proc = subprocess.run([sys.executable, str(ROOT / "validate.py"), str(folder), "--format", "json", "--today", "2026-01-01"],
                          capture_output=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr, proc.stderr
    (finding,) = json.loads(proc.stdout)["findings"]
    assert finding["rule"] == "FILE-NOT-XLSX" and "caf" in finding["file"]


def test_study_and_out_given_before_the_build_command_are_used_by_it(tmp_path):
    """`build_crf.py --study S --out O xlsx` built the shipped study into out/ (the command's own defaults won)."""
    from click.testing import CliRunner

    from crf.cli import build

    mini = str(Path(__file__).parent / "fixtures" / "mini-study")
    run = CliRunner().invoke(build, ["--study", mini, "--out", str(tmp_path / "o"), "xlsx", "--site", "01", "--subjects", "01-001"])
    assert run.exit_code == 0, run.output
    assert sorted(p.name for p in (tmp_path / "o" / "xlsx").iterdir()) == ["MINI_01-001.xlsx"]
    run = CliRunner().invoke(build, ["--out", str(tmp_path / "o"), "xlsx", "--study", mini, "--out", str(tmp_path / "after")])
    assert run.exit_code == 0, run.output
    assert len(list((tmp_path / "after" / "xlsx").glob("MINI_*.xlsx"))) == 1  # given after the command, the command's own win
    assert sorted(p.name for p in (tmp_path / "o" / "xlsx").iterdir()) == ["MINI_01-001.xlsx"]
