"""The study store (issue 14): returns kept, audit trail, query life cycle, reports; SQLite and PostgreSQL."""
from __future__ import annotations

import copy
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from crf.cli import queries_group, store_group, validate as validate_command
from tests.store_support import pg_bindir, pg_server_session

ROOT = Path(__file__).resolve().parent.parent
TODAY = "2026-11-25"
LISTING_ANSWERS = ("Site answer", "Corrected value", "Answered by", "Date answered")


@pytest.fixture(scope="session")
def pg():
    if pg_bindir() is None:
        pytest.skip("PostgreSQL server binaries are not installed; `make test` installs them (scripts/install-system-deps.sh --test)")
    yield from pg_server_session()


@pytest.fixture(autouse=True)
def loaded_once(study, monkeypatch):
    """The CLI loads the study definition on each call; here the session's copy is reused (its rules compiled once)."""
    import crf.cli
    real = crf.cli.load_study
    monkeypatch.setattr(crf.cli, "load_study", lambda folder: study if Path(folder).resolve() == study.folder.resolve() else real(folder))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "study.db")
    server = request.getfixturevalue("pg")
    return server.url(server.create_database())


def run_cli(command, args, code=None):
    result = CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=False)
    if code is not None:
        assert result.exit_code == code, result.output
    return result


def ingest(store, paths, received, fmt="json", code=1, extra=()):
    out = Path(tempfile.mkdtemp()) / f"report-{received[:10]}.{fmt}"
    result = run_cli(validate_command, [*paths, "--store", store, "--received", received, "--today", TODAY, "--jobs", "1",
                                        "--format", fmt, "--output", out, *extra], code)
    return result, out


def write_return(study, folder: Path, record) -> Path:
    from crf.xlsx import workbook_name, write_workbook
    folder.mkdir(parents=True, exist_ok=True)
    return write_workbook(study, folder / workbook_name(study, record.subject), record.site, record.subject, record)


def query_statuses(store, study, subject="01-001"):
    from crf.store.database import transaction
    from crf.store.schema import queries
    with transaction(store, study.id, create=False) as conn:
        return {(q.rule, q.visit, q.field): q.status for q in conn.execute(select(queries).where(queries.c.subject == subject))}


def history(store, subject="01-001"):
    return json.loads(run_cli(store_group, ["history", subject, "--store", store, "--format", "json"], 0).output)


_ANSWERED: dict[str, bytes] = {}  # listing bytes -> answered bytes: both backends issue the same listing, LibreOffice runs once


def answer_in_libreoffice(listing: Path, out: Path, answers: dict[tuple[str, str], dict[str, str]]) -> Path:
    """The site coordinator opens the listing in LibreOffice Calc, types answers in the yellow columns, saves."""
    import hashlib

    import openpyxl
    key = hashlib.sha256(listing.read_bytes()).hexdigest()
    if key in _ANSWERED:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(_ANSWERED[key])
        return out
    ws = openpyxl.load_workbook(listing)["Queries"]
    header = {c.value: c.column_letter for c in ws[1]}
    cells = {}
    for row in ws.iter_rows(min_row=2):
        for (rule, visit), typed in answers.items():
            rule_col = [c for c in row if c.column_letter == header["Rule"]][0].value
            visit_col = [c for c in row if c.column_letter == header["Visit"]][0].value
            if rule_col == rule and visit_col == visit:
                for column, value in typed.items():
                    cells[f"Queries!{header[column]}{row[0].row}"] = value
    assert cells, "no listing row matched the answers"
    if not shutil.which("soffice") or not Path("/usr/bin/python3").exists():
        pytest.skip("LibreOffice (soffice) with python3-uno is not installed; `make test` installs it")
    subprocess.run(["/usr/bin/python3", str(ROOT / "tests" / "lo_type_cells.py"), str(listing), str(out), json.dumps(cells)],
                   check=True, timeout=180)
    _ANSWERED[key] = out.read_bytes()
    return out


@pytest.fixture(scope="module")
def returns(study):
    """Three successive returns of subject 01-001 and what each changed.

    1: three planted problems (systolic below diastolic at the attack visit, a dose 15% low at V6, a required
       depression item blank at V6); 2: blood pressure corrected, and by hand a new problem: the screening systolic
       typed as 94 with diastolic 97 (spec EC-19: systolic must exceed diastolic); 3: the dose corrected; the blank item
       stays blank (the site answers it was not done) and the screening blood pressure stays (confirmed in source).
    """
    from crf.synth import planted_subject
    clean, first, descriptions = planted_subject(study, ["sbp-below-dbp", "dose-deviation", "missing-required"], seed=3, subject="01-001")
    assert "ATT#1/VS/SYSBP" in descriptions[0] and "V6" in descriptions[1] and "DEPSYMP" in descriptions[2]
    second = copy.deepcopy(first)
    second.visits["ATT#1"]["VS"].update(SYSBP=clean.visits["ATT#1"]["VS"]["SYSBP"], DIABP=clean.visits["ATT#1"]["VS"]["DIABP"])
    second.visits["SCR"]["VS"].update(SYSBP=94, DIABP=97)
    third = copy.deepcopy(second)
    third.visits["V6"]["EX"] = copy.deepcopy(clean.visits["V6"]["EX"])
    return clean, first, second, third


@pytest.fixture(scope="module")
def workbooks(study, returns, tmp_path_factory) -> dict[int, Path]:
    """The returns as the site's workbooks (written once: writing one costs more than checking it); 4: DEPSYMP filled in."""
    base = tmp_path_factory.mktemp("returns")
    fourth = copy.deepcopy(returns[3])
    fourth.visits["V6"]["DEP"]["DEPSYMP"] = "N"
    return {n: write_return(study, base / f"r{n}", record) for n, record in ((1, returns[1]), (2, returns[2]), (3, returns[3]), (4, fourth))}


def test_three_returns_statuses_audit_trail_listing_answers_and_dashboard(study, returns, workbooks, store_url, tmp_path):
    clean, first, second, third = returns
    r1 = workbooks[1]
    ingest(store_url, [r1], "2026-01-10T09:00")
    statuses = query_statuses(store_url, study)
    assert statuses == {("EC-19", "ATT#1", "SYSBP"): "open", ("PD-07", "V6", "EXDOSE"): "open",
                        ("EC-36", "V6", "EXDOSE"): "open", ("FIELD-REQUIRED", "V6", "DEPSYMP"): "open"}

    r2 = workbooks[2]
    ingest(store_url, [r2], "2026-02-07T09:00")
    statuses = query_statuses(store_url, study)
    assert statuses[("EC-19", "ATT#1", "SYSBP")] == "resolved"
    assert statuses[("EC-19", "SCR", "SYSBP")] == "open"
    assert statuses[("PD-07", "V6", "EXDOSE")] == statuses[("FIELD-REQUIRED", "V6", "DEPSYMP")] == "persisting"
    changes = {(c["return"], c["path"]): (c["old"], c["new"], c["sheet"], c["cell"]) for c in history(store_url)["changes"]}
    old_att = (first.visits["ATT#1"]["VS"]["SYSBP"], first.visits["ATT#1"]["VS"]["DIABP"])
    old_scr = (clean.visits["SCR"]["VS"]["SYSBP"], clean.visits["SCR"]["VS"]["DIABP"])
    assert {k: v[:2] for k, v in changes.items()} == {
        (2, "/visits/ATT#1/VS/SYSBP"): (old_att[0], clean.visits["ATT#1"]["VS"]["SYSBP"]),
        (2, "/visits/ATT#1/VS/DIABP"): (old_att[1], clean.visits["ATT#1"]["VS"]["DIABP"]),
        (2, "/visits/SCR/VS/SYSBP"): (old_scr[0], 94), (2, "/visits/SCR/VS/DIABP"): (old_scr[1], 97)}
    assert all(re.match(r"^[A-Z]+\d+$", cell) and sheet for _, _, sheet, cell in changes.values())

    # The data manager sends the listing; the site answers two queries in LibreOffice and returns it with workbook 3.
    listing = tmp_path / "queries-site-01.xlsx"
    run_cli(queries_group, ["listing", "--store", store_url, "--site", "01", "--output", listing], 0)
    answered = answer_in_libreoffice(listing, tmp_path / "r3" / "answered-listing.xlsx", {
        ("FIELD-REQUIRED", "V6"): {"Site answer": "Not done: the subject declined the questionnaire", "Answered by": "M. Rossi"},
        ("EC-19", "SCR"): {"Site answer": "Values confirmed in the source notes", "Answered by": "M. Rossi", "Date answered": "2026-03-01"}})
    _, report = ingest(store_url, [workbooks[3], answered], "2026-03-07T09:00")
    statuses = query_statuses(store_url, study)
    assert statuses == {("EC-19", "ATT#1", "SYSBP"): "resolved", ("EC-19", "SCR", "SYSBP"): "answered",
                        ("PD-07", "V6", "EXDOSE"): "resolved", ("EC-36", "V6", "EXDOSE"): "resolved",
                        ("FIELD-REQUIRED", "V6", "DEPSYMP"): "answered"}
    h = history(store_url)
    assert [r["return"] for r in h["returns"]] == [1, 2, 3]
    third_changes = {c["path"]: (c["old"], c["new"]) for c in h["changes"] if c["return"] == 3}
    assert third_changes["/visits/V6/EX/EXDOSE"] == (first.visits["V6"]["EX"]["EXDOSE"], clean.visits["V6"]["EX"]["EXDOSE"])
    required = [q for q in h["queries"] if q["rule"] == "FIELD-REQUIRED"][0]
    assert required["answer"] == "Not done: the subject declined the questionnaire"
    assert [e["event"] for e in required["events"]] == ["opened", "persisting", "answered", "persisting"]
    assert required["days_open"] == 56  # 2026-01-10 to 2026-03-07

    # The data manager closes the confirmed blood pressure; a fourth return still has it: it stays closed.
    scr = [q for q in h["queries"] if q["rule"] == "EC-19" and q["visit"] == "SCR"][0]
    run_cli(queries_group, ["close", scr["id"], "--reason", "confirmed as correct", "--by", "J. Smith", "--at", "2026-03-08",
                            "--store", store_url], 0)
    _, report = ingest(store_url, [workbooks[4]], "2026-04-04T09:00")  # exit 1: the closed finding is still in the report
    statuses = query_statuses(store_url, study)
    assert statuses[("EC-19", "SCR", "SYSBP")] == "closed"
    assert statuses[("FIELD-REQUIRED", "V6", "DEPSYMP")] == "resolved"

    # Dashboard counts agree with the JSON report of the same run.
    doc = json.loads(report.read_text())
    site = doc["store"]["sites"]["01"]
    assert site["by_status"] == {"open": 0, "persisting": 0, "answered": 0, "reopened": 0, "resolved": 4, "closed": 1}
    out = tmp_path / "dash"
    run_cli(store_group, ["dashboard", "--store", store_url, "--out", out], 0)
    html = (out / "dashboard-site-01.html").read_text()
    shown = {m[0]: int(m[1]) for m in re.findall(r'data-count="(\w+)">(\d+)<', html)}
    assert shown == {"waiting": site["waiting"], **site["by_status"]}
    ages = {m[0]: int(m[1]) for m in re.findall(r'data-age="([^"]+)">(\d+)<', html)}
    assert ages == site["waiting_by_age"]
    per_return = re.findall(r"<tr><td class=\"num\">(\d)</td><td>([\d-]+)</td><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td></tr>", html)
    assert per_return == [("1", "2026-01-10", "4", "0"), ("2", "2026-02-07", "1", "1"), ("3", "2026-03-07", "0", "2"),
                          ("4", "2026-04-04", "0", "1")]
    assert "<script" not in html and "<svg" in html


def test_same_file_sent_twice_is_not_a_new_return(study, workbooks, store_url, tmp_path):
    r1 = workbooks[1]
    ingest(store_url, [r1], "2026-01-10T09:00")
    copy_again = tmp_path / "again" / "renamed copy.xlsx"
    copy_again.parent.mkdir()
    shutil.copy(r1, copy_again)
    _, report = ingest(store_url, [copy_again], "2026-01-12T09:00")
    store = json.loads(report.read_text())["store"]
    assert store["new_returns"] == [] and store["already_received"][0]["first_received_as"].endswith("r1/BEL-NMOSD_01-001.xlsx")
    h = history(store_url)
    assert [r["return"] for r in h["returns"]] == [1] and h["changes"] == []
    assert {e["event"] for q in h["queries"] for e in q["events"]} == {"opened"}  # nothing persisting: not a new return


def test_history_tables_refuse_update_and_delete(study, workbooks, store_url, tmp_path):
    from sqlalchemy import create_engine
    from crf.store.database import target
    from crf.store.schema import APPEND_ONLY

    ingest(store_url, [workbooks[1]], "2026-01-10T09:00")
    ingest(store_url, [workbooks[2]], "2026-02-07T09:00")
    engine = create_engine(target(store_url).url)
    statements = {"value_changes": "UPDATE value_changes SET new_value = '1'", "item_values": "DELETE FROM item_values",
                  "query_events": "UPDATE query_events SET event = 'closed'", "inputs": "UPDATE inputs SET sha256 = 'x'",
                  "findings": "DELETE FROM findings", "store_info": "UPDATE store_info SET value = 'OTHER'"}
    assert set(statements) <= set(APPEND_ONLY)
    with engine.connect() as conn:
        counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in statements}
    assert all(counts.values())
    for table, sql in statements.items():
        with engine.connect() as conn:
            with pytest.raises(Exception, match="history is append-only"):
                conn.execute(text(sql))
                conn.commit()
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn, pytest.raises(Exception, match="history is append-only"):
            conn.execute(text("TRUNCATE value_changes CASCADE"))
    with engine.connect() as conn:
        assert {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in statements} == counts
        conn.execute(text("UPDATE queries SET message = message"))  # the current-state table is not history
    engine.dispose()


def test_store_of_another_study_or_a_newer_version_is_refused_and_nothing_is_written(study, workbooks, store_url, tmp_path):
    from sqlalchemy import create_engine
    from crf.store.database import target

    r1 = workbooks[1]
    ingest(store_url, [r1], "2026-01-10T09:00")
    engine = create_engine(target(store_url).url)

    def counts():
        with engine.connect() as conn:
            return [conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in ("runs", "inputs", "queries", "query_events")]
    before = counts()
    other = tmp_path / "other-study"
    shutil.copytree(ROOT / "tests" / "fixtures" / "mini-study", other)
    result = run_cli(validate_command, [r1, "--study", other, "--store", store_url, "--received", "2026-01-11"], 2)
    assert "belongs to study 'BEL-NMOSD'" in result.output and "nothing was written" in result.output
    assert "Traceback" not in result.output
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    result = run_cli(validate_command, [workbooks[2], "--store", store_url, "--received", "2026-02-07"], 2)
    assert "written by a newer version of open-ecrf (schema revision 9999_future" in result.output
    assert "upgrade open-ecrf" in result.output
    assert counts() == before
    engine.dispose()


def _rezipped(source: Path, target: Path) -> Path:
    """The same workbook, byte-different (saved again, with a zip comment): a second return with the same data."""
    import zipfile
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info.filename))
        dst.comment = b"saved again"
    assert target.read_bytes() != source.read_bytes()
    return target


def test_two_processes_ingesting_at_once_lose_nothing_and_never_duplicate_a_query(study, workbooks, store_url, tmp_path):
    from crf.store.database import transaction
    from crf.store.schema import inputs, queries, query_events

    run_cli(validate_command, [workbooks[2], "--store", store_url, "--received", "2026-01-01", "--jobs", "1", "-o", tmp_path / "r0.txt"], 1)
    twin = _rezipped(workbooks[1], tmp_path / "twin" / workbooks[1].name)
    procs = [subprocess.Popen([sys.executable, str(ROOT / "validate.py"), str(path), "--store", store_url, "--received", day,
                               "--jobs", "1", "--output", str(tmp_path / f"{day}.txt")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for path, day in ((workbooks[1], "2026-01-10"), (twin, "2026-01-10T00:00:01"))]
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [1, 1], outputs
    with transaction(store_url, study.id, create=False) as conn:
        numbers = sorted(conn.execute(select(inputs.c.return_number)).scalars())
        ids = list(conn.execute(select(queries.c.id)).scalars())
        opened = list(conn.execute(select(query_events.c.query_id).where(query_events.c.event == "opened")).scalars())
    assert numbers == [1, 2, 3]
    assert len(ids) == len(set(ids)) == 5  # the four first-return problems and the screening blood pressure
    assert len(opened) == len(set(opened))


def test_locked_store_is_one_clear_message_and_nothing_is_written(study, workbooks, tmp_path):
    store = tmp_path / "study.db"
    ingest(str(store), [workbooks[1]], "2026-01-10T09:00")
    before = store.read_bytes()
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another program writing
    try:
        result = run_cli(validate_command, [workbooks[2], "--store", store, "--received", "2026-02-07", "--store-wait", "0.2"], 2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "is in use by another program" in result.output and "nothing was written" in result.output
    assert "Traceback" not in result.output
    assert store.read_bytes() == before


READ_ONLY_CHILD = """
import os, sys
from pathlib import Path
import sqlite3, sqlalchemy.dialects.sqlite.pysqlite, alembic.command, alembic.config, alembic.script, alembic.runtime.migration
from crf.loader import load_study
from crf.store import StoreError, record_result
import crf.store.ingest, crf.store.database, crf.store.lifecycle
from crf.validation import validate
study = load_study(sys.argv[1])
result = validate(study, [Path(sys.argv[2])], jobs=1, keep_values=True)
if os.getuid() == 0:  # root may write anything: the store is opened as an unprivileged user, as a data manager would be
    os.setgid(65534)
    os.setuid(65534)
try:
    record_result(sys.argv[3], study, result, "2026-02-07T09:00:00", wait=1)
    print("WRITTEN")
except StoreError as exc:
    print("REFUSED", exc)
"""


def test_read_only_store_is_one_clear_message_and_inputs_are_untouched(study, workbooks):
    import hashlib
    import os

    folder = Path(tempfile.mkdtemp(prefix="ecrf-ro-"))
    try:
        store = folder / "study.db"
        ingest(str(store), [workbooks[1]], "2026-01-10T09:00")
        before = store.read_bytes()
        workbook = folder / "return.xlsx"
        shutil.copy(workbooks[2], workbook)
        digest = hashlib.sha256(workbook.read_bytes()).hexdigest()
        for path, mode in ((folder, 0o755), (store, 0o444), (workbook, 0o444)):
            os.chmod(path, mode)
        done = subprocess.run([sys.executable, "-c", READ_ONLY_CHILD, str(study.folder), str(workbook), str(store)],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert done.stdout.startswith("REFUSED"), done.stdout + done.stderr
        assert "cannot be written (read-only file or folder)" in done.stdout and "nothing was written" in done.stdout
        assert hashlib.sha256(workbook.read_bytes()).hexdigest() == digest and store.read_bytes() == before
    finally:
        os.chmod(folder, 0o700)
        shutil.rmtree(folder, ignore_errors=True)


def test_postgresql_down_or_wrong_password_is_one_clear_message(study, workbooks, pg, tmp_path):
    database = pg.create_database()
    wrong = run_cli(validate_command, [workbooks[1], "--store", pg.url(database, password="not-the-password"), "--received", "2026-01-10"], 2)
    assert "refused the password" in wrong.output and "not-the-password" not in wrong.output and "Traceback" not in wrong.output
    down = run_cli(validate_command, [workbooks[1], "--store", f"postgresql://ecrf:pw@/x?host={tmp_path}", "--received", "2026-01-10",
                                      "--store-wait", "1"], 2)
    assert "cannot connect to the PostgreSQL server" in down.output and "check that the server is running" in down.output
    assert ":pw@" not in down.output


def test_bad_listings_are_findings_and_record_nothing(study, workbooks, store_url, tmp_path):
    import openpyxl

    ingest(store_url, [workbooks[1]], "2026-01-10T09:00")
    listing = tmp_path / "listing.xlsx"
    run_cli(queries_group, ["listing", "--store", store_url, "--site", "01", "--output", listing], 0)

    def edited(name, change):
        wb = openpyxl.load_workbook(listing)
        ws = wb["Queries"]
        header = {c.value: c.column for c in ws[1]}
        for r in range(2, ws.max_row + 1):
            ws.cell(r, header["Site answer"]).value = "answered"
        change(wb, header)
        path = tmp_path / name
        wb.save(path)
        return path

    other_study = edited("other-study.xlsx", lambda wb, h: wb["About"].__setitem__("B1", "OTHER-TRIAL"))
    swapped = edited("swapped.xlsx", lambda wb, h: (wb["Queries"].cell(2, 1).__setattr__("value", wb["Queries"].cell(3, 1).value)))
    damaged = edited("damaged.xlsx", lambda wb, h: wb["Queries"].cell(2, 1).__setattr__("value", "12345"))
    other_site = edited("other-site.xlsx", lambda wb, h: wb["About"].__setitem__("B2", "02"))
    _, report = ingest(store_url, [other_study, swapped, damaged, other_site], "2026-01-12T09:00")
    found = {(f["file"].rsplit("/", 1)[-1], f["rule"], f["cell"]) for f in json.loads(report.read_text())["findings"]}
    assert ("other-study.xlsx", "LISTING-WRONG-STUDY", "B1") in found
    assert ("swapped.xlsx", "LISTING-ID-MISMATCH", "A2") in found
    assert ("damaged.xlsx", "LISTING-ID-DAMAGED", "A2") in found
    assert {("other-site.xlsx", "LISTING-OTHER-SITE", f"A{r}") for r in (2, 3, 4, 5)} <= found
    assert not any(rule == "NOT-A-CRF-WORKBOOK" for _, rule, _ in found)
    h = history(store_url)
    answered = {q["id"] for q in h["queries"] if q["answer"]}
    swapped_row = openpyxl.load_workbook(swapped)["Queries"]
    # only rows whose id matches their query were recorded, from the swapped and damaged listings
    assert answered == {swapped_row.cell(r, 1).value for r in (3, 4, 5)}
    statuses = query_statuses(store_url, study)
    assert sorted(statuses.values()) == ["answered", "answered", "answered", "open"]


def test_a_listing_without_store_is_recognised_not_a_bad_crf(study, workbooks, tmp_path):
    store = tmp_path / "study.db"
    ingest(str(store), [workbooks[1]], "2026-01-10T09:00")
    listing = tmp_path / "listing.xlsx"
    run_cli(queries_group, ["listing", "--store", store, "--site", "01", "--output", listing], 0)
    result = run_cli(validate_command, [listing, "--format", "json"], 0)
    assert "answered query listing; its answers are recorded only with --store" in result.output
    assert "NOT-A-CRF-WORKBOOK" not in result.output


def test_without_store_the_reports_are_the_same_bytes(study, workbooks):
    from crf.reports import FORMATS, render
    from crf.validation import validate

    plain = validate(study, [workbooks[1], workbooks[2]], jobs=1)
    keeping = validate(study, [workbooks[1], workbooks[2]], jobs=1, keep_values=True)
    assert all(o.values is None for o in plain.files) and all(o.values for o in keeping.files)
    for fmt in FORMATS:
        assert render(plain, fmt) == render(keeping, fmt), fmt


def _dump(store: str) -> dict:
    from sqlalchemy import create_engine
    from crf.store.database import target
    from crf.store.schema import metadata

    engine = create_engine(target(store).url)
    with engine.connect() as conn:
        out = {t.name: sorted([tuple(int(v) if isinstance(v, bool) else v for v in row) for row in conn.execute(select(t))], key=repr)
               for t in metadata.sorted_tables}
    engine.dispose()
    return out


def test_same_returns_give_the_same_store_and_report_bytes_in_sqlite_and_postgresql(study, workbooks, pg, tmp_path):
    stores = [str(tmp_path / "a.db"), str(tmp_path / "b.db"), pg.url(pg.create_database())]
    pages = []
    for store in stores:
        for n, day in ((1, "2026-01-10T09:00"), (2, "2026-02-07T09:00")):
            ingest(store, [workbooks[n]], day)
        out = tmp_path / f"dash-{len(pages)}"
        run_cli(store_group, ["dashboard", "--store", store, "--out", out], 0)
        run_cli(queries_group, ["listing", "--store", store, "--site", "01", "--output", out / "listing.xlsx"], 0)
        pages.append(((out / "dashboard-site-01.html").read_bytes(), (out / "listing.xlsx").read_bytes()))
    dumps = [_dump(s) for s in stores]
    assert dumps[0] == dumps[1] == dumps[2]
    assert dumps[0]["value_changes"] and dumps[0]["item_values"]
    assert pages[0] == pages[1] == pages[2]


def test_schema_matches_the_tables_and_a_store_opens_in_the_next_version(study, workbooks, store_url, tmp_path, monkeypatch):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from crf.store import database
    from crf.store.schema import metadata

    ingest(store_url, [workbooks[1]], "2026-01-10T09:00")
    with database.transaction(store_url, study.id, create=False) as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        assert database.current_revision(conn) == database.head_revision() == "0001"
    # The next version adds a revision; the store written by this one is upgraded in place, its history kept.
    future = tmp_path / "migrations"
    shutil.copytree(database.MIGRATIONS, future)
    (future / "versions" / "0002_reviewer.py").write_text(
        'import sqlalchemy as sa\nfrom alembic import op\nrevision = "0002"\ndown_revision = "0001"\n'
        'branch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n    op.add_column("queries", sa.Column("reviewer", sa.Text()))\n')
    monkeypatch.setattr(database, "MIGRATIONS", future)
    with database.transaction(store_url, study.id, create=False) as conn:
        assert database.current_revision(conn) == "0002"
        assert conn.execute(text("SELECT count(*) FROM queries WHERE reviewer IS NULL")).scalar() == 4
