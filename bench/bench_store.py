#!/usr/bin/env python3
"""Benchmark the study store: validating 200 full-subject workbooks with and without --store, in the same run.

    python bench/bench_store.py [--files 200] [--cache bench/.cache] [--jobs 2] [--repeat 2]

Uses bench_validate's cached workbooks (full synthetic subjects). Each measurement runs in a fresh
process: (a) validation alone (library call, all stages); (b) the same validation keeping the values
read, then recording the run in a new SQLite store (one transaction: inputs, every value with its
cell, findings, queries); (c) a second run of the same folder into that store (every file already
received). Prints the times, the ratio (b)/(a) (target <= 1.30) and the size of the database file.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
STUDY = ROOT / "schemas" / "belimumab-nmosd"


def measure(folder: Path, jobs: int, store: str) -> dict:
    import datetime as dt

    from crf.loader import load_study
    from crf.validation import validate

    study = load_study(STUDY)
    start = time.perf_counter()
    result = validate(study, [folder], jobs=jobs, today=dt.date(2026, 1, 1), keep_values=bool(store))
    validated = time.perf_counter() - start
    out: dict = {"files": len(result.files), "findings": len(result.findings)}
    if store:
        from crf.store import record_result
        summary = record_result(store, study, result, "2026-01-10T09:00:00")
        out.update(new_returns=len(summary.new_returns), already=len(summary.already_received))
    out.update(seconds=time.perf_counter() - start, validate_seconds=validated)
    if store:
        out["values"] = sum(len(o.values.rows()) for o in result.files if o.values)
    return out


def _child(folder: Path, jobs: int, store: str = "") -> dict:
    out = subprocess.run([sys.executable, __file__, "--measure", "--folder", str(folder), "--jobs", str(jobs), "--store", store],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _runs(runs: list[dict]) -> str:
    return ", ".join(f"{r['seconds']:.1f} s" for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / ".cache")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=2, help="Runs of (a) and (b), alternating; the best of each is compared.")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--store", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.folder, args.jobs, args.store)))
        return
    from bench_validate import generate

    folder = generate(args.cache, args.files)
    # Alternating runs, best of --repeat each: the machine is shared, and a single pair of runs can differ by more than
    # the store costs.
    bases, stored_runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            bases.append(_child(folder, args.jobs))
            stored_runs.append(_child(folder, args.jobs, str(Path(tmp) / f"study-{i}.db")))
        db = Path(tmp) / "study-0.db"
        again = _child(folder, args.jobs, str(db))
        size = db.stat().st_size
    base = min(bases, key=lambda r: r["seconds"])
    stored = min(stored_runs, key=lambda r: r["seconds"])
    n = base["files"]
    print(f"\n{n} full-subject workbooks, {base['findings']} findings, {stored['values']:,} values read; --jobs {args.jobs}")
    print(f"(a) validate, no store                  : {base['seconds']:7.2f} s  (runs: {_runs(bases)})")
    print(f"(b) validate --store (new SQLite store) : {stored['seconds']:7.2f} s  (validation {stored['validate_seconds']:.2f} s, "
          f"store {stored['seconds'] - stored['validate_seconds']:.2f} s; {stored['new_returns']} new returns; "
          f"runs: {_runs(stored_runs)})")
    print(f"(c) the same files again into the store : {again['seconds']:7.2f} s  ({again['already']} already received)")
    print(f"ratio (b)/(a), best runs: {stored['seconds'] / base['seconds']:.2f} (target <= 1.30)")
    print(f"database file: {size / 1024 / 1024:.1f} MB ({size / n / 1024:.0f} KB per return)")


if __name__ == "__main__":
    main()
