"""A per-user record of study definitions already checked, so that a run skips re-checking them.

Checking a definition against the meta-schemas (crf.loader) and its rules against the rules schema
(crf.rules) costs more than reading a subject's workbook; the result depends only on the bytes
checked and on the code and meta-schemas that check them. A definition that passed is remembered
under a key made of the definition hash (every definition file's bytes), the tool version, the
meta-schemas' bytes, the checking code's bytes and the Python version: change any of them and the
check runs again. Only success is remembered; a definition with problems is checked, and its
problems listed, every time.

Things computed from a definition alone (the texts the workbook writer puts on each sheet, which the reader
must recognise) are kept the same way (`computed` / `remember_computed`), under a key that also holds the
bytes of the code that computes them.

The record lives in $OPEN_ECRF_CACHE_DIR, else $XDG_CACHE_HOME/open-ecrf, else ~/.cache/open-ecrf.
OPEN_ECRF_CACHE=off disables it. An entry holds its own key; anything else there (a truncated or
foreign file, an unwritable folder) counts as "not checked", never as an error.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

from . import __version__

_PACKAGE = Path(__file__).resolve().parent
# The code and schemas whose verdict an entry stands for.
_CHECKERS = (_PACKAGE / "loader.py", _PACKAGE / "rules" / "engine.py")
_META = _PACKAGE.parent / "schemas" / "meta"


def enabled() -> bool:
    return os.environ.get("OPEN_ECRF_CACHE", "").strip().lower() not in ("0", "off", "no", "false")


def cache_dir() -> Path:
    explicit = os.environ.get("OPEN_ECRF_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "open-ecrf"


@lru_cache(maxsize=None)
def _tool_fingerprint() -> str:
    digest = hashlib.sha256(f"{__version__}\0{sys.version}\0".encode())
    files = [*_CHECKERS, *sorted(_META.glob("*.json"))]
    for path in files:
        try:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        except OSError:
            digest.update(path.name.encode() + b"\0missing\0")
    return digest.hexdigest()


def key(kind: str, definition_hash: str) -> str:
    return hashlib.sha256(f"{kind}\0{definition_hash}\0{_tool_fingerprint()}".encode()).hexdigest()


def _entry(kind: str, definition_hash: str) -> tuple[Path, str]:
    k = key(kind, definition_hash)
    return cache_dir() / "checked" / k[:2] / k, k


def was_checked(kind: str, definition_hash: str) -> bool:
    """True when this exact definition passed the `kind` check with this exact tool before."""
    if not enabled():
        return False
    path, k = _entry(kind, definition_hash)
    try:
        return path.read_text(encoding="ascii") == k
    except (OSError, UnicodeDecodeError, ValueError):
        return False


def remember_checked(kind: str, definition_hash: str) -> None:
    """Record a passed check; a cache that cannot be written is simply not used."""
    if not enabled():
        return
    path, k = _entry(kind, definition_hash)
    _write_atomic(path, k.encode("ascii"))


def _computed_entry(kind: str, definition_hash: str, code: Sequence[Path]) -> tuple[Path, str]:
    digest = hashlib.sha256(key(kind, definition_hash).encode())
    for path in code:
        try:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        except OSError:
            digest.update(path.name.encode() + b"\0missing\0")
    k = digest.hexdigest()
    return cache_dir() / "computed" / k[:2] / k, k


def computed(kind: str, definition_hash: str, code: Sequence[Path]) -> Optional[bytes]:
    """What `code` computed from this exact definition with this exact tool before, or None."""
    if not enabled():
        return None
    path, k = _computed_entry(kind, definition_hash, code)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head, _, body = data.partition(b"\n")
    return body if head == k.encode("ascii") else None


def remember_computed(kind: str, definition_hash: str, code: Sequence[Path], data: bytes) -> None:
    if not enabled():
        return
    path, k = _computed_entry(kind, definition_hash, code)
    _write_atomic(path, k.encode("ascii") + b"\n" + data)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp: Optional[str] = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the whole entry or none
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
