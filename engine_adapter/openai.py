"""The remote engine: an OpenAI-compatible vLLM server, reached through the ``openai`` client.

For users who outgrow one machine. promptkit still tokenizes; the adapter sends token ids to the
completions API (``prompt=[ids]``), so the server never re-tokenizes and cannot drift. Start the
server with prefix caching and per-request cache reports (docs/remote.md explains each flag)::

    python -m vllm.entrypoints.openai.api_server --model DIR \\
        --enable-prefix-caching --enable-prompt-tokens-details --block-size 32

Where each result field comes from:

- ``num_cached_tokens``: ``usage.prompt_tokens_details.cached_tokens``; ``None`` when the server
  runs without ``--enable-prompt-tokens-details``. The first answer tells: when it has no cached
  count, the engine warns once (:class:`~engine_adapter.errors.CachedTokensNotReported`, naming
  the flag) and every such result carries the reason in ``cached_unknown_reason``. No probe
  request is sent for this: it would cost a prefill, and move the server's prefix-cache counters
  and cache contents under the client that snapshots them.
- ``token_ids``: vLLM's ``return_token_ids`` extension; an empty tuple on servers that ignore it.
- ``logprobs`` (when ``SamplingSettings.logprobs`` asks): the streamed ``top_logprobs``, keyed by
  token id through vLLM's ``return_tokens_as_token_ids`` (keys read ``"token_id:123"``); ``None``
  when the server returns keys that are not ids.
- ``ttft_s``: measured on the client, from sending the request to the first streamed token.
- ``block_size``: the constructor argument, else ``vllm:cache_config_info`` on ``/metrics``.

``openai`` is imported lazily; ``pip install 'promptkit-vllm[remote]'`` installs it.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from engine_adapter._wire import (
    CACHE_CONFIG_METRIC,
    Sample,
    parse_prometheus,
    prefix_counters,
    sampling_fields,
)
from engine_adapter.base import Engine, ErrorMapping, map_exceptions
from engine_adapter.errors import (
    CachedTokensNotReported,
    EngineClosedError,
    EngineError,
    EngineNotInstalled,
    EngineRequestError,
    EngineStartError,
    PartialBatchError,
)
from engine_adapter.models import EngineDelta, EngineRequest, EngineResult, PrefixCacheCounters

if TYPE_CHECKING:
    from openai import OpenAI

__all__ = ["OpenAIEngine"]

_START_HINT = (
    "start it with `python -m vllm.entrypoints.openai.api_server --model DIR "
    "--enable-prefix-caching --enable-prompt-tokens-details` (see docs/remote.md)"
)
_DETAILS_FLAG = "--enable-prompt-tokens-details"
_TOKEN_ID_PREFIX = "token_id:"


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as exc:
        raise EngineNotInstalled(
            f"the openai package is not installed ({exc}); "
            "run `pip install 'promptkit-vllm[remote]'`"
        ) from exc
    return openai


class OpenAIEngine(Engine):
    """A vLLM server behind its OpenAI-compatible API, with Automatic Prefix Caching.

    Requests go out as streamed completions. ``ttft_s`` (``timing_source="measured"``) is client
    wall time from just before the HTTP request is sent to the arrival of the first streamed
    chunk that carries a generated token: it includes the network round trip, HTTP and JSON
    overhead and any queueing on the server, so it is an upper bound on the engine's own TTFT,
    but it excludes decoding. ``latency_s`` runs until the stream ends.

    Args:
        client: an ``openai.OpenAI`` client whose ``base_url`` is the server's ``/v1``. You keep
            ownership: :meth:`close` does not close it (see :meth:`from_url`).
        model: the served model name (``--served-model-name``, else the ``--model`` argument).
        block_size: the server's KV block size (``--block-size``). ``None`` reads it from the
            ``vllm:cache_config_info`` metric at construction, and raises
            :class:`EngineStartError` if the server does not publish it.
        server_url: the server root for ``/metrics`` and ``/reset_prefix_cache``; defaults to
            ``base_url`` without its ``/v1``.
        max_concurrency: at most this many requests of one :meth:`generate` call are in flight,
            so the server can batch them.
        kv_events_endpoint: where the server publishes its KV-cache events (the ``endpoint`` of
            its ``--kv-events-config``, with the host a client can reach, e.g.
            ``tcp://127.0.0.1:5557``); clients and routers then follow them.
    """

    name: ClassVar[str] = "openai"
    supports_cache_salt: ClassVar[bool] = True
    supports_streaming: ClassVar[bool] = True

    def __init__(
        self,
        client: OpenAI,
        *,
        model: str,
        block_size: int | None = None,
        server_url: str | None = None,
        max_concurrency: int = 8,
        deadline_s: float | None = 300.0,
        kv_events_endpoint: str | None = None,
    ) -> None:
        self._openai = _import_openai()
        self._client: OpenAI | None = client
        self._owns_client = False
        self.model = model
        self.server_url = (server_url or _server_root(str(client.base_url))).rstrip("/")
        self.max_concurrency = max(1, max_concurrency)
        #: The most seconds one streamed answer may take, however the server trickles it.
        self.deadline_s = deadline_s
        self.kv_events_endpoint = kv_events_endpoint
        #: Whether the server reports cached tokens per request: ``None`` until its first answer.
        self.reports_cached_tokens: bool | None = None
        self._reports_lock = threading.Lock()
        if block_size is None:
            block_size = self._read_cache_config()
        self._block_size = block_size

    @classmethod
    def from_url(
        cls,
        base_url: str,
        *,
        model: str,
        api_key: str = "EMPTY",
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        max_retries: int = 2,
        **kwargs: Any,
    ) -> OpenAIEngine:
        """Build the ``openai.OpenAI`` client too (``base_url`` like ``http://host:8000/v1``).

        vLLM accepts any ``api_key`` unless it was started with ``--api-key``. The engine owns
        this client and closes it in :meth:`close`. ``kwargs`` go to the constructor
        (``deadline_s``: the total seconds one answer may take, default 300).

        Defaults: 5 s to connect, 60 s without a byte from the server, 2 retries with the
        ``openai`` client's exponential backoff, which retries only what is safe to send again
        (connection failures, 408, 409, 429 and 5xx answers, before any token streamed).
        """
        openai = _import_openai()
        client = openai.OpenAI(
            base_url=base_url,
            api_key=api_key,
            timeout=openai.Timeout(timeout, connect=connect_timeout),
            max_retries=max_retries,
        )
        try:
            engine = cls(client, model=model, **kwargs)
        except BaseException:
            client.close()
            raise
        engine._owns_client = True
        return engine

    @property
    def block_size(self) -> int:
        return self._block_size

    @property
    def client(self) -> OpenAI:
        """The ``openai.OpenAI`` client requests go through."""
        if self._client is None:
            raise EngineClosedError("the engine was closed")
        return self._client

    def generate(self, requests: Sequence[EngineRequest]) -> list[EngineResult]:
        """Answer each request; when some fail, :class:`PartialBatchError` keeps the others'."""
        if len(requests) <= 1:
            return [self._complete(request) for request in requests]
        workers = min(len(requests), self.max_concurrency)
        with ThreadPoolExecutor(workers, thread_name_prefix="promptkit-openai") as pool:
            futures = [pool.submit(self._complete, request) for request in requests]
        results: list[EngineResult | None] = []
        errors: dict[int, BaseException] = {}
        for index, future in enumerate(futures):
            error = future.exception()
            if error is None:
                results.append(future.result())
            else:
                if not isinstance(error, EngineError):
                    raise error  # a bug, not a refusal: unchanged
                results.append(None)
                errors[index] = error
        if errors:
            first = errors[min(errors)]
            raise PartialBatchError(
                f"{len(errors)} of {len(requests)} requests failed (first: {first}); the "
                f"{len(requests) - len(errors)} answers are kept on the error",
                results=results,
                errors=errors,
            )
        return [r for r in results if r is not None]

    def prefix_cache_counters(self) -> PrefixCacheCounters | None:
        """Sums of ``vllm:prefix_cache_queries`` / ``_hits`` on ``/metrics`` (all engines)."""
        return prefix_counters((name, value) for name, _, value in self._metrics())

    def reset_prefix_cache(self) -> bool:
        """``POST /reset_prefix_cache``; ``False`` when the server lacks it or refuses.

        The endpoint exists only on servers started with ``VLLM_SERVER_DEV_MODE=1``, and vLLM
        refuses a reset while running requests hold blocks.
        """
        client = self.client
        with self._errors("resetting the prefix cache"):
            try:
                body = client.post(f"{self.server_url}/reset_prefix_cache", cast_to=str)
            except self._openai.NotFoundError:
                return False
        try:
            answer = json.loads(body)
        except ValueError:
            return True  # older servers answer 200 with an empty body
        return bool(answer.get("success", True)) if isinstance(answer, dict) else True

    def healthy(self, *, timeout: float = 2.0) -> bool:
        """``GET /health`` answers 200 within ``timeout`` seconds (vLLM answers 503 once its
        engine died)."""
        try:
            client = self.client
        except EngineClosedError:
            return False
        try:
            client.with_options(timeout=timeout, max_retries=0).get(
                f"{self.server_url}/health", cast_to=str
            )
        except self._openai.APIError:
            return False
        return True

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            client.close()

    # -- I/O --------------------------------------------------------------------------------

    def _complete(self, request: EngineRequest) -> EngineResult:
        *_, result = self.stream(request)
        assert isinstance(result, EngineResult)
        return result

    def stream(self, request: EngineRequest) -> Iterator[EngineDelta | EngineResult]:
        """Yield each streamed completion chunk as it arrives, then the whole result."""
        client = self.client
        settings = request.sampling
        # vLLM's completions API takes its SamplingParams fields in the body, plus extensions.
        body: dict[str, Any] = {**sampling_fields(settings), "return_token_ids": True}
        if request.cache_salt is not None:
            body["cache_salt"] = request.cache_salt
        if settings.logprobs is not None:
            # Candidates keyed "token_id:123" rather than by decoded text, which is ambiguous.
            body["return_tokens_as_token_ids"] = True
        text: list[str] = []
        token_ids: list[int] = []
        candidates: list[dict[str, float] | None] = []
        finish_reason: str | None = None
        cached: int | None = None
        usage_seen = False
        ttft: float | None = None
        with self._errors("completion request"):
            started = time.perf_counter()
            stream = client.completions.create(
                model=self.model,
                prompt=list(request.prompt_token_ids),
                stream=True,
                stream_options={"include_usage": True},
                extra_body=body,
            )
            expired = threading.Event()
            timer = self._deadline_timer(stream, expired)
            with stream:
                for chunk in _until(stream, expired):
                    for choice in chunk.choices:
                        if ttft is None:
                            ttft = time.perf_counter() - started
                        text.append(choice.text)
                        ids = tuple(getattr(choice, "token_ids", None) or ())
                        token_ids.extend(ids)
                        if choice.text or ids:
                            yield EngineDelta(text=choice.text, token_ids=ids)
                        if choice.logprobs is not None:
                            candidates.extend(choice.logprobs.top_logprobs or ())
                        finish_reason = choice.finish_reason or finish_reason
                    if chunk.usage is not None:
                        usage_seen = True
                        details = chunk.usage.prompt_tokens_details
                        if details is not None and details.cached_tokens is not None:
                            cached = int(details.cached_tokens)
            if timer is not None:
                timer.cancel()
            latency = time.perf_counter() - started
        if expired.is_set():
            raise EngineRequestError(
                f"completion request to {self.server_url} passed its deadline of "
                f"{self.deadline_s} s (the server answered too slowly); the partial answer was "
                "dropped: raise deadline_s or check the server"
            )
        if finish_reason is None:
            raise EngineRequestError(
                f"the stream from {self.server_url} ended before the answer finished (no "
                "finish_reason): the server or a proxy cut it; the partial answer was dropped"
            )
        yield EngineResult(
            prompt_token_ids=request.prompt_token_ids,
            num_cached_tokens=cached,
            text="".join(text),
            token_ids=tuple(token_ids),
            finish_reason=finish_reason,
            ttft_s=ttft,
            latency_s=latency,
            timing_source="measured",
            logprobs=_by_token_id(candidates) if settings.logprobs is not None else None,
            cached_unknown_reason=self._observe_cached(
                reported=cached is not None, usage=usage_seen
            ),
        )

    def _deadline_timer(self, stream: Any, expired: threading.Event) -> threading.Timer | None:
        """Close ``stream`` when the deadline passes: a server that trickles bytes (keep-alive
        comments, one token a minute) never trips the read timeout, but cannot pass this."""
        if self.deadline_s is None:
            return None

        def expire() -> None:
            expired.set()
            stream.close()

        timer = threading.Timer(self.deadline_s, expire)
        timer.daemon = True
        timer.start()
        return timer

    def _observe_cached(self, *, reported: bool, usage: bool) -> str | None:
        """Learn from each answer whether the server reports cached tokens; warn on the first
        answer that shows it does not. Returns why the count is unknown (``None``: it is known)."""
        with self._reports_lock:
            first = self.reports_cached_tokens is None
            if first or reported:
                self.reports_cached_tokens = reported
        if reported:
            return None
        if usage:
            reason = (
                f"the vLLM server at {self.server_url} does not report cached tokens: restart it "
                f"with {_DETAILS_FLAG} (its answers carry no usage.prompt_tokens_details)"
            )
        else:
            reason = (
                f"the server at {self.server_url} sent no usage with its answer, so no cached "
                f"tokens: use a vLLM server, started with {_DETAILS_FLAG}"
            )
        if first:
            warnings.warn(
                f"{reason}; until then every verdict is UNKNOWN and reports cannot say how much "
                "of each prompt was served from the prefix cache",
                CachedTokensNotReported,
                stacklevel=4,
            )
        return reason

    def _metrics(self, error: type[EngineError] = EngineRequestError) -> list[Sample]:
        client = self.client
        with self._errors(f"reading {self.server_url}/metrics", error):
            text = client.get(f"{self.server_url}/metrics", cast_to=str)
        return parse_prometheus(text)

    def _read_cache_config(self) -> int:
        for name, labels, _ in self._metrics(EngineStartError):
            if name == CACHE_CONFIG_METRIC and labels.get("block_size", "").isdigit():
                self.prefix_caching = labels.get("enable_prefix_caching") == "True"
                blocks = labels.get("num_gpu_blocks", "")
                if blocks.isdigit() and int(blocks) > 1:  # minus vLLM's null block
                    self.kv_capacity_blocks = int(blocks) - 1
                return int(labels["block_size"])
        raise EngineStartError(
            f"{self.server_url}/metrics does not publish {CACHE_CONFIG_METRIC} (was the server "
            "started with --disable-log-stats?); pass block_size= (the server's --block-size)"
        )

    @contextmanager
    def _errors(self, action: str, error: type[EngineError] = EngineRequestError) -> Iterator[None]:
        """Map the ``openai`` errors :func:`openai_errors` names to ``error``, with a next step."""
        with map_exceptions(openai_errors(self._openai, error), action, describe=self._describe):
            yield

    def _describe(self, action: str, exc: Exception) -> str:
        openai = self._openai
        if isinstance(exc, openai.APITimeoutError):
            return (
                f"{action} timed out at {self.server_url}; raise the client's timeout or check "
                "the server log for a stuck engine"
            )
        if isinstance(exc, openai.APIConnectionError):
            return (
                f"{action} failed: cannot reach the vLLM server at {self.server_url} ({exc}); "
                f"is it running? {_START_HINT}"
            )
        if isinstance(exc, openai.APIStatusError):
            return (
                f"{action} failed: {self.server_url} answered HTTP {exc.status_code}: "
                f"{exc.message}; {_status_hint(exc.status_code, self.model, self.server_url)}"
            )
        return f"{action} failed: the server at {self.server_url} sent an error: {exc}"


def openai_errors(openai: Any, error: type[EngineError]) -> ErrorMapping:
    """The ``openai`` exceptions mapped to ``error`` (what the failing call was doing decides
    it: :class:`EngineStartError` while the constructor reads ``/metrics``, else
    :class:`EngineRequestError`). Other exceptions, bugs included, propagate unchanged.

    ``APITimeoutError`` (the client's timeout), ``APIConnectionError`` (no server there),
    ``APIStatusError`` (an HTTP error status: 400 bad request, 404 unknown model, 5xx ...) and
    ``APIError`` (an error event in the middle of a stream, or an unreadable response). A
    connection that breaks while the answer streams (a server killed mid-answer) reaches us as
    ``APIConnectionError`` too.
    """
    return {
        openai.APITimeoutError: error,
        openai.APIConnectionError: error,
        openai.APIStatusError: error,
        openai.APIError: error,
    }


def _status_hint(status: int, model: str, server_url: str) -> str:
    if status in (401, 403):
        return "the server was started with --api-key: pass the same key to the client"
    if status == 404:
        return f"is {model!r} the served model name? GET {server_url}/v1/models lists it"
    if 400 <= status < 500:
        return (
            "the server rejected the request: check the prompt length against --max-model-len, "
            "the sampling settings and the cache_salt"
        )
    return "see the server log"


def _server_root(base_url: str) -> str:
    root = base_url.rstrip("/")
    return root.removesuffix("/v1")


def _by_token_id(
    candidates: Sequence[Mapping[str, float] | None],
) -> tuple[dict[int, float], ...] | None:
    """``{token_id: logprob}`` per generated token from ``{"token_id:123": logprob}`` entries.

    ``None`` when a key is not such an id (a server that ignores ``return_tokens_as_token_ids``):
    decoded text cannot be mapped back to ids reliably, and a wrong id would make two outputs
    look like a near-tie that is not.
    """
    parsed: list[dict[int, float]] = []
    for position in candidates:
        entry: dict[int, float] = {}
        for key, logprob in (position or {}).items():
            token = key.removeprefix(_TOKEN_ID_PREFIX)
            if token == key or not token.isdigit():
                return None
            entry[int(token)] = float(logprob)
        parsed.append(entry)
    return tuple(parsed)


def _until(stream: Any, expired: threading.Event) -> Iterator[Any]:
    """The stream's chunks until it ends or the deadline closed it (reading a closed stream
    raises whatever httpx raises then; after the deadline that is not an error of its own)."""
    try:
        for chunk in stream:
            if expired.is_set():
                return
            yield chunk
    except Exception:
        if not expired.is_set():
            raise
