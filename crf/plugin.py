"""A study's own expression functions: a small Python module that study.json names (`"functions": "functions.py"`).

What a study needs beyond the generic language (the EDSS by the Neurostatus algorithm, what counts as an
attack's assessment) lives in its folder, not in crf/. The module defines, at its top level:

- `FUNCTIONS`: a tuple of `crf.expressions.Function` (name, the callable, argument kinds, result, a
  one-line description), registered like the built-in ones: the load-time checks of rules and x-derived
  expressions, and the generated function table, read them;
- `USES`: {form or log id: item ids} of every id its code names, checked against the study at load;
- `CONSTANTS`: names of the rules' constants it reads (rules/*.json `constants`), checked by the rules loader.

The module is run from its source (no bytecode is written into the study folder); its bytes are part of the
study's definition hash (crf/loader.py), so a changed plug-in is a changed definition. Every problem (the file
does not exist, does not run, lacks FUNCTIONS, a name that is not an identifier or is a function already)
is reported against the file, like a problem of a JSON file of the study.
"""
from __future__ import annotations

import hashlib
import sys
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

from .expressions import Function

@dataclass(frozen=True)
class StudyFunctions:
    """A study's plug-in module, loaded and checked in itself (the ids it uses are checked by the loader)."""

    file: str  # relative to the study folder, as study.json names it
    functions: tuple[Function, ...] = ()
    uses: tuple[tuple[str, tuple[str, ...]], ...] = ()  # USES as pairs: a Study is hashable
    constants: tuple[str, ...] = ()
    module: Optional[types.ModuleType] = field(default=None, compare=False, repr=False)  # its other names (tests call helpers)

    def by_name(self) -> dict[str, Function]:
        return {f.name: f for f in self.functions}


NO_FUNCTIONS = StudyFunctions("")


class PluginError(Exception):
    """Why a plug-in module cannot be used, in words for the person who wrote it."""


def load(folder: Path, file: str, taken: frozenset[str]) -> StudyFunctions:
    """Run `folder/file` and check what it defines; `taken` are the names of the language's own functions."""
    path = (folder / file).resolve()
    if path.suffix != ".py" or not path.is_relative_to(folder.resolve()):
        raise PluginError("must be a .py file inside the study folder")
    try:
        source = path.read_bytes()
    except OSError:
        raise PluginError("does not exist (or cannot be read)") from None
    module = _run(path, source)
    raw = getattr(module, "FUNCTIONS", None)
    if not isinstance(raw, (tuple, list)) or not all(isinstance(f, Function) for f in raw):
        raise PluginError("defines no FUNCTIONS, a tuple of crf.expressions.Function")
    seen: set[str] = set()
    for f in raw:
        if not f.name.isidentifier() or not f.name.islower():
            raise PluginError(f"function name {f.name!r} is not a lower-case identifier (expressions call it by name)")
        if f.name in taken:
            raise PluginError(f"{f.name}() is a function of the expression language already; give the study's own another name")
        if f.name in seen:
            raise PluginError(f"{f.name}() is defined twice in FUNCTIONS")
        if not callable(f.fn):
            raise PluginError(f"{f.name}(): its fn is not callable")
        seen.add(f.name)
    uses = getattr(module, "USES", {})
    if not isinstance(uses, Mapping) or not all(isinstance(k, str) and isinstance(v, (tuple, list)) and all(isinstance(i, str) for i in v)
                                                for k, v in uses.items()):
        raise PluginError("USES must be {form or log id: (item id, ...)}")
    constants = getattr(module, "CONSTANTS", ())
    if not isinstance(constants, (tuple, list)) or not all(isinstance(c, str) for c in constants):
        raise PluginError("CONSTANTS must be a tuple of the rules' constant names it reads")
    return StudyFunctions(file, tuple(raw), tuple((k, tuple(v)) for k, v in uses.items()),
                          tuple(constants), module)


def _run(path: Path, source: bytes) -> types.ModuleType:
    # one module per plug-in source: the same bytes loaded twice (two loads of one study) are one module
    digest = hashlib.sha256(str(path).encode() + b"\0" + source).hexdigest()
    name = f"open_ecrf_study_functions_{digest[:16]}"
    known = sys.modules.get(name)
    if known is not None:
        return known
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # dataclasses and typing look a class's module up there
    try:
        code = compile(source, str(path), "exec", dont_inherit=True)
        exec(code, module.__dict__)  # the study's own code, which the study's authors ship with the study
    except Exception as exc:  # noqa: BLE001  # any error of the plug-in's code is a problem of that file, never a traceback
        del sys.modules[name]
        where = _where(exc, str(path))
        raise PluginError(f"cannot be run{where}: {type(exc).__name__}: {exc}") from None
    return module


def _where(exc: BaseException, filename: str) -> str:
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f" (line {exc.lineno})"
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    return f" (line {lines[-1]})" if lines else ""

