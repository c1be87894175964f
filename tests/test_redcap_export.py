"""REDCap export of the shipped study, and the round trip through REDCap: what survives is compared item by
item, and every difference must be one the export listed as something REDCap cannot express."""
from __future__ import annotations

import csv
import io
import subprocess

import pytest

from crf.interop.redcap import read_dictionary, read_redcap
from crf.interop.redcap_export import file_names, study_to_redcap
from crf.interop.studywriter import write_study
from crf.model import ItemKind



@pytest.fixture(scope="module")
def project(study):
    return study_to_redcap(study)


@pytest.fixture(scope="module")
def exported(study, project, tmp_path_factory):
    folder = tmp_path_factory.mktemp("redcap-export")
    names = file_names(study)
    for key in ("dictionary", "events", "mapping"):
        (folder / names[key]).write_bytes(getattr(project, key))
    return folder, names


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_the_dictionary_is_one_redcap_would_accept(project, exported):
    folder, names = exported
    assert project.dictionary.startswith(b"\xef\xbb\xbf")  # as REDCap's own download: Excel opens it as UTF-8
    dictionary, notes = read_dictionary(folder / names["dictionary"])  # strict: every choices cell parses
    assert notes == [] and dictionary.header_style == "display"
    names_ = [f.name for f in dictionary.fields]
    assert names_[0] == "subject_id" and len(names_) == len(set(names_))
    assert all(len(n) <= 100 and n[0].isalpha() for n in names_)
    types = {f.type for f in dictionary.fields}
    assert {"text", "radio", "dropdown", "checkbox", "calc"} <= types
    known = {n for n in names_}
    for f in dictionary.fields:
        for ref in __import__("re").findall(r"\[([a-z0-9_]+)\]", f.branching + " " + (f.choices if f.type == "calc" else "")):
            assert ref in known, (f.name, ref)  # branching and calculations name fields that exist
    events = _rows(project.events)
    mapping = _rows(project.mapping)
    uniques = [e["unique_event_name"] for e in events]
    assert len(uniques) == len(set(uniques)) and all(u.endswith("_arm_1") and len(u) <= 24 for u in uniques)
    instruments = {f.form for f in dictionary.fields}
    assert {m["form"] for m in mapping} == instruments and {m["unique_event_name"] for m in mapping} <= set(uniques)


def test_visits_conditions_and_calculations_are_written_as_redcap_writes_them(project):
    fields = {r["Variable / Field Name"]: r for r in _rows(project.dictionary)}
    events = {e["custom_event_label"]: e for e in _rows(project.events)}
    assert (events["V2"]["day_offset"], events["V2"]["offset_min"], events["V2"]["offset_max"]) == ("14", "3", "3")
    assert fields["dm_childpot"]["Branching Logic (Show field only if...)"] == "[dm_sex] = 'F'"
    assert fields["vs_bmi"]["Field Type"] == "calc" and fields["vs_bmi"]["Choices, Calculations, OR Slider Labels"] == "round(([vs_weight]/(([vs_height]/100)^2)),1)"
    temp = fields["vs_temp"]
    assert (temp["Text Validation Type OR Show Slider Number"], temp["Text Validation Min"], temp["Text Validation Max"]) == ("number_1dp", "35.5", "38")
    assert fields["nmo_corechar"]["Field Type"] == "checkbox"
    # PRE-INFUSION is not a REDCap code: the list is recoded 1..n (and the recoding listed); the fixed value follows
    assert fields["vs_pre_vstpt"]["Choices, Calculations, OR Slider Labels"].startswith("1, Pre-infusion")
    assert '@DEFAULT="1" @READONLY' in fields["vs_pre_vstpt"]["Field Annotation"]


def test_what_redcap_cannot_express_is_listed(project, study):
    report = project.report(study)
    assert "hard limits" in report and "running logs" in report and "partial dates" in report and "edit checks" in report
    assert "vs.TEMP: an exclusive limit" in report  # the fever limit < 38.0 becomes REDCap's inclusive max


def test_round_trip_through_redcap_keeps_what_redcap_expresses_and_every_loss_is_listed(study, project, exported, tmp_path):
    folder, names = exported
    imp = read_redcap(folder / names["dictionary"], events=folder / names["events"], mapping=folder / names["mapping"])
    back = write_study(imp.draft, tmp_path / "back")
    report = project.report(study)
    assert [v.id for v in back.visits] == [v.id for v in study.visits]
    assert [(v.day, v.window.before, v.window.after) for v in back.visits if v.day is not None] == \
           [(v.day, v.window.before, v.window.after) for v in study.visits if v.day is not None]
    compared = 0
    problems = []
    for visit in study.visits:
        for inst in visit.forms:
            instrument = project.instruments[(visit.id, inst.name)]
            form_id = imp.form_ids[instrument]
            back_form = back.visit(visit.id).form(form_id).form
            for it in inst.items:
                other = back_form.item(imp.item_ids[f"{instrument}_{it.id.lower()}"])
                compared += 1
                where = f"{instrument}.{it.id}"
                expected_kind = ItemKind.TEXT if it.kind is ItemKind.PARTIAL_DATE else it.kind
                listed = where in report or (it.codelist is not None and f"code list {it.codelist.id}:" in report)
                checks = [("question", it.question == other.question), ("kind", expected_kind == other.kind or it.derived is not None),
                          ("required", (it.required or it.condition is not None) == (other.required or other.condition is not None) or it.fixed is not None),
                          ("labels", it.codelist is None or [c.label for c in it.codelist.codes] == [c.label for c in other.codelist.codes]),
                          ("derived", (it.derived is None) == (other.derived is None) or listed)]
                for name, ok in checks:
                    if not ok and not listed:
                        problems.append((where, name))
                if it.soft or not it.hard.is_empty:
                    limits = it.soft or it.hard
                    got = other.soft
                    if got is None or (got.low, got.high) != (limits.low, limits.high):
                        problems.append((where, "limits"))
    assert compared > 1000 and problems == []


@pytest.mark.libreoffice
def test_the_dictionary_survives_a_libreoffice_open_and_save(exported, tmp_path):
    """Data managers edit dictionaries in a spreadsheet: LibreOffice opens the CSV (UTF-8, BOM) and saves it again;
    every cell reads back the same (no code turned into a number, no label mangled)."""
    import shutil

    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        pytest.skip("LibreOffice is not installed (make test installs it)")
    folder, names = exported
    source = tmp_path / "dictionary.csv"
    source.write_bytes((folder / names["dictionary"]).read_bytes())
    out = tmp_path / "saved"
    run = subprocess.run([soffice, "--headless", "--norestore", f"-env:UserInstallation=file://{tmp_path / 'profile'}",
                          "--infilter=CSV:44,34,76,1", "--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false",
                          "--outdir", str(out), str(source)], capture_output=True, text=True, timeout=180)
    assert (out / "dictionary.csv").is_file(), run.stderr
    before, _ = read_dictionary(source)
    after, _ = read_dictionary(out / "dictionary.csv")
    assert [f.__dict__ for f in after.fields] == [f.__dict__ for f in before.fields]
