"""The terminal report: every finding's message, then counts by severity and by subject."""
from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO, Optional

from ..findings import Severity


def write_text(result: Any, out: BinaryIO, path: Optional[Path] = None) -> None:
    """Findings grouped under their subject and file, a blank line between groups, then the summary."""
    current = None
    lines: list[str] = []
    for f in result.findings:
        # the file too: a subject may be in several files, and findings of one file are listed together
        head = f"{f.site or '-'} / {f.subject or '(no subject)'}" + (f"  [{f.file}]" if f.subject and f.file else "")
        if head != current:
            lines.append(("\n" if current is not None else "") + head)
            current = head
        lines.append(f"  [{f.severity.value}] {f.rule}: {f.message}  (id {f.finding_id})")
        if len(lines) >= 1000:
            out.write(("\n".join(lines) + "\n").encode("utf-8"))
            lines.clear()
    lines.append(("\n" if current is not None else "") + render_summary(result))
    out.write(("\n".join(lines) + "\n").encode("utf-8"))


def render_summary(result: Any) -> str:
    """Counts by severity and by subject, and whether anything needs action."""
    lines: list[str] = []
    counts = result.counts()
    lines += [f"{len(result.files)} file(s), {len(result.subjects)} subject(s) checked; "
              + ", ".join(f"{counts[s.value]} {s.value}" for s in Severity)]
    by_subject = result.counts_by_subject()
    if by_subject:
        lines.append("")
        lines.append(f"  {'site':<6} {'subject':<14} " + " ".join(f"{s.value.split()[0]:>8}" for s in Severity))
        for (site, subject), c in by_subject.items():
            lines.append(f"  {site or '-':<6} {subject or '(file)':<14} " + " ".join(f"{c[s.value]:>8}" for s in Severity))
    lines.append("")
    lines.append("Action needed: errors, queries or major deviations were found." if result.needs_action
                 else "Nothing needs action.")
    return "\n".join(lines)
