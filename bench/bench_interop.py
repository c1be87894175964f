#!/usr/bin/env python3
"""ODM and REDCap exchange of the shipped study, against loading the study in the same process.

    python bench/bench_interop.py [--rounds 7]

Measured in one run, interleaved round by round (the machine is shared; medians are printed):
  (a) baseline: load_study() of the shipped study (what every command does first);
  (b) the ODM 1.3.2 metadata export; (c) reading that file back (import odm, without writing);
  (d) the REDCap dictionary export; (e) reading all 8 real ODM metadata files of shared/realworld (if present).
Each is printed as seconds and as a ratio to (a).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crf.interop.odm_export import study_to_odm  # noqa: E402
from crf.interop.odm_import import read_odm  # noqa: E402
from crf.interop.redcap_export import study_to_redcap  # noqa: E402
from crf.loader import load_study  # noqa: E402

STUDY = ROOT / "schemas" / "belimumab-nmosd"
REAL_ODM = ROOT.parent / "shared" / "realworld" / "odm"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    study = load_study(STUDY)
    folder = Path(tempfile.mkdtemp())
    exported = folder / "study.xml"
    exported.write_bytes(study_to_odm(study))
    real = [p for p in sorted(REAL_ODM.glob("*.xml")) if "odm2-constructs" not in p.name] if REAL_ODM.is_dir() else []
    steps = {
        "load_study (baseline)": lambda: load_study(STUDY),
        "ODM export": lambda: study_to_odm(study),
        "ODM import (read)": lambda: read_odm(exported),
        "REDCap export": lambda: study_to_redcap(study),
    }
    if real:
        steps[f"read {len(real)} real ODM files"] = lambda: [read_odm(p) for p in real]
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["load_study (baseline)"])
    print(f"{rounds} rounds, medians; ODM file {exported.stat().st_size // 1024} KB")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:28} {median:7.3f} s   {median / base:5.2f} x baseline")


if __name__ == "__main__":
    main()
