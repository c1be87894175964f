"""Checks that make an untrusted file safe to hand to a parser: zip bombs, XML entities, encryption.

A returned workbook comes from outside. Before python-calamine or an XML parser sees it, the zip
directory is checked against limits (entries, total uncompressed size, compression ratio), every
XML part is decompressed with a hard cap (the directory may lie about sizes) and its prolog is
checked for a DOCTYPE (entity-expansion attacks need one; SpreadsheetML never has one).
"""
from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from typing import IO, Optional

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class Limits:
    max_entries: int = 2_000
    max_total_bytes: int = 200 * 1024 * 1024  # uncompressed, whole package
    max_entry_bytes: int = 100 * 1024 * 1024
    max_ratio: float = 200.0  # uncompressed / compressed, for entries over ratio_floor
    ratio_floor: int = 1024 * 1024
    max_file_bytes: int = 100 * 1024 * 1024  # the file itself
    # the child process that reads and checks one file (crf.workers): beyond what it inherits, and wall time
    max_read_memory: int = 1536 * 1024 * 1024
    max_read_seconds: float = 180.0


DEFAULT_LIMITS = Limits()


class UnsafeFile(Exception):
    """The file is refused before parsing; `rule` is the finding's rule id."""

    def __init__(self, rule: str, problem: str, fix: str):
        super().__init__(problem)
        self.rule = rule
        self.problem = problem
        self.fix = fix


def sniff(head: bytes) -> str:
    """'zip', 'ole2' (encrypted OOXML or legacy .xls), 'json', 'pdf' or 'unknown' from the first bytes."""
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head.startswith(OLE2_MAGIC):
        return "ole2"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped[:1] in (b"{", b"["):
        return "json"
    if head.startswith(b"%PDF-"):
        return "pdf"
    return "unknown"


def ole2_is_encrypted(fh: IO[bytes]) -> bool:
    """An encrypted OOXML package is an OLE2 file holding an 'EncryptedPackage' stream."""
    fh.seek(0)
    data = fh.read(4 * 1024 * 1024)
    return "EncryptedPackage".encode("utf-16-le") in data or b"EncryptionInfo" in data or "EncryptionInfo".encode("utf-16-le") in data


def check_directory(zf: zipfile.ZipFile, limits: Limits = DEFAULT_LIMITS) -> None:
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise UnsafeFile("ZIP-BOMB", f"the file holds {len(infos)} parts, more than a workbook ever has ({limits.max_entries})",
                         "Send the workbook you received from the study, filled in; do not send this file.")
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise UnsafeFile("PASSWORD-PROTECTED", "the file is encrypted", "Remove the password (File > Info > Protect Workbook) and send it again.")
        total += info.file_size
        if info.file_size > limits.max_entry_bytes or total > limits.max_total_bytes:
            raise UnsafeFile("ZIP-BOMB", f"the file unpacks to more than {limits.max_total_bytes // (1024 * 1024)} MB, far more than a CRF workbook",
                             "Send the workbook you received from the study, filled in; this file was not checked.")
        if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise UnsafeFile("ZIP-BOMB", f"part {info.filename} is compressed {info.file_size // max(info.compress_size, 1)} times, as in a zip bomb",
                             "Send the workbook you received from the study, filled in; this file was not checked.")


def read_part(zf: zipfile.ZipFile, name: str, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Decompress one part with a hard cap, whatever its directory entry claims."""
    info = zf.getinfo(name)
    cap = min(limits.max_entry_bytes, max(info.file_size, 0)) + 1
    with zf.open(info) as fh:
        data = fh.read(cap)
    if len(data) >= cap:
        raise UnsafeFile("ZIP-BOMB", f"part {name} unpacks to more than its directory entry says",
                         "Send the workbook you received from the study, filled in; this file was not checked.")
    return data


def check_xml_prolog(name: str, data: bytes) -> None:
    """Refuse a DOCTYPE: the only way to declare the entities of a billion-laughs attack."""
    head = data[:4096]
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head or b"<!doctype" in head:
        raise UnsafeFile("XML-UNSAFE", f"part {name} declares XML entities (a DOCTYPE), which Excel never writes; it may be an attack",
                         "Send the workbook you received from the study, filled in; this file was not opened.")


def stream_check(zf: zipfile.ZipFile, name: str, limits: Limits = DEFAULT_LIMITS, keep: bool = False) -> Optional[bytes]:
    """Decompress a part in chunks to verify its true size and prolog; return it when `keep`."""
    info = zf.getinfo(name)
    cap = min(limits.max_entry_bytes, info.file_size)
    chunks: list[bytes] = []
    size = 0
    first = True
    with zf.open(info) as fh:
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                break
            if first and name.endswith((".xml", ".rels", ".vml")):
                check_xml_prolog(name, chunk)
                first = False
            size += len(chunk)
            if size > cap:
                raise UnsafeFile("ZIP-BOMB", f"part {name} unpacks to more than its directory entry says",
                                 "Send the workbook you received from the study, filled in; this file was not checked.")
            if keep:
                chunks.append(chunk)
    return b"".join(chunks) if keep else None


__all__ = ["Limits", "DEFAULT_LIMITS", "UnsafeFile", "sniff", "ole2_is_encrypted", "check_directory", "read_part",
           "check_xml_prolog", "stream_check", "zlib"]
