"""What sites do to a workbook in LibreOffice, done through LibreOffice itself (UNO), and nothing typed is lost.

tests/lo_driver.py runs under Debian's /usr/bin/python3 (python3-uno), starts its own headless soffice,
inserts rows and columns, types and copies a sheet as a site coordinator would, and saves as .xlsx.
The workbook is the hand-written subject 01-902 (tests/fixtures/subjects), which has no finding by itself.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import openpyxl
import pytest

from crf.readers import read_file
from crf.subject import SubjectRecord
from crf.validation import validate
from crf.xlsx import workbook_bytes

HERE = Path(__file__).parent
SYSTEM_PYTHON = Path("/usr/bin/python3")
AE_SHEET = "Log AE Adverse events"


def _uno_available() -> bool:
    if not SYSTEM_PYTHON.exists() or shutil.which("soffice") is None:
        return False
    return subprocess.run([str(SYSTEM_PYTHON), "-c", "import uno"], capture_output=True).returncode == 0


def _columns(path: Path, log: str) -> dict[str, str]:
    """Item id -> column letter of the log's first row, from the workbook's defined names."""
    wb = openpyxl.load_workbook(path, read_only=False)
    out = {}
    for name, dn in wb.defined_names.items():
        if name.startswith(f"L_{log}__R001__"):
            ref = dn.attr_text.split("!")[1].replace("$", "")
            out[name.split("__")[-1]] = "".join(ch for ch in ref if ch.isalpha())
    return out


def _ae(cols: dict[str, str], row: int, values: dict[str, object]) -> list[dict]:
    return [{"do": "type", "sheet": AE_SHEET, "cell": f"{cols[k]}{row}", "value": v} for k, v in values.items()]


@pytest.mark.libreoffice
def test_rows_inserted_values_typed_outside_and_a_copied_sheet_in_libreoffice(study, tmp_path):
    if not _uno_available():
        pytest.skip("LibreOffice with python3-uno is not installed; `make test` installs them")
    record = SubjectRecord.from_json(json.loads((HERE / "fixtures" / "subjects" / "01-902.json").read_text()))
    source = tmp_path / "BEL-NMOSD_01-902.xlsx"
    source.write_bytes(workbook_bytes(study, record.site, record.subject, record))
    cols = _columns(source, "AE")
    first_row = int(openpyxl.load_workbook(source).defined_names["L_AE__R001__AETERM"].attr_text.rsplit("$", 1)[1])
    nausea = {"AESPID": 2, "AETERM": "Nausea", "AESTDAT": "2025-06-02", "AEONGO": "N", "AEENDAT": "2025-06-04",
              "AETOXGR": 1, "AESER": "N", "AEREL": "POSSIBLY RELATED", "AEACN": "DOSE NOT CHANGED",
              "AEOUT": "RECOVERED/RESOLVED", "AECONTRT": "N", "AESI": "NONE"}
    back_pain = dict(nausea, AESPID=3, AETERM="Back pain", AESTDAT="2025-08-05", AEENDAT="2025-08-12", AEREL="NOT RELATED")
    inside = first_row + 1  # between the filled row 1 and the blank row 2
    below = first_row + 30 + 1  # just below the 30-row table, after the first insert moved it down by one
    steps = [{"do": "insert_rows", "sheet": AE_SHEET, "before": inside, "count": 1}, *_ae(cols, inside, nausea),
             {"do": "insert_rows", "sheet": AE_SHEET, "before": below, "count": 1}, *_ae(cols, below, back_pain),
             {"do": "unprotect", "sheet": "V2 Day 14"},
             {"do": "type", "sheet": "V2 Day 14", "cell": "G12", "value": "BP repeated after 5 min: 128/80"},
             {"do": "unprotect", "sheet": "V3 Day 28"},
             {"do": "insert_columns", "sheet": "V3 Day 28", "before": "E", "count": 1},
             {"do": "type", "sheet": "V3 Day 28", "cell": "E20", "value": 99},
             {"do": "copy_sheet", "sheet": "V5 Day 84", "as": "V5 Day 84 (2)"},
             {"do": "type", "sheet": "V5 Day 84 (2)", "cell": "D12", "value": 131}]
    actions = tmp_path / "actions.json"
    actions.write_text(json.dumps(steps))
    saved = tmp_path / "out" / source.name
    saved.parent.mkdir()
    run = subprocess.run([str(SYSTEM_PYTHON), str(HERE / "lo_driver.py"), str(source), str(saved), str(actions)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr

    read = read_file(saved, saved.name, study).subject
    terms = [row.get("AETERM") for row in read.record.logs["AE"]]
    assert terms == ["Fatigue", "Nausea", "Back pain"]  # in the order of the sheet, both inserted rows read
    assert read.record.logs["AE"][1]["AESTDAT"] == "2025-06-02"
    assert read.record.location("/logs/AE/1/AETERM").cell == f"{cols['AETERM']}{inside}"
    assert read.record.value("V3", "VS_PRE", "WEIGHT") == record.value("V3", "VS_PRE", "WEIGHT")  # column insert moved nothing away

    result = validate(study, [saved], jobs=1, today=dt.date(2026, 11, 25))
    found = sorted((f.rule, f.sheet, f.cell) for f in result.findings)
    assert found == [("SHEET-COPIED", "V5 Day 84 (2)", "D12"),
                     ("VALUE-OUTSIDE-FORM", "V2 Day 14", "G12"),
                     ("VALUE-OUTSIDE-FORM", "V3 Day 28", "E20")]
    note = next(f for f in result.findings if f.cell == "G12")
    assert "BP repeated after 5 min" in note.message and "not read" in note.message
