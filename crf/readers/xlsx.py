"""Read a returned subject workbook (.xlsx, .xlsm as data only) into a SubjectRecord.

Every field is found through its workbook-level defined name (crf.fieldmap), with the `_meta` field
map as fallback; labels and row positions are never used. Before any parser sees the package it is
checked by crf.readers.safety; the file is read once into memory and never opened for writing.
Cell values come from python-calamine (cached values; formulas and macros are never evaluated).
"""
from __future__ import annotations

import hashlib
import io
import re
import zipfile
from xml.sax.saxutils import unescape as xml_unescape
from functools import lru_cache
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Optional

import python_calamine
from defusedxml import expatreader
from defusedxml.common import DefusedXmlException
import xml.parsers.expat
from xml.sax import SAXException

from ..contract import META_SHEET
from ..fieldmap import iter_fields
from ..findings import Severity
from ..model import Study
from ..subject import Location, SubjectRecord
from . import safety, sheet_scan, sheet_xml
from .base import ReadSubject, Unusable, file_finding
from .convert import ValueIssue, clean_text, convert, safe_text, show_value

NS_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
NS_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
NS_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_REF = re.compile(r"^(?:'((?:[^']|'')+)'|([^'!]+))!\$?([A-Z]{1,3})\$?(\d+)$")
_CELL = re.compile(r"^([A-Z]{1,3})(\d+)$")
_FORMULA_CELL = re.compile(rb'<c\b([^>]*?)(?:/>|>(.*?)</c>)', re.S)
_CELL_REF = re.compile(rb'\br="([A-Z]{1,3}\d+)"')
FIX_SEND_ORIGINAL = "Enter the data in the workbook the study sent for this subject and send that file"


@dataclass(frozen=True)
class CellRef:
    sheet: str
    cell: str
    row: int  # from 0
    col: int  # from 0


def column_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


def cell_ref(sheet: str, cell: str) -> Optional[CellRef]:
    m = _CELL.match(cell.replace("$", ""))
    if not m:
        return None
    return CellRef(sheet, f"{m[1]}{m[2]}", int(m[2]) - 1, column_index(m[1]))


@lru_cache(maxsize=65536)  # workbooks from one study repeat the same names
def parse_reference(text: str) -> Optional[CellRef]:
    """"'V3 Day 28'!$D$12" -> CellRef; None for #REF!, ranges and anything else."""
    m = _REF.match(text.strip())
    if not m:
        return None
    sheet = m[1].replace("''", "'") if m[1] is not None else m[2]
    if sheet.startswith("#REF"):  # Excel's mark for a name whose sheet was deleted
        return None
    return CellRef(sheet, f"{m[3]}{m[4]}", int(m[4]) - 1, column_index(m[3]))


@dataclass(frozen=True)
class _Spec:
    """A field with its path and defined name computed once per study."""

    path: str
    defined_name: str
    item: Any  # crf.model.Item
    container: str
    form: str
    row: Optional[int]
    index: int  # position in crf.fieldmap order

    @property
    def is_log(self) -> bool:
        return self.row is not None


_TABLES: dict[tuple[int, str], list[_Spec]] = {}


def field_table(study: Study) -> list[_Spec]:
    key = (id(study), study.definition_hash)
    if key not in _TABLES:
        _TABLES[key] = [_Spec(f.path, f.defined_name, f.item, f.container, f.form, f.row, i) for i, f in enumerate(iter_fields(study, inputs_only=False))]
    return _TABLES[key]


class _FieldMap:
    """The `_meta` field map (path -> sheet and cell), read and parsed only when it is needed.

    It holds a row per field (3,000 for the shipped study): reading it with calamine costs more
    than every visit sheet together, and a workbook whose defined names are intact never needs it.
    """

    def __init__(self, load_rows: Callable[[], list[list[Any]]], start: int, xml: bytes = b""):
        self._load_rows = load_rows
        self._loaded: Optional[list[list[Any]]] = None
        self._start = start
        self._map: Optional[dict[str, CellRef]] = None
        self._xml = xml  # the sheet as the study writes it (inline strings): one row can be read without calamine
        self.used = False  # consulted at all: what was located then depends on this workbook's _meta, not only its names

    def _xml_row(self, i: int) -> Optional[list[str]]:
        at = self._xml.find(b'<row r="%d"' % (i + 1))
        if at < 0:
            return None
        end = self._xml.find(b"</row>", at)
        texts: dict[bytes, str] = {}
        for column, _, inner in _META_CELL.findall(self._xml[at:end if end > 0 else len(self._xml)]):
            found = _INLINE_TEXT.match(inner)
            if found is None:
                return None
            try:
                texts[column] = xml_unescape(found.group(1).decode("utf-8"), {"&quot;": '"', "&apos;": "'"})
            except UnicodeDecodeError:
                return None
        return [texts.get(c, "") for c in (b"A", b"B", b"C", b"D")]

    @property
    def _rows(self) -> list[list[Any]]:
        if self._loaded is None:
            self._loaded = self._load_rows()
        return self._loaded

    def _parsed(self) -> dict[str, CellRef]:
        if self._map is None:
            self._map = {}
            for row in self._rows[self._start:]:
                if len(row) >= 4 and isinstance(row[0], str) and row[0].startswith("/"):
                    ref = cell_ref(str(row[2]), str(row[3]))
                    if ref:
                        self._map[row[0]] = ref
        return self._map

    def get(self, path: str, index: Optional[int] = None) -> Optional[CellRef]:
        """`index`: the field's position in crf.fieldmap order, which the writer keeps (checked)."""
        self.used = True
        if index is not None and self._map is None and self._loaded is None and self._xml:
            row = self._xml_row(self._start + index)
            if row is not None and row[0] == path:
                return cell_ref(row[2], row[3])
        if index is not None and self._map is None:
            i = self._start + index
            if i < len(self._rows):
                row = self._rows[i]
                if len(row) >= 4 and row[0] == path:
                    return cell_ref(str(row[2]), str(row[3]))
        return self._parsed().get(path)

    def sheets(self) -> set[str]:
        self.used = True
        return {ref.sheet for ref in self._parsed().values()}


@dataclass
class _Package:
    sheet_parts: dict[str, str]  # sheet name -> zip part
    names: dict[str, str]  # workbook-level defined name -> reference text
    date1904: bool
    sheet_xml: dict[str, bytes]  # zip part -> bytes (worksheets only)
    key: bytes = b""  # digest of xl/workbook.xml and its relationships
    data: bytes = b""  # the whole file (a sheet taken apart by crf.readers.sheet_xml is re-packed from it)
    shared_strings: bytes = b""


def _open_package(data: bytes, display: str, limits: safety.Limits) -> _Package:
    kind = safety.sniff(data[:16])
    if kind == "ole2":
        if safety.ole2_is_encrypted(io.BytesIO(data)):
            raise Unusable("PASSWORD-PROTECTED", "the workbook is protected by a password, so it cannot be read",
                           "Remove the password (File > Info > Protect Workbook > Encrypt with Password, clear it), save, and send it again")
        raise Unusable("FILE-NOT-XLSX", "this is an old-format Excel file (.xls), not the study's .xlsx workbook",
                       FIX_SEND_ORIGINAL)
    if kind != "zip":
        raise Unusable("FILE-NOT-XLSX", "this is not an Excel workbook (it is not a zip package)",
                       f"{FIX_SEND_ORIGINAL}; if you renamed another file to .xlsx, that will not work")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise Unusable("FILE-DAMAGED", f"the workbook is damaged or was not copied completely ({exc})",
                       "Copy or download the file again from the original and send it again")
    try:
        safety.check_directory(zf, limits)
        names = set(zf.namelist())
        if "xl/workbook.xml" not in names:
            raise Unusable("FILE-NOT-XLSX", "this zip file is not an Excel workbook (it has no xl/workbook.xml)", FIX_SEND_ORIGINAL)
        sheet_xml: dict[str, bytes] = {}
        for name in sorted(names):
            if name.endswith("/"):
                continue
            keep = name.startswith("xl/worksheets/") and name.endswith(".xml")
            part = safety.stream_check(zf, name, limits, keep=keep or name in ("xl/workbook.xml", "xl/_rels/workbook.xml.rels",
                                                                               "xl/sharedStrings.xml"))
            if part is not None:
                sheet_xml[name] = part
        workbook_xml = sheet_xml.pop("xl/workbook.xml")
        rels_xml = sheet_xml.pop("xl/_rels/workbook.xml.rels", b"")
        shared_strings = sheet_xml.pop("xl/sharedStrings.xml", b"")
    except safety.UnsafeFile as exc:
        raise Unusable(exc.rule, exc.problem, exc.fix)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError, ValueError, RuntimeError) as exc:
        raise Unusable("FILE-DAMAGED", f"the workbook is damaged or was not copied completely ({str(exc)[:120]})",
                       "Copy or download the file again from the original and send it again")
    finally:
        zf.close()
    try:
        book, rels = _parse_workbook_parts(workbook_xml, rels_xml)
    except DefusedXmlException:
        raise Unusable("XML-UNSAFE", "the workbook declares XML entities, which Excel never writes; it may be an attack",
                       "Send the workbook you received from the study, filled in; this file was not opened")
    except SAXException as exc:
        raise Unusable("FILE-DAMAGED", f"the workbook's structure is damaged ({exc})", "Open it in Excel, save it again as .xlsx and send that copy")
    sheet_parts = {name: rels.targets.get(rid, "") for name, rid in book.sheets}
    defined = dict(book.names)  # a copy: the parsed result may be shared with later files
    date1904 = book.date1904
    return _Package(sheet_parts, defined, date1904, sheet_xml, workbook_key(workbook_xml, rels_xml), data, shared_strings)


_META_ROW = re.compile(rb'<row r="(\d+)"[^>]*>(.*?)</row>', re.S)
_META_CELL = re.compile(rb'<c r="([A-Z]+)\d+"([^>]*)>(.*?)</c>', re.S)
_INLINE_TEXT = re.compile(rb'^<is><t(?: [^>]*)?>(.*?)</t></is>$', re.S)


def _meta_head(xml: bytes) -> Optional[tuple[dict[str, str], int]]:
    """Key/value rows of `_meta` and the field map's first row index, straight from the sheet XML.

    Only for the layout the study writes (inline strings, the "path" header within 50 rows); for
    anything else None, and the caller reads the sheet with calamine as usual.
    """
    keys: dict[str, str] = {}
    start = xml.find(b"<sheetData>")
    if start < 0:
        return None
    for count, row in enumerate(_META_ROW.finditer(xml, start)):
        if count > 50:
            return None
        texts: dict[bytes, str] = {}
        for column, attrs, inner in _META_CELL.findall(row.group(2)):
            found = _INLINE_TEXT.match(inner)
            if b'inlineStr' not in attrs or found is None:
                return None
            try:
                texts[column] = xml_unescape(found.group(1).decode("utf-8"), {"&quot;": '"', "&apos;": "'"})
            except UnicodeDecodeError:  # not UTF-8: leave it to calamine, which reports the sheet if it cannot read it
                return None
        first = clean_text(texts.get(b"A", ""))
        if first == "path":
            return keys, int(row.group(1))
        if first and first != "key":
            keys[first] = clean_text(texts.get(b"B", ""))
    return None


def workbook_key(workbook_xml: bytes, rels_xml: bytes) -> bytes:
    return hashlib.sha256(workbook_xml + b"\0" + rels_xml).digest()


_LOCATED: "OrderedDict[tuple[bytes, int], dict[str, CellRef]]" = OrderedDict()
_PARSED: "OrderedDict[bytes, tuple[_WorkbookXml, _RelsXml]]" = OrderedDict()


def _parse_workbook_parts(workbook_xml: bytes, rels_xml: bytes) -> tuple["_WorkbookXml", "_RelsXml"]:
    """Parse xl/workbook.xml and its relationships; workbooks issued by one study are byte-identical
    here, so the result is kept for the next file with exactly these bytes (digest as key)."""
    key = workbook_key(workbook_xml, rels_xml)
    hit = _PARSED.get(key)
    if hit is not None:
        return hit
    book = _WorkbookXml()
    _sax_parse(workbook_xml, book)
    rels = _RelsXml()
    if rels_xml:
        _sax_parse(rels_xml, rels)
    _PARSED[key] = (book, rels)
    while len(_PARSED) > 8:
        _PARSED.popitem(last=False)
    return book, rels


def _sax_parse(data: bytes, handler: "_Handler") -> None:
    """Parse with defusedxml's expat reader (no DTD, no entities, no external references).

    Its protections are handlers on the underlying expat parser, installed by reset(); the element
    handlers are then set on that parser directly, skipping the SAX layer's per-element objects
    (3,000 defined names per workbook: 12 ms through SAX, 4 ms like this).
    """
    reader = expatreader.create_parser(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    reader.setFeature("http://xml.org/sax/features/namespaces", False)
    reader.reset()
    parser = reader._parser  # the expat parser carrying defusedxml's handlers
    parser.buffer_text = True
    parser.ordered_attributes = False
    parser.StartElementHandler = handler.start
    parser.EndElementHandler = handler.end
    parser.CharacterDataHandler = handler.text
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as exc:
        raise SAXException(str(exc)) from None


class _Handler:
    def start(self, name: str, attrs: dict[str, str]) -> None: ...

    def end(self, name: str) -> None: ...

    def text(self, content: str) -> None: ...


class _WorkbookXml(_Handler):
    """Sheets (name, relationship id), workbook-level defined names and the date system of xl/workbook.xml."""

    def __init__(self) -> None:
        self.sheets: list[tuple[str, str]] = []
        self.names: dict[str, str] = {}
        self.date1904 = False
        self._name: Optional[str] = None
        self._text: list[str] = []

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if name == "definedName" or name.endswith(":definedName"):
            self._name = attrs.get("name") if attrs.get("localSheetId") is None else None
            self._text = []
        elif name == "sheet" or name.endswith(":sheet"):
            rid = next((v for k, v in attrs.items() if k.endswith(":id")), "")
            self.sheets.append((attrs.get("name", ""), rid))
        elif name == "workbookPr" or name.endswith(":workbookPr"):
            self.date1904 = attrs.get("date1904", "0").lower() in ("1", "true")

    def text(self, content: str) -> None:
        if self._name is not None:
            self._text.append(content)

    def end(self, name: str) -> None:
        if self._name is not None:
            self.names[self._name] = "".join(self._text).strip()
            self._name = None


class _RelsXml(_Handler):
    def __init__(self) -> None:
        self.targets: dict[str, str] = {}

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if name.rpartition(":")[2] == "Relationship":
            target = attrs.get("Target", "")
            self.targets[attrs.get("Id", "")] = target.lstrip("/") if target.startswith("/") else "xl/" + target


class _Reader:
    def __init__(self, study: Study, display: str, package: _Package, book: Any):
        self.study = study
        self.display = display
        self.package = package
        self.book = book
        self.sheet_names: list[str] = list(book.sheet_names)
        self.findings: list = []
        self.site = ""
        self.subject = ""

    def unusable(self, rule: str, problem: str, fix: str, **kw: Any) -> Unusable:
        return Unusable(rule, problem, fix, site=self.site, subject=self.subject, **kw)

    # -- identity -------------------------------------------------------------------------
    def read_meta(self) -> tuple[dict[str, str], "_FieldMap"]:
        if META_SHEET not in self.sheet_names:
            raise Unusable("NOT-A-CRF-WORKBOOK", "this workbook has no hidden _meta sheet, so it was not made for this study "
                           "(or the data were copied into a new workbook)", FIX_SEND_ORIGINAL)
        head = _meta_head(self.package.sheet_xml.get(self.package.sheet_parts.get(META_SHEET, ""), b""))
        if head is not None:  # the workbook as the study wrote it: keys read from the XML, map left unread
            keys, start = head
            return keys, _FieldMap(lambda: self.rows(META_SHEET), start, self.package.sheet_xml.get(self.package.sheet_parts.get(META_SHEET, ""), b""))
        rows = self.rows(META_SHEET)  # saved by a spreadsheet program (shared strings): read it all
        keys = {}
        start = len(rows)
        for i, row in enumerate(rows):
            first = clean_text(str(row[0])) if row else ""
            if first == "path":
                start = i + 1
                break
            if len(row) >= 2 and first and first != "key":
                keys[first] = clean_text(_text(row[1]))
        return keys, _FieldMap(lambda: rows, start)

    def check_identity(self, keys: dict[str, str]) -> None:
        study = self.study
        names = self.package.names
        self.site = keys.get("site", "")
        self.subject = keys.get("subject", "")
        for key, attr in (("SITE_ID", "site"), ("SUBJECT_ID", "subject")):
            ref = parse_reference(names.get(key, ""))
            typed = clean_text(_text(self.cell_value(ref))) if ref and ref.sheet in self.sheet_names else ""
            if typed and not getattr(self, attr):
                setattr(self, attr, typed)
            elif typed and typed != getattr(self, attr):
                self.findings.append(file_finding(
                    self.display, "SUBJECT-CHANGED", f"the {attr} number typed here is '{typed}' but the workbook was issued for {attr} "
                    f"'{getattr(self, attr)}'", f"Check which {attr} this workbook belongs to and tell the data manager; the workbook was read as {attr} '{getattr(self, attr)}'",
                    sheet=ref.sheet if ref else "", cell=ref.cell if ref else "", site=self.site, subject=self.subject, category="identity"))
        study_id = keys.get("study_id", "")
        if study_id != study.id:
            raise self.unusable("WRONG-STUDY", f"this workbook belongs to study '{study_id or 'unknown'}', not to {study.id}",
                                f"Send it to that study's data manager; for {study.id}, use the {study.id} workbook of this subject",
                                sheet=META_SHEET, category="identity")
        version = keys.get("form_version", "")
        if version != study.form_version:
            raise self.unusable("FORM-VERSION", f"this workbook has form version {version or 'unknown'}, but {study.id} now uses "
                                f"form version {study.form_version}", f"Copy the data into the form version {study.form_version} workbook the "
                                "data manager sends you, and return that one", sheet=META_SHEET, category="identity")
        if keys.get("definition_hash", "") != study.definition_hash:
            self.findings.append(file_finding(
                self.display, "DEFINITION-CHANGED", "the workbook was made from an earlier edit of the same form version",
                "Nothing to do for the site; the data manager should check that no item changed meaning",
                severity=Severity.WARNING, sheet=META_SHEET, site=self.site, subject=self.subject, category="identity"))
        if not self.subject:
            raise self.unusable("SUBJECT-MISSING", "no subject number is given (Instructions sheet, cell 'Subject')",
                                "Type the subject number on the Instructions sheet and send the workbook again", category="identity")

    # -- cells ----------------------------------------------------------------------------
    _cache: dict[str, list[list[Any]]]

    def rows(self, sheet: str) -> list[list[Any]]:
        cache = self.__dict__.setdefault("_cache", {})
        if sheet not in cache:
            cache[sheet] = self._read_rows(sheet)
        return cache[sheet]

    def _read_rows(self, sheet: str) -> list[list[Any]]:
        """The sheet's cells, through crf.readers.sheet_xml first: what calamine could not survive is taken out and reported."""
        part = self.package.sheet_parts.get(sheet, "")
        xml = self.package.sheet_xml.get(part)
        if xml is None:
            return self._calamine_rows(self.book, sheet)
        scan = sheet_xml.prescan(xml, self._form_extent(sheet))
        self.scans[sheet] = scan
        book = self._book_with(part, scan.xml) if scan.xml is not None else self.book
        try:
            return self._calamine_rows(book, sheet)
        except _SheetDamaged:
            current = scan.xml if scan.xml is not None else xml
            bad = sheet_xml.bad_values(current, sheet_xml.shared_string_count(self.package.shared_strings))
            if not bad:
                raise
            retry = sheet_xml.prescan_without(current, bad, self._form_extent(sheet))
            scan.dropped.extend(retry.dropped)
            return self._calamine_rows(self._book_with(part, retry.xml or current), sheet)

    def _calamine_rows(self, book: Any, sheet: str) -> list[list[Any]]:
        try:
            return book.get_sheet_by_name(sheet).to_python(skip_empty_area=False)  # calamine: lists of cells
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except BaseException as exc:  # a damaged sheet part; a Rust panic (pyo3 PanicException) is a BaseException
            raise _SheetDamaged(sheet, f"{type(exc).__name__}: {str(exc)[:120]}")

    @property
    def scans(self) -> dict[str, sheet_xml.SheetScan]:
        return self.__dict__.setdefault("_scans", {})  # sheet -> its pre-scan

    def _form_extent(self, sheet: str) -> tuple[int, int]:
        """(rows, columns) the study's named cells use on `sheet`: what is kept of it however far a stray cell lies."""
        extents: dict[str, tuple[int, int]] = self.__dict__.get("_extents") or {}
        if not extents:
            for text in self.package.names.values():
                ref = parse_reference(text)
                if ref is not None:
                    rows, cols = extents.get(ref.sheet, (0, 0))
                    extents[ref.sheet] = (max(rows, ref.row + 1), max(cols, ref.col + 1))
            self.__dict__["_extents"] = extents
        return extents.get(sheet, (0, 0))

    def _book_with(self, part: str, xml: bytes) -> Any:
        """A calamine workbook of the same package with `part` replaced (parts stored, not compressed: read once, in memory)."""
        replaced: dict[str, bytes] = self.__dict__.setdefault("_replaced", {})
        replaced[part] = xml
        source = zipfile.ZipFile(io.BytesIO(self.package.data))
        out = io.BytesIO()
        with source, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
            for info in source.infolist():
                if info.filename.endswith("/"):
                    continue
                target.writestr(info.filename, replaced.get(info.filename) or source.read(info.filename))
        old = self.__dict__.get("_sanitised")
        if old is not None:
            old.close()
        book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(out.getvalue()))
        self.__dict__["_sanitised"] = book
        return book

    def cell_value(self, ref: CellRef) -> Any:
        rows = self.rows(ref.sheet)
        if ref.row < len(rows):
            row = rows[ref.row]
            if ref.col < len(row):
                return row[ref.col]
        return ""

    def formula_cells_without_value(self, sheet: str) -> set[str]:
        """Cells of `sheet` holding a formula but no cached value (written by a program that does not calculate)."""
        cache: dict[str, set[str]] = self.__dict__.setdefault("_formulas", {})
        found = cache.get(sheet)
        if found is None:
            found = set()
            xml = self.package.sheet_xml.get(self.package.sheet_parts.get(sheet, ""), b"")
            limit = xml.find(b"</sheetData>")
            stop = limit if limit != -1 else len(xml)
            # linear whatever the XML: each look back starts where the last one ended, and the next </c> is found once
            # (40,000 empty <f/> elements took 35 s when every one looked back and forth over the sheet)
            behind = 0
            close = -1
            at = xml.find(b"<f", 0, stop)
            while at != -1:
                if xml[at + 2:at + 3] not in (b">", b" ", b"/"):
                    at = xml.find(b"<f", at + 2, stop)
                    continue  # formulas are few: walk from each to its enclosing cell
                start = xml.rfind(b"<c ", behind, at)
                if close < at:
                    close = xml.find(b"</c>", at, stop)
                    if close == -1:
                        close = stop  # no cell closes after this point
                end = close if close < stop else -1
                behind = at
                if start == -1 or end == -1 or xml.find(b"</c>", start, at) != -1:
                    at = xml.find(b"<f", at + 2, stop)  # not inside a cell
                    continue
                inner = xml[start:end]
                if b"<v>" not in inner or b"<v></v>" in inner:
                    ref = _CELL_REF.search(inner[: inner.find(b">") + 1])
                    if ref:
                        found.add(ref[1].decode())
                at = xml.find(b"<f", end, stop)
            cache[sheet] = found
        return found

    # -- the record -----------------------------------------------------------------------
    def locate(self, fields: list[_Spec], fieldmap: "_FieldMap") -> dict[str, CellRef]:
        """Where each field is; the same defined names (byte-identical workbook.xml) give the same answer."""
        key = (self.package.key, id(fields))
        cached = _LOCATED.get(key)
        if cached is not None:
            return cached
        before = len(self.findings)
        located = self._locate(fields, fieldmap)
        if len(self.findings) == before and not fieldmap.used and all(f.path in located for f in fields if f.item.is_input):
            _LOCATED[key] = located  # only the plain case: every field found by its name, so the names (in the key) decide it all
            while len(_LOCATED) > 8:
                _LOCATED.popitem(last=False)
        return located

    def _locate(self, fields: list[_Spec], fieldmap: "_FieldMap") -> dict[str, CellRef]:
        names = self.package.names
        located: dict[str, CellRef] = {}
        broken: dict[str, list[_Spec]] = defaultdict(list)  # sheet -> inputs whose name is gone
        unplaced: list[_Spec] = []
        for f in fields:
            ref = parse_reference(names[f.defined_name]) if f.defined_name in names else None
            if ref is None and f.item.is_input:
                fallback = fieldmap.get(f.path)
                if fallback is not None:
                    broken[fallback.sheet].append(f)
                    located[f.path] = fallback
                else:
                    unplaced.append(f)
                continue
            if ref is None:
                fallback = fieldmap.get(f.path)
                if fallback is not None:
                    located[f.path] = fallback
                continue
            located[f.path] = ref
        # names deleted (or turned into #REF! by deleting their sheet): one finding per sheet
        for sheet, lost in sorted(broken.items()):
            if sheet not in self.sheet_names:
                continue  # reported as a missing sheet
            first = lost[0]
            ref = located[first.path]
            if len(lost) == 1:
                problem = f"the cell name {first.defined_name} ({first.item.question}) was deleted"
            else:
                problem = f"the cell names of {len(lost)} fields were deleted (first: {first.defined_name})"
            self.findings.append(file_finding(
                self.display, "NAME-MISSING", problem, "The values were read from the cells the study placed them in; "
                "please do not delete or rename cell names (Formulas > Name Manager)", severity=Severity.WARNING,
                sheet=sheet, cell=ref.cell, site=self.site, subject=self.subject, category="structure"))
        if unplaced:
            first = unplaced[0]
            self.findings.append(file_finding(
                self.display, "NAME-MISSING", f"{len(unplaced)} field(s) cannot be found, neither by cell name nor in the field map "
                f"(first: {first.defined_name}, {first.item.question})", "These fields were not checked; send the workbook the study issued",
                sheet="", site=self.site, subject=self.subject, category="structure"))
        return located

    def read(self) -> ReadSubject:
        keys, fieldmap = self.read_meta()
        self.check_identity(keys)
        study = self.study
        fields = field_table(study)
        located = self.locate(fields, fieldmap)
        record = SubjectRecord(study=study.id, site=self.site, subject=self.subject, form_version=keys.get("form_version"),
                               definition_hash=keys.get("definition_hash"), source=self.display)
        result = ReadSubject(record)
        result.unknown.update(f.path for f in fields if f.path not in located and f.item.is_input)
        self.report_sheets(fields, located, fieldmap, result)
        date1904 = self.package.date1904
        display = self.display
        unknown = result.unknown
        locations = record.locations
        visit_values: dict[str, dict[str, dict[str, Any]]] = {}
        log_rows: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        log_refs: dict[str, dict[int, dict[str, CellRef]]] = defaultdict(lambda: defaultdict(dict))
        log_issues: dict[str, dict[int, dict[str, ValueIssue]]] = defaultdict(lambda: defaultdict(dict))
        log_cached: dict[str, dict[int, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
        by_sheet: dict[str, list[tuple[_Spec, CellRef]]] = defaultdict(list)
        for f in fields:
            ref = located.get(f.path)
            if ref is not None and f.path not in unknown:
                by_sheet[ref.sheet].append((f, ref))
        inserted = sheet_scan.inserted_log_rows(
            study, by_sheet, self.rows, lambda log, item, r: _Spec(f"/logs/{log.id}/+{r}/{item.id}", "", item, log.id, log.form.id, -1, -1),
            CellRef)
        for spec, ref in inserted:
            by_sheet[ref.sheet].append((spec, ref))
        log_numbers: dict[str, dict[int, Optional[int]]] = defaultdict(dict)  # sheet row -> log row number (None: inserted)
        reported: set[tuple[str, str]] = set()  # (sheet, cell) of unreadable cells reported on their field
        for sheet, entries in by_sheet.items():  # one sheet at a time: its rows are read once
            rows = self.rows(sheet)
            height = len(rows)
            no_value = self.formula_cells_without_value(sheet)
            specials = self.cell_issues(sheet)
            for f, ref in entries:
                raw: Any = ""
                if ref.row < height:
                    row = rows[ref.row]
                    if ref.col < len(row):
                        raw = row[ref.col]
                item = f.item
                is_log = f.row is not None
                blank = raw == "" or raw is None or (raw.__class__ is str and not clean_text(raw))
                if is_log:
                    log_numbers[f.container].setdefault(ref.row, f.row + 1 if f.row >= 0 else None)  # type: ignore[operator]  # is_log: f.row is an int
                special = specials.get(ref.cell) if specials else None
                if special is not None and item.is_input and item.fixed is None and item.derived is None:
                    reported.add((sheet, ref.cell))  # a value that could not be read, or an Excel error value: on its field
                    if is_log:
                        log_refs[f.container][ref.row][item.id] = ref
                        log_rows[f.container].setdefault(ref.row, {})
                        log_issues[f.container][ref.row][item.id] = special
                    else:
                        locations[f.path] = Location(display, sheet, ref.cell)
                        visit_values.setdefault(f.container, {}).setdefault(f.form, {})
                        result.issues[f.path] = special
                    continue
                if blank and is_log:
                    log_refs[f.container][ref.row][item.id] = ref
                    if not item.is_input or ref.cell not in no_value:
                        continue
                if item.fixed is not None or item.derived is not None:
                    if not is_log:
                        locations[f.path] = Location(display, sheet, ref.cell)
                    if item.derived is not None and not blank:
                        value = convert(item, raw, date1904)
                        if not isinstance(value, ValueIssue) and value is not None:
                            if is_log:  # keyed by record row once the log's rows are numbered (below)
                                log_refs[f.container][ref.row][item.id] = ref
                                log_cached[f.container][ref.row][item.id] = value
                            else:
                                result.cached[f.path] = value
                    continue
                value = None
                issue: Optional[ValueIssue] = None
                if blank:
                    if ref.cell in no_value:
                        issue = ValueIssue("FORMULA-NO-VALUE", "(formula)", "holds a formula with no calculated value (the file was saved by a "
                                           "program that does not calculate formulas)", "Type the value itself instead of a formula, "
                                           "or open the file in Excel, save it and send it again", "a value")
                else:
                    converted = convert(item, raw, date1904)
                    if isinstance(converted, ValueIssue):
                        issue = converted
                    else:
                        value = converted
                if is_log:
                    log_refs[f.container][ref.row][item.id] = ref
                    if value is not None:
                        log_rows[f.container].setdefault(ref.row, {})[item.id] = value
                    elif issue is not None:
                        log_rows[f.container].setdefault(ref.row, {})
                        log_issues[f.container][ref.row][item.id] = issue
                    continue
                locations[f.path] = Location(display, sheet, ref.cell)
                if value is not None:
                    visit_values.setdefault(f.container, {}).setdefault(f.form, {})[item.id] = value
                elif issue is not None:
                    visit_values.setdefault(f.container, {}).setdefault(f.form, {})
                    result.issues[f.path] = issue
        # keep visits in schedule order, only those with something entered
        for key, visit in study.visit_keys(visit_values):
            record.visits[key] = {inst.name: visit_values[key][inst.name] for inst in visit.forms if inst.name in visit_values[key]}
        for log in study.logs:
            table = log_rows.get(log.id)
            if not table:
                continue
            record.logs[log.id] = []
            result.log_rows[log.id] = []
            for wb_row in sorted(table):  # in the order of the sheet, inserted rows where the site put them
                index = len(record.logs[log.id])
                record.logs[log.id].append(table[wb_row])
                number = log_numbers[log.id].get(wb_row)
                result.log_rows[log.id].append(number if number is not None else index + 1)
                for item_id, ref in log_refs[log.id][wb_row].items():
                    record.locations[f"/logs/{log.id}/{index}/{item_id}"] = Location(display, ref.sheet, ref.cell)
                for item_id, issue in log_issues[log.id][wb_row].items():
                    result.issues[f"/logs/{log.id}/{index}/{item_id}"] = issue
                for item_id, value in log_cached[log.id][wb_row].items():
                    result.cached[f"/logs/{log.id}/{index}/{item_id}"] = value
        read_cells: dict[str, set[tuple[int, int]]] = defaultdict(set)
        for sheet, entries in by_sheet.items():
            read_cells[sheet].update((ref.row, ref.col) for _, ref in entries)
        for f in fields:  # derived and fixed cells are the study's, read or not
            ref = located.get(f.path)
            if ref is not None:
                read_cells[ref.sheet].add((ref.row, ref.col))
        self.report_cut_cells(reported)
        self.findings.extend(sheet_scan.stray_values(study, display, self.site, self.subject, self.sheet_names, read_cells,
                                                     self.rows, {sheet: entries[0][0].container for sheet, entries in by_sheet.items() if entries}))
        return result

    def cell_issues(self, sheet: str) -> dict[str, ValueIssue]:
        """Cells of `sheet` whose value could not be read (taken out by crf.readers.sheet_xml) or hold an Excel error value."""
        scan = self.scans.get(sheet)
        if scan is None or not (scan.errors or scan.dropped):
            return {}
        out: dict[str, ValueIssue] = {}
        for cell, error in scan.errors.items():
            out[cell] = ValueIssue("CELL-ERROR", error, f"{show_value(error)} is an Excel error value (a formula or a paste that "
                                   "failed), not a value", "Type the value itself into the cell", "a value")
        for cut in scan.dropped:
            if cut.reason == "value":
                out[cut.cell] = ValueIssue("CELL-UNREADABLE", cut.value, f"{show_value(cut.value)} {cut.detail}",
                                           "Type the value into the cell again, save and send the workbook again", "a value")
        return out

    def report_cut_cells(self, reported: set[tuple[str, str]]) -> None:
        """Cells taken out before the reader saw them and not reported on a field: located findings, one kind per sheet."""
        for sheet, scan in sorted(self.scans.items()):
            for cut in scan.dropped:
                if cut.reason == "value" and (sheet, cut.cell) not in reported:
                    self.findings.append(file_finding(
                        self.display, "CELL-UNREADABLE", f"{show_value(cut.value)} {cut.detail}", sheet=sheet, cell=cut.cell,
                        site=self.site, subject=self.subject, value=cut.value))
            for reason, rule in (("far", "VALUE-OUTSIDE-FORM"), ("reference", "CELL-REFERENCE-INVALID")):
                cuts = [c for c in scan.dropped if c.reason == reason]
                if not cuts:
                    continue
                more = f" and {len(cuts) - 1} more cell(s) of this sheet" if len(cuts) > 1 else ""
                if reason == "far":
                    problem = (f"{cuts[0].detail} was typed at {cuts[0].cell}, far outside the form{more}, so it was not read")
                    fix = "Type each value in its input cell of the form; delete whatever was typed or pasted far outside it"
                    cell = cuts[0].cell
                else:
                    problem = (f"a cell has the impossible reference '{cuts[0].cell}' (it holds {cuts[0].detail}){more}; "
                               "it was not read")
                    fix = "The file was damaged or made by another program: open it in Excel, save it again as .xlsx and send that copy"
                    cell = ""
                self.findings.append(file_finding(self.display, rule, problem, fix, sheet=sheet, cell=cell, site=self.site,
                                                  subject=self.subject, category="structure", value=cuts[0].detail))

    def renamed(self, sheet: str, sheet_fields: list[_Spec], fieldmap: "_FieldMap") -> bool:
        """The field map names another sheet for this sheet's first field (Excel renamed the names with the sheet)."""
        ref = fieldmap.get(sheet_fields[0].path, sheet_fields[0].index)
        return ref is not None and ref.sheet != sheet

    def report_sheets(self, fields: list[_Spec], located: dict[str, CellRef], fieldmap: "_FieldMap", result: ReadSubject) -> None:
        """One finding per missing, renamed, damaged or oversized sheet; its fields become unknown."""
        by_sheet: dict[str, list[_Spec]] = defaultdict(list)
        for f in fields:
            ref = located.get(f.path)
            if ref is not None:
                by_sheet[ref.sheet].append(f)
        # Each file is looked at on its own: whether a sheet was renamed depends on its _meta field map too, so no
        # answer is kept from another file (the look reads one row of the field map per sheet, from the XML)
        check_renames = True
        for sheet, sheet_fields in sorted(by_sheet.items()):
            if sheet in self.sheet_names:
                if check_renames and self.renamed(sheet, sheet_fields, fieldmap):
                    old = next((ref.sheet for ref in (fieldmap.get(f.path, f.index) for f in sheet_fields[:1]) if ref), "")
                    self.findings.append(file_finding(
                        self.display, "SHEET-RENAMED", f"the sheet '{old}' was renamed to '{sheet}'",
                        "Its data were read through the cell names and nothing was lost; please do not rename sheets",
                        severity=Severity.WARNING, sheet=sheet, site=self.site, subject=self.subject, category="structure"))
                try:
                    self.rows(sheet)
                    continue
                except _SheetDamaged as exc:
                    problem, fix, rule = (f"the sheet cannot be read ({exc.detail})", "Open the file in Excel, save it and send it again", "SHEET-DAMAGED")
            else:
                forms = sorted({(f.container, f.form if not f.is_log else "") for f in sheet_fields})
                what = ", ".join(f"{c} {fm}".strip() for c, fm in forms[:4]) + (" ..." if len(forms) > 4 else "")
                problem = f"the sheet '{sheet}' is missing (deleted or renamed), with {len(sheet_fields)} fields ({what})"
                fix = "Send the complete workbook the study issued, with every sheet; these fields were not checked"
                rule = "SHEET-MISSING"
            visits = {f.container for f in sheet_fields}
            self.findings.append(file_finding(
                self.display, rule, problem, fix, sheet=sheet, site=self.site, subject=self.subject, category="structure",
                visit=visits.pop() if len(visits) == 1 else ""))
            result.unknown.update(f.path for f in sheet_fields)


class _SheetDamaged(Exception):
    def __init__(self, sheet: str, detail: str):
        super().__init__(sheet, detail)  # both in args: the exception must survive pickling between processes
        self.sheet = sheet
        self.detail = detail


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return safe_text(str(value))


def read_workbook(data: bytes, display: str, study: Study, limits: safety.Limits = safety.DEFAULT_LIMITS) -> tuple[ReadSubject, list]:
    """Parse a workbook held in memory into a subject and the reader's own findings (sheets, names, identity).

    Raises Unusable for a file that cannot be checked at all.
    """
    package = _open_package(data, display, limits)
    try:
        book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    except python_calamine.PasswordError:
        raise Unusable("PASSWORD-PROTECTED", "the workbook is protected by a password", "Remove the password and send it again")
    except Exception as exc:  # calamine raises several types for damaged packages
        raise Unusable("FILE-UNREADABLE", f"the workbook cannot be read ({type(exc).__name__}: {str(exc)[:120]})",
                       "Open it in Excel; if it opens, save it again as .xlsx and send that copy")
    reader = _Reader(study, display, package, book)
    try:
        subject = reader.read()
    except _SheetDamaged as exc:  # a sheet the reader needs before any field (Instructions, _meta)
        raise Unusable("SHEET-DAMAGED", f"the sheet '{exc.sheet}' is damaged and cannot be read ({exc.detail})",
                       "Open the file in Excel, save it again as .xlsx and send that copy", sheet=exc.sheet)
    finally:
        book.close()
        sanitised = reader.__dict__.get("_sanitised")
        if sanitised is not None:
            sanitised.close()
    return subject, reader.findings
