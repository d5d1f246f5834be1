"""What every client records per request, and how engine time is separated from client time.

*Engine time* is the wall time of the call that ran the request on the engine (``vllm.LLM``'s
``generate``/``chat``, or the adapter's ``generate``). *SDK time* is the CPU time
(``time.process_time``) the client spent outside that call for the request: building, tokenizing,
recording. TTFT is the engine's own ``first_token_latency`` for every client.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from engine_adapter import Engine, EngineRequest, EngineResult, PrefixCacheCounters

from .oracle import Sent

__all__ = [
    "Measured",
    "Stopwatch",
    "TimedEngine",
    "measured_from_result",
    "measured_from_vllm",
]


@dataclass(frozen=True, slots=True)
class Measured:
    """One request of one client: ids sent and generated, cache hit, timings."""

    prompt_ids: tuple[int, ...]
    output_ids: tuple[int, ...]
    cached_tokens: int | None
    ttft_s: float | None
    engine_s: float
    sdk_s: float | None
    warm_up: bool
    salt: str | None = None
    text: str = ""

    @property
    def sent(self) -> Sent:
        return Sent(self.prompt_ids, self.output_ids, self.salt)


class TimedEngine(Engine):
    """Delegates to an engine and accumulates the wall and CPU time spent inside ``generate``."""

    name = "timed"
    supports_cache_salt = True

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.wall_s = 0.0
        self.cpu_s = 0.0

    @property
    def block_size(self) -> int:
        return self.inner.block_size

    def generate(self, requests: Sequence[EngineRequest]) -> list[EngineResult]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return self.inner.generate(requests)
        finally:
            self.wall_s += time.perf_counter() - wall
            self.cpu_s += time.process_time() - cpu

    def prefix_cache_counters(self) -> PrefixCacheCounters | None:
        return self.inner.prefix_cache_counters()

    def reset_prefix_cache(self) -> bool:
        return self.inner.reset_prefix_cache()


class Stopwatch:
    """Times one request: its CPU time minus the CPU spent in engine calls is SDK time.

    Engine calls are seen either through a :class:`TimedEngine` (the promptkit client calls
    the adapter) or by wrapping them in :meth:`engine_call` (clients that call ``vllm.LLM``).
    """

    def __init__(self, engine: TimedEngine | None = None) -> None:
        self._engine = engine
        self._start_cpu = time.process_time()
        self._start_engine = (engine.wall_s, engine.cpu_s) if engine else (0.0, 0.0)
        self._wall = 0.0
        self._cpu = 0.0

    @contextmanager
    def engine_call(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self._wall += time.perf_counter() - wall
            self._cpu += time.process_time() - cpu

    def stop(self) -> tuple[float, float]:
        """``(sdk_cpu_s, engine_wall_s)`` since the stopwatch was made."""
        wall, cpu = self._wall, self._cpu
        if self._engine is not None:
            wall += self._engine.wall_s - self._start_engine[0]
            cpu += self._engine.cpu_s - self._start_engine[1]
        return max(0.0, time.process_time() - self._start_cpu - cpu), wall


def measured_from_vllm(
    output: Any, *, engine_s: float, sdk_s: float | None, warm_up: bool
) -> Measured:
    """A ``vllm.RequestOutput`` as a :class:`Measured` (ids as vLLM tokenized them)."""
    completion = output.outputs[0]
    ttft = getattr(getattr(output, "metrics", None), "first_token_latency", None)
    cached = output.num_cached_tokens
    return Measured(
        prompt_ids=tuple(output.prompt_token_ids),
        output_ids=tuple(completion.token_ids),
        cached_tokens=int(cached) if cached is not None else None,
        ttft_s=float(ttft) if isinstance(ttft, float) and ttft > 0 else None,
        engine_s=engine_s,
        sdk_s=sdk_s,
        warm_up=warm_up,
        text=completion.text,
    )


def measured_from_result(
    result: EngineResult, *, engine_s: float, sdk_s: float | None, warm_up: bool, salt: str | None
) -> Measured:
    """An adapter :class:`EngineResult` as a :class:`Measured`."""
    return Measured(
        prompt_ids=result.prompt_token_ids,
        output_ids=result.token_ids,
        cached_tokens=result.num_cached_tokens,
        ttft_s=result.ttft_s if result.timing_source == "engine" else None,
        engine_s=engine_s,
        sdk_s=sdk_s,
        warm_up=warm_up,
        salt=salt,
        text=result.text,
    )
