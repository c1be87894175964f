"""The site query listing prints: landscape, one page wide, header row and study/site/date on every page,
wrapped text inside its row. Checked as a site sees it: printed to PDF by LibreOffice and read back."""
from __future__ import annotations

import re
import subprocess

import openpyxl
import pytest

from crf.findings import Finding, Severity
from crf.reports.xlsx_report import render_xlsx
from crf.validation import SubjectSummary, ValidationResult

from pagecheck import overlapping_words, read_pages
from test_xlsx import SOFFICE, soffice_convert

# Queries worded as the spec's edit checks word them, long enough to wrap over several lines.
MESSAGES = [
    ("EC-36", Severity.QUERY, "EXDOSE", "764", "Sheet 'V9 Day 196', cell D51: Week 28 (Day 196), infusion 9: dose given 764 mg differs by 15.1% "
     "from the planned 664 mg (10 mg/kg x 66.4 kg). Correct the dose or weight, or give the reason in 'dose adjustment'."),
    ("EC-19", Severity.ERROR, "SYSBP", "92", "Sheet 'V2 Day 14', cell D15: Week 2 (Day 14), infusion 2, vital signs: systolic 92 mmHg "
     "is not above diastolic 96 mmHg. Correct the blood pressure (swapped?)."),
    ("PD-12", Severity.MAJOR, "CMTRT", "Rituximab", "Sheet 'Log CM Concomitant and prior', cell B9: Medication log row 2: Rituximab "
     "(2024-03-15 to 2024-03-15) is prohibited during the study (Day 0 2023-03-30 onwards).\nMajor deviation: record it in the "
     "deviation log and inform the sponsor."),
    ("FIELD-REQUIRED", Severity.ERROR, "AMBSC", "", "Visit V8 'Week 24 (Day 168), infusion 8', sheet 'V8 Day 168', cell D94 "
     "(Ambulation score (Neurostatus)): this is blank but required. Enter it, or tell the data manager why it is not available."),
]


def listing(study, count: int) -> ValidationResult:
    findings = []
    for n in range(count):
        rule, severity, field, value, message = MESSAGES[n % len(MESSAGES)]
        subject = f"01-{n // 4 + 1:03d}"
        findings.append(Finding(rule, severity, "test", message, subject=subject, site="01", visit="V9", form="EX", field=field,
                                file=f"/data/returned/BEL-NMOSD_{subject}.xlsx", sheet="V9 Day 196", cell=f"D{51 + n}", value=value,
                                expected="as the protocol says"))
    subjects = sorted({f.subject for f in findings})
    return ValidationResult(study, [], findings, [SubjectSummary("01", s, f"BEL-NMOSD_{s}.xlsx") for s in subjects], [], generated="2026-11-25")


def test_a_value_or_file_name_that_looks_like_a_formula_is_text_in_the_listing(study, tmp_path):
    import dataclasses

    result = listing(study, 2)
    result.findings[0] = dataclasses.replace(result.findings[0], value="=1+1", file="/data/returned/=HYPERLINK(1).xlsx")
    path = tmp_path / "queries.xlsx"
    path.write_bytes(render_xlsx(result))
    rows = list(openpyxl.load_workbook(path)["Queries"].iter_rows(min_row=2, values_only=True))
    assert rows[0][10] == "'=1+1" and rows[0][13] == "'=HYPERLINK(1).xlsx"  # the folder left out, the name still neutralised


def test_query_listing_has_its_print_setup(study, tmp_path):
    path = tmp_path / "queries.xlsx"
    path.write_bytes(render_xlsx(listing(study, 6)))
    ws = openpyxl.load_workbook(path)["Queries"]
    assert ws.page_setup.orientation == "landscape"
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth == 1 and ws.page_setup.fitToHeight == 0
    assert ws.print_title_rows == "$1:$1"
    assert "BEL-NMOSD" in ws.oddHeader.left.text and ws.oddHeader.right.text == "Site 01"
    assert "&P" in ws.oddFooter.right.text and "&D" in ws.oddFooter.left.text
    # a long query gets the height of its wrapped lines, a one-line row keeps about one line
    heights = [ws.row_dimensions[r].height for r in range(2, 8)]
    assert all(h and h >= 3 * 11 for h in heights)
    assert ws["N2"].value == "BEL-NMOSD_01-001.xlsx"  # the file's name, not the data manager's folder


@pytest.mark.libreoffice
def test_query_listing_prints_one_page_wide_with_header_on_every_page(study, tmp_path):
    if SOFFICE is None:
        pytest.skip("LibreOffice (soffice) is not installed; `make test` installs it")
    path = tmp_path / "queries.xlsx"
    path.write_bytes(render_xlsx(listing(study, 60)))
    pdf = soffice_convert(path, tmp_path / "printed", "pdf")
    pages = read_pages(pdf)
    texts = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True).stdout.split("\f")
    query_pages = [(p, t) for p, t in zip(pages, texts) if "Query listing" in t]
    assert len(query_pages) >= 3  # 60 queries: several pages down ...
    for page, text in query_pages:
        assert page.width > page.height, f"page {page.number} is not landscape"
        # ... but never split across: every column's header and the answer columns on every page
        flat = " ".join(text.split())
        words = {w.text for w in page.words}
        for header in ("Query id", "Subject", "Value found", "Query", "Site answer", "Date answered"):  # headers may wrap
            assert set(header.split()) <= words, (page.number, header)
        assert "BEL-NMOSD" in flat and "Site 01" in flat and "printed" in flat
        assert re.search(r"Page \d+ of \d+", flat), page.number
        # wrapped text stays in its row: nothing printed over the row below
        assert not overlapping_words(page), (page.number, overlapping_words(page)[:3])
    # every query printed in full: the last words of the last query are there
    # (PD-12 is every 4th query; the 59th is one)
    flat = [" ".join(t.split()) for _, t in query_pages]
    assert sum(f.count("sponsor.") for f in flat) == 15


def test_an_answer_with_control_characters_is_read_visibly_not_passed_on(study, tmp_path):
    """A site's answer goes into the study store and every report: an escape sequence typed or pasted into it must not
    reach a terminal or an XML writer as it is (the hostile-input rule of issue 11, for the answered listing)."""
    import io

    from crf.readers.listing import read_listing

    book = openpyxl.load_workbook(io.BytesIO(render_xlsx(listing(study, 2))))
    queries = book["Queries"]
    header = [c.value for c in queries[1]]
    # as Excel stores a control character in a cell: escaped _x001B_ in the XML, which readers turn back into ESC
    queries.cell(2, header.index("Site answer") + 1, "Checked _x001B_[31mred_x001B_[0m in the notes")
    queries.cell(2, header.index("Answered by") + 1, "M. Rossi_x0007_")
    buf = io.BytesIO()
    book.save(buf)
    answered = read_listing(buf.getvalue(), "answered.xlsx", study)
    assert answered is not None and answered.findings == []
    row = answered.rows[0]
    assert row.answer == "Checked \\x1b[31mred\\x1b[0m in the notes" and row.answered_by == "M. Rossi\\x07"
