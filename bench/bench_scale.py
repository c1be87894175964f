#!/usr/bin/env python3
"""At scale (issue 13, item 6): 10,000 synthetic subjects validated on this machine's cores, as whole processes.

    python bench/bench_scale.py [--subjects 10000] [--sites 20] [--jobs 2] [--cache bench/.cache]

The workbooks are generated once (crf.synth full subjects, one in five with a planted problem so that reports
are not empty; sites 01..NN) and kept in the cache folder, keyed by study hash and tool version. Then, each a
fresh process, in the same run:
  (a) baseline: python-calamine reading every sheet of every file, with the same number of processes;
  (b) validate.py FOLDER --jobs N --format json --output FILE (all check stages, the report written).
Printed: wall time, files per second, peak RSS of the largest process (the parent or a worker), seconds per
file, the ratio (b)/(a), and the targets: under 10 minutes and under 300 MB for 10,000 subjects.
docs/scale.md takes its arithmetic (100,000 subjects over several machines) from the per-file cost printed here.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
STUDY = ROOT / "schemas" / "belimumab-nmosd"
TARGET_S, TARGET_MB = 600.0, 300.0
_STUDY: dict = {}


def _make(task: tuple[str, int, int]) -> None:
    folder, n, sites = task
    from crf.loader import load_study
    from crf.synth import PLANTS, PlantNotApplicable, clean_subject, plant
    from crf.xlsx import workbook_bytes

    study = _STUDY.get("s") or load_study(STUDY)
    _STUDY["s"] = study
    site = f"{1 + n % sites:02d}"
    subject = f"{site}-{n // sites + 1:04d}"
    path = Path(folder) / f"site-{site}" / f"{study.id}_{subject}.xlsx"
    if path.exists():
        return
    record = clean_subject(study, site, subject, seed=n, day0=None)
    if n % 5 == 0:
        rng = random.Random(n)
        for kind in rng.sample(sorted(PLANTS), 3):
            try:
                plant(study, record, kind, rng)
                break
            except PlantNotApplicable:
                continue
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(workbook_bytes(study, site, subject, record))
    tmp.rename(path)


def generate(cache: Path, subjects: int, sites: int, jobs: int) -> Path:
    from crf import __version__
    from crf.loader import load_study

    study = load_study(STUDY)
    folder = cache / f"scale-{subjects}-{sites}-{study.definition_hash[:12]}-{__version__}"
    have = sum(1 for _ in folder.rglob("*.xlsx")) if folder.exists() else 0
    if have < subjects:
        print(f"generating {subjects - have} workbook(s) in {folder} (once) ...", flush=True)
        start = time.perf_counter()
        with mp.get_context("fork").Pool(jobs) as pool:
            for _ in pool.imap_unordered(_make, [(str(folder), n, sites) for n in range(subjects)], chunksize=8):
                pass
        print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    return folder


def _read_all(path: str) -> int:
    import python_calamine

    book = python_calamine.CalamineWorkbook.from_path(path)
    cells = sum(len(r) for name in book.sheet_names for r in book.get_sheet_by_name(name).to_python())
    book.close()
    return cells


def calamine(folder: Path, jobs: int) -> None:
    files = sorted(str(p) for p in folder.rglob("*.xlsx"))
    with mp.get_context("fork").Pool(jobs) as pool:
        cells = sum(pool.imap_unordered(_read_all, files, chunksize=8))
    print(json.dumps({"cells": cells}))


def measure(cmd: list[str]) -> dict:
    """Wall time and the peak RSS of the largest process of one command (itself or a worker it waited for)."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return {"wall": wall, "out": done.stdout, "err": done.stderr}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=10000)
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / ".cache")
    parser.add_argument("--calamine", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.calamine:
        calamine(args.calamine, args.jobs)
        return
    folder = generate(args.cache, args.subjects, args.sites, args.jobs)
    n = sum(1 for _ in folder.rglob("*.xlsx"))
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        run = measure([sys.executable, str(ROOT / "validate.py"), str(folder), "--jobs", str(args.jobs), "--today", "2026-01-01",
                       "--format", "json", "--output", str(report), "--no-progress"])
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # first: the largest process of validate.py
        base = measure([sys.executable, __file__, "--calamine", str(folder), "--jobs", str(args.jobs)])
        base_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the larger of both runs
        findings = json.loads(report.read_text(encoding="utf-8"))["summary"]["by_severity"]
    load = os.getloadavg()
    total = sum(findings.values())
    print(f"\n{n} workbooks ({args.sites} sites) in {folder.name}; {args.jobs} processes; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"on {os.cpu_count()} cores; {total:,} findings")
    print(f"(a) baseline, python-calamine reads every sheet : {base['wall']:8.1f} s  {n / base['wall']:6.1f} files/s  "
          f"{base['wall'] / n * 1000:6.1f} ms/file  peak {max(base_rss, rss):.0f} MB or less")
    print(f"(b) validate.py --jobs {args.jobs} --format json     : {run['wall']:8.1f} s  {n / run['wall']:6.1f} files/s  "
          f"{run['wall'] / n * 1000:6.1f} ms/file  peak {rss:.0f} MB (largest process)  ratio to (a) {run['wall'] / base['wall']:.2f}")
    scaled = run["wall"] / n * 10000
    print(f"for 10,000 subjects: {scaled / 60:.1f} min (target < {TARGET_S / 60:.0f} min: {'met' if scaled < TARGET_S else 'NOT met'}); "
          f"peak {rss:.0f} MB (target < {TARGET_MB:.0f} MB: {'met' if rss < TARGET_MB else 'NOT met'})")


if __name__ == "__main__":
    main()
