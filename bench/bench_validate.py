#!/usr/bin/env python3
"""Benchmark validate.py against python-calamine alone, on the same folder, in the same run.

    python bench/bench_validate.py [--files 200] [--cache bench/.cache] [--jobs 2]

Generates the workbooks once (full synthetic subjects, crf.synth + crf.xlsx; cached by study hash and
tool version), then measures, each in a fresh process so that peak memory is its own:
  (a) python-calamine alone opening each file and reading every sheet, one process;
  (b) validation of the whole folder (library call, all check stages), with --jobs 1 and with --jobs N.
Prints both times, their ratio, files per second and peak memory (parent and largest worker).
Targets: ratio <= 2 in one process; with N cores, validation wall time below (a); peak < 300 MB.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
STUDY = ROOT / "schemas" / "belimumab-nmosd"


def _make(args: tuple[str, int, str]) -> str:
    folder, n, study_dir = args
    from crf.loader import load_study
    from crf.synth import clean_subject
    from crf.xlsx import workbook_bytes

    study = _STUDY.get("s") or load_study(study_dir)
    _STUDY["s"] = study
    subject = f"01-{n:03d}"
    path = Path(folder) / f"{study.id}_{subject}.xlsx"
    if not path.exists():
        data = workbook_bytes(study, "01", subject, clean_subject(study, "01", subject, seed=n, day0=None))
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.rename(path)
    return str(path)


_STUDY: dict = {}


def generate(cache: Path, files: int) -> Path:
    from crf import __version__
    from crf.loader import load_study

    study = load_study(STUDY)
    folder = cache / f"validate-{files}-{study.definition_hash[:12]}-{__version__}"
    folder.mkdir(parents=True, exist_ok=True)
    missing = [n for n in range(1, files + 1) if not (folder / f"{study.id}_01-{n:03d}.xlsx").exists()]
    if missing:
        print(f"generating {len(missing)} workbook(s) in {folder} (once) ...", flush=True)
        start = time.perf_counter()
        with mp.get_context("fork").Pool(os.cpu_count() or 1) as pool:
            for _ in pool.imap_unordered(_make, [(str(folder), n, str(STUDY)) for n in missing]):
                pass
        print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    return folder


def _peak_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def measure_calamine(folder: Path) -> dict:
    import python_calamine

    files = sorted(folder.glob("*.xlsx"))
    start = time.perf_counter()
    cells = 0
    for path in files:
        book = python_calamine.CalamineWorkbook.from_path(str(path))
        for name in book.sheet_names:
            cells += sum(len(r) for r in book.get_sheet_by_name(name).to_python())
        book.close()
    seconds = time.perf_counter() - start
    own, children = _peak_mb()
    return {"seconds": seconds, "files": len(files), "cells": cells, "peak_mb": own, "worker_peak_mb": children}


def measure_validate(folder: Path, jobs: int) -> dict:
    import datetime as dt

    from crf.loader import load_study
    from crf.validation import validate

    study = load_study(STUDY)
    files = sorted(folder.glob("*.xlsx"))
    start = time.perf_counter()
    result = validate(study, [folder], jobs=jobs, today=dt.date(2026, 1, 1))
    seconds = time.perf_counter() - start
    own, children = _peak_mb()
    return {"seconds": seconds, "files": len(files), "findings": len(result.findings), "peak_mb": own, "worker_peak_mb": children,
            "stages": result.stages}


def _child(what: str, folder: Path, jobs: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--measure", what, "--folder", str(folder), "--jobs", str(jobs)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / ".cache")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--measure", choices=["calamine", "validate"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure == "calamine":
        print(json.dumps(measure_calamine(args.folder)))
        return
    if args.measure == "validate":
        print(json.dumps(measure_validate(args.folder, args.jobs)))
        return
    folder = generate(args.cache, args.files)
    base = _child("calamine", folder, 1)
    one = _child("validate", folder, 1)
    many = _child("validate", folder, args.jobs) if args.jobs > 1 else one
    n = base["files"]
    print(f"\n{n} workbooks, {base['cells']:,} cells read by calamine; stages: {', '.join(one['stages'])}; {one['findings']} findings")
    print(f"(a) python-calamine alone, 1 process : {base['seconds']:7.2f} s  {n / base['seconds']:6.1f} files/s  peak {base['peak_mb']:.0f} MB")
    print(f"(b) validate --jobs 1                : {one['seconds']:7.2f} s  {n / one['seconds']:6.1f} files/s  peak {one['peak_mb']:.0f} MB")
    print(f"(b) validate --jobs {args.jobs:<2}               : {many['seconds']:7.2f} s  {n / many['seconds']:6.1f} files/s  "
          f"peak {many['peak_mb']:.0f} MB parent, {many['worker_peak_mb']:.0f} MB largest worker")
    ratio = one["seconds"] / base["seconds"]
    print(f"ratio validate/calamine, 1 process: {ratio:.2f} (target <= 2)   "
          f"jobs {args.jobs} wall vs calamine 1 process: {many['seconds'] / base['seconds']:.2f} (target < 1)")
    peak = max(one["peak_mb"], many["peak_mb"], many["worker_peak_mb"])
    print(f"peak memory: {peak:.0f} MB (target < 300 MB)")


if __name__ == "__main__":
    main()
