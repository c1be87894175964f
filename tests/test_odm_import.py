"""ODM import: every real metadata file in shared/realworld/odm, the ODM 2.0 impostor, hostile XML, and the
round trip of the shipped study through its own ODM export, compared item by item."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crf.expressions import parse
from crf.interop.odm_export import study_to_odm
from crf.interop.odm_import import read_odm
from crf.interop.studywriter import ImportRefused, write_study
from crf.rules import RuleSet
from crf.xlsx import build_workbooks

from conftest import ODM_XSD, ROOT

METADATA_FILES = [
    "cdisc_metadata-dave_odm132_multilang.xml",
    "odmlib_virus-study_metadata+clinicaldata_odm132.xml",
    "odmlib_cdash-metadata_odm132.xml",
    "NEG_odmlib_cdash-metadata_odm132_one-schema-error.xml",
    "jmangori_acrf-annotated_odm132.xml",
    "openclinica3_full-extract_odm13-oc-ext.xml",
    "redcap_longitudinal-project_odm131-redcap-ext.xml",
    "redcap_visits-project_odm131-redcap-ext.xml",
]
ODM2_IMPOSTOR = "NEG_cdisc_hypercholesterolemia_labelled-1.3.2-but-odm2-constructs.xml"


@pytest.fixture(scope="module")
def imported(realworld, tmp_path_factory):
    """Every real metadata file imported once: name -> (study, notes)."""
    out = {}
    base = tmp_path_factory.mktemp("odm-imports")
    for name in METADATA_FILES:
        draft = read_odm(realworld / "odm" / name)
        out[name] = (write_study(draft, base / name.removesuffix(".xml")), draft.notes)
    return out


def test_the_odm_folder_holds_exactly_the_files_this_test_knows(realworld):
    assert sorted(p.name for p in (realworld / "odm").glob("*.xml")) == sorted(METADATA_FILES + [ODM2_IMPOSTOR])


@pytest.mark.parametrize("name", METADATA_FILES)
def test_every_real_metadata_file_imports_passes_check_and_builds_workbooks(imported, name, tmp_path):
    study, notes = imported[name]
    assert study.visits and study.item_count() > 0
    RuleSet.load(study)  # what `check` loads besides the definition
    assert build_workbooks(study, tmp_path, site="01", subjects=("01-001",))
    assert all(n.where.startswith(str(Path(n.where.split(",")[0]))) for n in notes)
    assert (study.folder / "IMPORT-NOTES.md").is_file()


def test_an_imported_study_builds_its_pdf_forms(imported, tmp_path):
    from crf.pdf import build_pdfs

    study, _ = imported["redcap_visits-project_odm131-redcap-ext.xml"]
    written = build_pdfs(study, tmp_path)
    assert len(written) >= len({v.crf for v in study.visits})


@pytest.mark.skipif(not os.environ.get("OPEN_ECRF_SLOW"), reason="slow (about 25 s a study): set OPEN_ECRF_SLOW=1")
@pytest.mark.parametrize("name", METADATA_FILES)
def test_every_imported_study_builds_its_pdf_forms(imported, name, tmp_path):
    from crf.pdf import build_pdfs

    assert build_pdfs(imported[name][0], tmp_path)


def test_the_cdisc_example_keeps_ranges_units_conditions_and_says_what_it_dropped(imported):
    study, notes = imported["cdisc_metadata-dave_odm132_multilang.xml"]
    items = {it.id: it for form in study.forms() for it in form.items}
    hard = sum(1 for it in items.values() if not it.hard.is_empty)
    soft = sum(1 for it in items.values() if it.soft)
    assert (hard, soft) == (6, 2)  # 10 hard checks on 6 items (2 in a second unit, noted); 4 soft checks on 2 items
    assert sum(1 for form in study.forms() for it in form.items if it.unit == "mm Hg") == 4 and any(it.unit == "lbs" for it in items.values())
    # COND.SMOKING is the exception ".../ItemData[@ItemOID='I_SMOKING'][@Value='false']" on a boolean item: the number
    # of cigarettes is collected (and required) when the subject smokes
    assert items["I_NR_CIGARETTES"].condition.item == "NRSMOKES" and items["I_NR_CIGARETTES"].condition.values == (1,)
    texts = [str(n) for n in notes]
    assert any("[@Value > 90]" in t and "line 1511" in t for t in texts)  # untranslatable XPath: located note
    assert any(t.startswith("dropped") and "Presentation" in t for t in texts)


def test_vendor_extensions_are_ignored_with_one_note_per_namespace_and_redcap_offsets_become_days(imported):
    _, notes = imported["openclinica3_full-extract_odm13-oc-ext.xml"]
    vendor = [n for n in notes if "vendor extension namespace" in n.message]
    assert len(vendor) == len({n.message.split()[3] for n in vendor}) >= 2  # OpenClinica's namespaces, once each
    assert any("openclinica" in n.message.lower() for n in vendor)
    study, notes = imported["redcap_visits-project_odm131-redcap-ext.xml"]
    assert [v.day for v in study.visits][:2] == [0, 3] or any(v.day == 3 for v in study.visits)
    assert any("projectredcap.org" in n.message and "day offsets" in n.message for n in notes)


def test_redcap_branching_logic_kept_as_a_vendor_attribute_becomes_a_condition_where_it_can(imported):
    study, notes = imported["redcap_longitudinal-project_odm131-redcap-ext.xml"]
    items = {it.id: it for form in study.forms() for it in form.items}
    assert items["GIVEN_BIRTH"].condition.item == "SEX" and items["GIVEN_BIRTH"].condition.values == ("0",)
    assert any("num_children" in n.message and "'and'" in n.message and n.where.endswith("line 375") for n in notes)


def test_odm_1_3_and_1_3_1_are_accepted(imported):
    assert imported["openclinica3_full-extract_odm13-oc-ext.xml"][0].visits  # ODMVersion="1.3"
    assert imported["redcap_longitudinal-project_odm131-redcap-ext.xml"][0].visits  # ODMVersion="1.3.1"


def test_a_file_labelled_1_3_2_built_with_odm_2_constructs_is_refused_with_each_construct_located(realworld, tmp_path):
    with pytest.raises(ImportRefused) as refused:
        read_odm(realworld / "odm" / ODM2_IMPOSTOR)
    messages = [str(n) for n in refused.value.notes]
    assert len(messages) == 3
    assert all("ODM 2.0" in m and ", line " in m for m in messages)
    assert any("ItemGroupRef inside StudyEventDef" in m for m in messages)


def test_the_file_with_one_schema_error_imports_with_a_located_warning_and_is_refused_under_xsd(imported, realworld):
    _, notes = imported["NEG_odmlib_cdash-metadata_odm132_one-schema-error.xml"]
    warning = [n for n in notes if "studyName" in n.message]
    assert len(warning) == 1 and warning[0].kind == "warning" and "misspelt StudyName" in warning[0].message and ", line " in warning[0].where
    with pytest.raises(ImportRefused) as refused:
        read_odm(realworld / "odm" / "NEG_odmlib_cdash-metadata_odm132_one-schema-error.xml", xsd=ODM_XSD)
    assert len(refused.value.notes) == 1 and "studyName" in refused.value.notes[0].message


HOSTILE = {
    "malformed.xml": (b'<?xml version="1.0"?>\n<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" ODMVersion="1.3.2">\n  <Study OID="S">\n</ODM>\n',
                      ["malformed XML", "line 4"]),
    "bomb.xml": (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
                 b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>\n'
                 b'<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" ODMVersion="1.3.2"><Study OID="&lol3;"/></ODM>\n', ["DOCTYPE"]),
    "xxe.xml": (b'<?xml version="1.0"?>\n<!DOCTYPE ODM [<!ENTITY secret SYSTEM "file:///etc/passwd">]>\n'
                b'<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" ODMVersion="1.3.2"><Study OID="S">&secret;</Study></ODM>\n', ["DOCTYPE"]),
    "not-odm.xml": (b'<?xml version="1.0"?>\n<html><body/></html>\n', ["not an ODM"]),
    "odm2.xml": (b'<?xml version="1.0"?>\n<ODM xmlns="http://www.cdisc.org/ns/odm/v2.0" ODMVersion="2.0"/>\n', ["ODM 2.0"]),
    "version.xml": (b'<?xml version="1.0"?>\n<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" ODMVersion="1.2"/>\n', ["ODMVersion '1.2'"]),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_bad_xml_gets_one_located_message_and_nothing_is_written(tmp_path, name):
    content, expected = HOSTILE[name]
    source = tmp_path / name
    source.write_bytes(content)
    target = tmp_path / "schemas" / "new-study"
    run = subprocess.run([sys.executable, str(ROOT / "build_crf.py"), "import", "odm", str(source), "--out", str(target)],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    refused = [line for line in run.stderr.splitlines() if line.startswith("refused:")]
    assert len(refused) == 1 and str(source) in refused[0], run.stderr
    assert all(e in refused[0] for e in expected), refused[0]
    assert not target.exists() and not any((tmp_path / "schemas").glob("*")) if (tmp_path / "schemas").exists() else not target.exists()


def test_an_import_never_overwrites_a_study(imported, realworld, tmp_path):
    target = tmp_path / "study"
    target.mkdir()
    with pytest.raises(ImportRefused) as refused:
        write_study(read_odm(realworld / "odm" / "redcap_visits-project_odm131-redcap-ext.xml"), target)
    assert "already exists" in str(refused.value) and list(target.iterdir()) == []


def _fields(item):
    d = dataclasses.asdict(item)
    d.pop("pointer")  # the file it is written in, not what it means
    return d


def test_round_trip_of_the_shipped_study_through_odm_keeps_every_visit_form_item_code_list_range_condition_derivation(study, tmp_path):
    source = tmp_path / "study.xml"
    source.write_bytes(study_to_odm(study))
    back = write_study(read_odm(source), tmp_path / "back")
    assert (back.id, back.title, back.protocol_version, back.form_version, back.registry_id, back.sponsor, back.dosing) == \
           (study.id, study.title, study.protocol_version, study.form_version, study.registry_id, study.sponsor, study.dosing)
    assert back.codelists == study.codelists
    differences = []
    assert [v.id for v in back.visits] == [v.id for v in study.visits]
    for a, b in zip(study.visits, back.visits):
        for attr in ("label", "kind", "day", "week", "window", "infusion", "repeating", "repeat_sheets", "link"):
            if getattr(a, attr) != getattr(b, attr):
                differences.append((a.id, attr, getattr(a, attr), getattr(b, attr)))
        assert [(i.name, i.title, i.form.id, i.form.title, i.form.version, i.form.code, i.form.domain) for i in a.forms] == \
               [(i.name, i.title, i.form.id, i.form.title, i.form.version, i.form.code, i.form.domain) for i in b.forms], a.id
        for ia, ib in zip(a.forms, b.forms):
            assert [it.id for it in ia.items] == [it.id for it in ib.items], (a.id, ia.name)
            for x, y in zip(ia.items, ib.items):
                fx, fy = _fields(x), _fields(y)
                differences += [(a.id, ia.name, x.id, k, fx[k], fy[k]) for k in fx if fx[k] != fy[k]]
    assert [(lg.id, lg.label, lg.rows, lg.starts, lg.form.id) for lg in back.logs] == [(lg.id, lg.label, lg.rows, lg.starts, lg.form.id) for lg in study.logs]
    for a, b in zip(study.logs, back.logs):
        for x, y in zip(a.form.items, b.form.items):
            fx, fy = _fields(x), _fields(y)
            differences += [(a.id, x.id, k, fx[k], fy[k]) for k in fx if fx[k] != fy[k]]
    # a derivation calling the study's own functions (its functions.py, Python) does not travel in ODM: the item
    # comes back an entry field, with a note; every other derivation comes back
    own = set(study.functions.by_name())
    calls_own = {it.id for *_, it in study.iter_fields() if it.derived and parse(it.derived).functions() & own}
    assert calls_own == {"EDSSCALC", "DEDSS", "FSCRIT"}
    assert {d[-4] for d in differences} == calls_own and {d[-3] for d in differences} <= {"derived", "derived_label", "required"}
    assert sum(1 for *_, it in back.iter_fields() if it.derived) == sum(1 for *_, it in study.iter_fields() if it.derived and it.id not in calls_own) > 10
    assert sum(1 for *_, it in back.iter_fields() if it.condition) == sum(1 for *_, it in study.iter_fields() if it.condition) > 10


def test_round_trip_of_the_mini_study_through_odm(mini_study, tmp_path):
    source = tmp_path / "mini.xml"
    source.write_bytes(study_to_odm(mini_study))
    back = write_study(read_odm(source), tmp_path / "back")
    assert [(v.id, v.day, v.window, [(i.name, [_fields(it) for it in i.items]) for i in v.forms]) for v in back.visits] == \
           [(v.id, v.day, v.window, [(i.name, [_fields(it) for it in i.items]) for i in v.forms]) for v in mini_study.visits]
    assert [(lg.id, lg.rows, [_fields(it) for it in lg.form.items]) for lg in back.logs] == \
           [(lg.id, lg.rows, [_fields(it) for it in lg.form.items]) for lg in mini_study.logs]
