"""Carry a returned workbook of an older form version into a workbook of the current form version.

A study amendment raises the form version; sites still hold workbooks of the old one. Every value of
the old workbook is found by its field path (the old workbook's own defined names, then its `_meta`
field map), converted for the current item with the same path, and written into a fresh workbook of
the current version. What cannot be carried is listed exactly: a field the current forms no longer
have, or a value the current item does not accept. The old file is never modified.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import python_calamine

from .fieldmap import FieldPath, parse_defined_name
from .model import Study
from .readers import safety
from .readers.base import Unusable
from .readers.convert import ValueIssue, clean_text, convert
from .readers.xlsx import CellRef, _open_package, _Reader, field_table, parse_reference
from .subject import SubjectRecord
from .xlsx import workbook_bytes, workbook_name


@dataclass(frozen=True)
class NotCarried:
    path: str  # field path in the old workbook
    where: str  # sheet and cell of the old workbook
    value: Any
    reason: str


@dataclass
class Migration:
    source: str
    old_version: str
    site: str
    subject: str
    record: SubjectRecord
    carried: int = 0
    not_carried: list[NotCarried] = field(default_factory=list)

    def listing(self, target: Optional[Path]) -> str:
        lines = [f"{self.source}: form version {self.old_version} -> {self.record.form_version}, subject {self.subject} (site {self.site})",
                 f"  {self.carried} value(s) carried" + (f" into {target}" if target else ""),
                 f"  {len(self.not_carried)} value(s) not carried" + (":" if self.not_carried else "")]
        for n in self.not_carried:
            lines.append(f"    {n.where}  {n.path} = {n.value!r}: {n.reason}")
        return "\n".join(lines)


def _name_path(name: str) -> Optional[str]:
    parsed = parse_defined_name(name)
    if parsed is None:
        return None
    container, form, item, row = parsed
    return str(FieldPath.visit(container, form, item) if row is None else FieldPath.log(container, row, item))


def read_old(data: bytes, display: str, study: Study) -> Migration:
    """The values of an older-version workbook, converted for the current study, and what could not be."""
    package = _open_package(data, display, safety.DEFAULT_LIMITS)
    try:
        book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    except Exception as exc:  # calamine raises several types for damaged packages
        raise Unusable("FILE-UNREADABLE", f"the workbook cannot be read ({type(exc).__name__})", "Open it in Excel, save it again and retry")
    try:
        reader = _Reader(study, display, package, book)
        keys, fieldmap = reader.read_meta()
        if keys.get("study_id", "") != study.id:
            raise Unusable("WRONG-STUDY", f"this workbook belongs to study '{keys.get('study_id') or 'unknown'}', not to {study.id}",
                           "Migrate it with that study's definition")
        located: dict[str, CellRef] = dict(fieldmap._parsed())  # every field the old version had, as it wrote them
        for name, text in package.names.items():  # defined names move with inserted rows: they win
            named_path = _name_path(name)
            named_ref = parse_reference(text) if named_path else None
            if named_path and named_ref is not None:
                located[named_path] = named_ref
        current = {spec.path: spec for spec in field_table(study)}
        record = SubjectRecord(study=study.id, site=keys.get("site", ""), subject=keys.get("subject", ""),
                               form_version=study.form_version, definition_hash=study.definition_hash)
        migration = Migration(display, keys.get("form_version", ""), record.site, record.subject, record)
        log_rows: dict[str, dict[int, dict[str, Any]]] = {}
        for path, ref in sorted(located.items()):
            if ref.sheet not in reader.sheet_names:
                continue
            raw = reader.cell_value(ref)
            if raw is None or (isinstance(raw, str) and not clean_text(raw)):
                continue
            where = f"'{ref.sheet}'!{ref.cell}"
            spec = current.get(path)
            if spec is None:
                migration.not_carried.append(NotCarried(path, where, raw, f"form version {study.form_version} has no such field"))
                continue
            if not spec.item.is_input:
                continue  # derived and fixed values are recomputed in the new workbook
            value = convert(spec.item, raw, package.date1904)
            if isinstance(value, ValueIssue):
                migration.not_carried.append(NotCarried(path, where, raw, f"not accepted by the current item: {value.problem}"))
                continue
            if value is None:
                continue
            if spec.row is None:
                record.set(spec.container, spec.form, spec.item.id, value)
            else:
                log_rows.setdefault(spec.container, {}).setdefault(spec.row, {})[spec.item.id] = value
            migration.carried += 1
        for log in study.logs:
            rows = log_rows.get(log.id, {})
            if rows:  # row positions kept: row 3 stays row 3
                record.logs[log.id] = [rows.get(i, {}) for i in range(max(rows) + 1)]
        return migration
    finally:
        book.close()


def migrate_file(study: Study, source: Path, out_dir: Path) -> tuple[Migration, Path]:
    migration = read_old(source.read_bytes(), str(source), study)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / workbook_name(study, migration.subject)
    if target.resolve() == source.resolve():
        raise ValueError(f"{source}: the new workbook would overwrite the old one; give another --out folder")
    target.write_bytes(workbook_bytes(study, migration.site, migration.subject, migration.record))
    (out_dir / (target.stem + ".migration.txt")).write_text(migration.listing(target) + "\n", encoding="utf-8")
    return migration, target
