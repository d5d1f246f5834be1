"""The seam between promptkit and an inference engine.

An engine takes token ids and sampling settings and returns :class:`EngineResult`s. It knows
nothing about templates or segments. One required method, :meth:`Engine.generate`, and one
required property, :attr:`Engine.block_size`; ``close()`` and the context manager come with the
base class.

Every capability the client reads is declared here with its default, so an engine that does not
set one says "I don't know" (``None``) or "I can't" (``False``), and nothing is probed:

================================  ================  ===========================================
attribute                         default           read by the client to
================================  ================  ===========================================
``block_size`` (required)         --                account prompts in KV blocks
``supports_cache_salt``           ``False``         refuse salted requests before sending them
``prefix_caching``                ``None``          say whether the engine caches prefixes
``supports_streaming``            ``False``         say whether ``stream`` yields as tokens arrive
``kv_events_endpoint``            ``None``          follow KV-cache events (evictions known)
``kv_capacity_blocks``            ``None``          size batch waves, foresee evictions
``start_seconds``                 ``None``          report how long the engine took to start
``prefix_cache_counters()``       ``None``          cross-check records with engine counters
``reset_prefix_cache()``          ``False``         start measurements from an empty cache
``healthy()``                     ``None``          route around a replica that is down
``replica_counters()``            ``None``          cross-check records per replica
================================  ================  ===========================================

Backend errors are mapped at this boundary with :func:`map_exceptions`: each backend names the
exceptions it maps; the rest (a bug in the adapter, say) propagate unchanged.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import ClassVar, Self

from engine_adapter._streaming import async_from_thread
from engine_adapter.errors import EngineCapabilityError, EngineError, EngineRequestError
from engine_adapter.models import EngineDelta, EngineRequest, EngineResult, PrefixCacheCounters

__all__ = ["Engine", "ErrorMapping", "map_exceptions"]

#: Backend exception class -> the :class:`EngineError` it becomes. Subclasses of a key map too;
#: the most specific key wins.
ErrorMapping = Mapping[type[Exception], type[EngineError]]


class Engine(abc.ABC):
    """Base class of every engine adapter.

    Capabilities are class attributes (or instance attributes set by the constructor), with the
    defaults of the table in :mod:`engine_adapter.base`; callers check them without starting
    anything.
    """

    #: Human-readable backend name, used in reports and error messages.
    name: ClassVar[str] = "engine"
    #: Whether ``EngineRequest.cache_salt`` is honoured. When it is not, :meth:`check_requests`
    #: refuses salted requests: a salt silently dropped would share cache between tenants.
    supports_cache_salt: ClassVar[bool] = False
    #: Whether the engine caches prefixes: ``None`` when it cannot tell.
    prefix_caching: bool | None = None
    #: A ZeroMQ endpoint publishing vLLM's KV-cache events (``BlockStored`` ...), or ``None``.
    kv_events_endpoint: str | None = None
    #: Whether :meth:`stream` yields output as tokens are generated (``False``: one delta with
    #: the whole answer, after it is done).
    supports_streaming: ClassVar[bool] = False
    #: KV blocks the engine's prefix cache can hold at once (usable blocks, vLLM's null block
    #: excluded), or ``None`` when unknown. Batches are sized to it and the expectation mirror
    #: evicts as the engine would, so a prefix pushed out by pressure is foreseen, not a surprise.
    kv_capacity_blocks: int | None = None
    #: Seconds the constructor took to start the engine; ``None`` when it started none.
    start_seconds: float | None = None

    @property
    @abc.abstractmethod
    def block_size(self) -> int:
        """The KV-cache block size in tokens; only full blocks are cached and reused."""

    @abc.abstractmethod
    def generate(self, requests: Sequence[EngineRequest]) -> list[EngineResult]:
        """Run ``requests`` (possibly batched) and return one result each, in order."""

    async def agenerate(self, requests: Sequence[EngineRequest]) -> list[EngineResult]:
        """Async :meth:`generate`. The default runs it in a worker thread; engines with a
        native async path (:class:`engine_adapter.vllm_async.AsyncVLLMEngine`) override it."""
        return await asyncio.to_thread(self.generate, requests)

    def stream(self, request: EngineRequest) -> Iterator[EngineDelta | EngineResult]:
        """Yield :class:`EngineDelta` items as the answer is generated, then its
        :class:`EngineResult` (last, exactly once). The default generates first and yields the
        whole answer as one delta; engines with ``supports_streaming`` override it."""
        result = self.generate([request])[0]
        yield EngineDelta(text=result.text, token_ids=result.token_ids)
        yield result

    def astream(self, request: EngineRequest) -> AsyncIterator[EngineDelta | EngineResult]:
        """Async :meth:`stream`. The default runs :meth:`stream` in a worker thread."""
        return async_from_thread(lambda: self.stream(request))

    def check_requests(self, requests: Iterable[EngineRequest]) -> None:
        """Raise :class:`EngineCapabilityError` if a request needs a capability this engine
        does not declare. Callers (the promptkit client) run it before sending anything.

        An empty ``cache_salt`` is refused on every engine: vLLM treats ``""`` as no salt, so it
        would silently share the cache it was meant to isolate."""
        requests = list(requests)
        if any(request.cache_salt == "" for request in requests):
            raise EngineRequestError(
                "cache_salt='' isolates nothing (vLLM reads it as no salt): pass a non-empty "
                "salt, a tenant= (see docs/tenants.md), or None to share the cache on purpose"
            )
        if self.supports_cache_salt:
            return
        salted = sum(1 for request in requests if request.cache_salt is not None)
        if salted:
            raise EngineCapabilityError(
                f"{salted} request(s) carry a cache_salt, but the {self.name!r} engine "
                f"({type(self).__name__}) cannot isolate cache entries by salt "
                "(supports_cache_salt is False): send them without cache_salt, or use an engine "
                "that honours it (VLLMEngine, AsyncVLLMEngine, OpenAIEngine)"
            )

    def prefix_cache_counters(self) -> PrefixCacheCounters | None:
        """Cumulative engine-side prefix-cache counters, or ``None`` if not published."""
        return None

    def reset_prefix_cache(self) -> bool:
        """Drop every cached block. Returns whether the engine did so."""
        return False

    def healthy(self) -> bool | None:
        """Whether the engine can serve now (a server answering ``/health``); ``None`` when it
        cannot tell. Routers ask it after a failed request and to let a replica rejoin."""
        return None

    def replica_counters(self) -> Mapping[str, PrefixCacheCounters | None] | None:
        """Prefix-cache counters per replica, for an engine that routes over several (``None``
        otherwise); records name their replica, so each replica's hits can be checked."""
        return None

    def close(self) -> None:
        """Release the engine's resources. Safe to call twice."""
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _target(mapping: ErrorMapping, exc: Exception) -> type[EngineError] | None:
    # The most specific mapped class in the exception's MRO: vLLM's EngineDeadError is a
    # VLLMServerError too, and must become EngineDeadError, not the server error's target.
    for cls in type(exc).__mro__:
        if cls in mapping:
            return mapping[cls]
    return None


@contextmanager
def map_exceptions(
    mapping: ErrorMapping,
    action: str,
    *,
    describe: Callable[[str, Exception], str] | None = None,
) -> Iterator[None]:
    """Turn the backend exceptions ``mapping`` names into engine errors; re-raise the rest.

    The new error says ``"{action} failed: {original}"`` unless ``describe(action, original)``
    words it (with a next step); the original stays as ``__cause__``. Our own
    engine errors pass through. An exception no key matches, a bug in the adapter
    included, propagates unchanged: relabelling it would hide where it came from.
    """
    try:
        yield
    except EngineError:
        raise  # already ours, with its own message
    except Exception as exc:
        target = _target(mapping, exc)
        if target is None:
            raise
        if describe is not None:
            message = describe(action, exc)
        else:
            message = f"{action} failed: {type(exc).__name__}: {exc}"
        raise target(message) from exc
