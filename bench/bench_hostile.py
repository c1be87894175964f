#!/usr/bin/env python3
"""The worst cases of issue 11 item 6 against a normal full-subject workbook, measured in the same run.

    python bench/bench_hostile.py [--rounds 3]

Each case is `validate.py FILE --format json` as a whole process (its forked workers included);
wall time and peak resident memory (the largest process of the run) are medians over the rounds,
run interleaved (the machine is shared). Cases:
  normal        a full synthetic subject's workbook (every visit and log filled)
  stray-cell    the same workbook with one value at XFD3051 (was 1.9 GB and nothing reported)
  formulas      the same workbook with 2 x 40,000 empty formula elements (was 35 s)
  huge-ref      the same workbook with a cell reference D99999999999 (was an abort: exit 134)
  ae-20000.json a subject document with 20,000 adverse-event rows (was 90 s and 0.9 GB), against the
                same subject as a JSON document
Target: every hostile case at most 2x the time and 2x the memory of its normal counterpart.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET = 2.0
MEASURE = ("import resource, subprocess, sys, time\n"
           "start = time.perf_counter()\n"
           "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode\n"
           "print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)\n")


def cases(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, the normal case it is compared with)."""
    from crf.loader import load_study
    from crf.synth import clean_subject
    from crf.xlsx import workbook_bytes
    from tests.badfiles import hostile

    study = load_study(ROOT / "schemas" / "belimumab-nmosd")
    record = clean_subject(study, "01", "01-001", 1, None)
    good = workbook_bytes(study, "01", "01-001", record)
    doc = record.to_json()
    many = json.loads(json.dumps(doc))
    rows = many["logs"].get("AE") or [{}]
    many["logs"]["AE"] = [dict(rows[0], AESPID=i + 1) for i in range(20_000)]
    made = {
        "normal.xlsx": (good, "normal.xlsx"),
        "stray-cell.xlsx": (hostile.stray_far_cell(good), "normal.xlsx"),
        "formulas.xlsx": (hostile.many_empty_formulas(good), "normal.xlsx"),
        "huge-ref.xlsx": (hostile.huge_reference(good), "normal.xlsx"),
        "normal.json": (json.dumps(doc).encode(), "normal.json"),
        "ae-20000.json": (json.dumps(many).encode(), "normal.json"),
    }
    out = {}
    for name, (data, baseline) in made.items():
        path = folder / name
        path.write_bytes(data)
        out[name] = (path, baseline)
    return out


def measure(path: Path) -> tuple[float, int, int]:
    cmd = [sys.executable, "-c", MEASURE, sys.executable, str(ROOT / "validate.py"), str(path), "--format", "json",
           "--today", "2026-11-25"]
    seconds, rss_kb, code = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout.split()
    return float(seconds), int(rss_kb) * 1024, int(code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        table = cases(Path(tmp))
        times: dict[str, list[float]] = {n: [] for n in table}
        memory: dict[str, list[int]] = {n: [] for n in table}
        codes: dict[str, int] = {}
        for _ in range(args.rounds):
            for name, (path, _) in table.items():
                seconds, rss, code = measure(path)
                times[name].append(seconds)
                memory[name].append(rss)
                codes[name] = code
    print(f"{'case':16} {'time s':>8} {'peak MB':>8} {'time x':>7} {'memory x':>9}  exit  (target: at most {TARGET:.0f}x both)")
    worst = 0.0
    for name, (_, baseline) in table.items():
        t, m = statistics.median(times[name]), statistics.median(memory[name])
        bt, bm = statistics.median(times[baseline]), statistics.median(memory[baseline])
        rt, rm = t / bt, m / bm
        if name != baseline:
            worst = max(worst, rt, rm)
        print(f"{name:16} {t:8.2f} {m / 2**20:8.0f} {rt:7.2f} {rm:9.2f}  {codes[name]:>4}")
    print(f"worst ratio {worst:.2f} ({'within' if worst <= TARGET else 'OVER'} the {TARGET:.0f}x target)")


if __name__ == "__main__":
    main()
