#!/usr/bin/env python3
"""One returned workbook, as a site coordinator runs it: `validate.py FILE` as a whole process.

    python bench/bench_one_file.py [--rounds 9] [--cache bench/.cache]

Measured in the same run, interleaved round by round (the machine is shared; medians are printed):
  (a) baseline: a Python process that imports python-calamine and reads every sheet of the file;
  (b) `validate.py FILE --format text`, the checked-definition cache warm (the usual case);
  (c) the same with OPEN_ECRF_CACHE=off (first run after a change to the study definition).
Target: (b) under 0.5 s wall time. The ratio (b)/(a) shows what is left above reading the file.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUDY = ROOT / "schemas" / "belimumab-nmosd"
TARGET_S = 0.5
CALAMINE = ("import sys, python_calamine\n"
            "book = python_calamine.CalamineWorkbook.from_path(sys.argv[1])\n"
            "n = sum(len(r) for s in book.sheet_names for r in book.get_sheet_by_name(s).to_python())\n")


def workbook(cache: Path) -> Path:
    """One full synthetic subject with a planted dose deviation (so the report is not empty)."""
    sys.path.insert(0, str(ROOT))
    from crf import __version__
    from crf.loader import load_study

    study = load_study(STUDY)
    folder = cache / f"one-file-{study.definition_hash[:12]}-{__version__}"
    found = sorted(folder.glob("returned/*.xlsx"))
    if not found:
        subprocess.run([sys.executable, str(ROOT / "build_crf.py"), "synth", "--out", str(folder), "--subjects", "1",
                        "--plant", "dose-deviation"], check=True, capture_output=True)
        found = sorted(folder.glob("returned/*.xlsx"))
    return found[0]


def wall(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / ".cache")
    args = parser.parse_args()
    path = workbook(args.cache)
    # As installed: bytecode written once and reused (this machine's shell sets PYTHONDONTWRITEBYTECODE,
    # which would compile every module of the tool from source in every run: +0.2 s).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as tmp:
        warm = {**env, "OPEN_ECRF_CACHE_DIR": tmp}
        cold = {**env, "OPEN_ECRF_CACHE": "off"}
        validate = [sys.executable, str(ROOT / "validate.py"), str(path), "--today", "2026-01-01"]
        wall(validate, warm)  # fills the cache, warms the OS file cache
        times: dict[str, list[float]] = {"calamine": [], "warm": [], "cold": []}
        for _ in range(args.rounds):
            times["calamine"].append(wall([sys.executable, "-c", CALAMINE, str(path)], warm))
            times["warm"].append(wall(validate, warm))
            times["cold"].append(wall(validate, cold))
    med = {k: statistics.median(v) for k, v in times.items()}
    load = os.getloadavg()
    print(f"{path.name}; {args.rounds} interleaved rounds, medians; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    print(f"(a) baseline, python-calamine reads every sheet : {med['calamine']:6.3f} s")
    print(f"(b) validate.py FILE (definition cache warm)    : {med['warm']:6.3f} s  ratio to (a) {med['warm'] / med['calamine']:5.2f}  "
          f"target < {TARGET_S} s: {'met' if med['warm'] < TARGET_S else 'NOT met'}")
    print(f"(c) validate.py FILE, OPEN_ECRF_CACHE=off       : {med['cold']:6.3f} s  ratio to (a) {med['cold'] / med['calamine']:5.2f}")


if __name__ == "__main__":
    main()
