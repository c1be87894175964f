"""Benchmark: build the 14 subject workbooks of site 01 of the shipped study and report the time per workbook.

    .venv/bin/python bench/bench_xlsx.py [--subjects 14] [--profile]

Budget: under 1 s per workbook. With --profile, prints where the time goes (phases of one build).
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crf import xlsx  # noqa: E402
from crf import ooxml_zip  # noqa: E402
from crf.xlsx import ooxml  # noqa: E402
from crf.loader import load_study  # noqa: E402

BUDGET_S = 1.0


def phases(study) -> dict[str, float]:
    """Time the steps of one build (same code path as xlsx.workbook_bytes)."""
    b = xlsx.Builder(study, "01", "01-001", None)
    t: dict[str, float] = {}
    clock = time.perf_counter
    start = clock()
    wb = b.wb
    ins = wb.active
    ins.title = xlsx.INSTRUCTIONS
    cal = wb.create_sheet(xlsx.CALENDAR)
    for v in study.visits:
        for key in v.workbook_keys:
            b.visit_sheet(v, key)
    t["visit sheets (cells, styles)"] = clock() - start
    mark = clock()
    for lg in study.logs:
        b.log_sheet(lg)
    t["log sheets"] = clock() - mark
    mark = clock()
    b.calendar(cal)
    b.instructions(ins)
    if b.lists:
        b.lists_sheet()
    b.meta_sheet()
    t["calendar, instructions, _lists, _meta"] = clock() - mark
    mark = clock()
    b.apply_rules()
    t["data validations + conditional formats"] = clock() - mark
    mark = clock()
    rewrite = {}
    for index, ws in enumerate(wb.worksheets, start=1):
        if ws.title in b.fast_sheets:
            rewrite[f"xl/worksheets/sheet{index}.xml"] = ooxml.detach_sheet_data(ws)
    t["serialise visit/log cells"] = clock() - mark
    mark = clock()
    buf = io.BytesIO()
    wb.save(buf)
    t["openpyxl save (styles, validations, rest)"] = clock() - mark
    mark = clock()
    ooxml_zip.rewrite_package(buf.getvalue(), rewrite)
    t["zip rewrite (fixed timestamps, _meta, names)"] = clock() - mark
    return t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--subjects", type=int, default=14)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    study = load_study(ROOT / "schemas" / "belimumab-nmosd")
    load_s = time.perf_counter() - t0
    subjects = tuple(f"01-{i:03d}" for i in range(1, args.subjects + 1))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        paths = xlsx.build_workbooks(study, Path(tmp), site="01", subjects=subjects)
        total = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in paths) / len(paths)
    per = total / len(paths)
    inputs = sum(1 for _ in __import__("crf.fieldmap", fromlist=["iter_fields"]).iter_fields(study))
    print(f"study loaded in {load_s:.2f} s; {inputs} inputs per workbook")
    print(f"{len(paths)} workbooks in {total:.2f} s: {per:.3f} s per workbook ({size / 1024:.0f} KiB each); budget {BUDGET_S:.1f} s")
    if args.profile:
        for name, secs in phases(study).items():
            print(f"  {name:45s} {secs:6.3f} s")
    return 0 if per < BUDGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
