"""Where a value goes in Python that builds prompts: into a prompt, or only into a log line.

Two questions the Python rules ask, answered over the ``ast`` of one file without running it:

* does the result of ``json.dumps(...)`` reach a prompt (a template variable, a function's
  result, a call that is not logging), or does it only reach ``print``/``logger.info``? Only the
  first is a cache-buster (PK201);
* does a clock, uuid or random value (``datetime.now()``, ``time.time()``, ``uuid4()``, spliced
  through an f-string, ``str()``, ``format`` or ``+``) reach a template variable declared more
  stable than ``request`` (PK106)?

Names are followed through plain assignments in the same file (scopes are not told apart: a
name tainted anywhere counts everywhere, which errs on the side of reporting).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from promptkit._volatility import VOLATILE_CALLS

__all__ = ["Splice", "reaches_prompt", "volatile_splices"]

_LOGGING = frozenset(
    {"print", "debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
)
_DEPTH = 4


def _parents(tree: ast.AST) -> dict[int, ast.AST]:
    return {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _call_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else None


def _loads(tree: ast.AST, names: set[str]) -> Iterator[ast.Name]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in names:
            yield node


def _targets(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Assign):
        targets: list[ast.expr] = node.targets
    elif isinstance(node, ast.AnnAssign | ast.AugAssign | ast.NamedExpr):
        targets = [node.target]
    else:
        return set()
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def reaches_prompt(tree: ast.AST, node: ast.expr, *, depth: int = 0) -> bool:
    """Whether the value of ``node`` can reach a prompt (anything but logging or nowhere)."""
    parents = _parents(tree)
    current: ast.AST = node
    while True:
        parent = parents.get(id(current))
        if parent is None or isinstance(parent, ast.Expr):
            return False  # a discarded result
        if isinstance(parent, ast.Call):
            if current is parent.func:
                return False  # json.dumps(...).encode() etc. still flows up: handled below
            return _call_name(parent) not in _LOGGING
        if isinstance(parent, ast.keyword):
            current = parent
            continue
        if isinstance(parent, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.NamedExpr):
            if depth >= _DEPTH:
                return True
            names = _targets(parent)
            if not names:
                return True  # stored into an attribute or item: assume it is used
            return any(reaches_prompt(tree, use, depth=depth + 1) for use in _loads(tree, names))
        if isinstance(parent, ast.Return | ast.Dict | ast.List | ast.Tuple | ast.Yield):
            return True
        current = parent


def _volatile(node: ast.AST) -> str | None:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            name = _call_name(sub)
            if name in VOLATILE_CALLS:
                return f"{ast.unparse(sub.func)}()"
    return None


@dataclass(frozen=True, slots=True)
class Splice:
    """A volatile value passed as template variable ``variable`` at ``line``."""

    line: int
    variable: str
    shown: str


def _tainted(tree: ast.AST) -> dict[str, str]:
    tainted: dict[str, str] = {}
    for _ in range(3):
        for node in ast.walk(tree):
            value = getattr(node, "value", None)
            names = _targets(node)
            if not names or not isinstance(value, ast.AST):
                continue
            source = _volatile(value) or next(
                (tainted[n.id] for n in _loads(value, set(tainted))), None
            )
            if source is not None:
                tainted.update(dict.fromkeys(names, source))
    return tainted


def volatile_splices(tree: ast.AST, *, variables: set[str]) -> Iterator[Splice]:
    """Dict entries and keyword arguments naming one of ``variables`` whose value is volatile."""
    tainted = _tainted(tree)

    def source(value: ast.AST) -> str | None:
        return _volatile(value) or next((tainted[n.id] for n in _loads(value, set(tainted))), None)

    for node in ast.walk(tree):
        pairs: list[tuple[str, ast.AST, int]] = []
        if isinstance(node, ast.Dict):
            pairs = [
                (k.value, v, k.lineno)
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and isinstance(k.value, str)
            ]
        elif isinstance(node, ast.Call) and _call_name(node) not in _LOGGING:
            pairs = [(k.arg, k.value, k.value.lineno) for k in node.keywords if k.arg]
        elif isinstance(node, ast.Assign):
            pairs = [
                (t.slice.value, node.value, node.lineno)
                for t in node.targets
                if isinstance(t, ast.Subscript)
                and isinstance(t.slice, ast.Constant)
                and isinstance(t.slice.value, str)
            ]
        for name, value, line in pairs:
            found = source(value) if name in variables else None
            if found is not None:
                yield Splice(line, name, found)
