"""What crosses the seam: token ids and sampling settings in, ids, text, cache hits and timing out.

Frozen dataclasses rather than pydantic models: a request carries thousands of token ids and sits
on the hot path, where validation would cost more than building the prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "EngineDelta",
    "EngineRequest",
    "EngineResult",
    "OutputConstraint",
    "PrefixCacheCounters",
    "SamplingSettings",
    "TimingSource",
]

TimingSource = Literal["engine", "measured"]
_CHECKED_FIELDS = (
    "max_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "stop_token_ids",
    "logprobs",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputConstraint:
    """Constrained decoding: the output is ``prefix``, then JSON valid against ``json_schema``,
    then ``suffix`` (literal text, e.g. a tool-call tag around the arguments).

    ``json_schema`` is the schema as JSON text (hashable; its property order is the order the
    output is generated in, so it is not sorted); ``'{"type": "object"}'`` is "any JSON object".
    Engines translate it to vLLM's structured outputs (xgrammar).
    """

    json_schema: str
    prefix: str = ""
    suffix: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SamplingSettings:
    """Engine-neutral sampling settings. Greedy by default, so runs are reproducible.

    Every field is checked against vLLM's limits when the settings are built (see
    :mod:`engine_adapter._sampling_checks`): a bad value raises
    :class:`~engine_adapter.errors.SamplingError` here, never inside an engine. ``stop="###"``
    is one stop string (a list or tuple gives several).
    """

    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    #: Return the top ``logprobs`` candidates of every generated token (``None``: none). Greedy
    #: outputs are compared with them: in bf16 on CPU two runs may pick different tokens at a
    #: near-tie, which only the candidates can tell apart from a real difference.
    logprobs: int | None = None
    #: Constrain what may be generated (JSON schema, optionally between literal tags).
    constraint: OutputConstraint | None = None

    def __post_init__(self) -> None:
        # Validated here, once, so a bad value never reaches an engine (where some wedge it for
        # every later request). A single string is one stop string, never its characters.
        from engine_adapter._sampling_checks import check_sampling

        for name in ("stop", "stop_token_ids"):
            value = getattr(self, name)
            if isinstance(value, str | int):
                object.__setattr__(self, name, (value,))
            elif isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        check_sampling({f: getattr(self, f) for f in _CHECKED_FIELDS})
        for name in ("temperature", "top_p"):
            object.__setattr__(self, name, float(getattr(self, name)))


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineRequest:
    """One generation request, already tokenized.

    ``cache_salt`` isolates prefix-cache entries (tenants): requests with different salts never
    share cached blocks.
    """

    prompt_token_ids: tuple[int, ...]
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    cache_salt: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineResult:
    """One finished request.

    ``num_cached_tokens`` is ``None`` when the engine does not report it (never a made-up ``0``);
    ``cached_unknown_reason`` then says why and what to change, when the adapter knows.
    ``ttft_s`` is the engine's own time to first token when ``timing_source == "engine"``. With
    ``"measured"`` it is measured by the client: the time to the first streamed token for a remote
    server, or, when nothing finer exists, the wall time of the call that carried the request
    (which includes decoding: an upper bound). Each adapter documents which.
    """

    prompt_token_ids: tuple[int, ...]
    num_cached_tokens: int | None
    text: str
    token_ids: tuple[int, ...]
    finish_reason: str | None
    ttft_s: float | None
    latency_s: float
    timing_source: TimingSource
    #: Per generated token, its top candidates as ``{token_id: logprob}`` (the sampled token
    #: included), when ``SamplingSettings.logprobs`` asked for them; else ``None``.
    logprobs: tuple[Mapping[int, float], ...] | None = None
    #: Why ``num_cached_tokens`` is ``None`` and how to get it (e.g. the server flag to add).
    cached_unknown_reason: str | None = None
    #: The replica that served the request, when a router chose among several.
    replica: str | None = None
    #: Why the router sent the request where the prefix was *not* held (a failover, a replica
    #: over its load bound); ``None`` when it went where the prefix lives, or no router ran.
    routing_note: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineDelta:
    """New output of a streamed request: the text and token ids generated since the last one.

    ``token_ids`` is empty when the backend does not return ids (a server without vLLM's
    ``return_token_ids``); the final :class:`EngineResult` carries the whole answer either way.
    """

    text: str
    token_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PrefixCacheCounters:
    """Engine-side prefix-cache counters (tokens queried and tokens hit), cumulative."""

    queries: int
    hits: int
