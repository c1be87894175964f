"""REDCap data dictionary import, on every dictionary in shared/realworld/redcap-dd, and records conversion:
REDCap accepted those records, so a field-type finding on them would be the import's fault."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crf.interop.redcap import parse_choices, read_redcap, records_to_documents, translate_branching, translate_calculation
from crf.interop.studywriter import write_study
from crf.rules import RuleSet
from crf.validation import validate
from crf.xlsx import build_workbooks

from conftest import ROOT

DICTIONARIES = [
    "ctsit_ae_and_conmeds/adverse_events.csv",
    "ctsit_ae_and_conmeds/medications.csv",
    "redcapapi_offline-test-project/dictionary.csv",
    "redcapr_decimal-comma-and-dot/dictionary.csv",
    "redcapr_decimal-comma-and-dot/metadata.csv",
    "redcapr_longitudinal/dictionary.csv",
    "redcapr_potentially-problematic-dictionary/dictionary.csv",
    "redcapr_simple/dictionary.csv",
    "redcapr_simple/metadata.csv",
    "redcapr_survey/dictionary.csv",
    "redcapr_validation-types-1/dictionary.csv",
    "redcapr_vignette-repeating/dictionary.csv",
]
RECORDS_BESIDE = [d for d in DICTIONARIES if d.endswith("dictionary.csv") and d.split("/")[0] not in ("redcapr_potentially-problematic-dictionary",)]
# a finding of these rules on records REDCap accepted means the import typed a field wrongly
TYPE_RULES = {"FIELD-TYPE", "NOT-A-NUMBER", "FIELD-CHOICE", "DATE-INVALID", "TIME-INVALID", "FIELD-FORMAT", "FIELD-INVALID",
              "FIELD-UNKNOWN", "FORM-UNKNOWN", "UNKNOWN-VISIT", "FIELD-TOO-LONG", "LOG-STRUCTURE", "JSON-STRUCTURE", "FIELD-RANGE"}


@pytest.fixture(scope="module")
def imported(realworld, tmp_path_factory):
    base = tmp_path_factory.mktemp("redcap-imports")
    out = {}
    for name in DICTIONARIES:
        imp = read_redcap(realworld / "redcap-dd" / name)
        out[name] = (imp, write_study(imp.draft, base / name.replace("/", "-").removesuffix(".csv")))
    return out


def test_the_folder_holds_exactly_the_dictionaries_this_test_knows(realworld):
    found = sorted(str(p.relative_to(realworld / "redcap-dd")) for p in (realworld / "redcap-dd").glob("*/*.csv")
                   if p.name not in ("data.csv", "records.csv", "event.csv", "events.csv", "arm.csv"))
    assert found == sorted(DICTIONARIES)


@pytest.mark.parametrize("name", DICTIONARIES)
def test_every_dictionary_imports_passes_check_and_builds_workbooks(imported, name, tmp_path):
    imp, study = imported[name]
    RuleSet.load(study)
    assert build_workbooks(study, tmp_path, site="01", subjects=("01-001",))
    assert study.item_count() > 0 and (study.folder / "IMPORT-NOTES.md").is_file()


def test_an_imported_dictionary_builds_its_pdf_forms(imported, tmp_path):
    from crf.pdf import build_pdfs

    assert build_pdfs(imported["redcapr_simple/dictionary.csv"][1], tmp_path)


@pytest.mark.skipif(not os.environ.get("OPEN_ECRF_SLOW"), reason="slow: set OPEN_ECRF_SLOW=1")
@pytest.mark.parametrize("name", DICTIONARIES)
def test_every_imported_dictionary_builds_its_pdf_forms(imported, name, tmp_path):
    from crf.pdf import build_pdfs

    assert build_pdfs(imported[name][1], tmp_path)


@pytest.mark.parametrize("name", RECORDS_BESIDE)
def test_records_redcap_exported_convert_and_validate_without_a_type_finding(imported, realworld, name, tmp_path):
    imp, study = imported[name]
    folder = (realworld / "redcap-dd" / name).parent
    records = next(p for p in (folder / "data.csv", folder / "records.csv") if p.is_file())
    docs, notes = records_to_documents(imp, study, records)
    assert docs and all(d["subject"] for d in docs)
    import json

    for doc in docs:
        (tmp_path / f"{doc['subject']}.json").write_text(json.dumps(doc), encoding="utf-8")
    result = validate(study, [tmp_path], jobs=1)
    wrong = [f"{f.rule}: {f.message}" for f in result.findings if f.rule in TYPE_RULES]
    assert wrong == []
    if "validation-types" not in name:  # its one record is empty
        assert sum(1 for d in docs for forms in d["visits"].values() for values in forms.values() for _ in values) > 5


def test_checkbox_export_names_become_multi_select_values_and_comma_decimals_numbers(imported, realworld):
    imp, study = imported["redcapr_longitudinal/dictionary.csv"]
    docs, _ = records_to_documents(imp, study, realworld / "redcap-dd" / "redcapr_longitudinal" / "data.csv")
    first = next(d for d in docs if d["subject"] == "100")
    demographics = next(iter(first["visits"].values()))["DEMOGRAPHI"]
    # data.csv row of record 100: gym___0=1, aerobics___1=1 and ___2=1 (three underscores: REDCap's export names)
    assert demographics["GYM"] == [0] and demographics["AEROBICS"] == [1, 2]
    imp, study = imported["redcapr_decimal-comma-and-dot/dictionary.csv"]
    docs, _ = records_to_documents(imp, study, realworld / "redcap-dd" / "redcapr_decimal-comma-and-dot" / "data.csv")
    valdez = next(d for d in docs if d["subject"] == "1")["visits"]["V1"]["DEMOGRAPHI"]
    assert valdez["HEIGHT_COMMA"] == valdez["HEIGHT_DOT"] == 1.54 and valdez["WEIGHT_COMMA"] == 52.3


def test_what_the_longitudinal_example_keeps_and_notes(imported):
    imp, study = imported["redcapr_longitudinal/dictionary.csv"]
    form = study.visits[0].form("DEMOGRAPHI").form
    assert form.item("BMI").derived == "round((WEIGHT*10000)/((HEIGHT)**(2)),1)"
    assert form.item("GIVEN_BIRTH").condition.item == "SEX" and form.item("GIVEN_BIRTH").condition.values == (0,)
    assert form.item("HEIGHT").soft.minimum == 130 and form.item("HEIGHT").soft.maximum == 215 and form.item("HEIGHT").hard.is_empty
    assert form.item("GYM").kind.value == "multi-choice"
    mood = form.item("SPECIFY_MOOD")
    assert (mood.hard.minimum, mood.hard.maximum) == (0, 100)
    assert len(study.visits) == 12  # 6 + 6 events of two arms
    notes = [str(n) for n in imp.draft.notes]
    assert any("num_children" in n and "row 15, column L" in n and "'and'" in n for n in notes)  # untranslatable branching, located
    assert any("matrix group" in n and "weekly_schedule" in n for n in notes)
    assert any("patient_document" in n and "file field" in n for n in notes)


def test_api_headers_na_cells_and_bom_are_read(imported):
    display, _ = imported["redcapr_simple/dictionary.csv"]
    api, _ = imported["redcapr_simple/metadata.csv"]
    assert (display.dictionary.header_style, api.dictionary.header_style) == ("display", "api")
    assert any("NA in empty cells" in n.message for n in api.draft.notes)
    assert not any(f.section == "NA" or f.choices == "NA" for f in api.dictionary.fields)
    problematic, study = imported["redcapr_potentially-problematic-dictionary/dictionary.csv"]
    assert problematic.dictionary.fields[0].name == "record_id"  # the BOM did not stick to the first header
    assert [n.where.split(", ", 1)[1] for n in problematic.draft.notes if n.kind == "warning" and "replacement character" in n.message] == \
           ["row 3, column E (Field Label)"]
    assert study.visits[0].forms[0].form.item("CURLY_QUOTE_DOUBLE_LEFT").question == 'Maybe I don\'t "look the part"'
    ae, _ = imported["ctsit_ae_and_conmeds/adverse_events.csv"]
    assert ae.dictionary.header_style == "api"


def test_repeating_instruments_become_logs(imported):
    imp, study = imported["redcapr_vignette-repeating/dictionary.csv"]
    assert {lg.label for lg in study.logs} == {"Blood pressure", "Laboratory"}


def _dictionary(tmp_path: Path, rows: list[str]) -> Path:
    header = ("Variable / Field Name,Form Name,Section Header,Field Type,Field Label,\"Choices, Calculations, OR Slider Labels\",Field Note,"
              "Text Validation Type OR Show Slider Number,Text Validation Min,Text Validation Max,Identifier?,"
              "Branching Logic (Show field only if...),Required Field?,Custom Alignment,Question Number (surveys only),Matrix Group Name,Matrix Ranking?,Field Annotation")
    path = tmp_path / "dictionary.csv"
    path.write_text("\n".join([header] + rows) + "\n", encoding="utf-8")
    return path


def test_a_choices_string_that_does_not_parse_refuses_the_import_naming_row_and_column(tmp_path):
    path = _dictionary(tmp_path, ["record_id,intake,,text,ID,,,,,,,,,,,,,",
                                  "colour,intake,,radio,Colour,\"1, Red | Blue | 3, Green\",,,,,,,,,,,,",
                                  "size,intake,,dropdown,Size,\"1, S || 2, M\",,,,,,,,,,,,"])
    target = tmp_path / "study"
    run = subprocess.run([sys.executable, str(ROOT / "build_crf.py"), "import", "redcap", str(path), "--out", str(target)], capture_output=True, text=True)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    refused = [line for line in run.stderr.splitlines() if line.startswith("refused:")]
    assert len(refused) == 2
    assert "row 3, column F" in refused[0] and "'Blue'" in refused[0]
    assert "row 4, column F" in refused[1] and "empty choice" in refused[1]
    assert not target.exists()


def test_unknown_validation_types_are_warnings_and_untranslatable_logic_is_a_located_note(tmp_path):
    path = _dictionary(tmp_path, ["record_id,intake,,text,ID,,,,,,,,,,,,,",
                                  "site_code,intake,,text,Site code,,,my_site_type,,,,,,,,,,",
                                  "smoker,intake,,yesno,Smoker?,,,,,,,,,,,,,",
                                  "packs,intake,,text,Packs a day,,,integer,0,10,,[smoker] = '1',,,,,,",
                                  "since,intake,,text,Since,,,date_ymd,,,,[smoker] = '1' and [packs] > 2,,,,,,"])
    imp = read_redcap(path)
    notes = [str(n) for n in imp.draft.notes]
    assert any(n.startswith("warning:") and "row 3, column H" in n and "my_site_type" in n for n in notes)
    assert any(n.startswith("dropped:") and "row 6, column L" in n for n in notes)
    study = write_study(imp.draft, tmp_path / "study")
    packs = study.visits[0].forms[0].form.item("PACKS")
    assert packs.condition.item == "SMOKER" and packs.condition.values == (1,) and packs.soft.maximum == 10


def test_branching_and_calculation_translation():
    codes = {"sex": ["0", "1"], "radio": ["1", "2", "ABC"], "med": None}
    assert translate_branching("[sex] = '0'", codes) == ("sex", ["0"])
    assert translate_branching("([radio] = '1' or [radio] = \"2\")", codes) == ("radio", ["1", "2"])
    assert translate_branching("[sex] <> '1'", codes) == ("sex", ["0"])
    assert "checkbox" in translate_branching("[radio(ABC)] = '1'", codes)
    assert "another event" in translate_branching("[event_1_arm_1][sex] = '1'", codes)
    assert "no code list" in translate_branching("[med] <> ''", codes)
    names = {"weight": "WEIGHT", "height": "HEIGHT", "dob": "DOB"}
    assert translate_calculation("round(([weight]*10000)/(([height])^(2)),1)", names) == "round((WEIGHT*10000)/((HEIGHT)**(2)),1)"
    with pytest.raises(ValueError, match="datediff"):
        translate_calculation("rounddown(datediff([dob],'today','y'))", names)
    assert parse_choices("1, Yes, definitely | 0 , No") == [("1", "Yes, definitely"), ("0", "No")]
    with pytest.raises(ValueError):
        parse_choices("1, A | 1, B")
