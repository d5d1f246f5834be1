"""Value perturbations for the metamorphic check: the same meaning, another shape.

A prompt's stable prefix must not depend on anything a caller does not mean: the order keys were
inserted in, the hash order of a set, the order a plugin registry happened to list tools in, or
a per-request field hidden inside a session object. Each function here returns a changed copy of
a value (and whether anything changed), so :mod:`promptkit.lint._metamorphic` can render the
template again and compare token ids. Nothing here renders or tokenizes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from promptkit._volatility import live_field

__all__ = [
    "UNORDERED_NAMES",
    "OtherOrderSet",
    "grow",
    "reorder_keys",
    "reorder_sets",
    "reorder_unordered_lists",
    "vary",
    "vary_request_fields",
]

#: Lists under these names are collections whose order the caller does not choose on purpose:
#: a plugin registry's tools, a user's tags. Printed in the order given, they move the prefix.
UNORDERED_NAMES = frozenset(
    {
        "tools",
        "functions",
        "plugins",
        "registry",
        "skills",
        "capabilities",
        "tags",
        "labels",
        "permissions",
        "features",
        "extensions",
        "scopes",
        "roles",
    }
)

Changed = tuple[Any, bool]

_PER_REQUEST_IDS = frozenset({"timestamp", "ts", "request_id", "trace_id", "nonce"})


class OtherOrderSet(frozenset[Any]):
    """A set that iterates in the reverse of the order an ordinary set would.

    What another ``PYTHONHASHSEED`` does to a set of strings, made deterministic and done in the
    same process: a template that prints or joins a set without sorting it sees another order.
    Its repr is a set's, so a set printed bare changes only by its order.
    """

    def __iter__(self) -> Iterator[Any]:
        items: list[Any] = list(super().__iter__())
        return iter(items[::-1])

    def __repr__(self) -> str:
        return "{" + ", ".join(repr(x) for x in self) + "}" if self else "set()"

    __str__ = __repr__


def _walk(value: Any, change: Callable[[Any, str | None], Changed], key: str | None) -> Changed:
    """Apply ``change`` bottom-up; containers are rebuilt, leaves handed over with their key."""
    changed = False
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            out[k], c = _walk(v, change, str(k))
            changed |= c
        value = out
    elif isinstance(value, list | tuple):
        items = []
        for v in value:
            item, c = _walk(v, change, key)
            items.append(item)
            changed |= c
        value = type(value)(items)
    new, c = change(value, key)
    return new, changed or c


def reorder_keys(value: Any) -> Changed:
    """Every mapping's keys in reverse order, recursively."""

    def change(v: Any, key: str | None) -> Changed:
        if isinstance(v, dict) and len(v) > 1:
            return {k: v[k] for k in reversed(list(v))}, True
        return v, False

    return _walk(value, change, None)


def reorder_sets(value: Any) -> Changed:
    """Every set rebuilt in another iteration order."""

    def change(v: Any, key: str | None) -> Changed:
        if isinstance(v, set | frozenset) and len(v) > 1:
            return OtherOrderSet(v), True
        return v, False

    return _walk(value, change, None)


def reorder_unordered_lists(value: Any, *, name: str) -> Changed:
    """Lists held under a name of :data:`UNORDERED_NAMES` (or ``name`` itself) reversed."""

    def change(v: Any, key: str | None) -> Changed:
        if isinstance(v, list) and len(v) > 1 and (key or name).lower() in UNORDERED_NAMES:
            return list(reversed(v)), True
        return v, False

    return _walk(value, change, name)


def vary(value: Any, *, invert: bool = False) -> Changed:
    """Another value of the same shape: every string, number and flag changed.

    ``invert`` negates numbers, so scores and counters also change their *order*.
    """

    def change(v: Any, key: str | None) -> Changed:
        if isinstance(v, bool):
            return not v, True
        if isinstance(v, int | float):
            return (-v - 1 if invert else v + 7), True
        if isinstance(v, str):
            return (v + " (other)") if v else "other", True
        return v, False

    return _walk(value, change, None)


def request_field(key: str) -> bool:
    """Whether a field of this name usually changes every request inside a stabler object."""
    return live_field(key) or key.lower() in _PER_REQUEST_IDS


def vary_request_fields(value: Any) -> Changed:
    """Fields that change per request (``last_seen_at``, ``score``) changed inside ``value``."""

    def change(v: Any, key: str | None) -> Changed:
        if isinstance(v, dict):
            out = dict(v)
            moved = False
            for k in v:
                if request_field(str(k)):
                    out[k], c = vary(v[k], invert=True)
                    moved |= c
            return out, moved
        return v, False

    return _walk(value, change, None)


def grow(value: Any, *, at_least: int = 8) -> tuple[Any, Any] | None:
    """A conversation's history long enough to slide, and the same history one turn later."""
    if isinstance(value, list) and value:
        padded = list(value)
        while len(padded) < at_least:
            padded.append(vary(padded[len(padded) % len(value)])[0])
        return padded, [*padded, vary(padded[-1])[0]]
    if isinstance(value, str):
        text = value + "".join(f"\nUser: question {i}\nAssistant: answer {i}" for i in range(4))
        return text, text + "\nUser: one more question\nAssistant: one more answer"
    return None
