"""The embedded engine: a ``vllm.LLM`` owned by this process, with prefix caching on.

vLLM is imported lazily, so ``import engine_adapter`` stays cheap and works without it. The
engine takes token ids only (``TokensPrompt``): the text was tokenized by promptkit, and sending
ids means no server-side re-tokenization can drift.

On the CPU backend: ``enforce_eager`` defaults to on (start-up ~30 s instead of ~130 s), the KV
cache size is set through ``VLLM_CPU_KVCACHE_SPACE`` (GiB) unless the caller already set it, and
the block size must be a multiple of 32 (we default to 32 so short prefixes hit). Scripts that
start this engine need an ``if __name__ == "__main__":`` guard: vLLM spawns worker processes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, ClassVar, Unpack

from engine_adapter._vllm_common import (
    VLLMOptions,
    counter_samples,
    import_vllm,
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
from engine_adapter._wire import prefix_counters
from engine_adapter.base import Engine, map_exceptions
from engine_adapter.errors import EngineClosedError
from engine_adapter.models import EngineRequest, EngineResult, PrefixCacheCounters

__all__ = ["VLLMEngine"]


class VLLMEngine(Engine):
    """An embedded vLLM engine with Automatic Prefix Caching.

    Args:
        model: a local Hugging Face model directory.
        options: see :class:`engine_adapter.VLLMOptions` (``block_size=32``, ``kv_events`` ...).
    """

    name: ClassVar[str] = "vllm"
    supports_cache_salt: ClassVar[bool] = True

    def __init__(self, model: str | os.PathLike[str], **options: Unpack[VLLMOptions]) -> None:
        kwargs, self.kv_events_endpoint = build_engine_kwargs(model, options)
        vllm = import_vllm()
        started = time.perf_counter()
        with map_exceptions(start_errors(), f"starting vLLM on {kwargs['model']}"):
            self._llm: Any = vllm.LLM(**kwargs)
        self.start_seconds = time.perf_counter() - started
        cache_config = self._llm.llm_engine.vllm_config.cache_config
        self._block_size = int(cache_config.block_size)
        self.prefix_caching = bool(cache_config.enable_prefix_caching)

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
        llm = self.llm
        prompts = [tokens_prompt(r) for r in requests]
        with map_request_errors("vLLM generate"):
            params = [sampling_params(r.sampling) for r in requests]
            started = time.perf_counter()
            outputs = llm.generate(prompts, params, use_tqdm=False)
        wall = time.perf_counter() - started
        return [to_result(r, o, wall) for r, o in zip(requests, outputs, strict=True)]

    def prefix_cache_counters(self) -> PrefixCacheCounters | None:
        llm = self.llm
        with map_request_errors("reading vLLM metrics"):
            metrics = llm.get_metrics()
        return prefix_counters(counter_samples(metrics))

    def reset_prefix_cache(self) -> bool:
        llm = self.llm
        with map_request_errors("resetting the prefix cache"):
            return bool(llm.reset_prefix_cache())

    def close(self) -> None:
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is None:
            return
        remove_kv_events_endpoint(self.kv_events_endpoint)
        llm.llm_engine.engine_core.shutdown()
