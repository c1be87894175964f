"""The workbook package: what the file is, the zip-bomb and XML guards, xl/workbook.xml and the head of `_meta`.

Before any parser sees the package it is checked by crf.readers.safety; the file is read once into
memory and never opened for writing.
"""
from __future__ import annotations

import hashlib
import io
import re
import xml.parsers.expat
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

from defusedxml.common import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

from .. import safety
from ..base import Unusable
from ..convert import clean_text

FIX_SEND_ORIGINAL = "Enter the data in the workbook the study sent for this subject and send that file"


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
        key = workbook_key(workbook_xml, rels_xml)
        book, rels = _parse_workbook_parts(workbook_xml, rels_xml, key)
    except DefusedXmlException:
        raise Unusable("XML-UNSAFE", "the workbook declares XML entities, which Excel never writes; it may be an attack",
                       "Send the workbook you received from the study, filled in; this file was not opened")
    except XmlDamaged as exc:
        raise Unusable("FILE-DAMAGED", f"the workbook's structure is damaged ({exc})", "Open it in Excel, save it again as .xlsx and send that copy")
    sheet_parts = {name: rels.targets.get(rid, "") for name, rid in book.sheets}
    defined = dict(book.names)  # a copy: the parsed result may be shared with later files
    date1904 = book.date1904
    return _Package(sheet_parts, defined, date1904, sheet_xml, key, data, shared_strings)


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
                texts[column] = xml_text(found.group(1).decode("utf-8"))
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


_PARSED: "OrderedDict[bytes, tuple[_WorkbookXml, _RelsXml]]" = OrderedDict()


def _parse_workbook_parts(workbook_xml: bytes, rels_xml: bytes, key: bytes) -> tuple["_WorkbookXml", "_RelsXml"]:
    """Parse xl/workbook.xml and its relationships; workbooks issued by one study are byte-identical
    here, so the result is kept for the next file with exactly these bytes (`key`: their digest, workbook_key)."""
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


class XmlDamaged(Exception):
    """The XML is not well formed (the message is expat's)."""


def _forbid_dtd(name: str, sysid: Optional[str], pubid: Optional[str], has_internal_subset: bool) -> None:
    raise DTDForbidden(name, sysid, pubid)


def _forbid_entity(name: str, is_parameter: bool, value: Optional[str], base: Optional[str], sysid: Optional[str],
                   pubid: Optional[str], notation: Optional[str]) -> None:
    raise EntitiesForbidden(name, value, base, sysid, pubid, notation)


def _forbid_unparsed_entity(name: str, base: Optional[str], sysid: Optional[str], pubid: Optional[str],
                            notation: Optional[str]) -> None:
    raise EntitiesForbidden(name, None, base, sysid, pubid, notation)


def _forbid_external(context: str, base: Optional[str], sysid: Optional[str], pubid: Optional[str]) -> int:
    raise ExternalReferenceForbidden(context, base, sysid, pubid)


def _sax_parse(data: bytes, handler: "_Handler") -> None:
    """Parse with expat, with defusedxml's protections: no DTD, no entities, no external references.

    These are the handlers defusedxml's expat reader installs, set here on a plain expat parser: its SAX
    layer costs 12 ms per workbook in per-element objects (3,000 defined names), and importing it 0.05 s
    (xml.sax.saxutils brings urllib.request, http and email), a tenth of checking one file.
    """
    parser = xml.parsers.expat.ParserCreate(None)
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_UNLESS_STANDALONE)
    parser.StartDoctypeDeclHandler = _forbid_dtd
    parser.EntityDeclHandler = _forbid_entity
    parser.UnparsedEntityDeclHandler = _forbid_unparsed_entity
    parser.ExternalEntityRefHandler = _forbid_external
    parser.buffer_text = True
    parser.ordered_attributes = False
    parser.StartElementHandler = handler.start
    parser.EndElementHandler = handler.end
    parser.CharacterDataHandler = handler.text
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as exc:
        raise XmlDamaged(str(exc)) from None


_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot|apos)|#([0-9]{1,7})|#x([0-9a-fA-F]{1,6}));")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}


def xml_text(raw: str) -> str:
    """The text of XML character data as written: the five entities and character references replaced."""
    if "&" not in raw:
        return raw

    def one(found: re.Match[str]) -> str:
        if found[1]:
            return _NAMED[found[1]]
        number = int(found[2], 10) if found[2] else int(found[3], 16)
        return chr(number) if 0 < number < 0x110000 and not 0xD800 <= number < 0xE000 else found[0]

    return _ENTITY.sub(one, raw)


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

