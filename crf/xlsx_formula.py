"""Translate derived-item expressions (crf.expressions) into Excel formulas over defined names.

Only a subset of the language has an Excel equivalent that computes the same value; anything else
raises `Untranslatable`, and the workbook shows the item as "calculated by the data manager"
(docs/workbook-format.md). Translation follows the expression evaluator's semantics:

- `+ - * / ** %` -> `+ - * / ^ MOD()`; comparisons -> `= <> < <= > >=`; `and/or/not` -> AND/OR/NOT;
- `a if c else b` -> `IF(c, a, b)`; `x in (a, b)` -> `OR(x=a, x=b)`;
- round/floor/abs/min/max -> ROUND/INT/ABS/MIN/MAX;
- `years_between(a, b)` -> `DATEDIF(a, b, "Y")`; `days_between(a, b)` -> `b - a`;
- `lookup(x, {"k": v, ...})` -> nested `IF(x&""="k", v, ...)` falling back to x, as `lookup` does;
- `any_of(x, "A", ...)` -> a search for ";A;" in the "; "-joined multi-select text;
- `blank(x)` -> `x=""`; `date(x)` -> x (dates are real Excel dates); `None` (no value) -> `""`.

Blank inputs: the evaluator propagates MISSING through arithmetic, so a formula is wrapped in
`IF(OR(ref="", ...), "", IFERROR(expr, ""))`; expressions with conditions, lookups or min/max give
a value from partly blank inputs, so they are blank only when *all* their references are blank.
"""
from __future__ import annotations

import ast
from typing import Callable

from . import expressions


class Untranslatable(ValueError):
    """The expression uses something with no faithful Excel equivalent (count(), a custom function...)."""


_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "^"}
_CMPOPS = {ast.Eq: "=", ast.NotEq: "<>", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_SIMPLE_FUNCS = {"round": "ROUND", "floor": "INT", "abs": "ABS", "min": "MIN", "max": "MAX"}
_LENIENT = (ast.IfExp, ast.Compare, ast.BoolOp)  # nodes that make a value out of blanks


def _string(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _number(value: float) -> str:
    if isinstance(value, bool):
        raise Untranslatable("booleans")
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def constant_value(text: str):
    """The value of an expression that is a plain constant ("mg", 10), or None."""
    tree = expressions.parse(text).tree.body
    if isinstance(tree, ast.Constant) and isinstance(tree.value, (str, int, float)) and not isinstance(tree.value, bool):
        return tree.value
    return None


def translate(text: str, resolve: Callable[[str], str]) -> str:
    """An Excel formula (with leading '=') computing the expression; `resolve` maps a dotted
    reference to a defined name or raises Untranslatable."""
    expr = expressions.parse(text)
    tr = _Translator(resolve)
    body = tr.visit(expr.tree.body)
    refs = list(dict.fromkeys(tr.refs))
    if not refs:
        return f"=IFERROR({body},\"\")"
    lenient = any(isinstance(n, _LENIENT) for n in ast.walk(expr.tree)) or bool(
        expr.functions() & {"lookup", "min", "max", "any_of", "blank"})
    test = ",".join(f'{r}=""' for r in refs)
    if len(refs) > 1:
        test = f"{'AND' if lenient else 'OR'}({test})"
    return f'=IF({test},"",IFERROR({body},""))'


class _Translator:
    def __init__(self, resolve: Callable[[str], str]):
        self.resolve = resolve
        self.refs: list[str] = []

    def visit(self, node: ast.AST) -> str:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise Untranslatable(f"{type(node).__name__} has no Excel equivalent")
        return method(node)

    def ref(self, node: ast.AST) -> str:
        dotted = expressions._dotted(node)
        if not dotted:
            raise Untranslatable("not a field reference")
        name = self.resolve(dotted)
        self.refs.append(name)
        return name

    visit_Name = ref
    visit_Attribute = ref

    def visit_Constant(self, node: ast.Constant) -> str:
        if node.value is None:  # "no value", as the evaluator leaves a derived item blank
            return '""'
        if isinstance(node.value, str):
            return _string(node.value)
        if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return _number(node.value)
        raise Untranslatable(f"constant {node.value!r}")

    def visit_UnaryOp(self, node: ast.UnaryOp) -> str:
        inner = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return f"NOT({inner})"
        return f"(-({inner}))" if isinstance(node.op, ast.USub) else inner

    def visit_BinOp(self, node: ast.BinOp) -> str:
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(node.op, ast.Mod):
            return f"MOD({left},{right})"
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise Untranslatable(type(node.op).__name__)
        return f"({left}{op}{right})"

    def visit_BoolOp(self, node: ast.BoolOp) -> str:
        fn = "AND" if isinstance(node.op, ast.And) else "OR"
        return f"{fn}({','.join(self.visit(v) for v in node.values)})"

    def visit_Compare(self, node: ast.Compare) -> str:
        parts = []
        left = node.left
        for op, right in zip(node.ops, node.comparators):
            a = self.visit(left)
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(right, (ast.Tuple, ast.List)):
                    raise Untranslatable("'in' needs a literal list")
                test = f"OR({','.join(f'{a}={self.visit(e)}' for e in right.elts)})"
                parts.append(test if isinstance(op, ast.In) else f"NOT({test})")
            else:
                b = self.visit(right)
                if isinstance(op, ast.NotEq):  # blank != x is False in the evaluator
                    parts.append(f"AND({a}<>\"\",{b}<>\"\",{a}<>{b})")
                elif isinstance(op, ast.Eq):
                    parts.append(f"({a}={b})")
                else:  # a comparison with a blank is False
                    parts.append(f"AND({a}<>\"\",{b}<>\"\",{a}{_CMPOPS[type(op)]}{b})")
            left = right
        return parts[0] if len(parts) == 1 else f"AND({','.join(parts)})"

    def visit_IfExp(self, node: ast.IfExp) -> str:
        return f"IF({self.visit(node.test)},{self.visit(node.body)},{self.visit(node.orelse)})"

    def visit_Call(self, node: ast.Call) -> str:
        name = node.func.id  # type: ignore[attr-defined]  # the expression checker allows only calls of plain names
        args = node.args
        if name in _SIMPLE_FUNCS:
            if name == "round" and len(args) == 1:
                return f"ROUND({self.visit(args[0])},0)"
            return f"{_SIMPLE_FUNCS[name]}({','.join(self.visit(a) for a in args)})"
        if name == "years_between" and len(args) == 2:
            a, b = self.visit(args[0]), self.visit(args[1])
            return f'DATEDIF({a},{b},"Y")'
        if name == "days_between" and len(args) == 2:
            a, b = self.visit(args[0]), self.visit(args[1])
            return f"({b}-{a})"
        if name == "blank" and len(args) == 1:
            return f'({self.visit(args[0])}="")'
        if name == "date" and len(args) == 1:
            return self.visit(args[0])
        if name == "lookup" and len(args) == 2 and isinstance(args[1], ast.Dict):
            x = self.visit(args[0])
            formula = x
            pairs = list(zip(args[1].keys, args[1].values))
            for key, value in reversed(pairs):
                if not isinstance(key, ast.Constant):
                    raise Untranslatable("lookup keys must be constants")
                k = _string(str(key.value))
                formula = f'IF({x}&""={k},{self.visit(value)},{formula})'
            return f'IF({x}="","",{formula})'
        if name == "any_of" and len(args) >= 2:
            x = self.visit(args[0])
            hay = f'";"&SUBSTITUTE({x}&"","; ",";")&";"'
            tests = []
            for code in args[1:]:
                if not isinstance(code, ast.Constant):
                    raise Untranslatable("any_of needs constant codes")
                tests.append(f'ISNUMBER(FIND({_string(";" + str(code.value) + ";")},{hay}))')
            return f"OR({','.join(tests)})"
        raise Untranslatable(f"{name}() has no Excel equivalent")
