"""Printable PDF CRFs: one PDF per visit and per log, the blank CRF book, and the annotated CRF.

Jinja2 templates in `templates/` give HTML; WeasyPrint lays it out. Speed comes from laying out each
page once: the stylesheet is parsed once and shared with one FontConfiguration, the CRF book is made
of the visit and log pages already laid out (`Document.copy`), and the annotated CRF shows each
distinct form once, as sponsors submit it. Output is byte-for-byte reproducible: fixed PDF
identifiers, and dates only from SOURCE_DATE_EPOCH.
"""
from __future__ import annotations

import base64
import hashlib
import io
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import jinja2
import pikepdf
from weasyprint import CSS, HTML
from weasyprint.document import Document
from weasyprint.text.fonts import FontConfiguration

from . import __version__
from .fieldmap import defined_name
from .model import Study, Visit
from .pdf_layout import (
    LOG_BAND_MM, LOG_HEADER_BAND_MM, LOG_ROW_NUMBER_MM, MARGIN_BOTTOM, MARGIN_SIDE, MARGIN_TOP, PAGE_SIZES,
    FormView, LogView, PageGeometry, PdfBuildError, TocEntry, domain_colours, form_view, log_view,
    paginate, schedule_matrix, unique_instances, visit_caption,
)

__all__ = ["build_pdfs", "PdfBuildError", "PdfBuilder"]

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")  # Debian's fonts-dejavu-core
FONT_FILES = (
    ("DejaVuSans.ttf", "normal", "normal"),
    ("DejaVuSans-Bold.ttf", "bold", "normal"),
    ("DejaVuSans-Oblique.ttf", "normal", "italic"),
    ("DejaVuSans-BoldOblique.ttf", "bold", "italic"),
)
PDFA_VARIANT = "pdf/a-2b"
BOOK_NAME = "crf-book.pdf"
ACRF_NAME = "acrf.pdf"

# A bookmark: (title, target, children, state), as WeasyPrint's make_bookmark_tree gives them.
OutlineEntry = tuple[str, Any, list[Any], str]


def build_pdfs(study: Study, out_dir: Path, page_size: str = "A4", pdfa: bool = False, jobs: Optional[int] = None) -> list[Path]:
    """Write every visit and log PDF, the CRF book and acrf.pdf into out_dir; return their paths.

    `jobs` worker processes (default: the usable cores) lay out the parts; each worker parses the
    stylesheet once. The output does not depend on `jobs`.
    """
    return PdfBuilder(study, page_size=page_size).build(Path(out_dir), pdfa=pdfa, jobs=jobs)


@dataclass(frozen=True)
class Part:
    """A visit or log PDF as written: what the book's contents and outline need from it."""

    kind: str  # visit or log
    key: str  # visit id or log id
    name: str
    pages: int
    anchor_pages: dict[str, int]  # form anchor -> 0-based page in this part


_WORKER: Optional["PdfBuilder"] = None


def _worker_init(study: Study, page_size: str) -> None:
    global _WORKER
    _WORKER = PdfBuilder(study, page_size=page_size)


def _worker_run(task: tuple[str, str, str]) -> Optional[Part]:
    assert _WORKER is not None
    return _WORKER.run_task(task)


def source_date() -> Optional[str]:
    """The document date from SOURCE_DATE_EPOCH (reproducible builds), else none at all."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return None
    try:
        moment = datetime.fromtimestamp(int(epoch), tz=timezone.utc)
    except ValueError as exc:
        raise PdfBuildError(f"SOURCE_DATE_EPOCH={epoch!r} is not a whole number of seconds") from exc
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def font_faces() -> list[dict[str, str]]:
    faces = []
    for name, weight, style in FONT_FILES:
        path = FONT_DIR / name
        if not path.is_file():
            raise PdfBuildError(f"font {path} is missing: install the Debian package fonts-dejavu-core (scripts/install-system-deps.sh)")
        faces.append({"family": "DejaVu Sans", "url": path.as_uri(), "weight": weight, "style": style})
    return faces


DIGIT_BOX_MM = {"form": (4.1, 5.2), "log": (3.5, 4.6)}  # width of one digit box, height


def box_dividers() -> dict[str, dict[int, str]]:
    """Divider lines of n digit boxes as one small SVG background per (size, n).

    One image per box is drawn with a single operator and shared by every box of that size; a
    repeated CSS gradient drew one shading per digit and made the forms 15% slower to build.
    """
    out: dict[str, dict[int, str]] = {}
    for kind, (width, height) in DIGIT_BOX_MM.items():
        out[kind] = {}
        for n in range(2, 13):
            path = "".join(f"M{k * width:.2f} 0V{height}" for k in range(1, n))
            svg = (f"<svg xmlns='http://www.w3.org/2000/svg' width='{n * width:.2f}mm' height='{height}mm' "
                   f"viewBox='0 0 {n * width:.2f} {height}'><path d='{path}' stroke='#000' stroke-width='0.25'/></svg>")
            out[kind][n] = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    return out


@dataclass
class Rendered:
    """A laid-out document and where it will be written."""

    name: str
    document: Document


class PdfBuilder:
    """Renders the PDFs of one study with one parsed stylesheet and one font configuration."""

    def __init__(self, study: Study, page_size: str = "A4"):
        if page_size not in PAGE_SIZES:
            raise PdfBuildError(f"page size {page_size!r} is not one of {', '.join(PAGE_SIZES)}")
        self.study = study
        self.page_size = page_size
        self.page: PageGeometry = PAGE_SIZES[page_size]
        self.colours = domain_colours(study)
        self.date = source_date()
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=jinja2.StrictUndefined,
            trim_blocks=True, lstrip_blocks=True,
        )
        self.env.globals["defined_name"] = defined_name  # fillable PDFs name their fields as the workbook names its cells
        self.font_config = FontConfiguration()
        css_text = self.env.get_template("crf.css.j2").render(
            fonts=font_faces(), page=self.page, margin_top=MARGIN_TOP, margin_bottom=MARGIN_BOTTOM,
            margin_side=MARGIN_SIDE, log_row_number_mm=LOG_ROW_NUMBER_MM, log_band_mm=LOG_BAND_MM,
            log_header_band_mm=LOG_HEADER_BAND_MM, box_dividers=box_dividers(),
        )
        self.css = CSS(string=css_text, font_config=self.font_config)
        # Views first: anything the forms cannot show fails here, before a file is written.
        self.visit_views = {v.id: self._visit_forms(v) for v in study.visits}
        self.log_views = {lg.id: log_view(f"log-{lg.id}", lg, self.page, self.colours) for lg in study.logs}

    # -- views ---------------------------------------------------------------------------------
    def _visit_forms(self, visit: Visit) -> list[FormView]:
        return paginate([form_view(f"{visit.id}-{inst.name}", inst, self.colours) for inst in visit.forms])

    def _context(self, doc_title: str, **extra: Any) -> dict[str, Any]:
        footer = f"{self.study.id} · protocol {self.study.protocol_version} · CRF version {self.study.form_version}"
        return {"study": self.study, "doc_title": doc_title, "date": self.date, "footer": footer,
                "generator": f"open-ecrf {__version__}", **extra}

    def _render(self, template: str, context: dict[str, Any]) -> Document:
        html = self.env.get_template(template).render(**context)
        return HTML(string=html, base_url=str(TEMPLATES)).render(stylesheets=[self.css], font_config=self.font_config)

    # -- documents -----------------------------------------------------------------------------
    def render_visit(self, visit: Visit) -> Document:
        title = f"{self.study.id} {visit.id} {visit.label}: case report form"
        return self._render("visit.html.j2", self._context(title, visit=visit, caption=visit_caption(visit), forms=self.visit_views[visit.id]))

    def render_log(self, log_id: str) -> Document:
        view = self.log_views[log_id]
        title = f"{self.study.id} log {view.log.id} {view.log.label}: case report form"
        return self._render("log.html.j2", self._context(title, log_view=view))

    def render_front(self, heading: str, toc: list[TocEntry], notes: Sequence[str] = (), link_toc: bool = True) -> Document:
        return self._render("front.html.j2", self._context(
            f"{self.study.id} {heading}", heading=heading,
            **self._front_context(toc, notes, link_toc)))

    def _front_context(self, toc: list[TocEntry], notes: Sequence[str], link_toc: bool, toc_counter: bool = False) -> dict[str, Any]:
        return {"toc": toc, "schedule": schedule_matrix(self.study), "assumptions": self.study.assumptions, "notes": list(notes),
                "link_toc": link_toc, "toc_counter": toc_counter, "page_label": f"{self.page_size} (logs landscape)"}

    def _front_with_pages(self, heading: str, toc_for: Callable[[int], list[TocEntry]], notes: Sequence[str] = (),
                          link_toc: bool = True, guess: int = 3) -> Document:
        """Render the front matter; page numbers in its contents depend on its own length, so settle that."""
        front_pages = guess
        for _ in range(4):
            front = self.render_front(heading, toc_for(front_pages), notes, link_toc)
            if len(front.pages) == front_pages:
                return front
            front_pages = len(front.pages)
        return front

    # -- build ---------------------------------------------------------------------------------
    def build(self, out_dir: Path, pdfa: bool = False, jobs: Optional[int] = None) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        if pdfa:
            return self._build_archival(out_dir)
        # The annotated CRF is the longest task: start it first so both workers stay busy.
        tasks = [("acrf", "", str(out_dir))]
        tasks += [("visit", v.id, str(out_dir)) for v in self.study.visits]
        tasks += [("log", lg.id, str(out_dir)) for lg in self.study.logs]
        jobs = jobs or len(os.sched_getaffinity(0))
        if jobs > 1:
            # fork: the workers inherit the loaded study instead of pickling it
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_init,
                                     initargs=(self.study, self.page_size)) as pool:
                results = list(pool.map(_worker_run, tasks))
        else:
            results = [self.run_task(t) for t in tasks]
        parts = [r for r in results if r is not None]
        written = [out_dir / p.name for p in parts]
        written.append(self._merge_book(parts, out_dir))
        written.append(out_dir / ACRF_NAME)
        return written

    def run_task(self, task: tuple[str, str, str]) -> Optional[Part]:
        kind, key, out = task
        out_dir = Path(out)
        if kind == "acrf":
            self._write_acrf(out_dir / ACRF_NAME)
            return None
        if kind == "visit":
            visit = self.study.visit(key)
            document = self.render_visit(visit)
            anchors = {view.anchor: _anchor_page(document, view.anchor) for view in self.visit_views[key]}
            name = f"visit-{key}.pdf"
        else:
            document = self.render_log(key)
            anchors = {}
            name = f"log-{key}.pdf"
        self._write(document, out_dir / name)
        return Part(kind, key, name, len(document.pages), anchors)

    def _merge_book(self, parts: list[Part], out_dir: Path) -> Path:
        """The CRF book: front matter, then the visit and log PDFs already written, page for page.

        Copying the drawn pages (pikepdf/qpdf, about 1 s) instead of drawing them again in
        WeasyPrint (about 20 s) is most of the build's speed. The outline is made here: the
        front matter's own, then visit -> form, then the logs.
        """
        def toc_for(front_pages: int) -> list[TocEntry]:
            entries = []
            start = front_pages + 1
            for part in parts:
                if part.kind == "visit":
                    visit = self.study.visit(part.key)
                    entry = TocEntry(f"{visit.id} {visit.label}", "", start)
                    for view in self.visit_views[visit.id]:
                        entry.children.append(TocEntry(f"{view.name}: {view.title}", "", start + part.anchor_pages[view.anchor], 2))
                else:
                    log = self.study.log(part.key)
                    entry = TocEntry(f"Log {log.id}: {log.label}", "", start)
                entries.append(entry)
                start += part.pages
            return entries

        # 7 pages for the shipped study; a wrong guess costs one more layout, never a wrong number
        front = self._front_with_pages("Blank CRF book", toc_for, link_toc=False, guess=7)
        buffer = io.BytesIO()
        self._write(front, buffer, name=BOOK_NAME)
        book = pikepdf.open(io.BytesIO(buffer.getvalue()))
        entries = toc_for(len(book.pages))
        for part in parts:
            with pikepdf.open(out_dir / part.name) as source:
                book.pages.extend(source.pages)
        with book.open_outline() as outline:
            for entry in entries:
                item = pikepdf.OutlineItem(entry.label, entry.page - 1)
                item.children.extend(pikepdf.OutlineItem(c.label, c.page - 1) for c in entry.children)
                outline.root.append(item)
        book.docinfo["/Title"] = f"{self.study.id} blank CRF book, CRF version {self.study.form_version}"
        book.Root.PageMode = pikepdf.Name.UseOutlines
        path = out_dir / BOOK_NAME
        book.save(path, deterministic_id=True, compress_streams=True)
        return path

    def _build_archival(self, out_dir: Path) -> list[Path]:
        """PDF/A-2b book: drawn as one WeasyPrint document (copying pages with pypdf would lose PDF/A)."""
        written: list[Path] = []
        visits = [Rendered(f"visit-{v.id}.pdf", self.render_visit(v)) for v in self.study.visits]
        logs = [Rendered(f"log-{lg.id}.pdf", self.render_log(lg.id)) for lg in self.study.logs]
        for item in (*visits, *logs):
            written.append(self._write(item.document, out_dir / item.name))
        written.append(self._write_book(visits, logs, out_dir / BOOK_NAME, pdfa=True))
        written.append(self._write_acrf(out_dir / ACRF_NAME))
        return written

    def _write(self, document: Document, path: Any, pdfa: bool = False,
               finisher: Optional[Callable[[Any, Any], None]] = None, name: Optional[str] = None) -> Any:
        # A fixed file identifier (PDF otherwise allows a random one): from the inputs, not the time.
        seed = f"{self.study.definition_hash}|{name or path.name}|{self.page_size}|{pdfa}|{__version__}"
        options: dict[str, Any] = {"pdf_identifier": hashlib.md5(seed.encode()).hexdigest().encode()}
        if pdfa:
            options["pdf_variant"] = PDFA_VARIANT
        document.write_pdf(path, finisher=finisher, **options)
        return path

    def _write_book(self, visits: list[Rendered], logs: list[Rendered], path: Path, pdfa: bool) -> Path:
        def toc_for(front_pages: int) -> list[TocEntry]:
            entries = []
            start = front_pages + 1
            for visit, rendered in zip(self.study.visits, visits):
                entry = TocEntry(f"{visit.id} {visit.label}", f"{visit.id}-{visit.forms[0].name}" if visit.forms else "", start)
                for view in self.visit_views[visit.id]:
                    entry.children.append(TocEntry(f"{view.name}: {view.title}", view.anchor, start + _anchor_page(rendered.document, view.anchor), 2))
                entries.append(entry)
                start += len(rendered.document.pages)
            for log, rendered in zip(self.study.logs, logs):
                entries.append(TocEntry(f"Log {log.id}: {log.label}", f"log-{log.id}", start))
                start += len(rendered.document.pages)
            return entries

        front = self._front_with_pages("Blank CRF book", toc_for)
        pages = [p for doc in (front, *(r.document for r in visits), *(r.document for r in logs)) for p in doc.pages]
        book = front.copy(pages)
        book.metadata.title = f"{self.study.id} blank CRF book, CRF version {self.study.form_version}"
        return self._write(book, path, pdfa=pdfa)

    def _write_acrf(self, path: Path) -> Path:
        uniques = unique_instances(self.study)
        forms = paginate([form_view(f"acrf-{n}", inst, self.colours, visits) for n, (inst, visits) in enumerate(uniques, 1)])
        logs = []
        for lg in self.study.logs:
            view = self.log_views[lg.id]
            first = view.pages[0]
            # One annotated sample page per log is enough: every row is the same form.
            logs.append(replace(view, anchor=f"acrf-log-{lg.id}", pages=(replace(first, rows=first.rows[:2]),)))
        entries = [TocEntry(f"{f.name}: {f.title} ({f.label})", f.anchor) for f in forms]
        entries += [TocEntry(f"Log {v.log.id}: {v.log.label}", v.anchor) for v in logs]
        toc = [TocEntry("Forms", forms[0].anchor if forms else "", 0, 1, entries)]
        notes = ["Each distinct form is annotated once; bookmarks list the forms by visit and by form.",
                 "Annotations give the SDTM variable (with its test code where several tests share it); "
                 "supplemental qualifiers read QVAL where QNAM = ... in SUPP--; [NOT SUBMITTED] marks items collected but not submitted."]
        acrf = self._render("acrf.html.j2", self._context(
            f"{self.study.id} annotated CRF", heading="Annotated CRF", forms=forms, logs=logs,
            **self._front_context(toc, notes, link_toc=True, toc_counter=True)))
        acrf.metadata.title = f"{self.study.id} annotated CRF (SDTM), CRF version {self.study.form_version}"
        outline = _AcrfOutline(self.study, forms, logs)
        original_tree = acrf.make_bookmark_tree
        # The outline groups the same pages twice (by visit and by form), which CSS bookmarks cannot express.
        acrf.make_bookmark_tree = lambda scale=1, transform_pages=False: outline.regroup(original_tree(scale, transform_pages))
        return self._write(acrf, path)


def _anchor_page(document: Document, anchor: str) -> int:
    """0-based page index of an anchor (an element id) in a laid-out document."""
    for index, page in enumerate(document.pages):
        if anchor in page.anchors:
            return index
    raise PdfBuildError(f"internal: anchor {anchor!r} not found in the rendered pages")


Bookmark = tuple  # (label, target, children, state), as WeasyPrint's make_bookmark_tree returns


class _AcrfOutline:
    """Bookmarks of the annotated CRF: front matter, then forms by visit, by form, and the logs."""

    def __init__(self, study: Study, forms: list[FormView], logs: list[LogView]):
        self.study = study
        self.forms = forms
        self.logs = logs

    def regroup(self, tree: list[Bookmark]) -> list[Bookmark]:
        targets: dict[str, Any] = {}
        front: list[Bookmark] = []

        def walk(nodes: list[Bookmark]) -> None:
            for label, target, children, _state in nodes:
                if label.startswith("acrf-"):
                    targets.setdefault(label, target)
                else:
                    front.append((label, target, [], "closed"))
                walk(children)

        walk(tree)
        by_form: list[OutlineEntry] = [(f"{f.name}: {f.title} ({f.label})", targets[f.anchor], [], "closed") for f in self.forms]
        by_visit: list[OutlineEntry] = []
        for visit in self.study.visits:
            children: list[OutlineEntry] = []
            for inst in visit.forms:
                view = next(f for f in self.forms if visit.id in f.visits and f.name == inst.name and f.form.id == inst.form.id)
                children.append((f"{inst.name}: {inst.title}", targets[view.anchor], [], "closed"))
            if children:
                by_visit.append((f"{visit.id} {visit.label}", children[0][1], children, "closed"))
        logs: list[OutlineEntry] = [(f"Log {v.log.id}: {v.log.label}", targets[v.anchor], [], "closed") for v in self.logs]
        out = list(front)
        if by_visit:
            out.append(("Visits", by_visit[0][1], by_visit, "open"))
        if by_form:
            out.append(("Forms", by_form[0][1], by_form, "open"))
        if logs:
            out.append(("Logs", logs[0][1], logs, "open"))
        return out
