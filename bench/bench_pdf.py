#!/usr/bin/env python3
"""Benchmark: build every PDF of the shipped study, then render a plain-paragraph reference document
with as many pages, in the same process and run, and print seconds per page for both and their ratio.

    .venv/bin/python bench/bench_pdf.py [--study DIR] [--page-size A4|Letter] [--out DIR]

Pages counted are the pages of every PDF written (the CRF book repaints the visit and log pages, so
they count twice, as they cost twice); the reference is laid out and written once, like our PDFs.
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
from crf.pdf import build_pdfs, font_faces  # noqa: E402

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
    parser.add_argument("--jobs", type=int, default=None, help="worker processes for the build (default: usable cores)")
    args = parser.parse_args()
    jobs = args.jobs or len(os.sched_getaffinity(0))
    study = load_study(args.study)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        start = time.perf_counter()
        written = build_pdfs(study, out / "pdf", page_size=args.page_size, jobs=jobs)
        ours = time.perf_counter() - start
        pages = sum(len(PdfReader(p).pages) for p in written)
        ref_seconds, ref_pages = reference_seconds(pages, args.page_size, out / "reference.pdf")
    ours_pp, ref_pp = ours / pages, ref_seconds / ref_pages
    print(f"PDF files             {len(written)}")
    print(f"pages                 {pages} (reference {ref_pages})")
    print(f"CRF build             {ours:.1f} s, {ours_pp:.4f} s/page ({jobs} process{'es' if jobs > 1 else ''}; the book's pages are copied, not drawn again)")
    print(f"reference paragraphs  {ref_seconds:.1f} s, {ref_pp:.4f} s/page (1 process)")
    print(f"ratio                 {ours_pp / ref_pp:.2f} (target <= 2)")
    print(f"whole PDF build       {ours:.1f} s (target < 30 s)")


if __name__ == "__main__":
    main()
