"""What a name built by ``set``, ``for`` or a macro is worth: its stability, or its volatility.

``{% set q2 = question | upper %}`` makes ``q2`` as volatile as ``question``, and
``{% set stamp = clock.now() %}`` makes ``stamp`` as volatile as the clock. The template analysis
(:mod:`promptkit._templating.analysis`) follows both. Everything here walks ``jinja2.nodes``;
nothing reads template source text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from jinja2 import nodes

from promptkit._segments import Stability, VariableSpec
from promptkit._volatility import volatile_sources

__all__ = ["BINDING_NODES", "Origin", "binding", "derive_names", "taint_names"]

Origin = tuple[Stability, str]
"""A stability class and the declared variable it comes from."""

BINDING_NODES = (nodes.Assign, nodes.AssignBlock, nodes.For, nodes.Macro)

# Each pass lets a derivation reach one more link of a chain (a = q; b = a; c = b); real templates
# settle in one or two.
_PASSES = 3


def binding(node: nodes.Node) -> tuple[nodes.Node, list[str], frozenset[str]]:
    """What a ``set``/``for``/macro node reads, the names it binds, and its local (argument) names.

    The expression comes wrapped in an ``Output``: ``find_all`` skips the node it is called on,
    and ``{% set x = question %}`` reads a bare ``Name``.
    """
    if isinstance(node, nodes.Macro):
        # A default argument is read when the caller leaves it out: `{% macro h(x=question) %}`
        # carries `question` into every call of `h()`.
        return (
            nodes.Output([*node.body, *node.defaults]),
            [node.name],
            frozenset(a.name for a in node.args),
        )
    expr: nodes.Node
    target: nodes.Node
    if isinstance(node, nodes.Assign):
        expr, target = node.node, node.target
    elif isinstance(node, nodes.For):
        expr, target = node.iter, node.target
    else:
        assert isinstance(node, nodes.AssignBlock)
        expr, target = nodes.Output(node.body), node.target
    if isinstance(target, nodes.Name | nodes.NSRef):
        # `{% set ns.x = question %}` makes the whole namespace `ns` carry `question`.
        return nodes.Output([expr]), [target.name], frozenset()
    return nodes.Output([expr]), [t.name for t in target.find_all(nodes.Name)], frozenset()


def _least_stable(
    node: nodes.Node, lookup: Callable[[str], Origin | None], exclude: frozenset[str]
) -> Origin | None:
    worst: Origin | None = None
    for ref in node.find_all(nodes.Name):
        if ref.ctx != "load" or ref.name in exclude:
            continue
        found = lookup(ref.name)
        if found is not None and (worst is None or found[0] > worst[0]):
            worst = found
    return worst


def derive_names(ast: nodes.Template, variables: Mapping[str, VariableSpec]) -> dict[str, Origin]:
    """Give ``set``/``for``/macro names the stability of the declared variables they come from."""
    derived: dict[str, Origin] = {}

    def lookup(name: str) -> Origin | None:
        if name in variables:
            return variables[name].stability, name
        return derived.get(name)

    for _ in range(_PASSES):
        for node in ast.find_all(BINDING_NODES):
            expr, targets, local = binding(node)
            source = _least_stable(expr, lookup, local)
            if source is None:
                continue
            for name in targets:
                if name in variables:
                    continue
                current = derived.get(name)
                if current is None or source[0] > current[0]:
                    derived[name] = source
    return derived


def taint_names(ast: nodes.Template) -> dict[str, str]:
    """Names set from a clock or random call, and that call as shown (``clock.now()``)."""
    tainted: dict[str, str] = {}
    for _ in range(_PASSES):
        for node in ast.find_all(BINDING_NODES):
            expr, targets, _ = binding(node)
            source = next((found.shown for found in volatile_sources(expr)), None)
            if source is None:
                source = next(
                    (tainted[n.name] for n in expr.find_all(nodes.Name) if n.name in tainted),
                    None,
                )
            if source is not None:
                tainted.update(dict.fromkeys(targets, source))
    return tainted
