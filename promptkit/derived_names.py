"""Reading promptkit's tags and stability derivations off the Jinja AST.

Shared by :class:`promptkit.PromptTemplate` (which stops at the first problem) and the linter
(which reports them all), so both agree on what a tag says and what a derived name is worth.
Everything here walks ``jinja2.nodes``; nothing reads template source text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import nodes

from promptkit.segments import Stability, VariableSpec

__all__ = ["BINDING_NODES", "Origin", "binding", "const", "derive_names", "is_tag_call"]


def is_tag_call(node: nodes.Node, method: str) -> bool:
    """Whether ``node`` calls promptkit's ``_declare`` (``{% vars %}``) or ``_segment`` tag."""
    return (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.ExtensionAttribute)
        and node.node.name == method
    )


def const(node: nodes.Node) -> Any:
    assert isinstance(node, nodes.Const)
    return node.value


Origin = tuple[Stability, str]
"""A stability class and the declared variable it comes from."""


def names_stability(
    node: nodes.Node,
    lookup: Callable[[str], Origin | None],
    exclude: frozenset[str] = frozenset(),
) -> Origin | None:
    worst: Origin | None = None
    for ref in node.find_all(nodes.Name):
        if ref.ctx != "load" or ref.name in exclude:
            continue
        found = lookup(ref.name)
        if found is not None and (worst is None or found[0] > worst[0]):
            worst = found
    return worst


BINDING_NODES = (nodes.Assign, nodes.AssignBlock, nodes.For, nodes.Macro)


def binding(node: nodes.Node) -> tuple[nodes.Node, list[str], frozenset[str]]:
    """What a ``set``/``for``/macro node reads, the names it binds, and its local (argument) names.

    The expression comes wrapped in an ``Output``: ``find_all`` skips the node it is called on,
    and ``{% set x = question %}`` reads a bare ``Name``.
    """
    if isinstance(node, nodes.Macro):
        return nodes.Output(node.body), [node.name], frozenset(a.name for a in node.args)
    expr: nodes.Node
    target: nodes.Node
    if isinstance(node, nodes.Assign):
        expr, target = node.node, node.target
    elif isinstance(node, nodes.For):
        expr, target = node.iter, node.target
    else:
        assert isinstance(node, nodes.AssignBlock)
        expr, target = nodes.Output(node.body), node.target
    if isinstance(target, nodes.Name):
        return nodes.Output([expr]), [target.name], frozenset()
    return nodes.Output([expr]), [t.name for t in target.find_all(nodes.Name)], frozenset()


def derive_names(ast: nodes.Template, variables: Mapping[str, VariableSpec]) -> dict[str, Origin]:
    """Give ``set``/``for``/macro names the stability of the declared variables they are built from.

    Shared by :class:`PromptTemplate` and the linter, so both agree on what a name is worth.
    """
    derived: dict[str, Origin] = {}

    def lookup(name: str) -> Origin | None:
        if name in variables:
            return variables[name].stability, name
        return derived.get(name)

    for _ in range(3):  # chains of derivations settle in a couple of passes
        for node in ast.find_all(BINDING_NODES):
            expr, targets, local = binding(node)
            source = names_stability(expr, lookup, exclude=local)
            if source is None:
                continue
            for name in targets:
                if name in variables:
                    continue
                current = derived.get(name)
                if current is None or source[0] > current[0]:
                    derived[name] = source
    return derived
