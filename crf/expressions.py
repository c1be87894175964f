"""A small, safe expression language for derived items and rules.

Expressions are parsed with Python's own parser (`ast`, mode "eval") and then checked against a
whitelist of node types: no attribute access beyond dotted field references, no subscripts,
no comprehensions, no lambdas. They are evaluated by walking the tree; nothing is ever passed
to `eval` or `exec`. The grammar is documented in docs/study-definition.md.
"""
from __future__ import annotations

import ast
import datetime as dt
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Mapping, Optional, Protocol

_ALLOWED = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.Mod,
    ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn,
    ast.IfExp, ast.Call, ast.Name, ast.Load, ast.Attribute, ast.Constant, ast.Dict, ast.Tuple, ast.List,
)


class ExpressionError(ValueError):
    """The expression text is not valid in the language."""


@dataclass(frozen=True)
class Expression:
    text: str
    tree: ast.Expression

    @cached_property
    def nodes(self) -> tuple[ast.AST, ...]:
        """Every node of the tree, walked once (the checks of a rule look at them several times)."""
        return tuple(ast.walk(self.tree))

    def references(self) -> set[str]:
        """Dotted field references used (`WEIGHT`, `VS_PRE.WEIGHT`, `SCR.IC.DSSTDAT`)."""
        refs: set[str] = set()
        nodes = self.nodes
        call_targets = {id(n.func) for n in nodes if isinstance(n, ast.Call)}  # one pass, not one walk per name
        for node in nodes:
            if isinstance(node, (ast.Name, ast.Attribute)) and id(node) not in call_targets:
                dotted = _dotted(node)
                if dotted:
                    refs.add(dotted)
        # keep only the longest spelling of each dotted chain
        return {r for r in refs if not any(o != r and o.startswith(r + ".") for o in refs)}

    def functions(self) -> set[str]:
        return {n.func.id for n in self.nodes if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def arity_problems(expr: "Expression", known: Mapping[str, "Function"]) -> list[str]:
    """Each call of a known function in `expr` with a number of arguments it does not take."""
    found = []
    for node in expr.nodes:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in known:
            wrong = known[node.func.id].wrong_arity(len(node.args))
            if wrong:
                found.append(f"{wrong}, in {expr.text!r}")
    return found


def _dotted(node: ast.AST) -> Optional[str]:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def parse(text: str) -> Expression:
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"cannot parse {text!r}: {exc.msg} at column {exc.offset}") from None
    expr = Expression(text, tree)
    for node in expr.nodes:
        if not isinstance(node, _ALLOWED):
            raise ExpressionError(f"{type(node).__name__} is not allowed in expressions ({text!r})")
        if isinstance(node, ast.Attribute) and _dotted(node) is None:
            raise ExpressionError(f"only dotted field names may use '.' ({text!r})")
        if isinstance(node, ast.Call) and (not isinstance(node.func, ast.Name) or node.keywords):
            raise ExpressionError(f"only plain function calls f(a, b) are allowed ({text!r})")
    return expr


class Missing:
    """A blank value: arithmetic with it gives Missing, comparisons give False."""

    _instance: Optional["Missing"] = None

    def __new__(cls) -> "Missing":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING = Missing()


def _as_date(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return MISSING
    return MISSING


def _partial_bounds(value: Any) -> tuple[Any, Any]:
    """(earliest, latest) date a full or partial date (YYYY, YYYY-MM, YYYY-MM-DD; UN/UNK parts) can stand for."""
    if isinstance(value, dt.date):
        return value, value
    if not isinstance(value, str):
        return MISSING, MISSING
    parts = value.strip().split("-")
    try:
        year = int(parts[0])
        if len(parts[0]) != 4:
            return MISSING, MISSING
        month = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        day = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() and month else None
        if month is None:
            return dt.date(year, 1, 1), dt.date(year, 12, 31)
        if day is None:
            last = (dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)).day
            return dt.date(year, month, 1), dt.date(year, month, last)
        return dt.date(year, month, day), dt.date(year, month, day)
    except (ValueError, IndexError):
        return MISSING, MISSING


def _earliest(value: Any) -> Any:
    return _partial_bounds(value)[0]


def _latest(value: Any) -> Any:
    return _partial_bounds(value)[1]


def _add_days(value: Any, days: Any) -> Any:
    d = _as_date(value)
    if d is MISSING or not isinstance(days, (int, float)):
        return MISSING
    return d + dt.timedelta(days=int(days))


def _words(text: str) -> str:
    return " " + " ".join("".join(c if c.isalnum() else " " for c in text.lower()).split()) + " "


def _contains_any(text: Any, terms: Any) -> bool:
    """True when one of `terms` starts a word of `text` (case-insensitive): 'depress' finds 'Depression'."""
    if not isinstance(text, str) or not text:
        return False
    words = _words(text)
    for term in terms if isinstance(terms, (list, tuple)) else [terms]:
        wanted = _words(str(term)).rstrip()
        if wanted.strip() and wanted in words:
            return True
    return False


def _count_of(value: Any, *values: Any) -> int:
    flat: list[Any] = []
    for v in values:
        flat.extend(v if isinstance(v, (list, tuple)) else [v])
    return sum(1 for v in flat if v is not MISSING and v == value)


def _years_between(start: Any, end: Any) -> Any:
    a, b = _as_date(start), _as_date(end)
    if a is MISSING or b is MISSING:
        return MISSING
    return b.year - a.year - ((b.month, b.day) < (a.month, a.day))


def _days_between(start: Any, end: Any) -> Any:
    a, b = _as_date(start), _as_date(end)
    if a is MISSING or b is MISSING:
        return MISSING
    return (b - a).days


def _minutes_between(d1: Any, t1: Any, d2: Any, t2: Any) -> Any:
    a, b = _as_date(d1), _as_date(d2)
    if a is MISSING or b is MISSING or not isinstance(t1, str) or not isinstance(t2, str):
        return MISSING
    try:
        s = dt.datetime.combine(a, dt.time.fromisoformat(t1))
        e = dt.datetime.combine(b, dt.time.fromisoformat(t2))
    except ValueError:
        return MISSING
    return (e - s).total_seconds() / 60


def _lookup(value: Any, table: Mapping[Any, Any]) -> Any:
    if value is MISSING:
        return MISSING
    for key, result in table.items():
        if key == value or (isinstance(key, str) and key == str(value)):
            return result
    return value


def _any_of(values: Any, *wanted: Any) -> bool:
    if not isinstance(values, (list, tuple)):
        values = [values]
    return any(v in wanted for v in values)


def _numeric(f: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any) -> Any:
        if any(a is MISSING for a in args):
            return MISSING
        return f(*args)
    return wrapper


def _present(*args: Any) -> list[Any]:
    return [a for a in args if a is not MISSING]


# -- the function registry ----------------------------------------------------------------------
# Each argument is written "kind name": a "container" (log or form id), "visit" or "item" argument is a
# bare id, read without evaluating it; a "condition" is evaluated once per row or form; a "table" is a
# {code: value} literal; a "value" is any expression. A name ending in "?" is optional, in "*" repeats.
ARGUMENT_KINDS = {
    "value": "",
    "container": "a log id or form id",
    "visit": "a visit id",
    "item": "an item id",
    "condition": "evaluated in each row or form",
    "table": "a {code: value} table",
}


class EvaluationScope(Protocol):
    """What an expression is evaluated in: `resolve` gives a name's value, `functions` the callable names.

    `Scope` below is the plain one; the rules engine's frames (crf/rules/context.py) are others.
    """

    @property
    def functions(self) -> Mapping[str, Callable[..., Any]]: ...

    def resolve(self, name: str) -> Any: ...
@dataclass(frozen=True)
class Function:
    """A function of the expression language, described for the load-time checks and the docs."""

    name: str
    fn: Callable[..., Any]
    args: tuple[str, ...]  # "kind name" of each argument (ARGUMENT_KINDS); name ends in "?" optional, "*" any number
    returns: str  # number, integer, date, boolean, text, list or any
    description: str

    def __post_init__(self) -> None:
        for arg in self.args:
            kind, _, name = arg.partition(" ")
            if kind not in ARGUMENT_KINDS or not name:
                raise ValueError(f"{self.name}(): argument {arg!r} is not 'kind name' with a kind of {sorted(ARGUMENT_KINDS)}")

    @property
    def lazy(self) -> bool:
        return bool(getattr(self.fn, "lazy", False))

    @property
    def first_kind(self) -> str:
        return self.args[0].partition(" ")[0] if self.args else ""

    def arity(self) -> tuple[int, Optional[int]]:
        """(fewest, most) arguments; most is None when the last one repeats."""
        fewest = sum(1 for a in self.args if not a.endswith(("?", "*")))
        return fewest, None if any(a.endswith("*") for a in self.args) else len(self.args)

    def wrong_arity(self, given: int) -> Optional[str]:
        """Why `given` arguments do not fit this function (for a load-time problem), or None when they do."""
        fewest, most = self.arity()
        if fewest <= given <= (most if most is not None else given):
            return None
        wanted = f"{fewest}" if fewest == most else f"{fewest} to {most}" if most is not None else f"at least {fewest}"
        return f"{self.name}() takes {wanted} argument(s), {self.signature()}, not {given}"

    def signature(self) -> str:
        """`count(log, condition?)`, with what a non-value argument must be: for the docs and messages."""
        parts = []
        for arg in self.args:
            kind, _, name = arg.partition(" ")
            parts.append(name + (f" ({ARGUMENT_KINDS[kind]})" if ARGUMENT_KINDS[kind] else ""))
        return f"{self.name}({', '.join(parts)})"


BUILTIN_FUNCTIONS: tuple[Function, ...] = (
    Function("round", _numeric(lambda x, n=0: round(x, int(n)) if n else round(x)), ("value x", "value n?"), "number",
             "x rounded to n decimals (default 0)"),
    Function("floor", _numeric(math.floor), ("value x",), "integer", "x rounded down to a whole number"),
    Function("abs", _numeric(abs), ("value x",), "number", "the absolute value of x"),
    Function("min", lambda *a: min(_present(*a)) if _present(*a) else MISSING, ("value x*",), "any",
             "the smallest of the values that are not blank"),
    Function("max", lambda *a: max(_present(*a)) if _present(*a) else MISSING, ("value x*",), "any",
             "the largest of the values that are not blank"),
    Function("years_between", _years_between, ("value start", "value end"), "integer", "whole years from start to end (an age)"),
    Function("days_between", _days_between, ("value start", "value end"), "integer", "days from start to end"),
    Function("minutes_between", _minutes_between, ("value date1", "value time1", "value date2", "value time2"), "integer",
             "minutes from date1 at time1 to date2 at time2"),
    Function("lookup", _lookup, ("value x", "table table"), "any", "the value the table gives for x (x itself when it is not in the table)"),
    Function("any_of", _any_of, ("value x", "value code*"), "boolean", "x, or one of the codes of a multiple-choice x, is one of the codes"),
    Function("blank", lambda x: x is MISSING or x is None or x == "" or x == [], ("value x",), "boolean", "x was not answered"),
    Function("date", _as_date, ("value x",), "date", "x as a date (blank when it is not one)"),
    Function("earliest", _earliest, ("value x",), "date", "the earliest day a full or partial date (YYYY, YYYY-MM) can stand for"),
    Function("latest", _latest, ("value x",), "date", "the latest day a full or partial date can stand for"),
    Function("add_days", _add_days, ("value date", "value days"), "date", "the date so many days after date"),
    Function("nz", lambda x, default=0: default if x is MISSING else x, ("value x", "value default?"), "any",
             "x, or the default (0) when x is blank"),
    Function("contains_any", _contains_any, ("value text", "value terms"), "boolean",
             "one of the terms starts a word of the text, whatever the case ('depress' finds 'Depression')"),
    Function("count_of", _count_of, ("value x", "value values*"), "integer", "how many of the values equal x (a list counts each element)"),
    Function("len", lambda x: len(x) if isinstance(x, (list, tuple, str)) else 0, ("value x",), "integer",
             "the number of codes of a multiple-choice answer, or of characters of a text"),
)
BUILTINS: dict[str, Callable[..., Any]] = {f.name: f.fn for f in BUILTIN_FUNCTIONS}


class Scope:
    """What names mean while evaluating: field values, and functions beyond the builtins."""

    def __init__(self, resolve: Callable[[str], Any], functions: Optional[Mapping[str, Callable[..., Any]]] = None):
        self.resolve = resolve
        self.functions = {**BUILTINS, **(functions or {})}


# -- compilation ---------------------------------------------------------------------------
# A checked tree is turned once into nested Python closures, each taking the Scope: evaluating
# is then a chain of plain function calls (several times faster than walking the tree each time,
# which matters for the rules: ~1000 evaluations per subject). Nothing is passed to eval or exec.

Compiled = Callable[[EvaluationScope], Any]


class Thunk:
    """An argument of a lazy function, not yet evaluated: `thunk(scope)` evaluates it in any scope.

    `name` is the dotted name when the argument is a bare name (`count(AE, ...)` reads the log id
    `AE` without evaluating it), else None. A function marked `fn.lazy = True` receives
    `(scope, *thunks)`, so it can evaluate a condition once per row in a scope of its own.
    """

    __slots__ = ("fn", "name", "text")

    def __init__(self, fn: Compiled, name: Optional[str], text: str):
        self.fn = fn
        self.name = name
        self.text = text

    def __call__(self, scope: EvaluationScope) -> Any:
        return self.fn(scope)


def lazy(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a function as lazy: it gets (scope, *thunks) instead of evaluated arguments."""
    fn.lazy = True  # type: ignore[attr-defined]  # a marker attribute on the function object
    return fn


_COMPILED: dict[str, Compiled] = {}


def compile_expression(expr: Expression) -> Compiled:
    """The expression as a function of a Scope (cached by text)."""
    fn = _COMPILED.get(expr.text)
    if fn is None:
        fn = _Compiler(expr.text).build(expr.tree.body)
        _COMPILED[expr.text] = fn
    return fn


def evaluate(expr: Expression, scope: EvaluationScope) -> Any:
    return compile_expression(expr)(scope)


def _binop(op: ast.operator) -> Callable[[Any, Any], Any]:
    import operator
    table: dict[type, Callable[[Any, Any], Any]] = {
        ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Mod: operator.mod, ast.Pow: operator.pow,
    }
    return table[type(op)]


class _Compiler:
    def __init__(self, text: str) -> None:
        self.text = text

    def build(self, node: ast.AST) -> Compiled:
        return getattr(self, "c_" + type(node).__name__)(node)

    def c_Constant(self, node: ast.Constant) -> Compiled:
        value = node.value
        return lambda s: value

    def c_Name(self, node: ast.Name) -> Compiled:
        name = node.id
        return lambda s: s.resolve(name)

    def c_Attribute(self, node: ast.Attribute) -> Compiled:
        name = _dotted(node) or ""
        return lambda s: s.resolve(name)

    def c_Tuple(self, node: ast.Tuple | ast.List) -> Compiled:
        parts = [self.build(e) for e in node.elts]
        return lambda s: [p(s) for p in parts]

    c_List = c_Tuple

    def c_Dict(self, node: ast.Dict) -> Compiled:
        pairs = [(self.build(k), self.build(v)) for k, v in zip(node.keys, node.values) if k is not None]
        return lambda s: {k(s): v(s) for k, v in pairs}

    def c_BoolOp(self, node: ast.BoolOp) -> Compiled:
        parts = [self.build(v) for v in node.values]
        if isinstance(node.op, ast.And):
            if len(parts) == 2:
                a, b = parts
                return lambda s: bool(a(s)) and bool(b(s))

            def all_of(s: EvaluationScope) -> bool:
                for p in parts:
                    if not p(s):
                        return False
                return True
            return all_of
        if len(parts) == 2:
            a, b = parts
            return lambda s: bool(a(s)) or bool(b(s))

        def any_of(s: EvaluationScope) -> bool:
            for p in parts:
                if p(s):
                    return True
            return False
        return any_of

    def c_UnaryOp(self, node: ast.UnaryOp) -> Compiled:
        operand = self.build(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda s: not bool(operand(s))
        negate = isinstance(node.op, ast.USub)

        def sign(s: EvaluationScope) -> Any:
            value = operand(s)
            if value is MISSING:
                return MISSING
            try:
                return -value if negate else +value
            except TypeError:
                return MISSING
        return sign

    def c_BinOp(self, node: ast.BinOp) -> Compiled:
        left, right, op = self.build(node.left), self.build(node.right), _binop(node.op)

        def binop(s: EvaluationScope) -> Any:
            a, b = left(s), right(s)
            if a is MISSING or b is MISSING:
                return MISSING
            try:
                return op(a, b)
            except (TypeError, ZeroDivisionError, OverflowError, ValueError):
                return MISSING
        return binop

    def c_Compare(self, node: ast.Compare) -> Compiled:
        first = self.build(node.left)
        rest = [(op, self.build(c)) for op, c in zip(node.ops, node.comparators)]
        if len(rest) == 1:
            op, right = rest[0]
            if isinstance(op, ast.Eq):
                def eq(s: EvaluationScope) -> bool:
                    a = first(s)
                    return a is not MISSING and a == right(s)
                return eq
            if isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE)):
                import operator
                fn = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}[type(op)]

                def order(s: EvaluationScope) -> bool:
                    a = first(s)
                    if a is MISSING:
                        return False
                    b = right(s)
                    if b is MISSING:
                        return False
                    try:
                        return bool(fn(a, b))
                    except TypeError:
                        return False
                return order
            return lambda s: _compare(op, first(s), right(s))

        def chain(s: EvaluationScope) -> bool:
            left = first(s)
            for op, comparator in rest:
                right = comparator(s)
                if not _compare(op, left, right):
                    return False
                left = right
            return True
        return chain

    def c_IfExp(self, node: ast.IfExp) -> Compiled:
        test, body, orelse = self.build(node.test), self.build(node.body), self.build(node.orelse)
        return lambda s: body(s) if bool(test(s)) else orelse(s)

    def c_Call(self, node: ast.Call) -> Compiled:
        name = node.func.id  # type: ignore[attr-defined]  # the checker allows only calls of plain names
        args = [self.build(a) for a in node.args]
        thunks = [Thunk(fn, _dotted(a), ast.unparse(a)) for fn, a in zip(args, node.args)]

        def call(s: EvaluationScope) -> Any:
            fn = s.functions.get(name)
            if fn is None:
                raise ExpressionError(f"unknown function {name}()")
            if getattr(fn, "lazy", False):
                return fn(s, *thunks)
            return fn(*(a(s) for a in args))
        return call


def _compare(op: ast.cmpop, left: Any, right: Any) -> bool:
    if left is MISSING:
        return False
    if isinstance(op, (ast.In, ast.NotIn)):
        # a blank value is neither in nor out of a list: `X not in [...]` is False when X is blank
        if not isinstance(right, (list, tuple, str)):
            return False
        inside = left in right
        return inside if isinstance(op, ast.In) else not inside
    if isinstance(op, ast.Eq):
        return left == right
    if isinstance(op, ast.NotEq):
        return right is not MISSING and left != right
    if right is MISSING:
        return False
    try:
        if isinstance(op, ast.Lt):
            return bool(left < right)
        if isinstance(op, ast.LtE):
            return bool(left <= right)
        if isinstance(op, ast.Gt):
            return bool(left > right)
        return bool(left >= right)
    except TypeError:
        return False
