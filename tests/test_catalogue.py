"""The catalogue of finding codes (crf/catalogue.py): every code emitted is catalogued, the docs table is generated."""
from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from crf.catalogue import CATALOGUE, CODE_PATTERN, markdown_table, with_table
from crf.cli import build
from crf.findings import Severity
from findings_cases import base, form, run

ROOT = Path(__file__).resolve().parent.parent
# code-shaped strings in crf/ that are not finding codes
NOT_CODES = {"BEL-NMOSD", "DD-MMM-YYYY", "YYYY-MM-DD", "POST-INFUSION", "PRE-INFUSION"}


def test_every_code_in_the_source_is_catalogued():
    used = set()
    for path in (ROOT / "crf").rglob("*.py"):
        used |= {m for m in re.findall(r'"([A-Z]+(?:-[A-Z]+)+)"', path.read_text(encoding="utf-8")) if m not in NOT_CODES}
    missing = sorted(used - set(CATALOGUE))
    assert not missing, f"emitted but not in crf/catalogue.py: {missing}"
    unused = sorted(set(CATALOGUE) - used)
    assert not unused, f"catalogued but never emitted: {unused}"


def test_findings_carry_the_catalogue_severity_and_category(study, tmp_path):
    doc = base()
    form(doc, "V3", "VS_PRE")["WEIGHT"] = "seventy"  # NOT-A-NUMBER
    form(doc, "V1", "VS_PRE")["SYSBP"] = 85  # SOFT-LIMIT is EC-18's here; FIELD-CHOICE below
    form(doc, "ET", "EOS")["DSDECOD"] = "MOVED AWAY"
    del form(doc, "SCR", "IE")["IEDAT"]  # FIELD-REQUIRED
    doc["logs"]["PA"][1]["PAQUAL"] = "N"  # DERIVED-MISMATCH (IVMP + PLEX qualifies)
    doc["visits"]["V9"] = "not a visit"
    found = [f for f in run(study, doc, tmp_path) if CODE_PATTERN.match(f.rule)]
    assert {f.rule for f in found} >= {"NOT-A-NUMBER", "FIELD-CHOICE", "FIELD-REQUIRED", "DERIVED-MISMATCH", "UNKNOWN-VISIT"}
    for f in found:
        entry = CATALOGUE[f.rule]
        assert f.severity in entry.severities and f.category == entry.category, f


def test_messages_have_one_shape_location_first(study, tmp_path):
    doc = base()
    form(doc, "V3", "VS_PRE")["WEIGHT"] = 125.0
    del doc["logs"]["AE"][0]["AESTTIM"]
    form(doc, "SCR", "IE")["EX02"] = "maybe"
    messages = {f.rule: f.message for f in run(study, doc, tmp_path)}
    assert messages["EC-20"].startswith("Visit V3 'Week 4 (Day 28), infusion 3', form 'Vital signs and weight: pre-infusion' (Weight): weight 125 kg")
    assert messages["EC-45"].startswith("Adverse events log, row 1 (Start time (24 h clock)): AE 'Headache', the onset time is blank")
    assert messages["FIELD-CHOICE"].startswith("Visit SCR 'Screening', form 'Eligibility' (")
    assert all(m.endswith(".") and "{" not in m for m in messages.values())


def test_report_format_table_is_generated_from_the_catalogue():
    doc = (ROOT / "docs" / "report-format.md").read_text(encoding="utf-8")
    assert with_table(doc) == doc, "docs/report-format.md is stale: run python build_crf.py codes-doc"
    assert all(f"| {code} |" in markdown_table() for code in CATALOGUE)


def test_codes_doc_check_fails_on_a_stale_table(tmp_path):
    stale = tmp_path / "report-format.md"
    current = (ROOT / "docs" / "report-format.md").read_text(encoding="utf-8")
    stale.write_text(current.replace("| FIELD-RANGE | error |", "| FIELD-RANGE | warning |"), encoding="utf-8")
    result = CliRunner().invoke(build, ["codes-doc", "--check", "--out", str(stale)])
    assert result.exit_code == 1 and "out of date" in result.output
    assert CliRunner().invoke(build, ["codes-doc", "--out", str(stale)]).exit_code == 0
    assert stale.read_text(encoding="utf-8") == current


def test_warnings_are_not_needing_action():
    assert not CATALOGUE["SHEET-RENAMED"].severity.needs_action and CATALOGUE["FIELD-REQUIRED"].severity is Severity.ERROR
