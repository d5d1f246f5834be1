"""The embedded engine for many concurrent sessions: vLLM's ``AsyncLLM``.

``AsyncLLM`` batches requests from concurrent callers continuously, which ``LLM.generate`` (one
blocking batch at a time) cannot. Its background tasks belong to the event loop it was created
in, so the engine runs on a private loop thread and every call is handed to that loop: async
callers on any loop ``await engine.agenerate(...)``, sync callers use ``generate(...)``, and all
their requests share one scheduler and one prefix cache. As with :class:`VLLMEngine`, a
:class:`~engine_adapter._watchdog.Watchdog` kills the engine processes if this process dies
without closing the engine (``SIGKILL`` included).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from concurrent.futures import Future
from typing import Any, ClassVar, TypeVar, Unpack

from engine_adapter._streaming import async_from_thread_loop, sync_from_thread_loop
from engine_adapter._vllm_common import (
    DeltaTracker,
    VLLMOptions,
    engine_counter_samples,
    import_vllm,
    kv_capacity_blocks,
    map_request_errors,
    remove_kv_events_endpoint,
    sampling_params,
    start_errors,
    to_result,
    tokens_prompt,
)
from engine_adapter._vllm_common import (
    engine_kwargs as build_engine_kwargs,
)
from engine_adapter._watchdog import Watchdog, current_children, new_children
from engine_adapter._wire import prefix_counters
from engine_adapter.base import Engine, map_exceptions
from engine_adapter.errors import EngineClosedError
from engine_adapter.models import EngineDelta, EngineRequest, EngineResult, PrefixCacheCounters

__all__ = ["AsyncVLLMEngine"]

T = TypeVar("T")
_ids = itertools.count(1)


class AsyncVLLMEngine(Engine):
    """An embedded ``AsyncLLM`` with prefix caching; options as :class:`VLLMEngine`."""

    name: ClassVar[str] = "vllm-async"
    supports_cache_salt: ClassVar[bool] = True
    supports_streaming: ClassVar[bool] = True
    #: Kills the engine processes if this process dies without closing the engine.
    _watchdog: Watchdog | None = None

    def __init__(self, model: str | os.PathLike[str], **options: Unpack[VLLMOptions]) -> None:
        kwargs, self.kv_events_endpoint = build_engine_kwargs(model, options)
        import_vllm()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="promptkit-asyncllm", daemon=True
        )
        self._thread.start()
        started = time.perf_counter()
        before = current_children()
        with map_exceptions(start_errors(), f"starting vLLM AsyncLLM on {kwargs['model']}"):
            self._engine: Any = self._run(_start(kwargs))
        self._watchdog = Watchdog(new_children(before))
        self.start_seconds = time.perf_counter() - started
        cache_config = self._engine.vllm_config.cache_config
        self._block_size = int(cache_config.block_size)
        self.prefix_caching = bool(cache_config.enable_prefix_caching)
        self.kv_capacity_blocks = kv_capacity_blocks(cache_config)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._submit(coro).result()

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        if self._loop.is_closed():
            coro.close()
            raise EngineClosedError("the engine was closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    @property
    def block_size(self) -> int:
        return self._block_size

    async def _one(self, request: EngineRequest) -> EngineResult:
        started = time.perf_counter()
        final: Any = None
        async for output in self._engine.generate(
            tokens_prompt(request), sampling_params(request.sampling), f"promptkit-{next(_ids)}"
        ):
            final = output
        return to_result(request, final, time.perf_counter() - started)

    async def _many(self, requests: Sequence[EngineRequest]) -> list[EngineResult]:
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    def generate(self, requests: Sequence[EngineRequest]) -> list[EngineResult]:
        with map_request_errors("vLLM AsyncLLM generate"):
            return self._run(self._many(requests))

    async def agenerate(self, requests: Sequence[EngineRequest]) -> list[EngineResult]:
        """Await results from any event loop; concurrent callers are batched together."""
        with map_request_errors("vLLM AsyncLLM generate"):
            return await asyncio.wrap_future(self._submit(self._many(requests)))

    def _producer(
        self, request: EngineRequest
    ) -> Callable[[Callable[[EngineDelta | EngineResult], None]], Coroutine[Any, Any, None]]:
        async def produce(put: Callable[[EngineDelta | EngineResult], None]) -> None:
            started = time.perf_counter()
            tracker = DeltaTracker()
            with map_request_errors("vLLM AsyncLLM stream"):
                async for output in self._engine.generate(
                    tokens_prompt(request),
                    sampling_params(request.sampling),
                    f"promptkit-{next(_ids)}",
                ):
                    delta = tracker.delta(output)
                    if delta is not None:
                        put(delta)
                    if output.finished:
                        put(to_result(request, output, time.perf_counter() - started))

        return produce

    def stream(self, request: EngineRequest) -> Iterator[EngineDelta | EngineResult]:
        return sync_from_thread_loop(self._producer(request), self._submit)

    def astream(self, request: EngineRequest) -> AsyncIterator[EngineDelta | EngineResult]:
        """Stream from any event loop; the request is batched with everyone else's."""
        return async_from_thread_loop(self._producer(request), self._submit)

    def prefix_cache_counters(self) -> PrefixCacheCounters | None:
        with map_request_errors("reading vLLM metrics"):
            samples = engine_counter_samples(self._engine)
        return prefix_counters(samples)

    def reset_prefix_cache(self) -> bool:
        with map_request_errors("resetting the prefix cache"):
            result = self._run(self._engine.reset_prefix_cache())
        return result is None or bool(result)

    def close(self) -> None:
        engine, self._engine = getattr(self, "_engine", None), None
        if engine is not None:
            try:
                engine.shutdown()
            finally:
                remove_kv_events_endpoint(self.kv_events_endpoint)
                if self._watchdog is not None:
                    self._watchdog.release()
        loop = getattr(self, "_loop", None)
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout=10)
            loop.close()


async def _start(kwargs: dict[str, Any]) -> Any:
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    return AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs))
