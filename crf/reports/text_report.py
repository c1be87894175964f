"""The terminal report: every finding's message, then counts by severity and by subject."""
from __future__ import annotations

from typing import Any

from ..findings import Severity


def render_text(result: Any) -> bytes:
    lines: list[str] = []
    current = None
    for f in result.findings:
        # the file too: a subject may be in several files, and findings of one file are listed together
        head = f"{f.site or '-'} / {f.subject or '(no subject)'}" + (f"  [{f.file}]" if f.subject and f.file else "")
        if head != current:
            lines += ["", head]
            current = head
        lines.append(f"  [{f.severity.value}] {f.rule}: {f.message}  (id {f.finding_id})")
    lines += ["", render_summary(result)]
    return ("\n".join(lines).lstrip("\n") + "\n").encode("utf-8")


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
