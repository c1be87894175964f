"""Printable PDFs: every question printed, logs and book complete, aCRF annotated, builds reproducible."""
from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from pypdf import PdfReader

from crf.model import ItemKind
from crf.pdf import ACRF_NAME, BOOK_NAME, PdfBuilder, PdfBuildError, build_pdfs
from crf.pdf_layout import PAGE_SIZES, entry_for, form_rows, integer_digits, log_view, unique_instances
from crf.loader import load_study

from conftest import MINI_STUDY
from pagecheck import page_problems, read_pages


def normalise(text: str) -> str:
    """One space between words; a word broken after its hyphen at a line end joined again."""
    return re.sub(r"-\s+", "-", re.sub(r"\s+", " ", text)).strip()


def pdf_text(path: Path) -> str:
    # pdftotext (poppler) is far faster than pypdf on a few hundred pages; -raw keeps hyphens at line ends
    result = subprocess.run(["pdftotext", "-raw", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True, text=True)
    return normalise(result.stdout)


def page_texts(path: Path) -> list[str]:
    """The text of each page (pdftotext separates pages with a form feed)."""
    result = subprocess.run(["pdftotext", "-raw", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True, text=True)
    return [normalise(page) for page in result.stdout.split("\f")[:-1]]


def outline_pages(path: Path) -> list[tuple[tuple[str, ...], int]]:
    """Every bookmark as (its path of titles, 1-based page it opens)."""
    reader = PdfReader(path)
    found: list[tuple[tuple[str, ...], int]] = []

    def walk(nodes, trail):
        last = trail
        for node in nodes:
            if isinstance(node, list):
                walk(node, last)
            else:
                last = (*trail, node.title)
                found.append((last, reader.get_destination_page_number(node) + 1))

    walk(reader.outline, ())
    return found


def page_count(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))


def outline_titles(path: Path) -> list[tuple[int, str]]:
    reader = PdfReader(path)
    found: list[tuple[int, str]] = []

    def walk(nodes, depth):
        for node in nodes:
            if isinstance(node, list):
                walk(node, depth + 1)
            else:
                found.append((depth, node.title))

    walk(reader.outline, 0)
    return found


@pytest.fixture(scope="session")
def shipped_pdfs(study, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shipped") / "pdf"
    build_pdfs(study, out)
    return out


@pytest.fixture(scope="session")
def shipped_letter_pdfs(study, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shipped-letter") / "pdf"
    build_pdfs(study, out, page_size="Letter")
    return out


@pytest.fixture(scope="session")
def mini_builds(mini_study, tmp_path_factory) -> tuple[Path, Path]:
    first = tmp_path_factory.mktemp("mini-a") / "pdf"
    second = tmp_path_factory.mktemp("mini-b") / "pdf"
    build_pdfs(mini_study, first)
    build_pdfs(mini_study, second)
    return first, second


# -- the shipped study ---------------------------------------------------------------------

def test_every_visit_pdf_holds_every_question(study, shipped_pdfs):
    for visit in study.visits:
        text = pdf_text(shipped_pdfs / f"visit-{visit.id}.pdf")
        for inst in visit.forms:
            assert normalise(inst.title) in text, (visit.id, inst.name)
            for item in inst.items:
                assert normalise(item.question) in text, (visit.id, inst.name, item.id)
        assert "Investigator signature" in text and "Page 1 of" in text


def test_every_log_pdf_holds_every_question_and_row(study, shipped_pdfs):
    for log in study.logs:
        path = shipped_pdfs / f"log-{log.id}.pdf"
        text = pdf_text(path)
        for item in log.form.items:
            assert normalise(item.question) in text, (log.id, item.id)
        assert f"of {log.rows}" in text  # the last page ends at the last row
        view = log_view("x", log, PAGE_SIZES["A4"], {})
        assert page_count(path) == len(view.pages), f"log {log.id} rows overflow their page"


def test_page_counts_are_stable(study, shipped_pdfs):
    pages = {p.name: page_count(p) for p in sorted(shipped_pdfs.glob("*.pdf"))}
    visits = sum(pages[f"visit-{v.id}.pdf"] for v in study.visits)
    logs = sum(pages[f"log-{lg.id}.pdf"] for lg in study.logs)
    assert pages[BOOK_NAME] > visits + logs  # front matter, then every visit and log page
    # Dosing visits with the same forms print the same number of pages.
    assert len({pages[f"visit-V{n}.pdf"] for n in (2, 4, 6, 7, 9, 10, 12, 13, 14)}) == 1
    expected = {"visit-SCR.pdf": 15, "visit-V1.pdf": 13, "visit-V2.pdf": 6, "log-AE.pdf": 10}  # labs: local range per result
    assert {k: pages[k] for k in expected} == expected


def test_book_outline_lists_every_visit_then_its_forms(study, shipped_pdfs):
    titles = outline_titles(shipped_pdfs / BOOK_NAME)
    top = [t for depth, t in titles if depth == 0]
    assert top[:3] == ["Cover", "Schedule of assessments", "Contents"]
    for visit in study.visits:
        assert f"{visit.id} {visit.label}" in top, visit.id
    for log in study.logs:
        assert f"Log {log.id}: {log.label}" in top
    second = {t for depth, t in titles if depth == 1}
    assert "VS_PRE: Vital signs and weight: pre-infusion" in second
    text = pdf_text(shipped_pdfs / BOOK_NAME)
    assert "Form version" in text and "Protocol version" in text and "Schedule of assessments" in text


def test_acrf_annotates_every_item(study, shipped_pdfs):
    path = shipped_pdfs / ACRF_NAME
    text = pdf_text(path)
    missing = []
    for _, _, item in study.iter_fields():
        if item.sdtm.submitted:
            variable = item.sdtm.variable
            if variable not in text or (item.sdtm.where and normalise(item.sdtm.where) not in text):
                missing.append(item.id)
    assert not missing
    assert text.count("NOT SUBMITTED") >= len({it.id for _, _, it in study.iter_fields() if not it.sdtm.submitted})
    assert 'VSORRES where VSTESTCD = "SYSBP"' in text
    assert "VS = Vital Signs" in text
    top = [t for depth, t in outline_titles(path) if depth == 0]
    assert {"Visits", "Forms", "Logs"} <= set(top)


def test_acrf_contents_bookmarks_and_footers_give_the_same_pages(study, shipped_pdfs):
    path = shipped_pdfs / ACRF_NAME
    pages = page_texts(path)
    total = len(pages)
    layout = subprocess.run(["pdftotext", "-layout", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True, text=True).stdout
    contents = [(normalise(m.group(1)), int(m.group(2))) for m in re.finditer(r"^\s*(\S.*?\S)\s{2,}(\d+)\s*$", layout, re.M)]
    by_form = [(trail[-1], page) for trail, page in outline_pages(path) if len(trail) == 2 and trail[0] == "Forms"]
    assert len(by_form) == len(unique_instances(study))
    for label, page in by_form:
        name, _, rest = label.partition(": ")
        title = rest.rsplit(" (", 1)[0]
        text = pages[page - 1]
        assert f"Page {page} of {total}" in text, (label, page)  # the footer of the page the bookmark opens
        assert normalise(title) in text, (label, page)  # ... shows that form
        assert (normalise(label), page) in contents, (label, page)  # ... and the contents say so


def test_acrf_bookmarks_by_visit_and_by_form(study, shipped_pdfs):
    marks = outline_pages(shipped_pdfs / ACRF_NAME)
    visits = {trail[1]: page for trail, page in marks if len(trail) == 2 and trail[0] == "Visits"}
    assert list(visits) == [f"{v.id} {v.label}" for v in study.visits if v.forms]
    by_form = [(trail[1].rsplit(" (", 1)[0], page) for trail, page in marks if len(trail) == 2 and trail[0] == "Forms"]
    for visit in study.visits:
        forms = {trail[2]: page for trail, page in marks if len(trail) == 3 and trail[:2] == ("Visits", f"{visit.id} {visit.label}")}
        assert list(forms) == [f"{inst.name}: {inst.title}" for inst in visit.forms], visit.id
        # a form used at many visits is annotated once: every visit's bookmark opens that one page
        for label, page in forms.items():
            matches = [p for name, p in by_form if name == label]
            assert page in matches, (visit.id, label)
    assert {t[1] for t, _ in marks if len(t) == 2 and t[0] == "Logs"} == {f"Log {lg.id}: {lg.label}" for lg in study.logs}


def test_acrf_every_collected_item_is_annotated_beside_its_question(study, shipped_pdfs):
    """Each item's annotation sits in its own row: right after its question (and small print) on the page."""
    pages = page_texts(shipped_pdfs / ACRF_NAME)
    text = " ".join(pages)
    missing = []
    for inst, _visits in unique_instances(study):
        heading = text.find(f"{normalise(inst.title)} {inst.form.code + ' ' if inst.form.code else ''}{inst.form.id}")
        assert heading >= 0, inst.name
        cursor = heading + 1
        for row in form_rows(inst.form, {}):  # in printed order: each question after the one before
            at = text.find(normalise(row.item.question), cursor)
            annotation = normalise(row.annotation)
            if at < 0 or annotation not in text[at:at + 900]:
                missing.append(f"{inst.name}.{row.item.id}: {annotation}")
            else:
                cursor = at + 1
    assert not missing, missing
    assert text.count("[NOT SUBMITTED]") >= len({it.id for _, _, it in study.iter_fields() if not it.sdtm.submitted})
    # domain boxes name the domain: "DM = Demographics", never "SC = SC"
    boxes = re.findall(r"\b([A-Z]{2}) = ([A-Z][a-z][\w/ ]*)", text)
    assert ("DM", "Demographics") in [(d, n[:12]) for d, n in boxes]
    assert not re.search(r"\b([A-Z]{2}) = \1\b", text)


def test_unknown_sdtm_domain_is_an_error_naming_the_form(mini_study):
    inst = mini_study.visits[0].forms[0]
    item = inst.form.items[0]
    odd = replace(item, sdtm=replace(item.sdtm, domain="XZ"))
    broken_form = replace(inst.form, items=(odd, *inst.form.items[1:]))
    broken = replace(mini_study, visits=(replace(mini_study.visits[0], forms=(replace(inst, form=broken_form), *mini_study.visits[0].forms[1:])), *mini_study.visits[1:]))
    with pytest.raises(PdfBuildError, match=r"form VIT: SDTM domain XZ"):
        PdfBuilder(broken)


def test_letter_and_pdfa(mini_study, tmp_path):
    written = build_pdfs(mini_study, tmp_path, page_size="Letter", pdfa=True)
    book = PdfReader(tmp_path / BOOK_NAME)
    width, height = float(book.pages[0].mediabox.width), float(book.pages[0].mediabox.height)
    assert (round(width), round(height)) == (612, 792)
    xmp = book.xmp_metadata
    assert xmp is not None and b"pdfaid" in xmp.stream.get_data()
    assert len(written) == 2 + 1 + 2  # two visits, one log, book and aCRF


# -- every page looked at ----------------------------------------------------------------------

@pytest.mark.parametrize("size", ["A4", "Letter"])
def test_no_page_draws_words_over_words_or_is_left_nearly_empty(size, shipped_pdfs, shipped_letter_pdfs, mini_builds):
    folders = [shipped_pdfs if size == "A4" else shipped_letter_pdfs] + ([mini_builds[0]] if size == "A4" else [])
    problems = [line for folder in folders for path in sorted(folder.glob("*.pdf")) for line in page_problems(path)]
    assert not problems, f"{len(problems)} page problems:\n" + "\n".join(problems[:40])


def test_page_check_sees_drawn_over_text_and_a_lone_item(tmp_path):
    from weasyprint import HTML

    html = ('<body style="margin:0">'
            '<p style="margin: 150mm 0 0 0">Serious? Yes No</p>'
            '<p style="margin: -2.5mm 0 0 2mm">If serious: resulted in death?</p>'
            '<p style="break-before: page; margin-top: 12mm">Ethnicity</p></body>')
    path = tmp_path / "bad.pdf"
    HTML(string=html).write_pdf(path)
    problems = page_problems(path)
    assert any("p.1" in p and "drawn over" in p for p in problems), problems
    assert any("p.2" in p and "of the page used" in p and "Ethnicity" in p for p in problems), problems
    assert len(read_pages(path)) == 2


# -- the tiny second study, reproducibility ----------------------------------------------------

def test_mini_study_renders(mini_study, mini_builds):
    first, _ = mini_builds
    names = sorted(p.name for p in first.glob("*.pdf"))
    assert names == sorted(["visit-BASE.pdf", "visit-FUP.pdf", "log-NOTE.pdf", BOOK_NAME, ACRF_NAME])
    text = pdf_text(first / "visit-BASE.pdf")
    assert "Heart rate" in text and "If Yes:" in text and "Cigarettes per day" in text
    rows = {r.item.id: r for r in form_rows(mini_study.visits[0].forms[0].form, {})}
    assert (rows["CIGS"].depth, rows["CIGS"].caption) == (1, "If Yes:")
    assert "Cigarettes per day" not in pdf_text(first / "visit-FUP.pdf")  # x-omit
    acrf = pdf_text(first / ACRF_NAME)
    assert 'VSORRES where VSTESTCD = "PULSE"' in acrf and "QSORRES" in acrf and "NOT SUBMITTED" in acrf


def test_two_builds_give_identical_bytes(mini_builds):
    first, second = mini_builds
    for path in sorted(first.glob("*.pdf")):
        assert path.read_bytes() == (second / path.name).read_bytes(), path.name


def test_shipped_visit_is_byte_identical_across_builders(study, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    paths = []
    for folder in ("a", "b"):
        builder = PdfBuilder(study)
        path = tmp_path / folder / "visit-V1.pdf"
        path.parent.mkdir()
        paths.append(builder._write(builder.render_visit(study.visit("V1")), path))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert PdfReader(paths[0]).metadata["/CreationDate"] == "D:20260101000000Z"


# -- entry areas and errors ----------------------------------------------------------------------

def test_entry_areas_follow_item_types(study):
    vs = study.visit("SCR").form("VS").form
    temp = entry_for(vs.item("TEMP"))
    assert (temp.kind, temp.int_digits, temp.decimals, temp.unit) == ("number", 2, 1, "C")
    assert integer_digits(vs.item("SYSBP")) == 3
    assert entry_for(vs.item("BMI")).kind == "calculated"
    assert entry_for(vs.item("VSTPT")).text == vs.item("VSTPT").codelist.label("VISIT")
    ex = study.visit("V1").form("EX").form
    # the study's words for a calculated item, never its expression
    assert entry_for(ex.item("EXPLDOS")).text == "Planned dose, calculated as 10 mg per kg of the body weight above"
    assert entry_for(study.visit("SCR").form("DM").form.item("AGE")).text == "Age at consent, calculated from the birth date and the consent date"
    rows = {r.item.id: r for r in form_rows(ex, {})}
    assert rows["EXREASND"].depth == 1 and rows["EXINTRS"].depth == 2
    ids = [r.item.id for r in form_rows(ex, {})]
    assert ids.index("EXINTRS") == ids.index("EXINTP") + 1  # set under the question it depends on
    nmo = study.visit("SCR").form("NMO").form
    assert entry_for(nmo.item("CORECHAR")).kind == "multi-choice"
    assert entry_for(nmo.item("MHSTDAT")).kind == ItemKind.PARTIAL_DATE.value


def test_unknown_item_kind_is_an_error_naming_the_item(mini_study, tmp_path):
    visit = mini_study.visits[0]
    inst = visit.forms[0]
    broken_item = replace(inst.form.items[0], kind="slider")  # type: ignore[arg-type]
    broken_form = replace(inst.form, items=(broken_item, *inst.form.items[1:]))
    broken_visit = replace(visit, forms=(replace(inst, form=broken_form),))
    broken = replace(mini_study, visits=(broken_visit, *mini_study.visits[1:]))
    with pytest.raises(PdfBuildError, match=broken_item.id):
        build_pdfs(broken, tmp_path)
    assert not list(tmp_path.glob("*.pdf"))  # nothing half-written


def test_choice_without_code_list_is_an_error(study_copy, tmp_path):
    folder = study_copy(MINI_STUDY)
    study = load_study(folder)
    form = study.visits[1].forms[1]
    item = form.form.item("FEEL")
    broken_form = replace(form.form, items=tuple(replace(it, codelist=None) if it.id == "FEEL" else it for it in form.form.items))
    broken = replace(study, visits=(study.visits[0], replace(study.visits[1], forms=(study.visits[1].forms[0], replace(form, form=broken_form)))))
    with pytest.raises(PdfBuildError, match=f"item {item.id}"):
        PdfBuilder(broken)
