"""The generator's output: planted subjects, subject documents, a folder of subject files with its manifest."""
from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Literal, Optional, Sequence

from ..model import Study
from ..subject import SubjectRecord
from .links import clean_subject
from .plants import PLANTS, PlantNotApplicable, check_roles, plant


def planted_subject(study: Study, kinds: Sequence[str], seed: int = 1, site: str = "01", subject: str = "01-001",
                    attempts: int = 50) -> tuple[SubjectRecord, SubjectRecord, list[str]]:
    """(clean record, the same with the planted problems, descriptions). When a plant does not apply to
    the subject of this seed (a man for a pregnancy plant), the next seeds are tried, deterministically;
    a plant the study's forms cannot have (no form of its role) is refused at once."""
    for kind in kinds:
        check_roles(study, kind)
    for attempt in range(attempts):
        clean = clean_subject(study, site, subject, seed + 100_000 * attempt)
        planted = copy.deepcopy(clean)
        rng = random.Random(f"plant|{seed}|{attempt}|{subject}|{'+'.join(kinds)}")
        try:
            descriptions = [plant(study, planted, kind, rng) for kind in kinds]
        except PlantNotApplicable:
            continue
        return clean, planted, descriptions
    raise PlantNotApplicable(f"no subject found for plants {', '.join(kinds)} in {attempts} attempts")


def subject_json(record: SubjectRecord) -> str:
    return json.dumps(record.to_json(), sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def generate(study: Study, out_dir: Path, subjects: int, site: str = "01", seed: int = 1,
             plants: Sequence[str] = (), fmt: Literal["xlsx", "json"] = "json", manifest: Optional[Path] = None) -> list[Path]:
    """One file per subject in out_dir; named problems spread over the subjects, listed in `manifest`
    (default out_dir/planted.json; keep it out of a folder that is validated, it is not a subject)."""
    unknown = [k for k in plants if k not in PLANTS]
    if unknown:
        raise ValueError(f"unknown plant kind(s) {', '.join(unknown)}; known kinds: {', '.join(sorted(PLANTS))}")
    if fmt not in ("xlsx", "json"):
        raise ValueError(f"format must be xlsx or json, not {fmt!r}")
    if subjects < 1:
        raise ValueError("generate at least one subject")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    assigned: dict[int, list[str]] = {i: [] for i in range(subjects)}
    for j, kind in enumerate(plants):
        assigned[j % subjects].append(kind)
    written: list[Path] = []
    entries: list[dict[str, str]] = []
    for i in range(subjects):
        subject = f"{site}-{i + 1:03d}"
        _, record, descriptions = planted_subject(study, assigned[i], seed, site, subject)
        if fmt == "json":
            path = out_dir / f"{subject}.json"
            path.write_text(subject_json(record), encoding="utf-8")
        else:
            from ..xlsx import workbook_name, write_workbook

            path = write_workbook(study, out_dir / workbook_name(study, subject), site, subject, record)
        written.append(path)
        entries += [{"file": path.name, "subject": subject, "kind": k, "description": d}
                     for k, d in zip(assigned[i], descriptions)]
    if plants:
        Path(manifest or out_dir / "planted.json").write_text(json.dumps(entries, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return written
