"""The belimumab-NMOSD study's own expression functions (study.json `"functions"`; crf/plugin.py says how
they are loaded and checked): the EDSS by the Neurostatus algorithm, and the attack log's look at the EDSS
assessments around an attack (the last EDSS before it, the attack's own assessment, FS worsening).
"""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Optional

from crf.expressions import MISSING, Function, Thunk, lazy

if TYPE_CHECKING:
    from crf.rules.context import Frame, SubjectContext

# Every id the code below names, checked against the study when it is loaded.
FS_ITEMS = ("FSVIS", "FSBS", "FSPYR", "FSCRB", "FSSEN", "FSBB", "FSCBR")
USES = {
    "EDSS": ("RSDAT", "EDSS", "RSCONTXT", *FS_ITEMS),  # the EDSS form: date, score, context, the seven FS grades
    "CE": ("CESTDAT", "ATTEDSS"),  # the attack log: onset, the EDSS recorded with the attack
}
CONSTANTS = ("attack_edss_days",)  # rules/constants.json: the days after onset an attack's EDSS is due


# -- EDSS (Kurtzke / Neurostatus) -------------------------------------------------------------

EDSS_BY_AMBULATION = {3: 5.0, 4: 5.5, 5: 6.0, 6: 6.0, 7: 6.0, 8: 6.5, 9: 6.5, 10: 7.0, 11: 7.5, 12: 8.0,
                      13: 8.5, 14: 9.0, 15: 9.5, 16: 10.0}


def edss_from_fs(visual: int, brainstem: int, pyramidal: int, cerebellar: int, sensory: int,
                 bowel_bladder: int, cerebral: int) -> float:
    """EDSS step 0-5.5 from the functional-system grades (converted visual and bowel/bladder).

    Kurtzke's definitions as Neurostatus applies them to a fully ambulatory subject; cerebral grade 1
    does not count (EDSS 0 allows it).
    """
    grades = [visual, brainstem, pyramidal, cerebellar, sensory, bowel_bladder, 0 if cerebral == 1 else cerebral]
    n = {g: sum(1 for x in grades if x == g) for g in range(1, 7)}
    top = max(grades)
    if top == 0:
        return 0.0
    if top == 1:
        return 1.0 if n[1] == 1 else 1.5
    if top == 2:
        return {1: 2.0, 2: 2.5, 3: 3.0, 4: 3.0, 5: 3.5}.get(n[2], 4.0)
    if top == 3:
        if n[3] == 1:
            return 3.0 if n[2] == 0 else 3.5 if n[2] <= 2 else 4.0
        return 3.5 if n[3] == 2 and n[2] == 0 else 4.0
    if top == 4:
        return 4.0 if n[4] == 1 and n[3] == 0 and n[2] == 0 else 4.5
    if top == 5:
        return 5.0 if n[5] == 1 and n[4] == n[3] == n[2] == 0 else 5.5
    return 5.5


def edss_neurostatus(visual: Any, pyramidal: Any, sensory: Any, bowel_bladder: Any, brainstem: Any,
                     cerebellar: Any, cerebral: Any, ambulation: Any) -> Any:
    """EDSS from converted FS grades and the Neurostatus ambulation score (argument order of EDSSCALC).

    Ambulation 0-1 (fully ambulatory): the FS grades decide. 2 (walks 300-499 m): 4.5, or 5.0 when
    the FS grades give 5.0 or more. 3-4: the ambulation step or the FS step, whichever is higher.
    5-16: the ambulation step (spec EC-31 map).
    """
    args = (visual, pyramidal, sensory, bowel_bladder, brainstem, cerebellar, cerebral, ambulation)
    if any(not isinstance(a, (int, float)) or isinstance(a, bool) for a in args):
        return MISSING
    fs = edss_from_fs(int(visual), int(brainstem), int(pyramidal), int(cerebellar), int(sensory), int(bowel_bladder), int(cerebral))
    amb = int(ambulation)
    if amb <= 1:
        return fs
    if amb == 2:
        return 5.0 if fs >= 5.0 else 4.5
    step = EDSS_BY_AMBULATION.get(amb)
    if step is None:
        return MISSING
    return max(step, fs) if amb <= 4 else step


# -- EDSS across visits (attack log) -------------------------------------------------------------------

def _edss_frames(ctx: "SubjectContext") -> list[tuple[dt.date, "Frame"]]:
    cached = ctx.memo.get("edss-frames")
    if cached is None:
        cached = []
        for f in ctx.form_frames("EDSS"):
            d = f.resolve("RSDAT")
            if isinstance(d, dt.date):
                cached.append((d, f))
        cached.sort(key=lambda t: t[0])
        ctx.memo["edss-frames"] = cached
    return cached


def _before(ctx: "SubjectContext", date: Any) -> Optional["Frame"]:
    if not isinstance(date, dt.date):
        return None
    found = None
    for d, f in _edss_frames(ctx):
        if d < date and f.resolve("EDSS") is not MISSING:
            found = f
    return found


@lazy
def _last_edss_before(frame: "Frame", date: Thunk) -> Any:
    found = _before(frame.ctx, date(frame))
    return found.resolve("EDSS") if found is not None else MISSING


def _row_edss_frames(frame: "Frame") -> list[tuple[dt.date, "Frame"]]:
    """The dated EDSS forms that can assess the event of this log row.

    When a repeating visit is linked to the row's log (study.json `repeating.link`: each attack visit
    names its attack), the EDSS of the visits linked to this row; if none is linked to it, any EDSS
    except those of visits linked to another row. Without such a link, every dated EDSS.
    """
    ctx = frame.ctx
    every = _edss_frames(ctx)
    log = getattr(frame, "log", None)
    links = [v for v in ctx.study.visits if v.link is not None and v.link.log == log] if log else []
    if not links:
        return every
    own: set[str] = set()
    other: set[str] = set()
    for visit in links:
        link = visit.link
        assert link is not None
        mine = frame.resolve(link.log_item)
        for key in ctx.visit_keys(visit.id):
            value = ctx.field_value(key, link.form, link.item)
            if value is MISSING:
                continue
            (own if mine is not MISSING and value == mine else other).add(key)
    if own:
        return [(d, f) for d, f in every if f.visit in own]
    return [(d, f) for d, f in every if f.visit not in other]


def _attack_assessment(ctx: "SubjectContext", onset: Any, frames: Optional[list[tuple[dt.date, "Frame"]]] = None) -> Optional["Frame"]:
    """The first EDSS dated within attack_edss_days after onset (the attack assessment), if any, among `frames` (default: all)."""
    if not isinstance(onset, dt.date):
        return None
    limit = onset + dt.timedelta(days=ctx.constants["attack_edss_days"])
    for d, f in frames if frames is not None else _edss_frames(ctx):
        if onset <= d <= limit:
            return f
    return None


@lazy
def _fs_worsening(frame: "Frame", date: Thunk) -> Any:
    """'Y' when the attack assessment shows EDSS +0.5 or more, or >= 1 point in 2 FS, or >= 2 in 1 FS."""
    ctx = frame.ctx
    onset = date(frame)
    base = _before(ctx, onset)
    if base is None:
        return MISSING
    after = _attack_assessment(ctx, onset, _row_edss_frames(frame))
    base_edss = base.resolve("EDSS")
    if after is None:
        attack_edss = frame.resolve("ATTEDSS")
        if attack_edss is MISSING or base_edss is MISSING:
            return MISSING
        return "Y" if attack_edss - base_edss >= 0.5 else "N"
    new_edss = after.resolve("EDSS")
    if isinstance(new_edss, (int, float)) and isinstance(base_edss, (int, float)) and new_edss - base_edss >= 0.5:
        return "Y"
    rises = []
    for item in FS_ITEMS:
        a, b = base.resolve(item), after.resolve(item)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            rises.append(b - a)
    if not rises:
        return MISSING
    return "Y" if sum(1 for r in rises if r >= 1) >= 2 or any(r >= 2 for r in rises) else "N"


@lazy
def _attack_edss_status(frame: "Frame") -> Any:
    """ON TIME, LATE, PENDING, UNDATED or NOT ASSESSED: the EDSS assessment of the attack in this row."""
    ctx = frame.ctx
    onset = frame.resolve("CESTDAT")
    if not isinstance(onset, dt.date):
        return MISSING
    candidates = _row_edss_frames(frame)
    if _attack_assessment(ctx, onset, candidates) is not None:
        return "ON TIME"
    days = ctx.constants["attack_edss_days"]
    for d, f in candidates:
        if d > onset + dt.timedelta(days=days) and f.resolve("RSCONTXT") == "ATTACK":
            return "LATE"
    if ctx.today <= onset + dt.timedelta(days=days):
        return "PENDING"
    if frame.resolve("ATTEDSS") is not MISSING:
        return "UNDATED"
    return "NOT ASSESSED"


@lazy
def _edss_neurostatus(frame: "Frame", *args: Thunk) -> Any:
    return edss_neurostatus(*(a(frame) for a in args))


FUNCTIONS = (
    Function("last_edss_before", _last_edss_before, ("value date",), "number", "the EDSS of the last assessment dated before date"),
    Function("fs_worsening", _fs_worsening, ("value onset",), "text",
             "'Y' when the attack's assessment shows EDSS +0.5 or more, 1 point or more in 2 FS, or 2 or more in 1 FS"),
    Function("attack_edss_status", _attack_edss_status, (), "text",
             "ON TIME, LATE, PENDING, UNDATED or NOT ASSESSED: the EDSS assessment of the attack in this row"),
    Function("edss_neurostatus", _edss_neurostatus,
             ("value visual", "value pyramidal", "value sensory", "value bowel_bladder", "value brainstem", "value cerebellar",
              "value cerebral", "value ambulation"), "number",
             "the EDSS by the Neurostatus algorithm from converted FS grades and the ambulation score"),
)
