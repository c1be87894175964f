"""Study knowledge lives in the study folder, not in Python (issue 12, item 1): a scan of crf/ for the
shipped study's item, form, visit, log and code-list ids as string literals. What is left is listed below
by file and id, so that the list can only shrink: a new id in Python code fails here."""
from __future__ import annotations

import re
from pathlib import Path

from crf.model import Study

ROOT = Path(__file__).resolve().parent.parent

# CDISC SDTM domain codes are standard vocabulary (the aCRF's domain names), not this study's.
STANDARD = {"crf/pdf_layout.py": {"AE", "CE", "CM", "DM", "DV", "EX", "IE", "MH", "SV", "VS"}}
# Examples in docstrings (a subject document, a record path), and an importer's default visit id.
EXAMPLES = {"crf/subject.py": {"AE", "AETERM", "V1", "VS_PRE", "WEIGHT"}, "crf/messages.py": {"AE", "EDSS", "IN01"},
            "crf/model.py": {"ATT", "V1"},
            "crf/interop/redcap.py": {"V1"}}
# Known debt, to move into the study folder: none left (crf/rules and crf/synth read the study's roles and constants).
DEBT: dict[str, set[str] | None] = {}


def study_ids(study: Study) -> set[str]:
    ids = {cl.id for cl in study.codelists}
    for visit in study.visits:
        ids.add(visit.id)
        for inst in visit.forms:
            ids |= {inst.name, inst.form.id, *(it.id for it in inst.items)}
    for log in study.logs:
        ids |= {log.id, log.form.id, *(it.id for it in log.form.items)}
    return {i for i in ids if len(i) >= 2}


def test_no_id_of_the_shipped_study_in_python_beyond_the_known_debt(study):
    ids = study_ids(study)
    hits = []
    for path in sorted((ROOT / "crf").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        allowed = STANDARD.get(rel, set()) | EXAMPLES.get(rel, set())
        if rel in DEBT:
            if DEBT[rel] is None:
                continue
            allowed |= DEBT[rel]
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for m in re.finditer(r"""["']([A-Za-z0-9_]+)["']""", line):
                if m.group(1) in ids and m.group(1) not in allowed:
                    hits.append(f"{rel}:{number}: {m.group(1)}")
    assert not hits, "study ids in Python code (put them in the study folder):\n" + "\n".join(hits)
