from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_STUDY = ROOT / "schemas" / "belimumab-nmosd"
MINI_STUDY = ROOT / "tests" / "fixtures" / "mini-study"
# The checked-definition cache (crf.defcache) of the tests is their own, never the user's; subprocesses inherit it.
os.environ["OPEN_ECRF_CACHE_DIR"] = tempfile.mkdtemp(prefix="open-ecrf-test-cache-")


@pytest.fixture(scope="session")
def study():
    from crf.loader import load_study

    return load_study(SHIPPED_STUDY)


@pytest.fixture(scope="session")
def mini_study():
    from crf.loader import load_study

    return load_study(MINI_STUDY)


@pytest.fixture
def study_copy(tmp_path: Path) -> Callable[..., Path]:
    """Copy a study folder to tmp_path; edit(path, fn) changes one JSON file in the copy."""

    def make(source: Path = MINI_STUDY) -> Path:
        target = tmp_path / source.name
        shutil.copytree(source, target)
        return target

    return make


def edit_json(path: Path, change: Callable[[Any], None]) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc, indent=1))


# The real-world reference files (REDCap dictionaries, ODM files, the ODM XSD) live beside the repository,
# never inside it: ../shared/realworld/ from the repository's root.
REALWORLD = ROOT.parent / "shared" / "realworld"
ODM_XSD = REALWORLD / "odm-xsd" / "cdisc-odm-1.3.2" / "ODM1-3-2.xsd"


@pytest.fixture(scope="session")
def realworld() -> Path:
    if not REALWORLD.is_dir():
        pytest.skip(f"the real-world reference files are not at {REALWORLD} (shared/realworld beside the repository)")
    return REALWORLD
