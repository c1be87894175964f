"""One deterministic writer of OOXML packages (.xlsx), for the CRF workbook (crf.xlsx: openpyxl's package, rewritten)
and the query listing (crf.reports.xlsx_report: its parts written directly, the rows streamed): the same content
gives the same bytes on any machine, any day.

What is fixed: every entry's timestamp (1980-01-01, the earliest a zip holds), its permissions (0600), the system
that "made" it (0: Python writes 3 on POSIX and 0 on Windows, so the bytes depended on the platform), the
compression (deflate, level 6) and the document properties' created/modified dates (FIXED_TIME). The entries stand
in the order they are written: the order openpyxl saved them in for the workbook (a function of its content), the
listing's own fixed order for the listing.
"""
from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from typing import IO, BinaryIO, Callable, Mapping, Optional

FIXED_TIME = dt.datetime(2000, 1, 1, 0, 0, 0)  # docProps created/modified
FIXED_STAMP = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
COMPRESS_LEVEL = 6

_CORE_DATES = re.compile(rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)")


def open_package(out: BinaryIO) -> zipfile.ZipFile:
    """A package to write parts into, in order (`out` may be a pipe: no seek needed)."""
    return zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL)


def entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info._compresslevel = COMPRESS_LEVEL  # type: ignore[attr-defined]  # ZipFile.open(info, "w") takes the level from the ZipInfo only
    info.external_attr = 0o600 << 16
    info.create_system = 0
    return info


def open_part(package: zipfile.ZipFile, name: str) -> IO[bytes]:
    """A part to stream into (a sheet of a million rows is never in memory)."""
    return package.open(entry(name), "w")


def write_part(package: zipfile.ZipFile, name: str, content: bytes) -> None:
    with open_part(package, name) as part:
        part.write(content)


def rewrite_package(data: bytes, rewrite: Optional[Mapping[str, Callable[[bytes], bytes]]] = None) -> bytes:
    """A saved package (openpyxl's) written again with the fixed entries and properties, its parts in their order;
    a part named in `rewrite` is passed through its function first."""
    rewrite = rewrite or {}
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, open_package(out) as dst:
        for name in src.namelist():
            content = src.read(name)
            if name in rewrite:
                content = rewrite[name](content)
            if name == "docProps/core.xml":
                content = _CORE_DATES.sub(rb"\g<1>" + FIXED_STAMP.encode("ascii") + rb"\g<3>", content)
            write_part(dst, name, content)
    return out.getvalue()
