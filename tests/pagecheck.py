"""Looks at printed pages as a reader would: words drawn over each other, pages left nearly empty.

Word boxes come from poppler's `pdftotext -bbox` (already needed by the tests, and fast enough to
look at every page of every PDF of a build). The margins are the stylesheet's, from crf.pdf_layout.
"""
from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from crf.pdf_layout import MARGIN_BOTTOM, MARGIN_TOP

PT_PER_MM = 72 / 25.4
# Two words overlap when their boxes share more than this (pt) both across and down: glyph boxes of
# neighbouring lines may touch, drawn-over text shares several points.
OVERLAP_TOLERANCE_PT = 1.0
# A page whose body (between the page header and footer) is filled less than this share of its
# height holds an orphan: one item or a signature pushed alone onto a page.
MIN_BODY_SHARE = 0.12


@dataclass(frozen=True)
class Word:
    text: str
    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: "Word") -> bool:
        across = min(self.x1, other.x1) - max(self.x0, other.x0)
        down = min(self.y1, other.y1) - max(self.y0, other.y0)
        return across > OVERLAP_TOLERANCE_PT and down > OVERLAP_TOLERANCE_PT


@dataclass(frozen=True)
class Page:
    number: int  # 1-based
    width: float
    height: float
    words: tuple[Word, ...]

    @property
    def body(self) -> tuple[Word, ...]:
        top, bottom = MARGIN_TOP * PT_PER_MM - 2, self.height - MARGIN_BOTTOM * PT_PER_MM + 2
        return tuple(w for w in self.words if w.y0 >= top and w.y1 <= bottom)

    @property
    def body_share(self) -> float:
        body = self.body
        if not body:
            return 0.0
        top, bottom = MARGIN_TOP * PT_PER_MM, self.height - MARGIN_BOTTOM * PT_PER_MM
        return (max(w.y1 for w in body) - top) / (bottom - top)


def read_pages(path: Path) -> list[Page]:
    out = subprocess.run(["pdftotext", "-bbox", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True).stdout
    root = ET.fromstring(out.decode("utf-8"))
    ns = {"h": "http://www.w3.org/1999/xhtml"}
    pages = []
    for number, page in enumerate(root.iter("{http://www.w3.org/1999/xhtml}page"), 1):
        words = tuple(Word(w.text or "", float(w.get("xMin")), float(w.get("yMin")), float(w.get("xMax")), float(w.get("yMax")))
                      for w in page.findall("h:word", ns))
        pages.append(Page(number, float(page.get("width")), float(page.get("height")), words))
    return pages


def overlapping_words(page: Page) -> list[tuple[Word, Word]]:
    words = sorted(page.words, key=lambda w: w.y0)
    found = []
    for i, a in enumerate(words):
        for b in words[i + 1:]:
            if b.y0 >= a.y1 - OVERLAP_TOLERANCE_PT:
                break
            if a.overlaps(b):
                found.append((a, b))
    return found


def page_problems(path: Path) -> list[str]:
    """Every problem a reader would see, as 'file p.N: ...' lines."""
    problems = []
    for page in read_pages(path):
        where = f"{path.name} p.{page.number}"
        for a, b in overlapping_words(page):
            problems.append(f"{where}: {a.text!r} drawn over {b.text!r} at ({a.x0:.0f}, {a.y0:.0f}) pt")
        share = page.body_share
        if share < MIN_BODY_SHARE:
            shown = " ".join(w.text for w in page.body)[:80]
            problems.append(f"{where}: only {share:.0%} of the page used ({shown!r})")
    return problems
