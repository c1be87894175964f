"""A JSON Schema validity test compiled to Python closures: the fast path of the field checks.

jsonschema builds an error object per keyword and resolves references as it goes, which costs
~100 ms per subject. Almost every returned visit is valid, so the field checks first ask this
compiled predicate; only a visit it finds invalid is validated again by jsonschema, which makes
the findings. The findings are therefore jsonschema's, unchanged, provided both agree on validity:
`compile_schema` raises Unsupported for any keyword it does not implement exactly (the caller then
always uses jsonschema), and tests compare the two on clean, planted and mutated records.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Callable, Iterable, Optional
from urllib.parse import urldefrag, urljoin

from .formats import Formats

Predicate = Callable[[Any], bool]

# keywords with no effect on validity
_ANNOTATIONS = frozenset({
    "$schema", "$id", "$comment", "$defs", "definitions", "title", "description", "default", "examples", "readOnly",
    "writeOnly", "deprecated", "$anchor", "contentMediaType", "contentEncoding",
})
_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


class Unsupported(Exception):
    """The schema uses something this compiler does not implement exactly."""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def equal(a: Any, b: Any) -> bool:
    """jsonschema's equality: booleans are not numbers, 1 == 1.0, containers compared deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
        return False
    return a == b


def _all_of(checks: list[Predicate]) -> Predicate:
    def every(v: Any) -> bool:  # a loop, not all() over a generator: this runs for every value of every form
        for check in checks:
            if not check(v):
                return False
        return True
    return every


def _properties(props: dict[str, Predicate]) -> Predicate:
    get = props.get

    def valid(v: Any) -> bool:
        if not isinstance(v, dict):
            return True
        for k, x in v.items():
            check = get(k)
            if check is not None and not check(x):
                return False
        return True
    return valid


class Compiler:
    def __init__(self, registry: Any, format_checker: Formats):
        self.registry = registry
        self.formats = format_checker
        self._refs: dict[str, Predicate] = {}

    def compile_ref(self, uri: str) -> Predicate:
        if uri in self._refs:
            return self._refs[uri]
        slot: list[Predicate] = []
        self._refs[uri] = lambda v: slot[0](v)  # recursion-safe placeholder
        base, fragment = urldefrag(uri)
        resolved = self.registry.resolver(base).lookup(uri if fragment else base)
        pred = self.compile(resolved.contents, base)
        slot.append(pred)
        self._refs[uri] = pred
        return pred

    def compile(self, schema: Any, base: str) -> Predicate:
        if schema is True:
            return lambda v: True
        if schema is False:
            return lambda v: False
        if not isinstance(schema, dict):
            raise Unsupported(f"schema {schema!r}")
        checks: list[Predicate] = []
        for key, value in schema.items():
            if key in _ANNOTATIONS or key.startswith("x-") or key in ("then", "else"):
                continue
            checks.append(self.keyword(key, value, schema, base))
        if not checks:
            return lambda v: True
        if len(checks) == 1:
            return checks[0]
        return _all_of(checks)

    def keyword(self, key: str, value: Any, schema: dict[str, Any], base: str) -> Predicate:
        if key == "$ref":
            uri = _join(base, value)
            if uri not in self._refs:  # looked up once: the same absolute URI is the same schema
                target = self.registry.resolver(base).lookup(value)
                target_base = urldefrag(uri)[0]
                slot: list[Predicate] = []
                self._refs[uri] = lambda v: slot[0](v)
                slot.append(self.compile(target.contents, target_base))
                self._refs[uri] = slot[0]
            ref = self._refs[uri]
            return lambda v: ref(v)
        if key == "type":
            names = value if isinstance(value, list) else [value]
            tests = [_TYPES[n] for n in names]
            if len(tests) == 1:
                return tests[0]
            return lambda v: any(t(v) for t in tests)
        if key == "enum":
            options = list(value)
            if options and all(o.__class__ is str for o in options):  # a code list: equal() is == for a text, False for anything else
                texts = frozenset(options)
                return lambda v: (v in texts) if v.__class__ is str else any(equal(v, o) for o in options)
            return lambda v: any(equal(v, o) for o in options)
        if key == "const":
            return lambda v: equal(v, value)
        if key == "minimum":
            return lambda v: not _is_number(v) or v >= value
        if key == "maximum":
            return lambda v: not _is_number(v) or v <= value
        if key == "exclusiveMinimum":
            return lambda v: not _is_number(v) or v > value
        if key == "exclusiveMaximum":
            return lambda v: not _is_number(v) or v < value
        if key == "maxLength":
            return lambda v: not isinstance(v, str) or len(v) <= value
        if key == "minLength":
            return lambda v: not isinstance(v, str) or len(v) >= value
        if key == "pattern":
            rx = re.compile(value)
            return lambda v: not isinstance(v, str) or rx.search(v) is not None
        if key == "format":
            conforms = self.formats.conforms
            return lambda v: conforms(v, value)
        if key == "required":
            wanted = frozenset(value)
            return lambda v: not isinstance(v, dict) or wanted <= v.keys()
        if key == "properties":
            props = {k: self.compile(s, base) for k, s in value.items()}
            return _properties(props)
        if key == "additionalProperties":
            if "patternProperties" in schema:
                raise Unsupported("patternProperties")
            known = set(schema.get("properties", {}))
            extra = self.compile(value, base)
            return lambda v: not isinstance(v, dict) or all(extra(x) for k, x in v.items() if k not in known)
        if key == "dependentRequired":
            deps = {k: list(names) for k, names in value.items()}
            return lambda v: not isinstance(v, dict) or all(all(n in v for n in deps[k]) for k in deps if k in v)
        if key == "allOf":
            parts = [self.compile(s, base) for s in value]
            return _all_of(parts)
        if key == "anyOf":
            parts = [self.compile(s, base) for s in value]
            return lambda v: any(p(v) for p in parts)
        if key == "oneOf":
            parts = [self.compile(s, base) for s in value]
            return lambda v: sum(1 for p in parts if p(v)) == 1
        if key == "not":
            inner = self.compile(value, base)
            return lambda v: not inner(v)
        if key == "if":
            cond = self.compile(value, base)
            then = self.compile(schema["then"], base) if "then" in schema else (lambda v: True)
            other = self.compile(schema["else"], base) if "else" in schema else (lambda v: True)
            return lambda v: then(v) if cond(v) else other(v)
        if key == "items":
            if "prefixItems" in schema:
                raise Unsupported("prefixItems")
            each = self.compile(value, base)
            return lambda v: not isinstance(v, list) or all(each(x) for x in v)
        if key == "minItems":
            return lambda v: not isinstance(v, list) or len(v) >= value
        if key == "maxItems":
            return lambda v: not isinstance(v, list) or len(v) <= value
        if key == "uniqueItems":
            if not value:
                return lambda v: True
            return lambda v: not isinstance(v, list) or all(not equal(v[i], v[j]) for i in range(len(v)) for j in range(i + 1, len(v)))
        if key == "minProperties":
            return lambda v: not isinstance(v, dict) or len(v) >= value
        if key == "maxProperties":
            return lambda v: not isinstance(v, dict) or len(v) <= value
        raise Unsupported(key)


@lru_cache(maxsize=4096)
def _join(base: str, ref: str) -> str:
    return urljoin(base, ref)


def compile_schema(registry: Any, uri: str, format_checker: Formats) -> Optional[Predicate]:
    """A validity predicate for the schema at `uri`, or None when it uses an unsupported keyword."""
    return compile_schemas(registry, [uri], format_checker)[uri]


def compile_schemas(registry: Any, uris: Iterable[str], format_checker: Formats) -> dict[str, Optional[Predicate]]:
    """`compile_schema` for each of `uris`, sharing what they refer to (the code lists, the item definitions): compiled once."""
    compiler = Compiler(registry, format_checker)
    out: dict[str, Optional[Predicate]] = {}
    for uri in uris:
        before = dict(compiler._refs)
        try:
            out[uri] = compiler.compile_ref(uri)
        except Unsupported:
            compiler._refs = before  # no half-compiled placeholder is left for the next schema
            out[uri] = None
    return out
