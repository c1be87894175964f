"""The report writers stream (issue 13) and still write the bytes they wrote before.

tests/fixtures/reports/ holds what the writers produced, before they streamed, for the hand-written result of
tests/report_reference.py (reference.*) and the SHA-256 of their output for 3,000 findings made from it
(many-3000.sha256.json). A change of a report's bytes must be a decision, made here, never a side effect.
"""
from __future__ import annotations

import hashlib
import io
import json

import pytest

from crf.reports import render, write_report
from tests.report_reference import FORMATS, REFERENCE, SUFFIX, many_findings, reference_result


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_writes_the_reference_bytes(mini_study, fmt):
    assert render(reference_result(mini_study), fmt) == (REFERENCE / f"reference.{SUFFIX[fmt]}").read_bytes()


@pytest.mark.parametrize("fmt", FORMATS)  # html too: 3,000 findings list fewer rows than its limit
def test_three_thousand_findings_give_the_reference_bytes(mini_study, fmt):
    expected = json.loads((REFERENCE / "many-3000.sha256.json").read_text())[fmt]
    assert hashlib.sha256(render(many_findings(mini_study, 3000), fmt)).hexdigest() == expected


@pytest.mark.parametrize("fmt", FORMATS)
def test_streamed_to_a_file_is_the_same_as_rendered(mini_study, fmt, tmp_path):
    result = reference_result(mini_study)
    path = tmp_path / f"report.{SUFFIX[fmt]}"
    with path.open("wb") as out:
        write_report(result, fmt, out, path=path)
    assert path.read_bytes() == render(result, fmt)


def test_html_past_its_limit_says_so_and_lists_every_finding_beside_it(mini_study, tmp_path):
    from crf.reports.html_report import write_html

    result = reference_result(mini_study)  # 8 errors and queries, 3 deviations, 1 warning
    path = tmp_path / "report.html"
    with path.open("wb") as out:
        companion = write_html(result, out, path=path, limit=2)
    html = path.read_text(encoding="utf-8")
    assert companion == tmp_path / "report.findings.csv"
    assert "<h2>Errors and queries (8)</h2>" in html and "<h2>Protocol deviations (3)</h2>" in html
    assert html.count("This page lists the first 2 of these 8 findings") == 1
    assert html.count("This page lists the first 2 of these 3 findings") == 1
    assert 'href="report.findings.csv"' in html
    assert html.count("<td><code>") == 2 + 2 + 1 + 1 + 4  # rows shown (2, 2, the warning), the definition hash, 4 input files
    assert companion.read_bytes() == render(result, "csv")  # the full listing: every finding, as the CSV report


def test_html_past_its_limit_on_standard_output_says_how_to_get_every_finding(mini_study):
    from crf.reports.html_report import write_html

    out = io.BytesIO()
    assert write_html(reference_result(mini_study), out, limit=2) is None
    html = out.getvalue().decode("utf-8")
    assert "This page lists the first 2 of these 8 findings" in html and "--output report.html" in html


def test_a_control_character_in_a_value_does_not_stop_the_query_listing(mini_study):
    import dataclasses

    import python_calamine

    result = reference_result(mini_study)
    result.findings[1] = dataclasses.replace(result.findings[1], value="12\x01\x0b3")  # a cell's text as a site's tool left it
    data = render(result, "xlsx")
    rows = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_name("Queries").to_python()
    assert "12\ufffd\ufffd3" in [r[10] for r in rows]


def test_the_kept_compiled_template_gives_the_same_page_and_a_cache_that_cannot_be_written_costs_nothing(mini_study, tmp_path,
                                                                                                        monkeypatch):
    expected = (REFERENCE / "reference.html").read_bytes()
    monkeypatch.setenv("OPEN_ECRF_CACHE_DIR", str(tmp_path / "cache"))
    assert render(reference_result(mini_study), "html") == expected  # compiled, then kept
    kept = list((tmp_path / "cache" / "templates").iterdir())
    assert len(kept) == 1
    assert render(reference_result(mini_study), "html") == expected  # read back from the cache
    kept[0].write_bytes(b"j2\x00not a compiled template")  # damaged on disk: compiled again
    assert render(reference_result(mini_study), "html") == expected
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache directory should be")
    monkeypatch.setenv("OPEN_ECRF_CACHE_DIR", str(blocked))
    assert render(reference_result(mini_study), "html") == expected
