#!/usr/bin/env python3
"""Batches at the read floor (issue 13, item 2): `validate.py` on a folder against python-calamine, as whole processes.

    python bench/bench_validate.py [--files 200] [--rounds 3] [--jobs 2] [--cache bench/.cache]

The workbooks are full synthetic subjects (crf.synth + crf.xlsx), generated once and kept in the cache folder
(keyed by study hash and tool version; a cached set of more files is reused, its first N taken). Then, each a
fresh process, interleaved round by round (the machine is shared; medians are printed):
  (a) baseline: one Python process that imports python-calamine and reads every sheet of every file;
  (b) `validate.py FILES --jobs 1 --format json --output FILE` (all check stages, the report written);
  (c) the same with --jobs N.
Targets: (b)/(a) at most 1.15, (c)/(a) at most 0.65; peak memory of the largest process under 300 MB.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
STUDY = ROOT / "schemas" / "belimumab-nmosd"
TARGET_ONE, TARGET_MANY, TARGET_MB = 1.15, 0.65, 300.0
CALAMINE = ("import sys, python_calamine\n"
            "n = 0\n"
            "for path in sys.argv[1:]:\n"
            "    book = python_calamine.CalamineWorkbook.from_path(path)\n"
            "    n += sum(len(r) for s in book.sheet_names for r in book.get_sheet_by_name(s).to_python())\n"
            "    book.close()\n")
# runs a command and prints the peak RSS of its largest process (itself or a worker it waited for), in MB
MEASURED = ("import resource, subprocess, sys\n"
            "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n")


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


def generate(cache: Path, files: int) -> list[Path]:
    """The first `files` workbooks of the largest cached set (generated once when there is none large enough)."""
    from crf import __version__
    from crf.loader import load_study

    study = load_study(STUDY)
    suffix = f"{study.definition_hash[:12]}-{__version__}"
    for folder in sorted(cache.glob(f"validate-*-{suffix}"), key=lambda p: -int(p.name.split("-")[1])):
        found = sorted(folder.glob("*.xlsx"))
        if len(found) >= files:
            return found[:files]
    folder = cache / f"validate-{files}-{suffix}"
    folder.mkdir(parents=True, exist_ok=True)
    missing = [n for n in range(1, files + 1) if not (folder / f"{study.id}_01-{n:03d}.xlsx").exists()]
    if missing:
        print(f"generating {len(missing)} workbook(s) in {folder} (once) ...", flush=True)
        start = time.perf_counter()
        with mp.get_context("fork").Pool(os.cpu_count() or 1) as pool:
            for _ in pool.imap_unordered(_make, [(str(folder), n, str(STUDY)) for n in missing]):
                pass
        print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    return sorted(folder.glob("*.xlsx"))[:files]


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak MB of the largest process of `cmd`."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", MEASURED, *cmd], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    return time.perf_counter() - start, float(out.stdout.strip() or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / ".cache")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    files = [str(p) for p in generate(args.cache, args.files)]
    # as installed: bytecode written once and reused (see bench_one_file.py)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    runs: dict[str, list[tuple[float, float]]] = {"calamine": [], "one": [], "many": []}
    with tempfile.TemporaryDirectory() as tmp:
        env["OPEN_ECRF_CACHE_DIR"] = tmp
        validate = [sys.executable, str(ROOT / "validate.py"), *files, "--today", "2026-01-01", "--format", "json",
                    "--output", str(Path(tmp) / "report.json")]
        measure([*validate, "--jobs", "1"], env)  # fills the definition cache, warms the OS file cache
        with open(Path(tmp) / "report.json", encoding="utf-8") as fh:
            findings = len(json.load(fh).get("findings", []))
        for _ in range(args.rounds):
            runs["calamine"].append(measure([sys.executable, "-c", CALAMINE, *files], env))
            runs["one"].append(measure([*validate, "--jobs", "1"], env))
            runs["many"].append(measure([*validate, "--jobs", str(args.jobs)], env))
    wall = {k: statistics.median(t for t, _ in v) for k, v in runs.items()}
    peak = {k: max(m for _, m in v) for k, v in runs.items()}
    n = len(files)
    load = os.getloadavg()
    print(f"\n{n} workbooks, {findings} findings; {args.rounds} interleaved rounds, medians; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    print(f"(a) baseline, python-calamine reads every sheet, 1 process: {wall['calamine']:7.2f} s  {1000 * wall['calamine'] / n:6.1f} ms/file  "
          f"peak {peak['calamine']:.0f} MB")
    for key, label, target in (("one", "--jobs 1", TARGET_ONE), ("many", f"--jobs {args.jobs}", TARGET_MANY)):
        ratio = wall[key] / wall["calamine"]
        print(f"(b) validate.py {label:<9}                               : {wall[key]:7.2f} s  {1000 * wall[key] / n:6.1f} ms/file  "
              f"peak {peak[key]:.0f} MB  ratio to (a) {ratio:5.2f}  target <= {target}: {'met' if ratio <= target else 'NOT met'}")
    largest = max(peak.values())
    print(f"peak memory of the largest process: {largest:.0f} MB (target < {TARGET_MB:.0f} MB: {'met' if largest < TARGET_MB else 'NOT met'})")


if __name__ == "__main__":
    main()
