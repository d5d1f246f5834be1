"""The embedded engine: a ``vllm.LLM`` owned by this process, with prefix caching on.

vLLM is imported lazily, so ``import engine_adapter`` stays cheap and works without it. The
engine takes token ids only (``TokensPrompt``): the text was tokenized by promptkit, and sending
ids means no server-side re-tokenization can drift.

On the CPU backend: ``enforce_eager`` defaults to on (start-up ~30 s instead of ~130 s), the KV
cache size is set through ``VLLM_CPU_KVCACHE_SPACE`` (GiB) unless the caller already set it, and
the block size must be a multiple of 32 (we default to 32 so short prefixes hit). Scripts that
start this engine need an ``if __name__ == "__main__":`` guard: vLLM spawns worker processes.

A dead engine core fails the call in flight and every later call at once with
:class:`~engine_adapter.errors.EngineDeadError` (vLLM's own sync client would wait forever for
the dead core's output: a monitor thread wakes it). The engine processes are guarded by
:class:`~engine_adapter._watchdog.Watchdog`: they die with this process, even on ``SIGKILL``.

``vllm.LLM`` is not thread-safe (two threads in ``generate`` abort the process inside ZeroMQ),
so every call into it holds one lock: threads, and coroutines whose ``agenerate`` runs
``generate`` in a worker thread, take turns. For many concurrent sessions use
:class:`~engine_adapter.vllm_async.AsyncVLLMEngine`, which batches them instead.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Self, Unpack

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
from engine_adapter.errors import EngineClosedError, EngineDeadError, EngineStartError
from engine_adapter.models import EngineDelta, EngineRequest, EngineResult, PrefixCacheCounters

__all__ = ["VLLMEngine"]


class VLLMEngine(Engine):
    """An embedded vLLM engine with Automatic Prefix Caching.

    Args:
        model: a local Hugging Face model directory.
        options: see :class:`engine_adapter.VLLMOptions` (``block_size=32``, ``kv_events`` ...).

    To use a ``vllm.LLM`` you built yourself, see :meth:`from_llm`.
    """

    name: ClassVar[str] = "vllm"
    supports_cache_salt: ClassVar[bool] = True
    supports_streaming: ClassVar[bool] = True
    #: Kills the engine processes if this process dies without closing the engine.
    _watchdog: Watchdog | None = None

    def __init__(self, model: str | os.PathLike[str], **options: Unpack[VLLMOptions]) -> None:
        kwargs, endpoint = build_engine_kwargs(model, options)
        vllm = import_vllm()
        started = time.perf_counter()
        before = current_children()
        try:
            with map_exceptions(start_errors(), f"starting vLLM on {kwargs['model']}"):
                llm = vllm.LLM(**kwargs)
        except BaseException:
            remove_kv_events_endpoint(endpoint)
            raise
        self._adopt(llm, owns_llm=True, kv_events_endpoint=endpoint, private_endpoint=endpoint)
        self._watchdog = Watchdog(new_children(before))
        self.start_seconds = time.perf_counter() - started

    @classmethod
    def from_llm(cls, llm: Any, *, owns_llm: bool = False) -> Self:
        """Wrap a ``vllm.LLM`` that is already running (built with your own arguments).

        Block size and prefix caching are read back from its cache config, and KV-cache events
        are followed when it publishes them on an ``ipc://`` endpoint. :meth:`close` shuts the
        LLM down only with ``owns_llm=True``; by default it stays yours. ``start_seconds`` is
        ``None``: this engine started nothing.
        """
        config = llm.llm_engine.vllm_config
        runner = config.model_config.runner_type
        if runner != "generate":
            raise EngineStartError(
                f"the vllm.LLM runs a {runner!r} model, and promptkit needs a generative one: "
                "build it with runner='generate'"
            )
        engine = cls.__new__(cls)
        endpoint = _published_endpoint(config)
        engine._adopt(llm, owns_llm=owns_llm, kv_events_endpoint=endpoint, private_endpoint=None)
        return engine

    def _adopt(
        self,
        llm: Any,
        *,
        owns_llm: bool,
        kv_events_endpoint: str | None,
        private_endpoint: str | None,
    ) -> None:
        cache_config = llm.llm_engine.vllm_config.cache_config
        self._llm: Any = llm
        self._owns_llm = owns_llm
        # Only an endpoint this adapter made is deleted on close, never one of the caller's.
        self._private_endpoint = private_endpoint
        self._block_size = int(cache_config.block_size)
        # vllm.LLM serves one caller at a time: threads, and async callers (agenerate and astream
        # run these in worker threads), wait their turn here.
        self._lock = threading.Lock()
        #: Why the engine is dead, once it is: every later call fails at once with it.
        self.dead_reason: str | None = None
        self._closed = threading.Event()
        threading.Thread(target=self._monitor, name="promptkit-vllm-monitor", daemon=True).start()
        self.prefix_caching = bool(cache_config.enable_prefix_caching)
        self.kv_capacity_blocks = kv_capacity_blocks(cache_config)
        self.kv_events_endpoint = kv_events_endpoint
        self._stream_ids = itertools.count(1)

    @property
    def llm(self) -> Any:
        """The underlying ``vllm.LLM`` (for advanced use; prefer the adapter's methods)."""
        if self._llm is None:
            raise EngineClosedError("the engine was closed")
        return self._llm

    @property
    def block_size(self) -> int:
        return self._block_size

    def generate(self, requests: Sequence[EngineRequest]) -> list[EngineResult]:
        if not requests:
            return []
        prompts = [tokens_prompt(r) for r in requests]
        self._check_alive()
        with self._lock, self._mark_dead(), map_request_errors("vLLM generate"):
            llm = self.llm
            params = [sampling_params(r.sampling) for r in requests]
            started = time.perf_counter()
            outputs = llm.generate(prompts, params, use_tqdm=False)
        wall = time.perf_counter() - started
        return [to_result(r, o, wall) for r, o in zip(requests, outputs, strict=True)]

    def stream(self, request: EngineRequest) -> Iterator[EngineDelta | EngineResult]:
        """Step the engine one scheduler step at a time and yield each step's new tokens.

        ``LLM.generate`` returns only when every request is done; its ``LLMEngine`` can be
        stepped by hand instead, which is what ``LLM.generate`` does inside. Like ``generate``,
        this is not for concurrent use from several threads (use :class:`AsyncVLLMEngine`).
        """
        self._check_alive()
        engine = self.llm.llm_engine
        tracker = DeltaTracker()
        request_id = f"promptkit-stream-{next(self._stream_ids)}"
        with self._lock, self._mark_dead(), map_request_errors("vLLM stream"):
            started = time.perf_counter()
            engine.add_request(
                request_id, tokens_prompt(request), sampling_params(request.sampling)
            )
            try:
                while engine.has_unfinished_requests():
                    for output in engine.step():
                        delta = tracker.delta(output)
                        if delta is not None:
                            yield delta
                        if output.finished:
                            yield to_result(request, output, time.perf_counter() - started)
                            return
            finally:
                if engine.has_unfinished_requests():  # the consumer stopped early
                    engine.abort_request([request_id])

    def _check_alive(self) -> None:
        if self.dead_reason is not None:
            raise EngineDeadError(self.dead_reason)

    @contextmanager
    def _mark_dead(self) -> Iterator[None]:
        try:
            yield
        except EngineDeadError as exc:
            self.dead_reason = self.dead_reason or str(exc)
            raise

    def _monitor(self) -> None:
        """Wake a call waiting on a dead engine core: vLLM's sync client marks the core dead and
        shuts its output thread down, but nothing then wakes ``LLM.generate``'s wait."""
        while not self._closed.wait(0.5):
            core = getattr(getattr(self._llm, "llm_engine", None), "engine_core", None)
            resources = getattr(core, "resources", None)
            if resources is None or not getattr(resources, "engine_dead", False):
                continue
            self.dead_reason = self.dead_reason or (
                "the vLLM engine core process died (killed, or out of memory: see the log "
                "above); this engine cannot serve again: start a new one (Client.restart())"
            )
            queue = getattr(core, "outputs_queue", None)
            if queue is not None:
                from vllm.v1.engine.exceptions import EngineDeadError as VLLMEngineDeadError

                queue.put_nowait(VLLMEngineDeadError())
            return

    def prefix_cache_counters(self) -> PrefixCacheCounters | None:
        self._check_alive()
        with self._lock, map_request_errors("reading vLLM metrics"):
            samples = engine_counter_samples(self.llm.llm_engine)
        return prefix_counters(samples)

    def reset_prefix_cache(self) -> bool:
        self._check_alive()
        with self._lock, map_request_errors("resetting the prefix cache"):
            return bool(self.llm.reset_prefix_cache())

    def close(self) -> None:
        """Shut the engine down, if this adapter started it (or was told it owns it)."""
        self._closed.set()
        if self.dead_reason is None:
            with self._lock:  # a call in flight finishes first
                llm, self._llm = self._llm, None
        else:  # nothing in flight can finish on a dead engine
            llm, self._llm = self._llm, None
        if llm is None or not self._owns_llm:
            return
        remove_kv_events_endpoint(self._private_endpoint)
        try:
            llm.llm_engine.engine_core.shutdown()
        finally:
            if self._watchdog is not None:
                self._watchdog.release()


def _published_endpoint(config: Any) -> str | None:
    # Only an ipc:// endpoint can be subscribed to as it is configured; a tcp://*:port one is a
    # bind address that names no host to connect to.
    events = config.kv_events_config
    if events is None or not events.enable_kv_cache_events or events.publisher != "zmq":
        return None
    endpoint = str(events.endpoint)
    return endpoint if endpoint.startswith("ipc://") else None
