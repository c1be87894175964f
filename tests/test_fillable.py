"""Fillable PDF CRFs (build_crf.py pdf --fillable): filled in as a PDF reader fills them, read like workbooks.

The PDFs are filled with pypdf, an independent PDF library, the way a reader stores what a site typed:
/V of text fields (dates typed DD/MMM/YYYY, numbers as text), the on-state of a radio field, the ticked
check boxes of a multi-choice item, a list's export value. The data are the hand-written subjects
(tests/fixtures/subjects, written from the spec), with problems a monitor would see.
"""
from __future__ import annotations

import copy
import datetime as dt
import io
import json
import subprocess
import warnings
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from pypdf import PdfWriter
from pypdf.generic import NameObject

from conftest import ROOT
from crf.fieldmap import iter_fields
from crf.model import ItemKind
from crf.pdf_fillable import META_FIELD, SUBJECT_FIELD, FillableBook, build_fillable, fillable_name
from crf.readers import read_file
from crf.validation import validate
from crf.xlsx import workbook_bytes
from crf.subject import SubjectRecord
from pagecheck import page_problems

SUBJECTS = ROOT / "tests" / "fixtures" / "subjects"
TODAY = dt.date(2026, 11, 25)
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def with_problems(doc: dict) -> dict:
    """01-901 with what a monitor would query: a dose 21% above 10 mg/kg x weight at Day 0, the systolic pressure
    before the infusion left blank, a weight typed as a word, and an adverse event without its outcome."""
    doc = copy.deepcopy(doc)
    ex = doc["visits"]["V1"]["EX"]
    ex["EXDOSE"] = round(ex["EXWT"] * 10 * 1.21, 1)
    del doc["visits"]["V1"]["VS_PRE"]["SYSBP"]
    doc["visits"]["V2"]["VS_PRE"]["WEIGHT"] = "sixty-four"
    del doc["logs"]["AE"][0]["AEOUT"]
    return doc


@pytest.fixture(scope="module")
def built(tmp_path_factory, study) -> Path:
    """Fillable PDFs of the two hand-written subjects, and the blank one (one layout, three copies)."""
    folder = tmp_path_factory.mktemp("fillable")
    template = FillableBook(study).build()
    for site, subject in (("01", "01-901"), ("01", "01-902"), (None, None)):
        path = folder / ("blank" if subject is None else "") / fillable_name(study, subject)
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(template.for_subject(site, subject))
    return folder


def typed(item: Any, value: Any, field: Any) -> Any:
    """What a site types or ticks in the field for `value` (pypdf's field values)."""
    kind = item.kind
    if kind in (ItemKind.DATE, ItemKind.PARTIAL_DATE):
        parts = str(value).split("-")
        day = parts[2] if len(parts) > 2 else "UN"
        month = MONTHS[int(parts[1]) - 1] if len(parts) > 1 else "UNK"
        return f"{day}/{month}/{parts[0]}"
    kids = list(field.get("/Kids") or [])
    if kind is ItemKind.CHOICE and field.get("/FT") == pikepdf.Name.Btn:
        return NameObject("/" + str(value))  # the radio button of that option
    if kind is ItemKind.MULTI_CHOICE and kids and "/T" in kids[0]:
        return [str(v) for v in value]  # ticked check boxes, set below
    if kind is ItemKind.MULTI_CHOICE:  # a log's keys field: the key numbers printed under the table
        codes = [str(c.code) for c in item.codelist.codes]
        return "; ".join(str(codes.index(str(v)) + 1) for v in value)
    return str(value)


def fill(study, source: Path, target: Path, doc: dict, subject_typed: str = "") -> None:
    """Fill the fillable PDF `source` with the subject document's values, as a PDF reader saves them."""
    with pikepdf.open(source) as issued:
        _fill(study, issued, source, target, doc, subject_typed)


def _fill(study, issued: pikepdf.Pdf, source: Path, target: Path, doc: dict, subject_typed: str) -> None:
    fields = {str(f.T): f for f in issued.Root.AcroForm.Fields}
    values: dict[str, Any] = {}
    ticks: dict[str, str] = {}
    for f in iter_fields(study):
        if f.row is None:
            value = doc["visits"].get(f.container, {}).get(f.form, {}).get(f.item.id)
        else:
            rows = doc["logs"].get(f.container, [])
            value = rows[f.row].get(f.item.id) if f.row < len(rows) else None
        if value in (None, "", []):
            continue
        field = fields[f.defined_name]
        entry = typed(f.item, value, field)
        if isinstance(entry, list):
            for n, kid in enumerate(field.Kids, 1):
                state = next(k for k in kid.AP.N.keys() if k != "/Off")
                if state[1:] in entry:
                    ticks[f"{f.defined_name}.{n}"] = state
        else:
            values[f.defined_name] = entry
    if subject_typed:
        values[SUBJECT_FIELD] = subject_typed
    # pypdf matches every widget of a page against every value given: give each page only its own fields
    page_of = {annot.objgen: n for n, page in enumerate(issued.pages) for annot in page.obj.get("/Annots") or []}
    by_page: dict[int, dict[str, Any]] = {}
    for name, entry in {**values, **ticks}.items():
        node = fields[name.split(".")[0]]
        widget = node.Kids[int(name.split(".")[1]) - 1] if "." in name else (node.Kids[0] if "/Kids" in node else node)
        by_page.setdefault(page_of[widget.objgen], {})[name] = entry
    writer = PdfWriter(clone_from=str(source))
    for n, page_values in sorted(by_page.items()):
        writer.update_page_form_field_values(writer.pages[n], page_values, auto_regenerate=False)
    writer.write(str(target))


@pytest.fixture(scope="module")
def filled(study, built, tmp_path_factory) -> dict[str, Path]:
    """The two hand-written subjects typed into their fillable PDFs (01-901 with the problems of with_problems)."""
    folder = tmp_path_factory.mktemp("filled")
    out = {}
    for number in ("01-901", "01-902"):
        doc = json.loads((SUBJECTS / f"{number}.json").read_text())
        out[number] = folder / f"BEL-NMOSD_{number}.pdf"
        fill(study, built / f"BEL-NMOSD_{number}.pdf", out[number], with_problems(doc) if number == "01-901" else doc)
    return out


@pytest.fixture(scope="module")
def mini_fillable(mini_study, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mini-fillable")
    return build_fillable(mini_study, folder, site="01", subjects=("01-001",), jobs=1)[0]


def keyed(findings) -> list[tuple]:
    return sorted({(f.rule, f.visit, f.form, f.field, f.row) for f in findings})


def test_filled_pdf_gives_the_findings_of_the_same_data_in_a_workbook(study, filled, tmp_path):
    for number, pdf in filled.items():
        doc = json.loads((SUBJECTS / f"{number}.json").read_text())
        if number == "01-901":
            doc = with_problems(doc)
        workbook = tmp_path / "xlsx" / f"BEL-NMOSD_{number}.xlsx"
        workbook.parent.mkdir(exist_ok=True)
        workbook.write_bytes(workbook_bytes(study, "01", number, SubjectRecord.from_json(doc)))
        from_pdf = validate(study, [pdf], jobs=1, today=TODAY)
        from_xlsx = validate(study, [workbook], jobs=1, today=TODAY)
        assert keyed(from_pdf.findings) == keyed(from_xlsx.findings), number
        assert from_pdf.files[0].kind == "pdf" and from_pdf.files[0].subject.subject == number
        rules = {f.rule for f in from_pdf.findings}
        if number == "01-901":
            assert {"EC-36", "PD-07", "FIELD-REQUIRED", "NOT-A-NUMBER"} <= rules  # every planted problem, found once
            assert ("FIELD-REQUIRED", "", "AE", "AEOUT", 1) in keyed(from_pdf.findings)
        else:
            assert not [f for f in from_pdf.findings if f.severity.value != "warning"], [f.message for f in from_pdf.findings]


def test_findings_name_the_page_and_field(study, filled):
    pdf = filled["01-901"]
    result = validate(study, [pdf], jobs=1, today=TODAY)
    dose = next(f for f in result.findings if f.rule == "EC-36")
    page = int(dose.sheet.split(",")[0].removeprefix("page "))
    assert dose.sheet == f"page {page}, field F_V1__EX__EXDOSE"
    assert f"page {page}, field F_V1__EX__EXDOSE (Dose given)" in dose.message and "sheet" not in dose.message
    text = subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), "-layout", str(pdf), "-"], capture_output=True, text=True).stdout
    assert "Dose given" in text and "V1 Week 0" in text  # the page named is the one that holds the field
    with pikepdf.open(pdf) as opened:
        widget = next(f for f in opened.Root.AcroForm.Fields if str(f.T) == "F_V1__EX__EXDOSE")
        assert any(a.objgen == widget.objgen for a in opened.pages[page - 1].Annots)
    weight = next(f for f in result.findings if f.rule == "NOT-A-NUMBER")
    assert weight.visit == "V2" and weight.field == "WEIGHT" and "'sixty-four' is not a number" in weight.message
    ae = next(f for f in result.findings if f.field == "AEOUT")
    assert ae.sheet.endswith("field L_AE__R001__AEOUT") and "Adverse events log, row 1" in ae.message


def test_fields_are_one_per_item_radio_groups_with_code_states(built, study):
    with pikepdf.open(built / "BEL-NMOSD_01-901.pdf") as pdf:
        fields = {str(f.T): f for f in pdf.Root.AcroForm.Fields}
        inputs = list(iter_fields(study))
        assert set(f.defined_name for f in inputs) <= set(fields)  # every input of the workbook's field map
        serious = fields["L_AE__R001__AESER"]  # a choice: one radio field, a widget per option named by its code
        assert serious.FT == pikepdf.Name.Btn and int(serious.Ff) & (1 << 15) and not int(serious.Ff) & (1 << 14)
        assert all("/T" not in kid for kid in serious.Kids) and len(serious.Kids) == 2
        states = [next(k for k in kid.AP.N.keys() if k != "/Off") for kid in serious.Kids]
        assert sorted(states) == ["/N", "/Y"]
        assert all(set(kid.AP.D.keys()) == set(kid.AP.N.keys()) for kid in serious.Kids)  # pressed looks too
        race = next(f for f in inputs if f.item.kind is ItemKind.MULTI_CHOICE and f.row is None)
        boxes = fields[race.defined_name].Kids  # a multi-choice item: a check box per option
        assert [next(k for k in b.AP.N.keys() if k != "/Off") for b in boxes] == ["/" + str(c.code) for c in race.item.codelist.codes]
        assert fields["F_V1__SV__SVSTDAT"].FT == pikepdf.Name.Tx and int(fields["F_V1__SV__SVSTDAT"].MaxLen) == 11
        meta = dict(line.split("=", 1) for line in str(fields[META_FIELD].V).splitlines())
        assert meta["subject"] == "01-901" and meta["study_id"] == study.id and meta["definition_hash"] == study.definition_hash
        assert len(pdf.pages) > 150  # cover, every visit, every log


def test_qpdf_check_passes_on_blank_issued_and_filled_pdfs(built, filled, mini_fillable):
    for path in (built / "blank" / "BEL-NMOSD_fillable.pdf", built / "BEL-NMOSD_01-901.pdf", filled["01-901"], mini_fillable):
        check = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "No syntax or stream encoding errors" in check.stdout


def test_pages_pass_the_page_check_and_look_like_the_paper_forms(built):
    path = built / "BEL-NMOSD_01-901.pdf"
    assert not page_problems(path)
    text = subprocess.run(["pdftotext", "-f", "2", "-l", "2", "-layout", str(path), "-"], capture_output=True, text=True).stdout
    assert "Visit date" in text and "DD/MMM/YYYY" in text  # the expected format printed beside each date field


def test_same_inputs_same_bytes(mini_study, mini_fillable, tmp_path):
    again = build_fillable(mini_study, tmp_path / "b", site="01", subjects=("01-001",), jobs=2)
    assert mini_fillable.read_bytes() == again[0].read_bytes()  # whatever the number of worker processes
    template = FillableBook(mini_study).build(jobs=1)
    assert template.for_subject("01", "01-002") == template.for_subject("01", "01-002")


def test_letter_pages_pass_the_page_check(mini_study, tmp_path):
    path = build_fillable(mini_study, tmp_path, site="01", subjects=("01-001",), page_size="Letter", jobs=1)[0]
    assert not page_problems(path)
    with pikepdf.open(path) as pdf:
        assert [round(float(x)) for x in pdf.pages[1].mediabox[2:]] == [612, 792]  # US Letter, in points


def _read(study, path: Path):
    return read_file(path, path.name, study)


def test_wrong_subject_study_or_version_is_caught(study, mini_study, built, mini_fillable, tmp_path):
    wrong = _read(study, mini_fillable)  # another study's fillable PDF
    assert [f.rule for f in wrong.findings] == ["WRONG-STUDY"] and mini_study.id in wrong.findings[0].message
    blank = _read(study, built / "blank" / "BEL-NMOSD_fillable.pdf")
    assert [f.rule for f in blank.findings] == ["SUBJECT-MISSING"]  # a blank PDF, nobody typed the subject
    changed = tmp_path / "changed.pdf"
    fill(mini_study, mini_fillable, changed, {"visits": {}, "logs": {}}, subject_typed="01-003")
    result = _read(mini_study, changed)
    assert [f.rule for f in result.findings] == ["SUBJECT-CHANGED"] and result.subject.record.subject == "01-001"
    assert result.findings[0].sheet == "page 1, field SUBJECT_ID" and "'01-003'" in result.findings[0].message

    def with_meta(key: str, value: str) -> Path:
        target = tmp_path / f"meta-{key}.pdf"
        with pikepdf.open(mini_fillable) as pdf:
            meta = next(f for f in pdf.Root.AcroForm.Fields if str(f.T) == META_FIELD)
            lines = [f"{k}={value}" if k == key else f"{k}={v}" for k, v in (line.split("=", 1) for line in str(meta.V).splitlines())]
            meta.V = pikepdf.String("\n".join(lines))
            pdf.save(target)
        return target

    assert [f.rule for f in _read(mini_study, with_meta("study_id", "OTHER-STUDY")).findings] == ["WRONG-STUDY"]
    assert [f.rule for f in _read(mini_study, with_meta("form_version", "0.0")).findings] == ["FORM-VERSION"]
    assert [f.rule for f in _read(mini_study, with_meta("definition_hash", "0" * 64)).findings] == ["DEFINITION-CHANGED"]
    assert [f.rule for f in _read(mini_study, with_meta("subject", "")).findings] == []  # the subject typed on the cover is read


def test_damaged_foreign_or_locked_pdfs_are_one_clear_finding(study, built, tmp_path):
    issued = (built / "BEL-NMOSD_01-901.pdf").read_bytes()
    cases = {
        "truncated.pdf": (issued[: len(issued) // 2], "FILE-DAMAGED"),
        "garbage.pdf": (b"%PDF-1.7\n" + bytes(range(256)) * 40, "FILE-DAMAGED"),
        "empty.pdf": (b"", "FILE-DAMAGED"),
        "not-a-pdf.pdf": (b"PK\x03\x04 a zip renamed", "FILE-DAMAGED"),
    }
    for name, (data, _) in cases.items():
        (tmp_path / name).write_bytes(data)
    # another document: the study's own printed visit form (no fields)
    subprocess.run(["qpdf", "--empty", "--pages", str(built / "BEL-NMOSD_01-901.pdf"), "2-3", "--", str(tmp_path / "printed.pdf")], check=True)
    cases["printed.pdf"] = (b"", "NOT-A-CRF-PDF")
    with pikepdf.open(io.BytesIO(issued)) as pdf:
        pdf.save(tmp_path / "locked.pdf", encryption=pikepdf.Encryption(user="secret", owner="secret"))
    cases["locked.pdf"] = (b"", "PASSWORD-PROTECTED")
    with pikepdf.open(io.BytesIO(issued)) as pdf, warnings.catch_warnings():  # an editor deleted the fields of a visit
        warnings.simplefilter("ignore", pikepdf.PageCopyWarning)  # their widgets stay on the pages, as after a careless edit
        pdf.Root.AcroForm.Fields = pikepdf.Array([f for f in pdf.Root.AcroForm.Fields if not str(f.T).startswith("F_V3__")])
        pdf.save(tmp_path / "edited.pdf")
    cases["edited.pdf"] = (b"", "PDF-FIELD-MISSING")
    for name, (_, rule) in cases.items():
        before = (tmp_path / name).read_bytes()
        result = _read(study, tmp_path / name)
        assert [f.rule for f in result.findings] == [rule], (name, [f.message for f in result.findings])
        assert result.findings[0].message.startswith(f"File {name}")
        assert (tmp_path / name).read_bytes() == before  # never modified
    result = validate(study, [tmp_path], jobs=1, today=TODAY)  # one bad file never stops the others
    assert sorted(o.file.rsplit("/", 1)[-1] for o in result.files) == sorted(cases)
    assert "V3" in next(f for f in result.findings if f.rule == "PDF-FIELD-MISSING").message


def test_cli_builds_fillable_pdfs_and_validates_them(tmp_path):
    from click.testing import CliRunner
    from crf.cli import build, validate as validate_cli

    mini = str(ROOT / "tests" / "fixtures" / "mini-study")
    run = CliRunner().invoke(build, ["pdf", "--fillable", "--study", mini, "--out", str(tmp_path), "--site", "01", "--subjects", "01-001..01-002"])
    assert run.exit_code == 0, run.output
    assert sorted(p.name for p in (tmp_path / "fillable").iterdir()) == ["MINI_01-001.pdf", "MINI_01-002.pdf"]
    run = CliRunner().invoke(validate_cli, [str(tmp_path / "fillable"), "--study", mini, "--format", "json", "--today", "2026-11-25"])
    report = json.loads(run.stdout)
    assert report["summary"]["files"] == 2 and report["summary"]["files_unusable"] == 0 and report["summary"]["subjects"] == 2
    assert [s["subject"] for s in report["subjects"]] == ["01-001", "01-002"]
    run = CliRunner().invoke(build, ["pdf", "--fillable", "--pdfa", "--study", mini, "--out", str(tmp_path)])
    assert run.exit_code == 2 and "--pdfa" in run.output
