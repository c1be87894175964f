"""Subject casebooks: the returned data laid out as the CRF book, each finding printed beside its item."""
from __future__ import annotations

import copy
import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from crf.cli import validate as validate_cli
from crf.reports import text_of
from click.testing import CliRunner

from conftest import ROOT
from pagecheck import page_problems

SUBJECT = ROOT / "tests" / "fixtures" / "subjects" / "01-901.json"


def early_subject() -> dict:
    """01-901 (written by hand from the spec) as returned after Day 0, with two problems a monitor would see:
    a dose 21% above 10 mg/kg x weight (EC-36, PD-07) and the systolic pressure before the infusion left blank."""
    doc = json.loads(SUBJECT.read_text())
    doc = copy.deepcopy(doc)
    doc["visits"] = {k: v for k, v in doc["visits"].items() if k in ("SCR", "V1")}
    doc["logs"] = {k: v for k, v in doc["logs"].items() if k in ("AE", "MH", "PA")}
    ex = doc["visits"]["V1"]["EX"]
    ex["EXDOSE"] = round(ex["EXWT"] * 10 * 1.21, 1)
    ex["N120"] = 7
    del doc["visits"]["V1"]["VS_PRE"]["SYSBP"]
    return doc


@pytest.fixture(scope="module")
def casebook(tmp_path_factory) -> tuple[Path, Path, str]:
    folder = tmp_path_factory.mktemp("casebook")
    returned = folder / "returned"
    returned.mkdir()
    source = returned / "BEL-NMOSD_01-901.json"
    source.write_text(json.dumps(early_subject(), indent=1))
    books = folder / "books"
    result = CliRunner().invoke(validate_cli, [str(returned), "--today", "2025-02-03", "--format", "json",
                                               "--output", str(folder / "report.json"), "--casebook", str(books)])
    assert result.exit_code == 1, result.output  # action needed: the planted problems
    report = json.loads((folder / "report.json").read_text())
    return books / "casebook-01-01-901.pdf", source, json.dumps(report["findings"])


def page_texts(path: Path) -> list[str]:
    out = subprocess.run(["pdftotext", "-raw", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True, text=True).stdout
    return [" ".join(p.split()) for p in out.split("\f")[:-1]]


def near(pages: list[str], question: str, after: str = "") -> str:
    """The text printed right after a question (its value, then its findings), on the page that holds it."""
    for text in pages:
        start = text.find(after) if after else 0
        at = text.find(question, max(start, 0)) if start >= 0 else -1
        if at >= 0:
            return text[at:at + 700]
    raise AssertionError(f"{question!r} is not printed")


def test_each_finding_is_printed_beside_its_item(casebook):
    path, _, findings = casebook
    pages = page_texts(path)
    dose = near(pages, "Dose given", after="Study drug administration")
    assert "EC-36" in dose and "PD-07" in dose  # dose deviation: query and major deviation, under the dose
    assert dose.startswith("Dose given EXDOSE 778.0 mg")  # the value as returned (64.3 kg x 10 mg/kg x 1.21)
    sysbp = near(pages, "Systolic blood pressure", after="Vital signs and weight: pre-infusion")
    assert "blank" in sysbp.split("Diastolic")[0]  # left blank by the site, and shown blank
    assert "FIELD-REQUIRED" in sysbp.split("Diastolic")[0]
    for rule in ("EC-36", "PD-07", "FIELD-REQUIRED"):
        assert rule in findings  # the same findings as the report


def test_cover_names_file_hash_and_visit_status(casebook):
    path, source, _ = casebook
    cover = page_texts(path)[0]
    assert hashlib.sha256(source.read_bytes()).hexdigest() in cover.replace(" ", "")
    assert "BEL-NMOSD_01-901.json" in cover and "subject 01-901" in cover
    assert "V1 Week 0 (Day 0), infusion 1" in cover and "queries" in cover and "not recorded" in cover


def test_casebook_bytes_are_reproducible_and_pages_clean(casebook, tmp_path):
    path, source, _ = casebook
    again = tmp_path / "books"
    result = CliRunner().invoke(validate_cli, [str(source), "--today", "2025-02-03", "--format", "csv", "--output", str(tmp_path / "r.csv"),
                                               "--casebook", str(again)])
    assert result.exit_code == 1, result.output
    assert (again / path.name).read_bytes() == path.read_bytes()
    assert not page_problems(path)


def store_casebook(folder: Path, monkeypatch) -> Path:
    """Two returns of 01-901 recorded in a new study store, the second corrected: the dose fixed, SYSBP filled in."""
    folder.mkdir()
    monkeypatch.chdir(folder)  # the store keeps file names as given: relative, so two folders give the same bytes
    store = Path("study.db")
    first = Path("first")
    first.mkdir()
    (first / "BEL-NMOSD_01-901.json").write_text(json.dumps(early_subject(), indent=1))
    run = CliRunner().invoke(validate_cli, [str(first), "--store", str(store), "--received", "2025-02-03T10:00", "--today", "2025-02-03",
                                            "--format", "csv", "--output", "r1.csv"])
    assert run.exit_code == 1, run.output
    corrected = early_subject()
    ex = corrected["visits"]["V1"]["EX"]
    ex["EXDOSE"] = round(ex["EXWT"] * 10, 1)
    corrected["visits"]["V1"]["VS_PRE"]["SYSBP"] = 118
    second = Path("second")
    second.mkdir()
    (second / "BEL-NMOSD_01-901.json").write_text(json.dumps(corrected, indent=1))
    books = folder / "books"  # absolute: the test reads it after leaving the folder
    run = CliRunner().invoke(validate_cli, [str(second), "--store", str(store), "--received", "2025-02-17T09:30", "--today", "2025-02-17",
                                            "--format", "csv", "--output", "r2.csv", "--casebook", str(books)])
    assert run.exit_code in (0, 1), run.output
    return books / "casebook-01-01-901.pdf"


def test_casebook_with_store_prints_audit_trail_and_query_history(tmp_path, monkeypatch):
    path = store_casebook(tmp_path / "a", monkeypatch)
    pages = page_texts(path)
    start = next(i for i, text in enumerate(pages) if text.startswith("Audit trail and query history") or " Audit trail and query history " in text)
    audit = " ".join(pages[start:])
    first_sha = hashlib.sha256((tmp_path / "a" / "first" / "BEL-NMOSD_01-901.json").read_bytes()).hexdigest()
    second_sha = hashlib.sha256((tmp_path / "a" / "second" / "BEL-NMOSD_01-901.json").read_bytes()).hexdigest()
    compact = audit.replace(" ", "")
    assert first_sha in compact and second_sha in compact  # both returns, each with its hash
    assert "2025-02-03T10:00:00" in audit and "2025-02-17T09:30:00" in audit
    weight = json.loads(SUBJECT.read_text())["visits"]["V1"]["EX"]["EXWT"]
    assert "V1 VS_PRE SYSBP – (blank) 118" in audit  # the audit trail: blank, then 118 (a JSON document has no cells)
    assert f"V1 EX EXDOSE – {text_of(round(weight * 10 * 1.21, 1))} {text_of(round(weight * 10, 1))}" in audit
    ec36 = audit[audit.index("EC-36 · V1 EXDOSE"):][:300]
    assert ec36.startswith("EC-36 · V1 EXDOSE resolved")  # the query's life: opened on the first return, resolved by the second
    assert "2025-02-03 10:00 opened (return 1)" in ec36 and "2025-02-17 09:30 resolved (return 2)" in ec36
    assert "FIELD-REQUIRED · V1 SYSBP resolved" in audit
    assert "EC-50 · log AE record 1, AECONTRT persisting" in audit
    assert not page_problems(path)
    assert store_casebook(tmp_path / "b", monkeypatch).read_bytes() == path.read_bytes()  # same inputs, same store history: same bytes


def test_casebook_without_store_has_no_audit_section(casebook):
    path, _, _ = casebook
    assert not any("Audit trail and query history" in text for text in page_texts(path))
