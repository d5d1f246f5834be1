"""PK302: a ``turn`` history rendered so that the next turn rewrites what this turn printed.

Append-only history is what lets turn N+1 reuse turn N's cache. A window over the newest items,
newest-first order, positions counted from the end (``loop.revindex``, ``loop.last``) and the
count or newest item printed in a cached segment all rewrite earlier text on every turn. These
are decidable from the template alone, given which variables are declared ``turn``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from jinja2 import nodes

from promptkit._segments import SegmentSpec, Stability, VariableSpec
from promptkit._templating.hint import Hint
from promptkit._volatility import self_and_all

__all__ = ["from_the_end", "history_hints", "iter_root"]


def iter_root(node: nodes.Node) -> nodes.Node:
    """The name an expression's filters, attributes, items and calls start from."""
    while isinstance(node, nodes.Filter | nodes.Getattr | nodes.Getitem | nodes.Call):
        inner = node.node
        if inner is None:
            break
        node = inner
    return node


def _negative(node: nodes.Node | None) -> bool:
    if isinstance(node, nodes.Neg):
        return True
    return isinstance(node, nodes.Const) and isinstance(node.value, int) and node.value < 0


def from_the_end(node: nodes.Node) -> str | None:
    """How ``node`` measures from the newest message, if it does."""
    for item in self_and_all(node, nodes.Getitem):
        arg = item.arg
        if isinstance(arg, nodes.Slice) and _negative(arg.start):
            return "a window over the newest items ([-N:])"
        if _negative(arg):
            return "the newest item ([-1])"
    for flt in self_and_all(node, nodes.Filter):
        if flt.name == "reverse":
            return "|reverse"
        if flt.name in ("length", "count"):
            return f"|{flt.name}"
        if flt.name == "last":
            return "|last"
    return None


def history_hints(
    spec: SegmentSpec, body: nodes.Node, variables: Mapping[str, VariableSpec]
) -> Iterator[Hint]:
    """PK302: a ``turn`` history rendered so that turn N+1 rewrites what turn N printed."""
    turn = {n for n, v in variables.items() if v.stability is Stability.TURN}
    if not turn:
        return
    where = f"the {spec.stability.label} segment {spec.name!r}"
    fix = (
        "render every message as it first appeared, oldest first, and keep counts and windows "
        "out of cached segments (put them in the request segment)"
    )
    loops = {id(loop.iter) for loop in body.find_all(nodes.For)}
    for loop in body.find_all(nodes.For):
        root = iter_root(loop.iter)
        if not (isinstance(root, nodes.Name) and root.name in turn):
            continue
        how = from_the_end(loop.iter)
        if how is None:
            live = [
                a.attr
                for a in nodes.Output(loop.body).find_all(nodes.Getattr)
                if isinstance(a.node, nodes.Name)
                and a.node.name == "loop"
                and a.attr in ("revindex", "revindex0", "length", "last")
            ]
            how = f"loop.{live[0]}" if live else None
        if how is not None:
            yield Hint(
                "PK302",
                loop.lineno,
                f"the history {root.name!r} in {where} is rendered with {how}: every new turn "
                f"rewrites earlier text, so no turn reuses the previous turn's cache; {fix}",
                root.name,
            )
    for out in body.find_all(nodes.Output):
        for child in out.nodes:
            if isinstance(child, nodes.TemplateData) or id(child) in loops:
                continue
            root = iter_root(child)
            how = from_the_end(child)
            if isinstance(root, nodes.Name) and root.name in turn and how is not None:
                yield Hint(
                    "PK302",
                    child.lineno,
                    f"{where} prints {how} of the history {root.name!r}: it changes every turn "
                    f"and rewrites the cached text after it; {fix}",
                    root.name,
                )
