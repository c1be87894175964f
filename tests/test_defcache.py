"""The checked-definition cache: a definition checked once is not re-checked, and any change is checked again."""
from __future__ import annotations

import json

import pytest

from conftest import SHIPPED_STUDY, edit_json
from crf import defcache
from crf.loader import StudyDefinitionError, load_study
from crf.rules import RuleSet


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("OPEN_ECRF_CACHE_DIR", str(folder))
    monkeypatch.delenv("OPEN_ECRF_CACHE", raising=False)
    return folder


def entries(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def count_meta_checks(monkeypatch):
    from crf import loader

    calls = []
    original = loader._Loader.check_meta
    monkeypatch.setattr(loader._Loader, "check_meta", lambda self: (calls.append(1), original(self))[1])
    return calls


def test_second_load_skips_the_meta_check_and_gives_the_same_study(cache, study_copy, monkeypatch):
    folder = study_copy()
    calls = count_meta_checks(monkeypatch)
    first = load_study(folder)
    second = load_study(folder)
    assert calls == [1]
    assert len(entries(cache)) == 1
    assert second == first


def test_a_changed_definition_is_checked_again(cache, study_copy):
    folder = study_copy()
    load_study(folder)
    edit_json(folder / "forms/vitals.json", lambda d: d["properties"]["HR"].update({"x-unti": "/min"}))
    with pytest.raises(StudyDefinitionError) as info:
        load_study(folder)
    assert [(p.file, p.pointer) for p in info.value.problems] == [("forms/vitals.json", "/properties/HR")]
    with pytest.raises(StudyDefinitionError):  # a failed check is never remembered
        load_study(folder)


def test_a_broken_rules_file_is_reported_after_the_rules_passed_once(cache, study_copy):
    folder = study_copy(SHIPPED_STUDY)
    RuleSet.load(load_study(folder))

    def broken(doc):
        doc["rules"][0]["severity"] = "catastrophic"  # not a severity the rules schema knows

    edit_json(folder / "rules/vital-signs.json", broken)
    with pytest.raises(StudyDefinitionError) as info:
        RuleSet.load(load_study(folder))
    assert any(p.file == "rules/vital-signs.json" and "catastrophic" in p.message for p in info.value.problems)


def test_another_tool_version_does_not_trust_the_entry(cache, study_copy, monkeypatch):
    folder = study_copy()
    study = load_study(folder)
    assert defcache.was_checked("meta", study.definition_hash)
    defcache._tool_fingerprint.cache_clear()
    monkeypatch.setattr(defcache, "__version__", "99.0")
    try:
        assert not defcache.was_checked("meta", study.definition_hash)
    finally:
        defcache._tool_fingerprint.cache_clear()


def test_corrupt_or_unusable_cache_never_breaks_a_run(cache, study_copy, monkeypatch):
    folder = study_copy()
    study = load_study(folder)
    (entry,) = entries(cache)
    entry.write_bytes(b"\xff\xfe garbage")
    calls = count_meta_checks(monkeypatch)
    assert load_study(folder) == study and calls == [1]  # not trusted: checked again, and rewritten
    assert defcache.was_checked("meta", study.definition_hash)
    blocked = cache.parent / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("OPEN_ECRF_CACHE_DIR", str(blocked))
    assert load_study(folder) == study


def test_cache_can_be_switched_off(cache, study_copy, monkeypatch):
    monkeypatch.setenv("OPEN_ECRF_CACHE", "off")
    folder = study_copy()
    calls = count_meta_checks(monkeypatch)
    load_study(folder)
    load_study(folder)
    assert calls == [1, 1] and entries(cache) == []


def test_rules_are_compiled_once_per_run(study, tmp_path, monkeypatch):
    """The rules stage, the derived values and the visit summaries share one compiled rule set."""
    import datetime as dt

    from crf.rules import engine
    from crf.synth import clean_subject
    from crf.validation import validate

    for n in (1, 2):
        record = clean_subject(study, "01", f"01-00{n}", seed=n, day0=None)
        (tmp_path / f"s{n}.json").write_text(json.dumps(record.to_json()))
    engine._SHARED.clear()
    compiled = []
    original = engine._RuleLoader.load
    monkeypatch.setattr(engine._RuleLoader, "load", lambda self: (compiled.append(1), original(self))[1])
    result = validate(study, [tmp_path], jobs=1, today=dt.date(2026, 1, 1))
    assert len(result.subjects) == 2
    assert compiled == [1]


def test_the_written_texts_come_from_the_cache_and_change_with_the_definition(cache, study_copy, monkeypatch):
    from crf.readers import sheet_scan

    folder = study_copy()
    study = load_study(folder)
    made = sheet_scan._layout_texts(study)
    laid_out = []
    original = sheet_scan._layout_texts
    monkeypatch.setattr(sheet_scan, "_layout_texts", lambda s: (laid_out.append(1), original(s))[1])
    assert sheet_scan._written_texts_of(study) == made and laid_out == [1]
    assert sheet_scan._written_texts_of(study) == made and laid_out == [1]  # from the cache: not laid out again
    edit_json(folder / "forms" / "vitals.json", lambda d: d["properties"]["HR"].update(title="Pulse"))
    changed = load_study(folder)
    texts = sheet_scan._written_texts_of(changed)
    assert laid_out == [1, 1] and any("Pulse" in t for sheet in texts.values() for t in sheet)
    (next(cache.rglob("computed/*/*"))).write_bytes(b"garbage")  # a foreign entry: computed again, never trusted
    assert sheet_scan._written_texts_of(study) == made
