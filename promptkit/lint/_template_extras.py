"""What lint follows beyond one template's own text: declared filters/globals, and includes.

* A filter, test or global that promptkit does not know is a PK001 finding unless it is declared
  in ``[tool.promptkit.lint.filters]`` (``.tests``, ``.globals``) with the stability class of its
  output; a declared one used in a segment more stable than that class is PK104.
* ``{% include %}``, ``{% import %}`` and ``{% from ... import %}`` are followed relative to the
  including template's directory, and the included text is checked as part of the segment that
  includes it (clock calls, key order, variables more volatile than the segment). A target that
  cannot be followed -- a computed name, a missing file, one that does not parse -- is PK001: an
  include is never passed over silently.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, nodes
from jinja2.exceptions import TemplateSyntaxError as JinjaSyntaxError

from promptkit._segments import SegmentSpec, VariableSpec
from promptkit._templating.heuristics import Hint, segment_hints
from promptkit.lint.config import Declared

__all__ = ["declare", "extra_hints"]

_DEPTH = 4


def _placeholder(*args: Any, **kwargs: Any) -> Any:
    return args[0] if args else ""


def declare(environment: Environment, declared: Sequence[Declared]) -> None:
    """Register placeholders for the declared names so templates using them parse."""
    for item in declared:
        table: dict[str, Any] = getattr(environment, item.kind)
        table[item.name] = _placeholder


def _segment_nodes(ast: nodes.Template) -> list[nodes.CallBlock]:
    return [
        node
        for node in ast.body
        if isinstance(node, nodes.CallBlock)
        and isinstance(node.call, nodes.Call)
        and isinstance(node.call.node, nodes.ExtensionAttribute)
        and node.call.node.name == "_segment"
    ]


def _declared_uses(
    spec: SegmentSpec, body: nodes.Node, declared: Sequence[Declared]
) -> Iterator[Hint]:
    by_name = {(d.kind, d.name): d for d in declared}
    used: list[tuple[str, str, int]] = []
    used += [("filters", f.name, f.lineno) for f in body.find_all(nodes.Filter)]
    used += [("tests", t.name, t.lineno) for t in body.find_all(nodes.Test)]
    used += [("globals", n.name, n.lineno) for n in body.find_all(nodes.Name) if n.ctx == "load"]
    for kind, name, line in used:
        item = by_name.get((kind, name))
        if item is not None and item.stability > spec.stability:
            yield Hint(
                "PK104",
                line,
                f"{kind[:-1]} {name!r} is declared {item.stability.label} in "
                f"[tool.promptkit.lint.{kind}] but renders into the {spec.stability.label} "
                f"segment {spec.name!r}; move it to a {item.stability.label} segment",
                name,
            )


def _included(
    spec: SegmentSpec,
    node: nodes.Node,
    *,
    environment: Environment,
    directory: Path | None,
    variables: Mapping[str, VariableSpec],
    depth: int,
) -> Iterator[Hint]:
    tag = type(node).__name__.lower().replace("fromimport", "from ... import")
    target = getattr(node, "template", None)
    if not (isinstance(target, nodes.Const) and isinstance(target.value, str)):
        yield Hint(
            "PK001",
            node.lineno,
            f"{{% {tag} %}} with a computed name cannot be checked; include a literal file name",
        )
        return
    name = target.value
    file = (directory or Path.cwd()) / name
    if not file.is_file():
        yield Hint(
            "PK001",
            node.lineno,
            f"{{% {tag} {name!r} %}}: no such file next to the template ({file}); the include "
            "cannot be checked and will not render",
        )
        return
    try:
        included = environment.parse(file.read_text(encoding="utf-8"), filename=str(file))
    except (OSError, UnicodeDecodeError, JinjaSyntaxError) as exc:
        yield Hint("PK001", node.lineno, f"{{% {tag} {name!r} %}} does not parse: {exc}")
        return
    body = nodes.Output(included.body)
    where = f" (in {name!r}, included on line {node.lineno})"
    for hint in segment_hints(spec, body, variables=variables, tainted={}):
        yield Hint(hint.rule, node.lineno, hint.message + where, hint.variable)
    for ref in body.find_all(nodes.Name):
        var = variables.get(ref.name)
        if ref.ctx == "load" and var is not None and var.stability > spec.stability:
            yield Hint(
                "PK104",
                node.lineno,
                f"{var.stability.label} value {ref.name!r} renders into the "
                f"{spec.stability.label} segment {spec.name!r}{where}; move the include to a "
                f"{var.stability.label} segment",
                ref.name,
            )
    if depth < _DEPTH:
        for inner in body.find_all((nodes.Include, nodes.Import, nodes.FromImport)):
            yield from _included(
                spec,
                inner,
                environment=environment,
                directory=file.parent,
                variables=variables,
                depth=depth + 1,
            )


def extra_hints(
    source: str,
    *,
    environment: Environment,
    segments: Sequence[SegmentSpec],
    variables: Mapping[str, VariableSpec],
    declared: Sequence[Declared],
    directory: Path | None,
) -> list[Hint]:
    """Findings from declared names and followed includes, for a template that parses."""
    try:
        ast = environment.parse(source)
    except JinjaSyntaxError:
        return []  # the analysis reports it
    hints: list[Hint] = []
    for spec, node in zip(segments, _segment_nodes(ast), strict=False):
        body = nodes.Output(node.body)
        hints += _declared_uses(spec, body, declared)
        for inc in body.find_all((nodes.Include, nodes.Import, nodes.FromImport)):
            hints += _included(
                spec,
                inc,
                environment=environment,
                directory=directory,
                variables=variables,
                depth=0,
            )
    return hints
