"""Findings kept on disk when there are many (issue 13, item 3): memory flat in the number of findings.

A run of a thousand workbooks can find a hundred thousand problems; held as Finding objects they would cost
more memory than everything else of the run. Past SPILL_AFTER findings, the run moves them into a temporary
SQLite file (deleted when the result is) with the columns of the reading order, and the result's `findings`
is a `SpilledFindings`: iterated in reading order straight from the file, one finding at a time, by every
report writer. The order and the dedupe are those of the in-memory path (crf.validation), so the reports'
bytes do not depend on which path a run took (tests/test_report_streaming.py).
"""
from __future__ import annotations

import os
import pickle
import sqlite3
import tempfile
from collections import defaultdict
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Optional, Protocol, Sequence, overload

from .findings import Finding, Severity

SPILL_AFTER = 20000  # findings held in memory before the run spills them (~1 KB each)
_BATCH = 2000

# reading_order's key, flattened: (site, subject, file, place, row, cell row, cell letters' length, cell letters,
# then Finding.sort_key: site, subject, file, visit, form, row, field, rule, severity order, message)
_KEY_COLUMNS = ("site", "subject", "file", "place", "row", "cell_row", "cell_len", "cell_col", "s_site", "s_subject",
                "s_file", "visit", "form", "s_row", "field", "rule", "severity", "message")


class SpilledFindings(Sequence[Finding]):
    """A run's findings in a temporary SQLite file, in reading order once `finish`ed."""

    def __init__(self, key: Callable[[Finding], tuple[Any, ...]]) -> None:
        self._key = key
        fd, path = tempfile.mkstemp(prefix="open-ecrf-findings-", suffix=".sqlite")
        os.close(fd)
        self._db = sqlite3.connect(path)
        self._path: Optional[str] = path
        try:  # gone from the folder at once (POSIX keeps the open file): nothing is left behind, whatever happens
            os.unlink(path)
            self._path = None
        except OSError:
            pass
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        columns = ", ".join(_KEY_COLUMNS)
        self._db.execute(f"CREATE TABLE spill (seq INTEGER PRIMARY KEY, fid TEXT, {columns}, needs_action INTEGER, "
                         "sev_value TEXT, visit_id TEXT, data BLOB, UNIQUE (fid, file))")
        self._seq = 0
        self._count = 0
        self._sorted = False

    def extended(self, findings: Sequence[Finding]) -> "SpilledFindings":
        """These findings added as they are (not deduplicated) and all sorted again: crf.store.with_store."""
        if findings:
            self.add(findings, dedupe=False)
            self.finish()
        return self

    def add(self, findings: Iterable[Finding], dedupe: bool = True) -> None:
        """Findings in the order the in-memory path would list them before sorting; a (finding id, file) seen
        before is dropped, as crf.validation._dedupe drops it."""
        rows = []
        key = self._key
        for f in findings:
            self._seq += 1
            k = key(f)
            cell = k[5]
            s = k[6]
            rows.append((self._seq, f.finding_id if dedupe else None, k[0], k[1], k[2], k[3], k[4], cell[0], cell[1], cell[2],
                         s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9],
                         int(f.severity.needs_action), f.severity.value, f.visit,
                         pickle.dumps(f, protocol=pickle.HIGHEST_PROTOCOL)))
            if len(rows) >= _BATCH:
                self._insert(rows)
                rows = []
        self._insert(rows)

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            marks = ", ".join("?" * (len(_KEY_COLUMNS) + 6))
            self._db.executemany(f"INSERT OR IGNORE INTO spill VALUES ({marks})", rows)

    def finish(self) -> "SpilledFindings":
        """Sorted once, into a table read in rowid order by every pass over the findings."""
        order = ", ".join(_KEY_COLUMNS) + ", seq"
        self._db.execute("DROP TABLE IF EXISTS sorted")
        self._db.execute(f"CREATE TABLE sorted AS SELECT site, subject, needs_action, sev_value, visit_id, data FROM spill ORDER BY {order}")
        self._db.commit()
        self._count = self._db.execute("SELECT count(*) FROM sorted").fetchone()[0]
        self._sorted = True
        return self

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Finding]:
        cursor = self._db.execute("SELECT data FROM sorted ORDER BY rowid")
        loads = pickle.loads
        while True:
            rows = cursor.fetchmany(_BATCH)
            if not rows:
                return
            for (data,) in rows:
                yield loads(data)

    @overload
    def __getitem__(self, index: int) -> Finding: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Finding]: ...
    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return list(self)[index]
        if index < 0:
            index += self._count
        row = self._db.execute("SELECT data FROM sorted WHERE rowid = ?", (index + 1,)).fetchone()
        if row is None:
            raise IndexError(index)
        return pickle.loads(row[0])

    def needs_action(self) -> bool:
        return self._db.execute("SELECT 1 FROM sorted WHERE needs_action LIMIT 1").fetchone() is not None

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Severity}
        for value, n in self._db.execute("SELECT sev_value, count(*) FROM sorted GROUP BY sev_value"):
            out[value] += n
        return out

    def counts_by_subject(self) -> dict[tuple[str, str], dict[str, int]]:
        out: dict[tuple[str, str], dict[str, int]] = {}
        for site, subject, value, n in self._db.execute("SELECT site, subject, sev_value, count(*) FROM sorted GROUP BY site, subject, sev_value"):
            out.setdefault((site, subject), {s.value: 0 for s in Severity})[value] = n
        return out

    def visits_by_subject(self) -> dict[tuple[str, str], Sequence["VisitSeverity"]]:
        """What the status grid needs of each subject's findings: their visit and severity."""
        out: dict[tuple[str, str], list[VisitSeverity]] = defaultdict(list)
        for site, subject, visit, value in self._db.execute(
                "SELECT DISTINCT site, subject, visit_id, sev_value FROM sorted WHERE visit_id != ''"):
            out[(site, subject)].append(_Seen(visit, Severity(value)))
        return dict(out)

    def close(self) -> None:
        self._db.close()
        if self._path is not None:
            try:
                os.unlink(self._path)
            except OSError:
                pass
            self._path = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # at interpreter exit the modules may be gone already
            pass

    def __reduce__(self) -> Any:  # a result sent to another process takes its findings as a list
        return (list, (list(self),))


class VisitSeverity(Protocol):
    """What the status grid reads of a finding (crf.validation.visit_statuses)."""

    @property
    def visit(self) -> str: ...

    @property
    def severity(self) -> Severity: ...


class _Seen(NamedTuple):
    visit: str
    severity: Severity


class Collector:
    """Outcomes as they come from the workers; past `spill_after` findings, their findings go to a SpilledFindings
    (and each outcome keeps only how many it had)."""

    def __init__(self, key: Callable[[Finding], tuple[Any, ...]], spill_after: Optional[int] = None) -> None:
        self._key = key
        self._spill_after = SPILL_AFTER if spill_after is None else spill_after
        self._held: list[Any] = []
        self._count = 0
        self.spill: Optional[SpilledFindings] = None

    def take(self, outcome: Any) -> Any:
        if self.spill is not None:
            self._move(outcome)
            return outcome
        self._held.append(outcome)
        self._count += len(outcome.findings)
        if self._count > self._spill_after:
            self.spill = SpilledFindings(self._key)
            for held in self._held:
                self._move(held)
            self._held = []
        return outcome

    def _move(self, outcome: Any) -> None:
        assert self.spill is not None
        self.spill.add(outcome.findings)
        outcome.spilled += len(outcome.findings)
        outcome.findings = []
