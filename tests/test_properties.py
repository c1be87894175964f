"""Property-based: mutated workbooks and JSON documents never crash, hang or lose a file (issue 11).

Hypothesis mutates the study's own workbooks (cells, shared strings, parts, references, defined names)
and subject documents, and every run must hold the invariants a site and a data manager rely on:
the run ends (exit status 0 or 1), no traceback, every input is named in the report, every report
parses strictly (JSON without NaN or Infinity, text without terminal escapes), and no file reaches
the per-file time or memory limit (it would be a READER-TIMEOUT / READER-CRASHED finding).

The examples are derandomised (the same cases in every run of `make test`); HOSTILE_EXAMPLES=N runs
N examples of each property instead of the default few dozen, with fresh randomness.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from crf.readers.safety import Limits  # noqa: E402
from crf.reports import render  # noqa: E402
from crf.validation import validate  # noqa: E402
from crf.workers import can_isolate  # noqa: E402
from crf.xlsx import workbook_bytes  # noqa: E402
from tests.badfiles import pack, parts  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SUBJECT = ROOT / "tests" / "fixtures" / "subjects" / "01-901.json"
FILES_PER_EXAMPLE = 8  # one validate run per example: the per-run cost is shared by several files
CUSTOM = int(os.environ.get("HOSTILE_EXAMPLES", "0"))
EXAMPLES = CUSTOM or 24
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=not CUSTOM, database=None, print_blob=False,
                    phases=(Phase.explicit, Phase.generate),  # no shrinking: a failing example is shown as found
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
# per file: far above a normal workbook (under 2 s and 150 MB here), far below what a hostile one could take
LIMITS = Limits(max_read_seconds=90.0, max_read_memory=768 * 1024 * 1024)
pytestmark = pytest.mark.skipif(not can_isolate(), reason="isolated reading needs fork (POSIX)")


@pytest.fixture(scope="module")
def mini_parts(mini_study) -> dict[str, bytes]:
    """The mini study's own workbook for one subject, as issued (blank), split into its parts."""
    return parts(workbook_bytes(mini_study, "01", "01-001", None))


@pytest.fixture(scope="module")
def subject_doc() -> dict:
    return json.loads(SUBJECT.read_text())


@pytest.fixture(scope="module")
def warm(mini_study, mini_parts, tmp_path_factory):
    """Read one clean workbook in this process first, so that forked workers start with the study's caches."""
    folder = tmp_path_factory.mktemp("warm")
    (folder / "clean.xlsx").write_bytes(pack(mini_parts))
    validate(mini_study, [folder], jobs=1, isolate=False)
    return True


# -- the mutations ------------------------------------------------------------------------------------------
TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\x1b[2J", "\r", "\udfff", "\x00", "_x001B_", "_xD800_", "&amp;", "]]>", "x" * 5000]),
)
NUMBER_TEXT = st.one_of(
    st.sampled_from(["1e309", "-1e309", "1e400", "NaN", "inf", "-0", "9" * 400, "1x", "", " ", "0x10", "1,5"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers().map(str),
)
CELL_TYPE = st.sampled_from(["", "n", "s", "b", "e", "str", "inlineStr", "d", "zz"])
COLUMN = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=4)
ROW = st.one_of(st.integers(min_value=0, max_value=1_100_000), st.sampled_from([99_999_999_999, 1_048_576, 1_048_577]))


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .encode("utf-8", "surrogatepass").decode("utf-8", "replace"))


@st.composite
def cell_xml(draw, ref: str) -> str:
    kind = draw(CELL_TYPE)
    t = f' t="{kind}"' if kind else ""
    if kind == "inlineStr":
        return f'<c r="{ref}"{t}><is><t>{_escape(draw(TEXT))}</t></is></c>'
    if kind == "s":
        return f'<c r="{ref}"{t}><v>{draw(st.one_of(st.integers(min_value=-5, max_value=100_000).map(str), TEXT.map(_escape)))}</v></c>'
    value = draw(st.one_of(NUMBER_TEXT, TEXT.map(_escape), st.sampled_from(["#NUM!", "#VALUE!", "#BOGUS!", "#N/A", "TRUE", "x"])))
    formula = draw(st.sampled_from(["", "<f/>", "<f>1/0</f>", "<f>" + "A1+" * 50 + "1</f>"]))
    return f'<c r="{ref}"{t}>{formula}<v>{_escape(value)}</v></c>'


_CELL = re.compile(rb'<c r="([A-Z]+\d+)"[^>]*?(?:/>|>.*?</c>)', re.S)


@st.composite
def mutated_workbook(draw, base: dict[str, bytes]) -> bytes:
    files = dict(base)
    sheets = sorted(n for n in files if n.startswith("xl/worksheets/"))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        op = draw(st.sampled_from(["cell", "cell", "cell", "reference", "far-row", "shared-strings", "truncate", "bytes",
                                   "delete", "name", "dimension"]))
        part = draw(st.sampled_from(sheets))
        xml = files.get(part, b"")
        cells = _CELL.findall(xml)
        if op == "cell" and cells:
            ref = draw(st.sampled_from(cells)).decode()
            match = re.search(rb'<c r="' + ref.encode() + rb'"[^>]*?(?:/>|>.*?</c>)', xml, re.S)
            assert match
            files[part] = xml[:match.start()] + draw(cell_xml(ref)).encode("utf-8", "surrogatepass") + xml[match.end():]
        elif op == "reference" and cells:
            ref = draw(st.sampled_from(cells))
            files[part] = xml.replace(b'<c r="' + ref + b'"', f'<c r="{draw(COLUMN)}{draw(ROW)}"'.encode(), 1)
        elif op == "far-row":
            row = f'<row r="{draw(ROW)}">{draw(cell_xml(draw(COLUMN) + str(draw(ROW))))}</row>'.encode("utf-8", "surrogatepass")
            where = b"<sheetData>" if draw(st.booleans()) else b"</sheetData>"
            files[part] = xml.replace(where, where + row if where == b"<sheetData>" else row + where, 1)
        elif op == "shared-strings":
            texts = draw(st.lists(TEXT, max_size=5))
            items = "".join(f"<si><t>{_escape(t)}</t></si>" for t in texts)
            files["xl/sharedStrings.xml"] = (f'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="{len(texts)}" '
                                             f'uniqueCount="{len(texts)}">{items}</sst>').encode("utf-8", "surrogatepass")
        elif op == "truncate" and xml:
            files[part] = xml[: draw(st.integers(min_value=0, max_value=len(xml)))]
        elif op == "bytes" and xml:
            at = draw(st.integers(min_value=0, max_value=len(xml)))
            files[part] = xml[:at] + draw(st.binary(min_size=1, max_size=8)) + xml[at:]
        elif op == "delete":
            victim = draw(st.sampled_from(sorted(files)))
            files.pop(victim)
        elif op == "name":
            book = files.get("xl/workbook.xml", b"")
            names = re.findall(rb"<definedName name=\"[^\"]+\">([^<]+)</definedName>", book)
            if names:
                old = draw(st.sampled_from(names))
                new = draw(st.sampled_from([b"#REF!", b"'Nowhere'!$A$1", f"'{draw(COLUMN)}'!${draw(COLUMN)}${draw(ROW)}".encode()]))
                files["xl/workbook.xml"] = book.replace(b">" + old + b"<", b">" + new + b"<", 1)
        elif op == "dimension":
            files[part] = re.sub(rb'<dimension ref="[^"]*"/>', f'<dimension ref="A1:{draw(COLUMN)}{draw(ROW)}"/>'.encode(), xml, count=1)
    return pack(files)


JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), TEXT,
                      st.sampled_from(["__1e400__", "__NaN__", "__digits__"]))


@st.composite
def mutated_document(draw, doc: dict) -> bytes:
    doc = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        op = draw(st.sampled_from(["value", "value", "key", "rows", "drop", "type"]))
        visits = [v for v, forms in doc["visits"].items() if isinstance(forms, dict)] if isinstance(doc.get("visits"), dict) else []
        if op == "value" and visits:
            visit = draw(st.sampled_from(visits))
            forms = [f for f, v in doc["visits"][visit].items() if isinstance(v, dict)]
            if forms:
                form = draw(st.sampled_from(forms))
                items = list(doc["visits"][visit][form]) or ["X"]
                doc["visits"][visit][form][draw(st.sampled_from(items))] = draw(st.one_of(JSON_LEAF, st.lists(JSON_LEAF, max_size=3)))
        elif op == "key" and visits:
            visit = draw(st.sampled_from(visits))
            doc["visits"][draw(TEXT)] = doc["visits"].pop(visit)
        elif op == "rows" and isinstance(doc.get("logs"), dict) and doc["logs"]:
            log = draw(st.sampled_from(sorted(doc["logs"])))
            rows = doc["logs"][log]
            if isinstance(rows, list) and rows:
                doc["logs"][log] = rows * draw(st.integers(min_value=1, max_value=400)) if draw(st.booleans()) else \
                    [dict(rows[0], **{draw(TEXT): draw(JSON_LEAF)})]
        elif op == "drop" and doc:
            key = draw(st.sampled_from(sorted(doc)))
            doc.pop(key)
        elif op == "type":
            key = draw(st.sampled_from(["visits", "logs", "site", "subject", "study"]))
            doc[key] = draw(st.one_of(JSON_LEAF, st.lists(JSON_LEAF, max_size=2)))
    text = json.dumps(doc)
    text = text.replace('"__1e400__"', "1e400").replace('"__NaN__"', "NaN").replace('"__digits__"', "9" * 5000)
    if draw(st.booleans()):
        text = text[: draw(st.integers(min_value=0, max_value=len(text)))]  # cut short, as a failed copy leaves it
    return text.encode("utf-8", "surrogatepass")


# -- the invariants -------------------------------------------------------------------------------------------
def _no_constant(name: str):
    raise ValueError(f"{name} in a JSON report")


def _check_run(study, folder: Path, names: list[str]):
    result = validate(study, [folder], jobs=2, base=folder, limits=LIMITS)
    assert sorted(o.file for o in result.files) == sorted(names)  # every input named, none lost
    for finding in result.findings:
        assert finding.rule not in ("READER-TIMEOUT", "READER-CRASHED", "READER-FAILED", "CHECK-FAILED"), finding.message
        assert "Traceback" not in finding.message
    doc = json.loads(render(result, "json"), parse_constant=_no_constant)  # strict JSON: no NaN, no Infinity
    assert {i["file"] for i in doc["inputs"]} == set(names)
    for fmt in ("text", "csv", "html"):
        text = render(result, fmt).decode("utf-8")  # strict UTF-8: no lone surrogate reached a writer
        assert "\x1b" not in text and "\x00" not in text, fmt
        if fmt == "csv":
            list(csv.reader(io.StringIO(text)))
    assert result.needs_action in (True, False)  # exit status 0 or 1, never a crash
    return result


@SETTINGS
@given(data=st.data())
def test_mutated_workbooks_keep_the_invariants(mini_study, mini_parts, warm, tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("wb")
    (folder / "clean.xlsx").write_bytes(pack(mini_parts))  # one bad file never stops the others
    names = ["clean.xlsx"]
    for i in range(FILES_PER_EXAMPLE - 1):
        name = f"m{i}.xlsx"
        (folder / name).write_bytes(data.draw(mutated_workbook(mini_parts)))
        names.append(name)
    result = _check_run(mini_study, folder, names)
    clean = next(o for o in result.files if o.file == "clean.xlsx")
    assert clean.usable and not [f for f in clean.findings if f.category in ("file", "structure")]


@SETTINGS
@given(data=st.data())
def test_mutated_subject_documents_keep_the_invariants(study, subject_doc, tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("doc")
    names = []
    for i in range(FILES_PER_EXAMPLE):
        name = f"d{i}.json"
        (folder / name).write_bytes(data.draw(mutated_document(subject_doc)))
        names.append(name)
    _check_run(study, folder, names)
