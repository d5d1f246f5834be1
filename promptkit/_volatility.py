"""What looks volatile without running anything: clock and random calls, id and per-user fields.

Read by the template analysis (:mod:`promptkit._templating.analysis`). These are heuristics by
name, which is why the field rule (PK102) is a warning: a variable called ``request_id``
declared ``static`` is almost always a mistake, but the linter cannot know. The call rule
(PK101) is an error: ``now()`` or ``uuid4()`` differ on every call by definition.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

from jinja2 import nodes

from promptkit._segments import Stability

__all__ = [
    "VOLATILE_CALLS",
    "VOLATILE_FILTERS",
    "VOLATILE_NAMES",
    "VolatileSource",
    "call_name",
    "field_stability",
    "live_field",
    "root_name",
    "self_and_all",
    "volatile_sources",
]

_N = TypeVar("_N", bound=nodes.Node)

#: Functions and methods whose result differs between calls.
VOLATILE_CALLS = frozenset(
    {
        "now",
        "utcnow",
        "today",
        "time",
        "time_ns",
        "monotonic",
        "perf_counter",
        "uuid",
        "uuid1",
        "uuid4",
        "random",
        "randint",
        "randrange",
        "uniform",
        "choice",
        "choices",
        "shuffle",
        "sample",
        "getrandbits",
        "token_hex",
        "token_urlsafe",
        "urandom",
        "strftime_now",
        "lipsum",
    }
)

#: Jinja filters that pick at random.
VOLATILE_FILTERS = frozenset({"random", "shuffle"})

#: Globals chat templates (and copies of them) read the clock through.
VOLATILE_NAMES = frozenset({"strftime_now", "date_string"})

_REQUEST_FIELDS = frozenset(
    {
        "request",
        "req",
        "request_id",
        "requestid",
        "req_id",
        "trace_id",
        "traceid",
        "span_id",
        "correlation_id",
        "message_id",
        "idempotency_key",
        "nonce",
        "timestamp",
        "ts",
        "now",
        "today",
        "date",
        "time",
        "datetime",
        "current_time",
        "current_date",
    }
)

_SESSION_FIELDS = frozenset(
    {
        "user",
        "customer",
        "account",
        "session",
        "user_id",
        "userid",
        "username",
        "user_name",
        "email",
        "user_email",
        "session_id",
        "sessionid",
        "conversation_id",
        "thread_id",
        "ip",
        "ip_address",
        "client_ip",
        "first_name",
        "last_name",
        "full_name",
        "display_name",
        "phone",
        "account_id",
        "customer_id",
    }
)


#: Fields that live inside stabler objects (a user, a tool, a retrieved chunk) but change every
#: request: a last-seen time, a live counter, a per-question score.
_LIVE_FIELDS = frozenset(
    {
        "score",
        "relevance",
        "similarity",
        "distance",
        "hits",
        "usage_count",
        "call_count",
        "calls",
        "uses",
        "popularity",
        "rank",
        "ranking",
        "updated_at",
        "modified_at",
        "seen_at",
        "online",
        "unread",
        "unread_count",
        "balance",
        "latency",
    }
)


def live_field(name: str) -> bool:
    """Whether a field of this name changes every request (``last_seen_at``, ``score``)."""
    key = name.lower()
    return key in _LIVE_FIELDS or key.startswith("last_") or key.endswith("_score")


def field_stability(name: str) -> Stability | None:
    """The stability a variable or field of this name usually has, if its name says so."""
    key = name.lower()
    if key in _REQUEST_FIELDS or live_field(key):
        return Stability.REQUEST
    if key in _SESSION_FIELDS:
        return Stability.SESSION
    return None


def call_name(call: nodes.Call) -> tuple[str | None, str]:
    """The called function's short name and how to show it (``datetime.now()``)."""
    fn = call.node
    if isinstance(fn, nodes.Name):
        return fn.name, f"{fn.name}()"
    if isinstance(fn, nodes.Getattr):
        base = fn.node.name if isinstance(fn.node, nodes.Name) else "..."
        return fn.attr, f"{base}.{fn.attr}()"
    return None, "call"


def root_name(node: nodes.Node) -> str | None:
    """The variable an attribute or item chain starts from (``clock`` in ``clock.now``)."""
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        node = node.node
    return node.name if isinstance(node, nodes.Name) else None


def self_and_all(node: nodes.Node, kind: type[_N]) -> Iterator[_N]:
    """``node`` itself (if a ``kind``) and its descendants -- ``find_all`` skips the node."""
    if isinstance(node, kind):
        yield node
    yield from node.find_all(kind)


@dataclass(frozen=True, slots=True)
class VolatileSource:
    """A clock or random call, filter or global: where, how to show it, the name it reads."""

    line: int
    shown: str
    root: str | None


def volatile_sources(node: nodes.Node) -> Iterator[VolatileSource]:
    """Clock/random calls, random filters and clock globals inside ``node``."""
    called: set[int] = set()
    for call in self_and_all(node, nodes.Call):
        name, shown = call_name(call)
        called.add(id(call.node))
        if name in VOLATILE_CALLS:
            yield VolatileSource(call.lineno, shown, root_name(call.node))
    for flt in self_and_all(node, nodes.Filter):
        if flt.name in VOLATILE_FILTERS:
            yield VolatileSource(flt.lineno, f"|{flt.name}", None)
    for ref in self_and_all(node, nodes.Name):
        if ref.name in VOLATILE_NAMES and id(ref) not in called and ref.ctx == "load":
            yield VolatileSource(ref.lineno, ref.name, ref.name)
