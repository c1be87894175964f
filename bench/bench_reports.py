#!/usr/bin/env python3
"""Report writers: milliseconds per finding from 1k to 1M findings, every format (issue 13, item 4).

    python bench/bench_reports.py [--sizes 1000,10000,100000] [--formats text,json,csv,html,xlsx] [--spill]

Each (size, format) runs in a fresh process: the findings are made (from the hand-written ones of
tests/report_reference.py, over size/10 subjects of the mini study), then the report is streamed to a file.
Printed: ms per finding, peak RSS of the process, and the baseline measured in the same process on the same
findings: writing each finding's message as one line of text (the floor of touching every finding once).
With --spill the findings are first put in a SpilledFindings (crf/spill.py), as a run past 20,000 findings
keeps them: the peak RSS is then that of the writer reading them from disk (item 3: under 150 MB at 128k).
Target: every format at most 0.1 ms per finding at every size (linear: flat ms per finding).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 0.1


def spilled(study: object, size: int) -> object:
    """many_findings(study, size), made ten findings at a time into a spill file as a run would add them."""
    import dataclasses

    from crf.spill import SpilledFindings
    from crf.validation import ValidationResult, reading_order
    from tests.report_reference import _findings, many_findings

    spill = SpilledFindings(reading_order(study))
    base = [f for f in _findings() if f.subject]
    shape = many_findings(study, 10)
    subjects, files = [], []
    for s in range(max(1, size // 10)):
        subject = f"{1 + s // 1000:02d}-{s % 1000:03d}"
        name = f"returned/MINI_{subject}.xlsx"
        spill.add([dataclasses.replace(base[i % len(base)], subject=subject, site=subject[:2], file=name, extra_key=str(i)) for i in range(10)])
        summary = dataclasses.replace(shape.subjects[0], site=subject[:2], subject=subject, file=name)
        subjects.append(summary)
        files.append(dataclasses.replace(shape.files[0], file=name, findings=[], spilled=10, subject=summary))
    return ValidationResult(study, files, spill.finish(), subjects, ["fields", "rules"], generated=shape.generated)


def one(size: int, fmt: str, spill: bool = False) -> dict:
    sys.path.insert(0, str(ROOT))
    from crf.loader import load_study
    from crf.reports import write_report
    from tests.report_reference import many_findings

    study = load_study(ROOT / "tests" / "fixtures" / "mini-study")
    result: Any = spilled(study, size) if spill else many_findings(study, size)
    made_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        with open(Path(tmp) / "floor.txt", "wb") as out:
            for f in result.findings:
                out.write((f.message + "\n").encode("utf-8"))
        floor = time.perf_counter() - start
        path = Path(tmp) / f"report.{fmt}"
        start = time.perf_counter()
        with open(path, "wb") as out:
            write_report(result, fmt, out, path=path)
        took = time.perf_counter() - start
        size_bytes = path.stat().st_size
    return {"n": len(result.findings), "s": took, "floor": floor, "bytes": size_bytes,
            "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "made_rss": made_rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--formats", default="text,json,csv,html,xlsx")
    parser.add_argument("--spill", action="store_true", help="findings read from a spill file, as a run past 20,000 keeps them")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        size, fmt = args.one.split(":")
        print(json.dumps(one(int(size), fmt, args.spill)))
        return
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores; target <= {TARGET_MS} ms per finding"
          + ("; findings spilled to disk" if args.spill else ""))
    print(f"{'findings':>9} {'format':>6} {'ms/finding':>10} {'baseline':>9} {'ratio':>6} {'peak RSS':>9} {'(made)':>7} {'MB out':>7}  target")
    for size in (int(s) for s in args.sizes.split(",")):
        for fmt in args.formats.split(","):
            run = subprocess.run([sys.executable, __file__, "--one", f"{size}:{fmt}"] + (["--spill"] if args.spill else []),
                                 capture_output=True, text=True, cwd=ROOT)
            if run.returncode != 0:
                print(f"{size:>9} {fmt:>6} failed: {run.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(run.stdout)
            ms, base = 1000 * r["s"] / r["n"], 1000 * r["floor"] / r["n"]
            print(f"{r['n']:>9} {fmt:>6} {ms:>10.4f} {base:>9.4f} {ms / base:>6.1f} {r['rss']:>7.0f}MB {r['made_rss']:>5.0f}MB "
                  f"{r['bytes'] / 1e6:>7.1f}  {'met' if ms <= TARGET_MS else 'NOT met'}", flush=True)


if __name__ == "__main__":
    main()
