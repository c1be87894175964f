"""Fillable PDF CRFs: one PDF per subject with AcroForm fields, a second way for a site to return data.

The pages are the CRF book's (the same templates and layout); each entry area is an HTML <input>
placeholder that WeasyPrint lays out, and its rectangle is taken from the layout (`Page.forms`).
The fields themselves are written here with pikepdf, not by WeasyPrint's `pdf_forms`: its radio
buttons are listed as fields of their own, carry their own names and have states named by
position, so a reader sees one field per option. Here a choice item is one radio field with one
widget per option, each on-state named by the option's code, with normal and down appearances for
"on" and "Off". Fields are named by the workbook's defined names (crf.fieldmap), so the reader
(crf/readers/pdf.py) finds every item exactly as the workbook reader does.

The book is laid out once per study; each subject's copy only sets the identity fields (`_meta`,
site, subject, the page headers) and is saved with pikepdf: same inputs, same bytes.
"""
from __future__ import annotations

import io
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pikepdf
from weasyprint.document import Document

from . import __version__
from .model import Study
from .pdf import PdfBuilder
from .pdf_layout import MARGIN_SIDE, MARGIN_TOP, visit_caption

__all__ = ["build_fillable", "fillable_name", "META_FIELD", "SITE_FIELD", "SUBJECT_FIELD", "HEADER_FIELD", "KEYS_SEPARATOR"]

META_FIELD = "_meta"  # hidden, read-only: study, form version, definition hash, site, subject (as the workbook's _meta sheet)
SITE_FIELD = "SITE_ID"  # the workbook's defined names of the same two inputs
SUBJECT_FIELD = "SUBJECT_ID"
HEADER_FIELD = "_header"  # read-only, one widget in every page header: "Site 01   Subject 01-001"
KEYS_SEPARATOR = ";"
PX_TO_PT = 0.75  # WeasyPrint lays out in CSS pixels (1/96 in); PDF user space is in points (1/72 in)
MM_TO_PT = 72 / 25.4

# Field flags (PDF 32000-1:2008, 12.7.3.1, 12.7.4)
READ_ONLY = 1
MULTILINE = 1 << 12
RADIO = 1 << 15  # NoToggleToOff is left unset: a site can click a ticked option again to clear it
COMBO = 1 << 17
DO_NOT_SPELL_CHECK = 1 << 22
PRINT = 4
HIDDEN = 2


def fillable_name(study: Study, subject: Optional[str]) -> str:
    return f"{study.id}_{subject}.pdf" if subject else f"{study.id}_fillable.pdf"


@dataclass(frozen=True)
class Widget:
    """One input placeholder as laid out: the field it belongs to and where it is on its page (points)."""

    name: str
    kind: str  # text, multiline, radio, check, combo
    page: int  # 0-based page in its part
    rect: tuple[float, float, float, float]
    state: str = ""  # radio and check box: the option's code (the on-state)
    tooltip: str = ""
    max_length: int = 0
    options: tuple[tuple[str, str], ...] = ()  # combo: (code, label)


@dataclass
class Part:
    kind: str  # cover, visit, log
    key: str
    pdf: bytes
    pages: int
    widgets: list[Widget]
    anchor_pages: dict[str, int] = field(default_factory=dict)


def _widgets(document: Document) -> list[Widget]:
    """The placeholders of every page, then removed so that WeasyPrint writes no fields of its own."""
    out: list[Widget] = []
    for index, page in enumerate(document.pages):
        height = page.height * PX_TO_PT
        for boxes in page.forms.values():
            for box, (x0, y0, x1, y1) in boxes:
                a = box.element.attrib
                if "data-kind" not in a:
                    continue
                rect = (round(x0 * PX_TO_PT, 2), round(height - y1 * PX_TO_PT, 2), round(x1 * PX_TO_PT, 2), round(height - y0 * PX_TO_PT, 2))
                options = tuple((str(code), str(label)) for code, label in json.loads(a.get("data-options") or "[]"))
                out.append(Widget(a["name"], a["data-kind"], index, rect, a.get("value", ""), a.get("title", ""),
                                  int(a.get("maxlength", "0") or 0), options))
        page.forms = {None: []}
    return out


_WORKER: dict[str, Any] = {}


def _worker_init(study: Study, page_size: str) -> None:
    _WORKER["builder"] = PdfBuilder(study, page_size=page_size)


def _worker_run(task: tuple[str, str]) -> Part:
    return render_part(_WORKER["builder"], *task)


def render_part(builder: PdfBuilder, kind: str, key: str) -> Part:
    study = builder.study
    if kind == "cover":
        document = builder._render("fillable_cover.html.j2", builder._context(
            f"{study.id} fillable CRF", fill=True, site_field=SITE_FIELD, subject_field=SUBJECT_FIELD))
        anchors: dict[str, int] = {}
    elif kind == "visit":  # key: a visit, or one instance of a repeating visit (ATT#2), named as in the workbook
        visit = study.visit_of(key)
        assert visit is not None
        caption = visit_caption(visit) if key == visit.id else f"{key}: {visit.label} {key.rpartition('#')[2]}"
        document = builder._render("visit.html.j2", builder._context(
            f"{study.id} {key} {visit.label}: fillable case report form", visit=visit, caption=caption,
            forms=builder.visit_views[visit.id], fill=True, fill_key=key))
        anchors = {}
        for form in builder.visit_views[visit.id]:
            anchors[form.anchor] = next(i for i, p in enumerate(document.pages) if form.anchor in p.anchors)
    else:
        log = builder.log_views[key]
        document = builder._render("log.html.j2", builder._context(
            f"{study.id} log {log.log.id} {log.log.label}: fillable case report form", log_view=log, fill=True))
        anchors = {}
    widgets = _widgets(document)
    buffer = io.BytesIO()
    builder._write(document, buffer, name=f"fillable|{kind}|{key}")
    return Part(kind, key, buffer.getvalue(), len(document.pages), widgets, anchors)


def build_fillable(study: Study, out_dir: Path, site: Optional[str] = None, subjects: tuple[str, ...] = (),
                   page_size: str = "A4", jobs: Optional[int] = None) -> list[Path]:
    """One fillable PDF per subject in `out_dir` (or one blank fillable CRF without subjects); their paths."""
    pairs: list[tuple[Optional[str], Optional[str]]] = []
    for subject in subjects:
        prefix = subject.rpartition("-")[0]
        if site and prefix and prefix != site:
            raise ValueError(f"subject {subject} does not belong to site {site} (subject numbers start with the site number)")
        pairs.append((site or prefix or None, subject))
    if not pairs:
        pairs.append((site, None))
    template = FillableBook(study, page_size).build(jobs)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for subject_site, subject_id in pairs:
        path = out_dir / fillable_name(study, subject_id)
        path.write_bytes(template.for_subject(subject_site, subject_id))
        written.append(path)
    return written


class FillableBook:
    """Lays out the fillable CRF book once: the cover, every visit and every log, with their widgets."""

    def __init__(self, study: Study, page_size: str = "A4"):
        self.study = study
        self.page_size = page_size
        self.builder = PdfBuilder(study, page_size=page_size)

    def build(self, jobs: Optional[int] = None) -> "FilledTemplate":
        tasks = ([("cover", "")] + [("visit", key) for v in self.study.visits for key in v.workbook_keys]
                 + [("log", lg.id) for lg in self.study.logs])
        jobs = max(1, min(jobs or len(os.sched_getaffinity(0)), len(tasks)))
        if jobs == 1:
            parts = [render_part(self.builder, *t) for t in tasks]
        else:
            context = multiprocessing.get_context("fork")  # workers inherit the loaded study
            with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_init,
                                     initargs=(self.study, self.page_size)) as pool:
                parts = list(pool.map(_worker_run, tasks))
        return FilledTemplate(self.study, self._assemble(parts))

    def _assemble(self, parts: list[Part]) -> bytes:
        study = self.study
        book = pikepdf.open(io.BytesIO(parts[0].pdf))
        starts = [0]
        for part in parts[1:]:
            starts.append(len(book.pages))
            with pikepdf.open(io.BytesIO(part.pdf)) as source:
                book.pages.extend(source.pages)
        writer = _FieldWriter(book)
        for part, start in zip(parts, starts):
            for widget in part.widgets:
                writer.add(widget, start + widget.page)
        writer.add_hidden(META_FIELD, "")
        writer.add_header(HEADER_FIELD, range(1, len(book.pages)))
        writer.finish()
        with book.open_outline() as outline:
            outline.root.append(pikepdf.OutlineItem("Cover and instructions", 0))
            for part, start in zip(parts, starts):
                if part.kind == "visit":
                    visit = study.visit_of(part.key)
                    assert visit is not None
                    item = pikepdf.OutlineItem(f"{part.key} {visit.label}", start)
                    for view in self.builder.visit_views[visit.id]:
                        item.children.append(pikepdf.OutlineItem(f"{view.name}: {view.title}", start + part.anchor_pages[view.anchor]))
                    outline.root.append(item)
                elif part.kind == "log":
                    log = study.log(part.key)
                    outline.root.append(pikepdf.OutlineItem(f"Log {log.id}: {log.label}", start))
        book.Root.PageMode = pikepdf.Name.UseOutlines
        buffer = io.BytesIO()
        book.save(buffer, deterministic_id=True, compress_streams=True)
        return buffer.getvalue()


class FilledTemplate:
    """The laid-out fillable book; `for_subject` gives one subject's copy."""

    def __init__(self, study: Study, data: bytes):
        self.study = study
        self.data = data

    def for_subject(self, site: Optional[str], subject: Optional[str]) -> bytes:
        study = self.study
        pdf = pikepdf.open(io.BytesIO(self.data))
        fields = {str(f.get("/T")): f for f in pdf.Root.AcroForm.Fields}
        meta = {"study_id": study.id, "form_version": study.form_version, "definition_hash": study.definition_hash,
                "site": site or "", "subject": subject or "", "generator": f"open-ecrf {__version__}"}
        writer = _FieldWriter(pdf, existing=True)
        writer.set_text(fields[META_FIELD], "\n".join(f"{k}={v}" for k, v in meta.items()), appearance=False)
        if site:
            writer.set_text(fields[SITE_FIELD], site)
        if subject:
            writer.set_text(fields[SUBJECT_FIELD], subject)
        writer.set_text(fields[HEADER_FIELD], f"Site {site or '____'}   Subject {subject or '__________'}")
        title = f"{study.id} fillable CRF, " + (f"subject {subject}" if subject else "blank") + f", CRF version {study.form_version}"
        pdf.docinfo["/Title"] = title
        pdf.docinfo["/Creator"] = f"open-ecrf {__version__}"
        buffer = io.BytesIO()
        pdf.save(buffer, deterministic_id=True, compress_streams=True)
        return buffer.getvalue()


def _pdf_text(text: str) -> bytes:
    """A string operand of a content stream (Helvetica, WinAnsi): parentheses and backslashes escaped."""
    raw = text.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


class _FieldWriter:
    """Adds the AcroForm fields of the widgets to the book, each field once, in page order."""

    def __init__(self, pdf: pikepdf.Pdf, existing: bool = False):
        self.pdf = pdf
        if existing:
            self.font = pdf.Root.AcroForm.DR.Font.Helv
            return
        self.font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                                                         BaseFont=pikepdf.Name.Helvetica, Encoding=pikepdf.Name.WinAnsiEncoding))
        self.dingbats = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                                                             BaseFont=pikepdf.Name.ZapfDingbats))
        self.fields: dict[str, pikepdf.Object] = {}
        self.order: list[str] = []
        self.appearances: dict[tuple[str, float, float], pikepdf.Object] = {}

    # -- appearance streams --------------------------------------------------------------------------
    def _stream(self, width: float, height: float, content: bytes) -> pikepdf.Object:
        return self.pdf.make_stream(content, Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Form,
                                    BBox=pikepdf.Array([0, 0, width, height]),
                                    Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(Helv=self.font)))

    def _shared(self, what: str, width: float, height: float) -> pikepdf.Object:
        """One stream per look and size: thousands of widgets share a handful of streams."""
        key = (what, round(width, 2), round(height, 2))
        if key not in self.appearances:
            w, h = key[1], key[2]
            down = b"0.75 g 0 0 %.2f %.2f re f " % (w, h) if what.endswith("-down") else b""
            if what.startswith("dot"):
                r, cx, cy = min(w, h) * 0.3, w / 2, h / 2
                k = r * 0.5523
                body = (b"0 g %.2f %.2f m %.2f %.2f %.2f %.2f %.2f %.2f c %.2f %.2f %.2f %.2f %.2f %.2f c "
                        b"%.2f %.2f %.2f %.2f %.2f %.2f c %.2f %.2f %.2f %.2f %.2f %.2f c f" % (
                            cx + r, cy, cx + r, cy + k, cx + k, cy + r, cx, cy + r, cx - k, cy + r, cx - r, cy + k, cx - r, cy,
                            cx - r, cy - k, cx - k, cy - r, cx, cy - r, cx + k, cy - r, cx + r, cy - k, cx + r, cy))
            elif what.startswith("cross"):
                m = min(w, h) * 0.2
                body = b"0 G 1 w 1 J %.2f %.2f m %.2f %.2f l %.2f %.2f m %.2f %.2f l S" % (m, m, w - m, h - m, m, h - m, w - m, m)
            else:  # off
                body = b""
            self.appearances[key] = self._stream(w, h, b"q " + down + body + b" Q")
        return self.appearances[key]

    def _text_appearance(self, rect: Any, text: str, size: float) -> pikepdf.Object:
        w, h = float(rect[2]) - float(rect[0]), float(rect[3]) - float(rect[1])
        baseline = max(1.0, (h - size * 0.72) / 2)
        content = b"/Tx BMC q BT /Helv %.1f Tf 0 g 2 %.2f Td %s Tj ET Q EMC" % (size, baseline, _pdf_text(text))
        return self._stream(w, h, content)

    # -- fields --------------------------------------------------------------------------------------
    def _widget(self, page_index: int, rect: tuple[float, float, float, float], **extra: Any) -> pikepdf.Dictionary:
        page = self.pdf.pages[page_index]
        annot = self.pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Widget,
                                                          Rect=pikepdf.Array(list(rect)), P=page.obj, F=PRINT, **extra))
        if "/Annots" not in page.obj:
            page.obj.Annots = pikepdf.Array()
        page.obj.Annots.append(annot)
        return annot

    def _field(self, name: str, **entries: Any) -> pikepdf.Object:
        if name not in self.fields:
            self.fields[name] = self.pdf.make_indirect(pikepdf.Dictionary(T=pikepdf.String(name), **entries))
            self.order.append(name)
        return self.fields[name]

    def add(self, w: Widget, page_index: int) -> None:
        width, height = w.rect[2] - w.rect[0], w.rect[3] - w.rect[1]
        tooltip = pikepdf.String(w.tooltip or w.name)
        if w.kind in ("text", "multiline", "combo"):
            size = 9.0 if height >= 12 else 7.0
            entries: dict[str, Any] = {"FT": pikepdf.Name.Tx, "TU": tooltip, "V": pikepdf.String(""),
                                       "DA": pikepdf.String(f"/Helv {size:g} Tf 0 g"),
                                       "Ff": DO_NOT_SPELL_CHECK | (MULTILINE if w.kind == "multiline" else 0)}
            if w.max_length:
                entries["MaxLen"] = w.max_length
            if w.kind == "combo":
                entries.update(FT=pikepdf.Name.Ch, Ff=COMBO,
                               Opt=pikepdf.Array([pikepdf.Array([pikepdf.String(""), pikepdf.String("")])]
                                                 + [pikepdf.Array([pikepdf.String(c), pikepdf.String(label)]) for c, label in w.options]))
            annot = self._widget(page_index, w.rect, **entries)
            annot.T = pikepdf.String(w.name)
            self.fields[w.name] = annot  # a text field and its one widget are one dictionary
            self.order.append(w.name)
            return
        state = pikepdf.Name("/" + w.state)
        if w.kind == "radio":
            group = self._field(w.name, FT=pikepdf.Name.Btn, Ff=RADIO, TU=tooltip, V=pikepdf.Name.Off, Kids=pikepdf.Array(),
                                DA=pikepdf.String("/ZaDb 0 Tf 0 g"))
            annot = self._widget(page_index, w.rect, Parent=group, AS=pikepdf.Name.Off, MK=pikepdf.Dictionary(CA=pikepdf.String("l")),
                                 AP=self._on_off("dot", state, width, height))
            group.Kids.append(annot)
            return
        # a check box per option of a multi-choice item: kids of one field named by the item, each named by its code
        parent = self._field(w.name, TU=tooltip, Kids=pikepdf.Array(), DA=pikepdf.String("/ZaDb 0 Tf 0 g"))
        annot = self._widget(page_index, w.rect, Parent=parent, FT=pikepdf.Name.Btn, T=pikepdf.String(str(len(parent.Kids) + 1)),
                             TU=pikepdf.String(w.tooltip), V=pikepdf.Name.Off, AS=pikepdf.Name.Off,
                             MK=pikepdf.Dictionary(CA=pikepdf.String("8")), AP=self._on_off("cross", state, width, height))
        parent.Kids.append(annot)

    def _on_off(self, look: str, state: pikepdf.Name, width: float, height: float) -> pikepdf.Dictionary:
        return pikepdf.Dictionary(
            N=pikepdf.Dictionary({str(state): self._shared(look, width, height), "/Off": self._shared("off", width, height)}),
            D=pikepdf.Dictionary({str(state): self._shared(look + "-down", width, height), "/Off": self._shared("off-down", width, height)}))

    def add_hidden(self, name: str, value: str) -> None:
        annot = self._widget(0, (0, 0, 0, 0), FT=pikepdf.Name.Tx, Ff=READ_ONLY, V=pikepdf.String(value))
        annot.F = HIDDEN
        annot.T = pikepdf.String(name)
        self.fields[name] = annot
        self.order.append(name)

    def add_header(self, name: str, pages: range) -> None:
        """One read-only field with a widget in the header of every form page: the subject on every printed page."""
        group = self._field(name, FT=pikepdf.Name.Tx, Ff=READ_ONLY, V=pikepdf.String(""), DA=pikepdf.String("/Helv 10 Tf 0 g"),
                            Kids=pikepdf.Array())
        for index in pages:
            box = self.pdf.pages[index].mediabox
            right = float(box[2]) - MARGIN_SIDE * MM_TO_PT
            top = float(box[3]) - (MARGIN_TOP - 7.4) * MM_TO_PT
            rect = (round(right - 62 * MM_TO_PT, 2), round(top - 5.6 * MM_TO_PT, 2), round(right, 2), round(top, 2))
            group.Kids.append(self._widget(index, rect, Parent=group))

    def finish(self) -> None:
        self.pdf.Root.AcroForm = self.pdf.make_indirect(pikepdf.Dictionary(
            Fields=pikepdf.Array([self.fields[n] for n in self.order]),
            DR=pikepdf.Dictionary(Font=pikepdf.Dictionary(Helv=self.font, ZaDb=self.dingbats)),
            DA=pikepdf.String("/Helv 0 Tf 0 g")))
        # No NeedAppearances: every button and every value written here has its appearance streams, and a PDF
        # reader draws what the site types; with it, readers redraw the buttons their own way (poppler prints the
        # on-state's name in each circle) and Acrobat asks to save a file nobody changed.

    def set_text(self, field: pikepdf.Object, value: str, appearance: bool = True) -> None:
        field.V = pikepdf.String(value)
        if not appearance:
            return
        size = 10.0 if field.get("/Kids") is not None else 9.0
        for widget in (field.Kids if field.get("/Kids") is not None else [field]):
            widget.AP = pikepdf.Dictionary(N=self._text_appearance(widget.Rect, value, size))
