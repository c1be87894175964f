"""The one deterministic package writer (crf.ooxml_zip) of the CRF workbook and the query listing: the bytes depend
on the parts' content and order only, never on when, where or on which system the package was saved."""
from __future__ import annotations

import io
import zipfile

from crf.ooxml_zip import open_package, open_part, rewrite_package, write_part

CORE = (b'<cp:coreProperties xmlns:dcterms="http://purl.org/dc/terms/"><dcterms:created xsi:type="dcterms:W3CDTF">'
        b'2026-12-02T15:24:08Z</dcterms:created><dcterms:modified xsi:type="dcterms:W3CDTF">2026-12-02T15:31:00Z'
        b'</dcterms:modified></cp:coreProperties>')
SHEET = b'<worksheet><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>Query id</t></is></c></row></sheetData></worksheet>'
FIXED = {((1980, 1, 1, 0, 0, 0), 0, 0o600, zipfile.ZIP_DEFLATED)}


def _entries(data: bytes) -> set[tuple]:
    return {(i.date_time, i.create_system, i.external_attr >> 16, i.compress_type) for i in zipfile.ZipFile(io.BytesIO(data)).infolist()}


def _saved(date_time: tuple[int, int, int, int, int, int], create_system: int, level: int) -> bytes:
    """A package as a saving tool leaves it: its own timestamps, system and compression, parts not in name order."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in (("xl/worksheets/sheet1.xml", SHEET), ("docProps/core.xml", CORE), ("[Content_Types].xml", b"<Types/>")):
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.create_system = create_system
            info.external_attr = 0o644 << 16
            z.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=level)
    return buf.getvalue()


def test_a_rewritten_package_does_not_depend_on_when_or_where_it_was_saved():
    on_posix_today = rewrite_package(_saved((2026, 12, 2, 15, 24, 8), 3, 1))
    on_windows_last_year = rewrite_package(_saved((2025, 1, 31, 9, 0, 0), 0, 9))
    assert on_posix_today == on_windows_last_year
    z = zipfile.ZipFile(io.BytesIO(on_posix_today))
    assert z.namelist() == ["xl/worksheets/sheet1.xml", "docProps/core.xml", "[Content_Types].xml"]  # as saved
    assert _entries(on_posix_today) == FIXED
    core = z.read("docProps/core.xml")
    assert b">2000-01-01T00:00:00Z</dcterms:created>" in core and b">2000-01-01T00:00:00Z</dcterms:modified>" in core
    assert z.read("xl/worksheets/sheet1.xml") == SHEET


def test_a_rewritten_part():
    data = rewrite_package(_saved((2026, 12, 2, 15, 24, 8), 3, 6), {"[Content_Types].xml": lambda xml: xml.replace(b"/>", b' a="1"/>')})
    assert zipfile.ZipFile(io.BytesIO(data)).read("[Content_Types].xml") == b'<Types a="1"/>'


class _Pipe(io.RawIOBase):
    """Standard output when it is a pipe: written to, never told or sought."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.data += bytes(b)
        return len(b)


def test_parts_streamed_to_a_pipe():
    pipe = _Pipe()
    with open_package(pipe) as package:
        write_part(package, "[Content_Types].xml", b"<Types/>")
        with open_part(package, "xl/worksheets/sheet1.xml") as sheet:
            for chunk in (SHEET[:40], SHEET[40:]):
                sheet.write(chunk)
    z = zipfile.ZipFile(io.BytesIO(bytes(pipe.data)))
    assert z.testzip() is None and z.namelist() == ["[Content_Types].xml", "xl/worksheets/sheet1.xml"]
    assert z.read("xl/worksheets/sheet1.xml") == SHEET and _entries(bytes(pipe.data)) == FIXED


def test_the_workbook_and_the_query_listing_are_written_alike(mini_study):
    from crf.reports import render
    from crf.xlsx import workbook_bytes
    from tests.report_reference import reference_result

    assert _entries(workbook_bytes(mini_study, "01", "01-001")) == _entries(render(reference_result(mini_study), "xlsx")) == FIXED
