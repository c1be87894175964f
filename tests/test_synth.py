"""The synthetic data generator: valid, consistent, deterministic subjects, and planted problems."""
from __future__ import annotations

import copy
import datetime as dt
import json
import random
import re
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from crf.cli import build
from crf.model import Study, split_visit_key
from crf.subject import SubjectRecord
from crf.synth import (
    PLANTS, PlantNotApplicable, clean_subject, generate, plant, planted_subject, schema_node, subject_json,
    typical_range, vial_counts,
)


SEEDS = range(1, 13)

FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("partial-date")
def _partial_date(value: Any) -> bool:
    return not isinstance(value, str) or bool(re.fullmatch(r"\d{4}(-(0[1-9]|1[0-2])(-\d{2})?)?", value))


@FORMATS.checks("time-hm")
def _time_hm(value: Any) -> bool:
    return not isinstance(value, str) or bool(re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value))


def schema_errors(study: Study, record: SubjectRecord) -> list[str]:
    """JSON Schema errors of every visit and log of the record (format checking on)."""
    errors = []
    for container, uris, data in (("visits", study.schemas.visit_uris, record.visits), ("logs", study.schemas.log_uris, record.logs)):
        for key, value in data.items():
            uri = uris[split_visit_key(key)[0] if container == "visits" else key]
            validator = jsonschema.Draft202012Validator({"$ref": uri}, registry=study.schemas.registry, format_checker=FORMATS)
            errors += [f"/{container}/{key}/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(value)]
    return errors


@pytest.fixture(scope="module")
def subjects(study: Study) -> list[SubjectRecord]:
    return [clean_subject(study, "01", f"01-{n:03d}", seed=n) for n in SEEDS]


def date(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def minutes(value: str) -> int:
    h, m = value.split(":")
    return int(h) * 60 + int(m)


def test_clean_subjects_are_valid_against_every_visit_and_log_schema(study, subjects):
    for record in subjects:
        assert schema_errors(study, record) == [], record.subject


def test_schema_validation_checks_formats(study, subjects):
    broken = copy.deepcopy(subjects[0])
    broken.visits["V1"]["SV"]["SVSTDAT"] = "2024-02-30"
    broken.visits["V1"]["EX"]["EXSTTIM"] = "25:10"
    assert len(schema_errors(study, broken)) == 2


def test_same_seed_gives_the_same_bytes(study):
    a = subject_json(clean_subject(study, "01", "01-001", seed=7))
    b = subject_json(clean_subject(study, "01", "01-001", seed=7))
    assert a == b
    assert a != subject_json(clean_subject(study, "01", "01-001", seed=8))


def test_every_visit_inside_its_window(study, subjects):
    for record in subjects:
        day0 = date(record.visits["V1"]["SV"]["SVSTDAT"])
        for visit in study.visits:
            if visit.scheduled:
                day = (date(record.visits[visit.id]["SV"]["SVSTDAT"]) - day0).days
                assert visit.day - visit.window.before <= day <= visit.day + visit.window.after, (record.subject, visit.id)
        screening = date(record.visits["SCR"]["SV"]["SVSTDAT"])
        assert 7 <= (day0 - screening).days <= 21
        consent = record.visits["SCR"]["IC"]["DSSTDAT"]
        dated = [v for forms in record.visits.values() for f in forms.values() for k, v in f.items()
                 if isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) and k not in ("BRTHDAT", "AQP4DAT")]
        assert consent <= min(dated)
        assert "ET" not in record.visits


def test_dose_is_ten_mg_per_kg_of_the_same_visit_weight(study, subjects):
    for record in subjects:
        weights = []
        for visit in study.visits:
            if not visit.infusion:
                continue
            forms = record.visits[visit.id]
            ex, pre, post = forms["EX"], forms["VS_PRE"], forms["VS_POST"]
            weights.append(pre["WEIGHT"])
            assert ex["EXYN"] == "Y" and ex["EXWT"] == pre["WEIGHT"]
            assert abs(ex["EXDOSE"] - 10 * ex["EXWT"]) <= 0.05 * 10 * ex["EXWT"]
            assert 120 * ex["N120"] + 400 * ex["N400"] >= ex["EXDOSE"]
            assert ex["EXPLDOS"] == round(10 * ex["EXWT"])
            assert ex["EXDILU"] == "NACL 0.9%" and ex["EXVOL"] == 250
            assert 60 <= minutes(ex["EXENTIM"]) - minutes(ex["EXSTTIM"]) <= 75
            assert minutes(pre["VSTIM"]) < minutes(ex["EXSTTIM"]) and minutes(post["VSTIM"]) > minutes(ex["EXENTIM"])
            assert "WEIGHT" not in post
        assert (max(weights) - min(weights)) / min(weights) < 0.03


def test_values_are_plausible_and_consistent(study, subjects):
    for record in subjects:
        for visit in study.visits:
            for inst in visit.forms:
                values = record.visits.get(visit.id, {}).get(inst.name, {})
                for item in inst.items:
                    value = values.get(item.id)
                    if item.fixed is not None and visit.id in record.visits:
                        assert value == item.fixed, (visit.id, inst.name, item.id)
                    if value is not None and item.is_number and not item.codelist and item.soft:
                        assert item.soft.contains(value), (record.subject, visit.id, inst.name, item.id, value)
                    if value is not None and item.kind.value == "decimal" and item.is_input:
                        assert round(value, item.decimals) == value
                if "SYSBP" in values:
                    assert values["SYSBP"] > values["DIABP"]
        ie = [f for forms in record.visits.values() for name, f in forms.items() if name == "IE"]
        for answers in ie:
            assert all(answers[f"IN0{i}"] == "Y" for i in range(1, 7)) and all(answers[f"EX0{i}"] == "N" for i in range(1, 6))
            assert answers["IEYN"] == "Y"
        nmo = record.visits["SCR"]["NMO"]
        assert nmo["AQP4RES"] == "POSITIVE" and nmo["AQP4METH"].startswith("CBA")
        assert nmo["MHSTDAT"] <= nmo["DXDAT"] <= record.visits["SCR"]["IC"]["DSSTDAT"]
        assert nmo["N12"] >= 1 and all(row["PAQUAL"] == "Y" for row in record.logs["PA"])
        for row in record.logs["AE"]:
            assert row["AETOXGR"] in (1, 2) and row["AESER"] == "N" and row["AESTDAT"] <= row["AEENDAT"]
        assert not any(row["CMTRT"].lower() in ("rituximab", "eculizumab", "tocilizumab") for row in record.logs["CM"])
        eos = record.visits["V15"]["EOS"]
        assert eos["DSDECOD"] == "COMPLETED" and eos["NATT"] == eos["NATTD"]
        assert eos["FINEDSS"] == record.visits["V15"]["EDSS"]["EDSS"]


def test_edss_agrees_with_functional_scores(study, subjects):
    for record in subjects:
        for forms in record.visits.values():
            edss = forms.get("EDSS")
            if edss:
                scores = [edss[k] for k in ("FSVISC", "FSBS", "FSPYR", "FSCRB", "FSSEN", "FSBBC", "FSCBR")]
                assert edss["AMBSC"] == 0 and 2.0 <= edss["EDSS"] <= 4.0
                assert max(scores) == {2.0: 2, 2.5: 2, 3.0: 3, 3.5: 3, 4.0: 4}[edss["EDSS"]]
                assert sorted(scores)[-2] == (2 if edss["EDSS"] in (2.5, 3.5) else min(1, sorted(scores)[-2]))


def test_women_of_childbearing_potential_have_negative_tests_before_each_infusion(study, subjects):
    wocbp = [r for r in subjects if r.visits["SCR"]["DM"].get("CHILDPOT") == "Y"]
    assert wocbp, "no woman of childbearing potential among the seeds"
    for record in wocbp:
        for visit in study.visits:
            if visit.infusion:
                preg, ex = record.visits[visit.id]["PREG"], record.visits[visit.id]["EX"]
                assert preg["HCG"] == "NEGATIVE" and ex["PREPREG"] == "Y"
                assert 0 <= (date(ex["EXSTDAT"]) - date(preg["LBDAT"])).days <= 2
    for record in subjects:
        if record not in wocbp:
            assert record.visits["V1"]["PREG"] == {"LBPERF": "NA", "LBSPEC": "URINE"}


def test_an_attack_comes_with_its_visit_edss_and_rescue(study):
    records = [clean_subject(study, "01", f"01-{n:03d}", seed=n) for n in range(1, 30)]
    with_attack = [r for r in records if r.logs["CE"]]
    assert with_attack and len(with_attack) < len(records)
    assert any(len(r.logs["CE"]) == 2 for r in with_attack)  # some subjects have two attacks
    for record in records:
        assert [k for k in record.visits if k.startswith("ATT")] == [f"ATT#{n}" for n in range(1, len(record.logs["CE"]) + 1)]
    for record in with_attack:
        for n, attack in enumerate(record.logs["CE"], start=1):
            visit = record.visits[f"ATT#{n}"]  # each attack its own attack visit, linked by the attack number
            assert visit["ATT"] == {"CESPID": attack["CESPID"], "CESTDAT": attack["CESTDAT"]} and attack["CESPID"] == n
            assert 0 <= (date(visit["SV"]["SVSTDAT"]) - date(attack["CESTDAT"])).days <= 7
            assert visit["EDSS"]["RSCONTXT"] == "ATTACK" and attack["ATTEDSS"] == visit["EDSS"]["EDSS"]
            assert attack["INVCONF"] == "Y" and attack["ONTRT"] == "Y" and attack["DEDSS"] > 0
        assert [row["CMATTNO"] for row in record.logs["CM"] if row["CMCAT"] == "RESCUE"] == [a["CESPID"] for a in record.logs["CE"]]
        assert record.visits["V15"]["EOS"]["NATT"] == record.visits["V15"]["EOS"]["NATTD"] == len(record.logs["CE"])
        assert schema_errors(study, record) == []


def test_some_subjects_have_an_unscheduled_visit_with_its_date_reason_and_an_assessment(study):
    records = [clean_subject(study, "01", f"01-{n:03d}", seed=n) for n in range(1, 40)]
    unscheduled = [r for r in records if "UNS#1" in r.visits]
    assert unscheduled and len(unscheduled) < len(records)
    for record in unscheduled:
        visit = record.visits["UNS#1"]
        assert visit["SV"]["SVSTDAT"] and visit["SV"]["SVREAS"] and 2 <= len(visit) <= 3, visit.keys()
        assert set(visit) <= {"SV", "VS", "HEM", "CHEM", "PREG", "EDSS"}
        assert schema_errors(study, record) == []


def test_vials_cover_the_dose_with_least_waste():
    assert vial_counts((120, 400), 520) == {120: 1, 400: 1}
    assert vial_counts((120, 400), 700) == {120: 6, 400: 0}  # 720 mg wastes less than 760
    assert vial_counts((120, 400), 800) == {120: 0, 400: 2}
    assert vial_counts((50,), 51) == {50: 2}


def test_schema_defaults_and_examples_are_valid_values(study):
    registry = study.schemas.registry
    checked = 0
    for form in study.forms():
        for item in form.items:
            node = schema_node(study, item)
            values = ([node["default"]] if "default" in node else []) + list(node.get("examples", []))
            validator = jsonschema.Draft202012Validator({"$ref": study.schemas.base_uri + item.pointer}, registry=registry, format_checker=FORMATS)
            for value in values:
                assert not list(validator.iter_errors(value)), (item.pointer, value)
                checked += 1
            if item.is_number and item.soft and not item.codelist:
                assert all(item.soft.contains(v) for v in values), item.pointer
        doc = registry.contents(study.schemas.base_uri + form.source)
        for example in doc.get("examples", []):
            for key, value in example.items():
                validator = jsonschema.Draft202012Validator({"$ref": study.schemas.base_uri + form.source + "#/properties/" + key}, registry=registry)
                assert not list(validator.iter_errors(value)), (form.source, key, value)
                checked += 1
    assert checked > 100


# -- plants ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(PLANTS))
def test_each_plant_changes_a_copy_and_leaves_the_clean_record_clean(study, kind):
    clean, planted, (description,) = planted_subject(study, [kind], seed=3)
    assert description and planted.to_json() != clean.to_json()
    assert schema_errors(study, clean) == []
    assert subject_json(clean) == subject_json(clean_subject(study, "01", "01-001", _seed_of(study, clean)))


def _seed_of(study: Study, record: SubjectRecord) -> int:
    for attempt in range(50):
        seed = 3 + 100_000 * attempt
        if subject_json(clean_subject(study, "01", "01-001", seed)) == subject_json(record):
            return seed
    raise AssertionError("not generated by planted_subject's seeds")


def test_plants_that_break_the_schema_are_seen_by_it(study):
    for kind in ("missing-required", "out-of-range"):
        _, planted, _ = planted_subject(study, [kind], seed=5)
        assert len(schema_errors(study, planted)) == 1, kind
    for kind in ("soft-limit", "dose-deviation", "sbp-below-dbp", "visit-out-of-window", "attack-count-mismatch"):
        _, planted, _ = planted_subject(study, [kind], seed=5)
        assert schema_errors(study, planted) == [], kind


def test_plant_details(study):
    clean, planted, _ = planted_subject(study, ["dose-deviation"], seed=2)
    changed = [(v, clean.visits[v]["EX"], planted.visits[v]["EX"]) for v in clean.visits
               if "EX" in clean.visits[v] and clean.visits[v]["EX"] != planted.visits[v]["EX"]]
    (visit, before, after), = changed
    assert 0.13 <= abs(after["EXDOSE"] / (10 * after["EXWT"]) - 1) <= 0.17
    assert 120 * after["N120"] + 400 * after["N400"] >= after["EXDOSE"]

    _, planted, _ = planted_subject(study, ["sbp-below-dbp"], seed=2)
    assert any(f["SYSBP"] < f["DIABP"] for forms in planted.visits.values() for f in forms.values() if "SYSBP" in f)

    _, planted, _ = planted_subject(study, ["visit-out-of-window"], seed=2)
    day0 = date(planted.visits["V1"]["SV"]["SVSTDAT"])
    outside = [v for v in study.visits if v.scheduled and not
               (v.day - v.window.before <= (date(planted.visits[v.id]["SV"]["SVSTDAT"]) - day0).days <= v.day + v.window.after)]
    assert len(outside) == 1

    clean, planted, _ = planted_subject(study, ["missed-dose"], seed=2)
    missed = [v for v in planted.visits if planted.visits[v].get("EX", {}).get("EXYN") == "N"]
    assert len(missed) == 1 and "EXREASND" in planted.visits[missed[0]]["EX"]
    assert schema_errors(study, planted) == []

    _, planted, _ = planted_subject(study, ["positive-pregnancy-dosed"], seed=2)
    assert any(f["PREG"].get("HCG") == "POSITIVE" and f["EX"]["EXYN"] == "Y" for f in planted.visits.values() if "EX" in f)

    _, planted, _ = planted_subject(study, ["prohibited-med", "late-sae-report", "bad-date-order"], seed=2)
    assert any(r["CMTRT"] == "Rituximab" for r in planted.logs["CM"])
    assert any(r["AESER"] == "Y" and (date(r["SAERPDAT"]) - date(r["SAEAWDAT"])).days > 1 for r in planted.logs["AE"])
    assert any(r.get("AEENDAT", "9") < r["AESTDAT"] for r in planted.logs["AE"])
    assert schema_errors(study, planted) == []


def test_unknown_or_inapplicable_plant(study, mini_study):
    record = clean_subject(study, "01", "01-001", 1)
    with pytest.raises(ValueError, match="known kinds"):
        plant(study, record, "no-such-kind", random.Random(1))
    mini = clean_subject(mini_study, "01", "01-001", 1)
    with pytest.raises(PlantNotApplicable):
        plant(mini_study, mini, "dose-deviation", random.Random(1))


def test_adding_a_plant_kind_is_one_decorated_function(study):
    from crf.synth import plant_kind

    @plant_kind("test-only-kind")
    def _blank_race(study: Study, record: SubjectRecord, rng: random.Random) -> str:
        """Blank the race."""
        record.visits["SCR"]["DM"].pop("RACE")
        return "race blanked"

    try:
        _, planted, descriptions = planted_subject(study, ["test-only-kind"])
        assert descriptions == ["race blanked"] and "RACE" not in planted.visits["SCR"]["DM"]
    finally:
        PLANTS.pop("test-only-kind")


# -- another study ------------------------------------------------------------------------------------
def test_a_second_study_generates_too(mini_study):
    record = clean_subject(mini_study, "02", "02-001", seed=1)
    assert set(record.visits) == {"BASE", "FUP"} and record.logs == {"NOTE": []}
    assert schema_errors(mini_study, record) == []
    hr = mini_study.visit("BASE").form("VIT").form.item("HR")
    assert hr.soft.contains(record.visits["BASE"]["VIT"]["HR"])
    for kind in ("missing-required", "out-of-range", "soft-limit", "visit-out-of-window"):
        _, planted, _ = planted_subject(mini_study, [kind])
        assert planted.to_json() != record.to_json()


def test_typical_range_lies_inside_every_limit(study):
    for _, _, item in study.iter_fields():
        if item.is_number and not item.codelist and not item.derived:
            lo, hi = typical_range(item)
            assert lo <= hi and item.hard.contains(lo) and item.hard.contains(hi), item.pointer
            if item.soft:
                assert item.soft.contains(lo) and item.soft.contains(hi), item.pointer


# -- files and command line ---------------------------------------------------------------------------
def test_generate_json_files_and_manifest(study, tmp_path):
    written = generate(study, tmp_path, subjects=3, seed=4, plants=["missing-required", "dose-deviation", "sbp-below-dbp", "attack-count-mismatch"], fmt="json")
    assert [p.name for p in written] == ["01-001.json", "01-002.json", "01-003.json"]
    manifest = json.loads((tmp_path / "planted.json").read_text())
    assert [(m["subject"], m["kind"]) for m in manifest] == [
        ("01-001", "missing-required"), ("01-001", "attack-count-mismatch"), ("01-002", "dose-deviation"), ("01-003", "sbp-below-dbp")]
    again = generate(study, tmp_path / "again", subjects=3, seed=4, plants=["missing-required", "dose-deviation", "sbp-below-dbp", "attack-count-mismatch"], fmt="json")
    assert [p.read_bytes() for p in written] == [p.read_bytes() for p in again]
    record = SubjectRecord.from_json(json.loads(written[1].read_text()))
    assert record.subject == "01-002" and record.definition_hash == study.definition_hash


def test_generate_without_plants_writes_no_manifest(study, tmp_path):
    generate(study, tmp_path, subjects=1, fmt="json")
    assert not (tmp_path / "planted.json").exists()
    with pytest.raises(ValueError, match="unknown plant"):
        generate(study, tmp_path, subjects=1, plants=["nope"], fmt="json")


def test_synth_command(tmp_path):
    result = CliRunner().invoke(build, ["synth", "--out", str(tmp_path), "--subjects", "2", "--seed", "3",
                                        "--plant", "missing-required,dose-deviation", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "returned").iterdir()) == ["01-001.json", "01-002.json"]
    assert [m["kind"] for m in json.loads((tmp_path / "planted.json").read_text())] == ["missing-required", "dose-deviation"]
    result = CliRunner().invoke(build, ["synth", "--out", str(tmp_path), "--plant", "nope", "--format", "json"])
    assert result.exit_code != 0 and "unknown kind" in result.output
    result = CliRunner().invoke(build, ["synth", "--list-plants"])
    assert result.exit_code == 0 and "dose-deviation" in result.output


def test_generate_xlsx_prefills_the_workbook(study, tmp_path):
    pytest.importorskip("crf.xlsx")
    (path,) = generate(study, tmp_path, subjects=1, seed=2, fmt="xlsx")
    assert path.suffix == ".xlsx" and path.stat().st_size > 0
    from crf.readers import read_file

    result = read_file(path, path.name, study)
    assert result.usable, [f.message for f in result.findings]
    read = result.subject.record
    expected = clean_subject(study, "01", "01-001", 2)
    inputs = {(v, f.name, it.id) for v in expected.visits for f in study.visit_of(v).forms for it in f.items if it.is_input}
    for visit_id, forms in expected.visits.items():
        for name, values in forms.items():
            for key, value in values.items():
                if (visit_id, name, key) in inputs:
                    assert read.value(visit_id, name, key) == value, (visit_id, name, key)
    for log_id, rows in expected.logs.items():
        assert [{k: v for k, v in row.items() if not study.log(log_id).form.item(k).derived} for row in rows] == \
            [{k: v for k, v in row.items() if not study.log(log_id).form.item(k).derived} for row in read.logs.get(log_id, [])], log_id
