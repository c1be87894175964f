"""Plain-text summary of a study definition, printed by `build_crf.py check`."""
from __future__ import annotations

from .model import Study, Visit


def _window(visit: Visit) -> str:
    w = visit.window
    repeats = f", repeats ({visit.repeat_sheets} sheets)" if visit.repeating else ""
    if visit.day is None and w.anchor == "day0":
        return "any day" + repeats  # off the schedule, nothing to count from
    if visit.day is None:
        return f"<= {w.after} d after {w.anchor}" + repeats
    if w.before == 0 and w.after == 0:
        return "anchor" if visit.day == 0 else "exact"
    if visit.kind == "screening":
        return f"day {visit.day - w.before} to {visit.day + w.after}"
    return f"-{w.before}/+{w.after} d"


def _dosing(study: Study) -> str:
    if study.dosing is None:
        return "Dosing: none defined"
    return (f"Dosing: {study.dosing.drug} {study.dosing.dose_mg_per_kg:g} mg/kg {study.dosing.route or ''}, vials "
            + ", ".join(f"{v:g} mg" for v in study.dosing.vial_sizes_mg))


def study_summary(study: Study) -> str:
    lines = [
        f"Study {study.id}: {study.title}",
        f"Registry {study.registry_id or '-'}; protocol version {study.protocol_version}; form version {study.form_version}",
        f"Definition {study.folder} (sha256 {study.definition_hash[:16]})",
        _dosing(study),
        "",
        f"Visits ({len(study.visits)}):",
        f"  {'visit':<5} {'day':>4}  {'window':<44} {'inf':>3} {'items':>5}  forms",
    ]
    for v in study.visits:
        day = "-" if v.day is None else str(v.day)
        items = sum(len(f.items) for f in v.forms)
        lines.append(f"  {v.id:<5} {day:>4}  {_window(v):<44} {v.infusion or '-':>3} {items:>5}  {' '.join(f.name for f in v.forms)}")
    lines += ["", f"Logs ({len(study.logs)}):"]
    for lg in study.logs:
        lines.append(f"  {lg.id:<5} {lg.label:<50} {lg.rows:>3} rows {len(lg.form.items):>3} items per row")
    forms = study.forms()
    lines += [
        "",
        f"{len(forms)} forms, {len(study.codelists)} code lists, {study.item_count()} collected items, "
        f"{len(study.assumptions)} assumptions marked",
    ]
    return "\n".join(lines)
