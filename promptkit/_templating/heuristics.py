"""The template analysis's heuristics: what in a segment *looks* like it will move the prefix.

Clock and random calls (PK101), id-like or per-user fields (PK102), serialization in the
caller's key order (PK201, PK202) and blank lines at a chat message's edge (PK404) are judged
by names and shapes, so they can be wrong: lint reports them (a reason can suppress one) and the
template still loads. :mod:`promptkit._templating.analysis` walks the template and asks these
functions about each segment; they only read ``jinja2.nodes``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from jinja2 import nodes

from promptkit._segments import SegmentSpec, VariableSpec
from promptkit._templating.hint import Hint
from promptkit._templating.history_hints import history_hints
from promptkit._volatility import (
    call_name,
    field_stability,
    live_field,
    root_name,
    volatile_sources,
)

__all__ = ["Hint", "blank_edge_hints", "segment_hints"]


def segment_hints(
    spec: SegmentSpec,
    body: nodes.Node,
    *,
    variables: Mapping[str, VariableSpec],
    tainted: Mapping[str, str],
) -> Iterator[Hint]:
    """PK101, PK102, PK201 and PK202 for one segment's ``body``."""
    if spec.stability.is_stable:
        yield from _volatile_calls(spec, body, tainted)
        yield from _serialization(spec, body)
        yield from _live_sort_keys(spec, body)
        yield from history_hints(spec, body, variables)
    yield from _fields(spec, body, variables)


def _volatile_calls(
    spec: SegmentSpec, body: nodes.Node, tainted: Mapping[str, str]
) -> Iterator[Hint]:
    where = f"the {spec.stability.label} segment {spec.name!r}"
    for found in volatile_sources(body):
        yield Hint(
            "PK101",
            found.line,
            f"{found.shown} differs on every render and lands in {where}, so no two prompts "
            "share that prefix; pass the value as a request variable in a request segment (or "
            "pin it, as ChatTemplate pins the date)",
            found.root,
        )
    for ref in body.find_all(nodes.Name):
        if ref.ctx == "load" and ref.name in tainted:
            yield Hint(
                "PK101",
                ref.lineno,
                f"{ref.name!r} is set from {tainted[ref.name]} and lands in {where}; move it to "
                "a request segment",
                ref.name,
            )


def _fields(
    spec: SegmentSpec, body: nodes.Node, variables: Mapping[str, VariableSpec]
) -> Iterator[Hint]:
    """Declared variables and their fields whose *names* say they are volatile."""
    called = {id(call.node) for call in body.find_all(nodes.Call)}  # PK101's business
    for node in body.find_all((nodes.Name, nodes.Getattr, nodes.Getitem)):
        root = root_name(node)
        if id(node) in called or root is None or root not in variables:
            continue
        if variables[root].stability > spec.stability:
            continue  # PK104 already says so
        if isinstance(node, nodes.Name):
            field = node.name
        elif isinstance(node, nodes.Getattr):
            field = node.attr
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            field = node.arg.value
        else:
            continue
        usual = field_stability(field)
        if usual is not None and usual > spec.stability:
            yield Hint(
                "PK102",
                node.lineno,
                f"{field!r} is usually {usual.label}-level (an id, a clock or a per-user "
                f"field) but renders into the {spec.stability.label} segment {spec.name!r}; "
                f"declare it {usual.label} and move it to such a segment",
                root,
            )


def _subtree_ids(node: nodes.Node) -> set[int]:
    return {id(node)} | {id(n) for n in node.find_all(nodes.Node)}


def _serialization(spec: SegmentSpec, body: nodes.Node) -> Iterator[Hint]:
    where = f"the {spec.stability.label} segment {spec.name!r}"
    unordered = (
        "iterates in the caller's insertion order; sort it (|dictsort, or |sort) so equal "
        "values render equal text"
    )
    ordered: set[int] = set()
    for flt in body.find_all(nodes.Filter):
        if flt.name in ("sort", "dictsort") and flt.node is not None:
            ordered |= _subtree_ids(flt.node)
    for flt in body.find_all(nodes.Filter):
        sort_keys = next((k.value for k in flt.kwargs if k.key == "sort_keys"), None)
        if flt.name == "string" or (
            flt.name == "tojson" and isinstance(sort_keys, nodes.Const) and not sort_keys.value
        ):
            yield Hint(
                "PK201",
                flt.lineno,
                f"|{flt.name} in {where} serializes in the caller's key order (or as a Python "
                "repr); use |tojson, which promptkit makes canonical (sorted keys)",
            )
        elif flt.name == "items" and id(flt) not in ordered:
            yield Hint("PK202", flt.lineno, f"|items in {where} {unordered}")
    yield from _mapping_order(spec, body, ordered)
    for call in body.find_all(nodes.Call):
        name, shown = call_name(call)
        sort_keys = next((k.value for k in call.kwargs if k.key == "sort_keys"), None)
        if name == "dumps" and not (isinstance(sort_keys, nodes.Const) and sort_keys.value):
            yield Hint(
                "PK201",
                call.lineno,
                f"{shown} in {where} without sort_keys=True follows the caller's key order; "
                "use |tojson (canonical) or sort_keys=True",
            )
        elif name in ("items", "keys", "values") and not call.args and id(call) not in ordered:
            yield Hint("PK202", call.lineno, f"{shown} in {where} {unordered}")


#: Attributes that hold a mapping in the usual shapes (a JSON schema's ``properties``): joined,
#: listed or looped over directly they follow the caller's key order.
_MAPPING_ATTRS = frozenset(
    {"properties", "parameters", "params", "headers", "metadata", "attributes", "fields", "kwargs"}
)
_ORDER_FILTERS = frozenset({"join", "list", "first", "last", "batch", "map", "string"})


def _mapping_attr(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Getattr) and node.attr in _MAPPING_ATTRS:
        return node.attr
    if (
        isinstance(node, nodes.Getitem)
        and isinstance(node.arg, nodes.Const)
        and node.arg.value in _MAPPING_ATTRS
    ):
        return str(node.arg.value)
    return None


def _mapping_order(spec: SegmentSpec, body: nodes.Node, ordered: set[int]) -> Iterator[Hint]:
    """PK202 for ``.properties`` and the like joined, listed or looped over unsorted."""
    where = f"the {spec.stability.label} segment {spec.name!r}"
    seen: list[nodes.Node] = []
    for flt in body.find_all(nodes.Filter):
        if flt.name in _ORDER_FILTERS and flt.node is not None and id(flt) not in ordered:
            seen.append(flt.node)
    seen += [loop.iter for loop in body.find_all(nodes.For)]
    for node in seen:
        attr = _mapping_attr(node)
        if attr is not None and id(node) not in ordered:
            yield Hint(
                "PK202",
                node.lineno,
                f".{attr} is usually a mapping (a schema's parameters); in {where} its keys "
                "come out in the caller's insertion order; sort them (|sort, |dictsort)",
            )


def _live_sort_keys(spec: SegmentSpec, body: nodes.Node) -> Iterator[Hint]:
    """PK203: stable content ordered by a field that changes every request."""
    for flt in body.find_all(nodes.Filter):
        if flt.name not in ("sort", "max", "min", "groupby"):
            continue
        keys = [k.value for k in flt.kwargs if k.key == "attribute"] + flt.args[:1]
        for key in keys:
            if not (isinstance(key, nodes.Const) and isinstance(key.value, str)):
                continue
            field = key.value.rsplit(".", 1)[-1]
            if live_field(field):
                yield Hint(
                    "PK203",
                    flt.lineno,
                    f"|{flt.name}(attribute={key.value!r}) in the {spec.stability.label} segment "
                    f"{spec.name!r} orders by a field that changes every request (a score, a "
                    "counter, a last-used time), so the same items come out in another order; "
                    "sort stable content by a fixed key (a name or id)",
                )


def blank_edge_hints(
    segments: Sequence[tuple[SegmentSpec, nodes.CallBlock]], index: int
) -> Iterator[Hint]:
    """PK404: leading/trailing blank lines where a chat template or caller may strip() them."""
    spec, node = segments[index]
    chat = spec.role is not None
    before = segments[index - 1][0] if index else None
    after = segments[index + 1][0] if index + 1 < len(segments) else None
    starts = before is None or (chat and before.role != spec.role)
    ends = after is None or (chat and after.role != spec.role)
    first = node.body[0] if node.body else None
    last = node.body[-1] if node.body else None
    if starts and isinstance(first, nodes.Output) and first.nodes:
        data = first.nodes[0]
        if isinstance(data, nodes.TemplateData) and data.data.lstrip(" \t").startswith("\n"):
            yield _blank(spec, data.lineno, "starts")
    if ends and isinstance(last, nodes.Output) and last.nodes:
        data = last.nodes[-1]
        if isinstance(data, nodes.TemplateData) and data.data.rstrip(" \t").endswith("\n\n"):
            yield _blank(spec, data.lineno + data.data.count("\n") - 1, "ends")


def _blank(spec: SegmentSpec, line: int, side: str) -> Hint:
    return Hint(
        "PK404",
        line,
        f"segment {spec.name!r} {side} with a blank line at the edge of its message; chat "
        "templates and callers that strip() drop it in some paths and keep it in others, "
        "so the same prompt tokenizes two ways; remove the blank line",
    )
