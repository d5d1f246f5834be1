"""The seam between promptkit and an inference engine.

An engine takes token ids and sampling settings and returns :class:`EngineResult`s. It knows
nothing about templates or segments. One required method, :meth:`Engine.generate`; ``close()``
and the context manager come with the base class.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import ClassVar, Self

from engine_adapter.errors import EngineError, EngineRequestError
from engine_adapter.models import EngineRequest, EngineResult, PrefixCacheCounters

__all__ = ["Engine", "mapped_errors"]


class Engine(abc.ABC):
    """Base class of every engine adapter.

    Capabilities are class attributes, so callers can check them without starting anything.
    """

    #: Human-readable backend name, used in reports.
    name: ClassVar[str] = "engine"
    #: Whether ``EngineRequest.cache_salt`` is honoured.
    supports_cache_salt: ClassVar[bool] = False

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

    def prefix_cache_counters(self) -> PrefixCacheCounters | None:
        """Cumulative engine-side prefix-cache counters, or ``None`` if not published."""
        return None

    def reset_prefix_cache(self) -> bool:
        """Drop every cached block. Returns whether the engine did so."""
        return False

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


@contextmanager
def mapped_errors(action: str, error: type[EngineError] = EngineRequestError) -> Iterator[None]:
    """Map backend exceptions to ``error`` at the boundary; our own errors pass through."""
    try:
        yield
    except EngineError:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        raise error(f"{action} failed: {type(exc).__name__}: {exc}") from exc
