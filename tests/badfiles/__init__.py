"""Bad returned files, made at test time from one good workbook (no binary files in the repository).

Each maker takes the good workbook's bytes (and the study) and returns (file name, bytes, expected
rule). Edits are made on the package itself, as Excel or a careless tool would leave it.
"""
from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Callable, Optional
from xml.sax.saxutils import escape

BadFile = tuple[str, bytes, str]


def parts(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def pack(files: dict[str, bytes], extra: Optional[Callable[[zipfile.ZipFile], None]] = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), content, compress_type=zipfile.ZIP_DEFLATED)
        if extra:
            extra(zf)
    return out.getvalue()


def sheet_part(files: dict[str, bytes], sheet: str) -> str:
    wb = files["xl/workbook.xml"].decode()
    rid = re.search(r'<sheet\b[^>]*\bname="' + re.escape(escape(sheet, {'"': "&quot;"})) + r'"[^>]*\br:id="(rId\d+)"', wb)[1]  # type: ignore[index]
    rels = files["xl/_rels/workbook.xml.rels"].decode()
    target = re.search(r'Target="([^"]+)" Id="' + rid + '"', rels) or re.search(r'Id="' + rid + r'"[^>]*Target="([^"]+)"', rels)
    return target[1].lstrip("/")  # type: ignore[index]


def name_ref(files: dict[str, bytes], name: str) -> tuple[str, str]:
    wb = files["xl/workbook.xml"].decode()
    ref = re.search(r'<definedName name="' + name + r'">([^<]+)</definedName>', wb)[1]  # type: ignore[index]
    sheet, cell = ref.rsplit("!", 1)
    return sheet.strip("'").replace("''", "'").replace("&apos;", "'"), cell.replace("$", "")


def set_cell(data: bytes, name: str, xml_inner: str, attrs: str = "") -> bytes:
    """Replace the cell behind a defined name with raw cell XML (`attrs` like ' t="inlineStr"')."""
    files = parts(data)
    sheet, cell = name_ref(files, name)
    part = sheet_part(files, sheet)
    xml = files[part].decode()
    pattern = re.compile(r'<c r="' + cell + r'"(?: [^>]*?)?(?:/>|>.*?</c>)', re.S)
    style = re.search(r'<c r="' + cell + r'"[^>]*?( s="\d+")', xml)
    new = f'<c r="{cell}"{style[1] if style else ""}{attrs}>{xml_inner}</c>'
    xml, n = pattern.subn(new, xml, count=1)
    assert n == 1, (name, cell)
    files[part] = xml.encode()
    return pack(files)


def set_text(data: bytes, name: str, text: str) -> bytes:
    return set_cell(data, name, f"<is><t xml:space=\"preserve\">{escape(text)}</t></is>", ' t="inlineStr"')


def set_number(data: bytes, name: str, number: float) -> bytes:
    return set_cell(data, name, f"<v>{number}</v>", ' t="n"')


def edit_meta(data: bytes, key: str, value: str) -> bytes:
    files = parts(data)
    part = sheet_part(files, "_meta")
    xml = files[part].decode()
    xml, n = re.subn(r'(<t>' + key + r'</t></is></c><c r="B\d+" t="inlineStr"><is><t>)[^<]*', r"\g<1>" + value, xml, count=1)
    assert n == 1
    files[part] = xml.encode()
    return pack(files)


def zip_bomb() -> bytes:
    def bomb(zf: zipfile.ZipFile) -> None:
        info = zipfile.ZipInfo("xl/worksheets/sheet1.xml", (1980, 1, 1, 0, 0, 0))
        zf.writestr(info, b"<worksheet>" + b" " * (60 * 1024 * 1024) + b"</worksheet>", compress_type=zipfile.ZIP_DEFLATED)
    return pack({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"}, bomb)


BILLION_LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10))
                  + b']>\n')


def encrypted_ole2() -> bytes:
    """The shape of an Excel file saved with a password: an OLE2 container with an EncryptedPackage stream."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    directory = "EncryptionInfo".encode("utf-16-le").ljust(128, b"\x00") + "EncryptedPackage".encode("utf-16-le").ljust(128, b"\x00")
    return header + directory + b"\x00" * 1024


def make_corpus(good: bytes, study_id: str, subject_json: dict) -> list[BadFile]:
    """Every bad file with the rule the validator must report for it."""
    files = parts(good)
    out: list[BadFile] = []
    add = out.append
    add(("not-a-zip.xlsx", b"This is a text file renamed to .xlsx\n", "FILE-NOT-XLSX"))
    add(("empty-file.xlsx", b"", "FILE-NOT-XLSX"))
    add(("truncated.xlsx", good[: len(good) // 2], "FILE-DAMAGED"))
    add(("password.xlsx", encrypted_ole2(), "PASSWORD-PROTECTED"))
    add(("legacy.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 2048, "FILE-NOT-XLSX"))
    damaged = dict(files)
    instructions = sheet_part(files, "Instructions")
    damaged[instructions] = files[instructions][: len(files[instructions]) // 2]
    add(("damaged-instructions.xlsx", pack(damaged), "SHEET-DAMAGED"))  # an error that must cross process boundaries
    add(("a-word-document.xlsx", pack({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<document/>"}), "FILE-NOT-XLSX"))
    # an empty workbook as a spreadsheet program writes it: no _meta, no names
    from openpyxl import Workbook
    buf = io.BytesIO()
    Workbook().save(buf)
    add(("empty-workbook.xlsx", buf.getvalue(), "NOT-A-CRF-WORKBOOK"))
    add(("other-study.xlsx", edit_meta(good, "study_id", "OTHER-TRIAL"), "WRONG-STUDY"))
    add(("old-form-version.xlsx", edit_meta(good, "form_version", "0.9"), "FORM-VERSION"))
    # a deleted sheet: Excel removes it and turns the names pointing at it into #REF!
    wb = files["xl/workbook.xml"].decode()
    deleted = dict(files)
    sheet = "V3 Day 28"
    deleted["xl/workbook.xml"] = re.sub(r"<sheet\b[^>]*\bname=\"" + sheet + r"\"[^>]*/>", "", wb).replace(f"'{sheet}'!", "#REF!").encode()
    add(("deleted-sheet.xlsx", pack(deleted), "SHEET-MISSING"))
    # a renamed sheet: Excel renames the references of the names too
    renamed = dict(files)
    renamed["xl/workbook.xml"] = wb.replace(f'name="{sheet}"', 'name="Week 4"').replace(f"'{sheet}'!", "'Week 4'!").encode()
    add(("renamed-sheet.xlsx", pack(renamed), "SHEET-RENAMED"))
    # a deleted defined name
    no_name = dict(files)
    no_name["xl/workbook.xml"] = re.sub(r'<definedName name="F_V1__VS_PRE__WEIGHT">[^<]*</definedName>', "", wb).encode()
    add(("deleted-name.xlsx", pack(no_name), "NAME-MISSING"))
    add(("text-in-number.xlsx", set_text(good, "F_V1__VS_PRE__WEIGHT", "seventy"), "NOT-A-NUMBER"))
    add(("impossible-date.xlsx", set_text(good, "F_V2__SV__SVSTDAT", "2023-02-30"), "DATE-INVALID"))
    add(("ambiguous-date.xlsx", set_text(good, "F_V2__SV__SVSTDAT", "03/04/2023"), "DATE-AMBIGUOUS"))
    add(("formula-no-value.xlsx", set_cell(good, "F_V1__VS_PRE__WEIGHT", "<f>70+1.5</f>"), "FORMULA-NO-VALUE"))
    add(("long-text.xlsx", set_text(good, "L_AE__R001__AETERM", "x" * 40_000), "FIELD-TOO-LONG"))
    add(("zip-bomb.xlsx", zip_bomb(), "ZIP-BOMB"))
    laughs = dict(files)
    part = sheet_part(files, "V1 Day 0")
    laughs[part] = BILLION_LAUGHS + files[part].replace(b"<sheetData>", b"<sheetData><!-- &lol9; -->", 1)
    add(("billion-laughs-sheet.xlsx", pack(laughs), "XML-UNSAFE"))
    laughs_wb = dict(files)
    laughs_wb["xl/workbook.xml"] = BILLION_LAUGHS + files["xl/workbook.xml"]
    add(("billion-laughs-workbook.xlsx", pack(laughs_wb), "XML-UNSAFE"))
    far = dict(files)
    part = sheet_part(files, "V2 Day 14")
    far[part] = far[part].replace(b"</sheetData>", b'<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row></sheetData>')
    add(("far-away-cell.xlsx", pack(far), "VALUE-OUTSIDE-FORM"))  # cut before the reader allocates its grid, reported where it is
    add(("subject-changed.xlsx", set_text(good, "SUBJECT_ID", "01-999"), "SUBJECT-CHANGED"))
    add(("not-json.json", b"{\"study\": \"BEL-NMOSD\", ", "FILE-NOT-JSON"))
    add(("other-study.json", json.dumps({**subject_json, "study": "OTHER-TRIAL"}).encode(), "WRONG-STUDY"))
    add(("notes.txt", b"hello", "FILE-TYPE"))
    return out
