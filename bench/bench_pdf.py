#!/usr/bin/env python3
"""Benchmark (issue 13, item 5): every PDF of the shipped study against a plain WeasyPrint document.

    .venv/bin/python bench/bench_pdf.py [--study DIR] [--page-size A4|Letter] [--out DIR] [--jobs 2]

Measured in the same run: (a) the whole build in one process, per page actually laid out (the visit and
log PDFs, the book's front matter and the annotated CRF; the book's copies of the visit and log pages are
not laid out again, so they are not counted); (b) a document of plain paragraphs with as many pages, laid
out and written in the same process: the renderer's floor; (c) the whole build with --jobs processes.
Targets: (a)/(b) at most 1.1; (c) under 20 s.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pypdf import PdfReader  # noqa: E402
from weasyprint import CSS, HTML  # noqa: E402
from weasyprint.text.fonts import FontConfiguration  # noqa: E402

from crf.loader import load_study  # noqa: E402
from crf.pdf import ACRF_NAME, BOOK_NAME, build_pdfs, font_faces  # noqa: E402

PARAGRAPH = ("Paragraph {n}. The investigator records each assessment on the form of the visit at which it was "
             "done, checks the entries against the source documents, and signs the visit when it is complete. ")


def reference_seconds(pages: int, page_size: str, out: Path) -> tuple[float, int]:
    """Render plain paragraphs until the document has `pages` pages; time the final render and write."""
    fonts = FontConfiguration()
    faces = "".join(f'@font-face {{ font-family: "DejaVu Sans"; src: url("{f["url"]}"); font-weight: {f["weight"]}; font-style: {f["style"]}; }}' for f in font_faces())
    css = CSS(string=faces + f'@page {{ size: {page_size}; margin: 20mm }} html {{ font-family: "DejaVu Sans"; font-size: 9pt }}', font_config=fonts)
    per_page = 12
    for _ in range(6):  # calibrate paragraphs per page on a small sample, untimed
        sample = HTML(string="".join(f"<p>{PARAGRAPH.format(n=n)}</p>" for n in range(per_page * 20))).render(stylesheets=[css], font_config=fonts)
        per_page = max(1, round(per_page * 20 / len(sample.pages)))
        if len(sample.pages) == 20:
            break
    count = per_page * pages
    for _ in range(4):
        html = "".join(f"<p>{PARAGRAPH.format(n=n)}</p>" for n in range(count))
        start = time.perf_counter()
        document = HTML(string=html).render(stylesheets=[css], font_config=fonts)
        if len(document.pages) == pages:
            document.write_pdf(out)
            return time.perf_counter() - start, pages
        count = round(count * pages / len(document.pages))
    document.write_pdf(out)
    return time.perf_counter() - start, len(document.pages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", type=Path, default=ROOT / "schemas" / "belimumab-nmosd")
    parser.add_argument("--page-size", choices=("A4", "Letter"), default="A4")
    parser.add_argument("--out", type=Path, help="where to write the PDFs (default: a temporary folder)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for the timed whole build (default 2)")
    args = parser.parse_args()
    study = load_study(args.study)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        start = time.perf_counter()
        written = build_pdfs(study, out / "pdf", page_size=args.page_size, jobs=1)
        one_process = time.perf_counter() - start
        pages = {p.name: len(PdfReader(p).pages) for p in written}
        copied = sum(n for name, n in pages.items() if name not in (BOOK_NAME, ACRF_NAME))
        laid_out = sum(pages.values()) - copied  # the book holds the visit and log pages again, copied
        ref_seconds, ref_pages = reference_seconds(laid_out, args.page_size, out / "reference.pdf")
        start = time.perf_counter()
        build_pdfs(study, out / "pdf-jobs", page_size=args.page_size, jobs=args.jobs)
        with_jobs = time.perf_counter() - start
    ours_pp, ref_pp = one_process / laid_out, ref_seconds / ref_pages
    print(f"PDF files             {len(written)}, {sum(pages.values())} pages, {laid_out} laid out ({copied} copied into the book)")
    print(f"CRF build, 1 process  {one_process:.1f} s, {ours_pp:.4f} s per page laid out")
    print(f"reference paragraphs  {ref_seconds:.1f} s, {ref_pp:.4f} s per page ({ref_pages} pages, 1 process)")
    print(f"ratio                 {ours_pp / ref_pp:.2f} (target <= 1.1: {'met' if ours_pp / ref_pp <= 1.1 else 'NOT met'})")
    print(f"whole build, {args.jobs} jobs    {with_jobs:.1f} s (target < 20 s: {'met' if with_jobs < 20 else 'NOT met'})")


if __name__ == "__main__":
    main()
