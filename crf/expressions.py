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
from typing import Any, Callable, Mapping, Optional

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

    def references(self) -> set[str]:
        """Dotted field references used (`WEIGHT`, `VS_PRE.WEIGHT`, `SCR.IC.DSSTDAT`)."""
        refs: set[str] = set()
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.Name, ast.Attribute)) and not _is_call_target(self.tree, node):
                dotted = _dotted(node)
                if dotted:
                    refs.add(dotted)
        # keep only the longest spelling of each dotted chain
        return {r for r in refs if not any(o != r and o.startswith(r + ".") for o in refs)}

    def functions(self) -> set[str]:
        return {n.func.id for n in ast.walk(self.tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def _is_call_target(tree: ast.AST, node: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) and n.func is node for n in ast.walk(tree))


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
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ExpressionError(f"{type(node).__name__} is not allowed in expressions ({text!r})")
        if isinstance(node, ast.Attribute) and _dotted(node) is None:
            raise ExpressionError(f"only dotted field names may use '.' ({text!r})")
        if isinstance(node, ast.Call) and (not isinstance(node.func, ast.Name) or node.keywords):
            raise ExpressionError(f"only plain function calls f(a, b) are allowed ({text!r})")
    return Expression(text, tree)


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


BUILTINS: dict[str, Callable[..., Any]] = {
    "round": _numeric(lambda x, n=0: round(x, int(n)) if n else round(x)),
    "floor": _numeric(math.floor),
    "abs": _numeric(abs),
    "min": lambda *a: min(_present(*a)) if _present(*a) else MISSING,
    "max": lambda *a: max(_present(*a)) if _present(*a) else MISSING,
    "years_between": _years_between,
    "days_between": _days_between,
    "minutes_between": _minutes_between,
    "lookup": _lookup,
    "any_of": _any_of,
    "blank": lambda x: x is MISSING or x == "" or x == [],
    "date": _as_date,
}


class Scope:
    """What names mean while evaluating: field values, and functions beyond the builtins."""

    def __init__(self, resolve: Callable[[str], Any], functions: Optional[Mapping[str, Callable[..., Any]]] = None):
        self.resolve = resolve
        self.functions = {**BUILTINS, **(functions or {})}


def evaluate(expr: Expression, scope: Scope) -> Any:
    return _Evaluator(scope).visit(expr.tree.body)


class _Evaluator:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def visit(self, node: ast.AST) -> Any:
        method = getattr(self, "visit_" + type(node).__name__)
        return method(node)

    def visit_Constant(self, node: ast.Constant) -> Any:
        return node.value

    def visit_Name(self, node: ast.Name) -> Any:
        return self.scope.resolve(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        return self.scope.resolve(_dotted(node) or "")

    def visit_Tuple(self, node: ast.Tuple) -> Any:
        return tuple(self.visit(e) for e in node.elts)

    visit_List = visit_Tuple

    def visit_Dict(self, node: ast.Dict) -> Any:
        return {self.visit(k): self.visit(v) for k, v in zip(node.keys, node.values) if k is not None}

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        if isinstance(node.op, ast.And):
            return all(bool(self.visit(v)) for v in node.values)
        return any(bool(self.visit(v)) for v in node.values)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return not bool(value)
        if value is MISSING:
            return MISSING
        return -value if isinstance(node.op, ast.USub) else +value

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.visit(node.left), self.visit(node.right)
        if left is MISSING or right is MISSING:
            return MISSING
        try:
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if isinstance(node.op, ast.Div):
                return left / right
            if isinstance(node.op, ast.Mod):
                return left % right
            return left ** right
        except (TypeError, ZeroDivisionError, OverflowError):
            return MISSING

    def visit_Compare(self, node: ast.Compare) -> Any:
        left = self.visit(node.left)
        for op, comparator in zip(node.ops, node.comparators):
            right = self.visit(comparator)
            if not _compare(op, left, right):
                return False
            left = right
        return True

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        return self.visit(node.body) if bool(self.visit(node.test)) else self.visit(node.orelse)

    def visit_Call(self, node: ast.Call) -> Any:
        name = node.func.id  # type: ignore[attr-defined]
        fn = self.scope.functions.get(name)
        if fn is None:
            raise ExpressionError(f"unknown function {name}()")
        if getattr(fn, "lazy", False):  # gets the unevaluated argument nodes (count(LOG, condition))
            return fn(self, *node.args)
        return fn(*(self.visit(a) for a in node.args))


def _compare(op: ast.cmpop, left: Any, right: Any) -> bool:
    if isinstance(op, (ast.In, ast.NotIn)):
        inside = left in right if isinstance(right, (list, tuple, str)) and left is not MISSING else False
        return inside if isinstance(op, ast.In) else not inside
    if isinstance(op, ast.Eq):
        return left is not MISSING and left == right
    if isinstance(op, ast.NotEq):
        return left is not MISSING and right is not MISSING and left != right
    if left is MISSING or right is MISSING:
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
