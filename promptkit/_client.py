"""The client: build token-stable prompts, send ids to an engine, report every prefix hit.

::

    client = Client.embedded()                       # default model, embedded vLLM, APC on
    qa = client.template("long_doc_qa")              # a shipped template, or a path
    out = client.generate(qa, {"document": doc, "question": "Who?"})
    print(out.text, out.record.verdict, out.record.cached_tokens)
    print(client.summary())

A request goes one way: build (:class:`~promptkit._builder.PromptBuilder`), expect
(:func:`promptkit._audit.expect`: the mirror's view before it runs), the engine, audit
(:func:`promptkit._audit.audit`: drift, verdict, explanation, record), then the mirror, the
records and the log. The client holds the I/O and one :class:`~promptkit._audit.Pending` per
request in flight; nothing after the engine returns may lose the answer.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeAlias

from engine_adapter import Engine, EngineDelta, EngineResult, SamplingSettings
from engine_adapter._kv_events import KVEventSubscriber
from promptkit._audit import DriftDetector, Pending, audit, expect
from promptkit._batch import BatchJob, BatchProgress
from promptkit._builder import PromptBuilder
from promptkit._built_prompt import BuiltPrompt
from promptkit._chat_template import DEFAULT_PINNED_DATE
from promptkit._expectation import PrefixCacheMirror
from promptkit._templating.finder import load_template
from promptkit._templating.prompt_template import PromptTemplate
from promptkit._tokenization import Tokenizer
from promptkit.reporting.records import JsonlSink, RequestRecord, RunSummary, summarize

__all__ = ["BatchItem", "Client", "Generation"]

log = logging.getLogger(__name__)

#: One request of :meth:`Client.batch`: a built prompt, or a template and its variables.
BatchItem: TypeAlias = BuiltPrompt | tuple[PromptTemplate, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Generation:
    """One generation: the engine's answer, the prompt that was sent and its cache record."""

    prompt: BuiltPrompt
    result: EngineResult
    record: RequestRecord

    @property
    def text(self) -> str:
        return self.result.text

    @property
    def token_ids(self) -> tuple[int, ...]:
        return self.result.token_ids


class Client:
    """Builds prompts for one model and sends them to one engine, recording every prefix hit.

    Args:
        engine: any :class:`engine_adapter.Engine`; its ``block_size`` drives block accounting.
        tokenizer: the same model's tokenizer.
        log_path: append a JSONL record per request here (opt-in).
        mirror_capacity_blocks: blocks the expectation mirror remembers at most (LRU); it also
            evicts as the engine does when the engine declares ``kv_capacity_blocks``.
        pinned_date: the date chat templates with a clock see.
        follow_kv_events: follow the engine's KV-cache events (evictions known exactly);
            ``None`` follows them whenever the engine publishes them.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        tokenizer: Tokenizer,
        log_path: str | os.PathLike[str] | None = None,
        mirror_capacity_blocks: int = 200_000,
        pinned_date: dt.date = DEFAULT_PINNED_DATE,
        owns_engine: bool = False,
        follow_kv_events: bool | None = None,
    ) -> None:
        self.engine = engine
        self.tokenizer = tokenizer
        self.builder = PromptBuilder(
            tokenizer, block_size=engine.block_size, pinned_date=pinned_date
        )
        self.mirror = PrefixCacheMirror(
            block_size=engine.block_size,
            capacity_blocks=mirror_capacity_blocks,
            engine_blocks=engine.kv_capacity_blocks,
        )
        self.drift = DriftDetector(tokenizer)
        self.records: list[RequestRecord] = []
        self._ids = itertools.count(1)
        self._sink = JsonlSink(log_path) if log_path is not None else None
        self._owns_engine = owns_engine
        self._counters_baseline = engine.prefix_cache_counters()
        self._replica_baseline = engine.replica_counters()
        endpoint = engine.kv_events_endpoint
        self._kv_events: KVEventSubscriber | None = None
        if endpoint and follow_kv_events is not False:
            self._kv_events = KVEventSubscriber(endpoint)

    @classmethod
    def embedded(
        cls,
        model: str | os.PathLike[str] | None = None,
        *,
        log_path: str | os.PathLike[str] | None = None,
        pinned_date: dt.date = DEFAULT_PINNED_DATE,
        **engine_kwargs: Any,
    ) -> Client:
        """A client over an embedded vLLM engine (prefix caching on) and the model's tokenizer.

        ``model`` defaults to ``$PROMPTKIT_MODEL`` or the bundled SmolLM2 (converted on first use);
        other keyword arguments go to :class:`engine_adapter.VLLMEngine`.
        """
        from engine_adapter.vllm import VLLMEngine
        from promptkit._model_store import resolve_model_dir

        path = resolve_model_dir(model)
        tokenizer = Tokenizer.from_dir(path)
        engine = VLLMEngine(path, **engine_kwargs)
        return cls(
            engine=engine,
            tokenizer=tokenizer,
            log_path=log_path,
            pinned_date=pinned_date,
            owns_engine=True,
        )

    # -- templates and prompts --------------------------------------------------------------

    def template(self, name_or_path: str | Path) -> PromptTemplate:
        """Load a template by path, or by the name of a shipped template (``long_doc_qa``)."""
        return load_template(name_or_path)

    def build(
        self,
        template: PromptTemplate,
        variables: Mapping[str, Any],
        *,
        tools: Sequence[Any] | None = None,
    ) -> BuiltPrompt:
        """Render and tokenize a prompt without sending it."""
        return self.builder.build(template, variables, tools=tools)

    # -- generation -------------------------------------------------------------------------

    def generate(
        self,
        template: PromptTemplate,
        variables: Mapping[str, Any],
        *,
        sampling: SamplingSettings | None = None,
        tools: Sequence[Any] | None = None,
        cache_salt: str | None = None,
        label: str | None = None,
    ) -> Generation:
        """Build one prompt, send it, and return the answer with its cache record."""
        prompt = self.build(template, variables, tools=tools)
        return self.send([prompt], sampling=sampling, cache_salt=cache_salt, labels=[label])[0]

    def send(
        self,
        prompts: Sequence[BuiltPrompt],
        *,
        sampling: SamplingSettings | None = None,
        cache_salt: str | None = None,
        salts: Sequence[str | None] | None = None,
        labels: Sequence[str | None] | None = None,
    ) -> list[Generation]:
        """Send built prompts as one engine batch and record each request.

        Expectations are taken before the batch runs: requests scheduled together cannot reuse
        each other's blocks, so the mirror's view before the batch is the fair expectation.
        """
        pending = self._prepare(prompts, sampling, cache_salt, salts, labels)
        return self._finish(pending, self.engine.generate([p.request for p in pending]))

    async def asend(
        self,
        prompts: Sequence[BuiltPrompt],
        *,
        sampling: SamplingSettings | None = None,
        cache_salt: str | None = None,
        salts: Sequence[str | None] | None = None,
        labels: Sequence[str | None] | None = None,
    ) -> list[Generation]:
        """:meth:`send` for async code: many sessions can await at once (use
        :class:`engine_adapter.AsyncVLLMEngine` so the engine batches them continuously)."""
        pending = self._prepare(prompts, sampling, cache_salt, salts, labels)
        return self._finish(pending, await self.engine.agenerate([p.request for p in pending]))

    def stream(
        self,
        prompt: BuiltPrompt,
        *,
        sampling: SamplingSettings | None = None,
        cache_salt: str | None = None,
        label: str | None = None,
    ) -> Iterator[EngineDelta | Generation]:
        """Send one prompt and yield its output as it is generated (:class:`EngineDelta` items),
        then its :class:`Generation`, recorded like :meth:`send`'s (last, exactly once).

        Tokens arrive one scheduler step at a time on engines with ``supports_streaming``;
        others yield the whole answer as one delta."""
        pending = self._prepare([prompt], sampling, cache_salt, None, [label])[0]
        for item in self.engine.stream(pending.request):
            yield self._complete(pending, item) if isinstance(item, EngineResult) else item

    async def astream(
        self,
        prompt: BuiltPrompt,
        *,
        sampling: SamplingSettings | None = None,
        cache_salt: str | None = None,
        label: str | None = None,
    ) -> AsyncIterator[EngineDelta | Generation]:
        """:meth:`stream` for async code."""
        pending = self._prepare([prompt], sampling, cache_salt, None, [label])[0]
        async for item in self.engine.astream(pending.request):
            yield self._complete(pending, item) if isinstance(item, EngineResult) else item

    def _prepare(
        self,
        prompts: Sequence[BuiltPrompt],
        sampling: SamplingSettings | None,
        cache_salt: str | None,
        salts: Sequence[str | None] | None,
        labels: Sequence[str | None] | None,
    ) -> list[Pending]:
        self.sync_kv_events()
        settings = sampling or SamplingSettings()
        request_salts = list(salts) if salts is not None else [cache_salt] * len(prompts)
        request_labels = list(labels) if labels is not None else [None] * len(prompts)
        rows = zip(prompts, request_salts, request_labels, strict=True)
        pending = [expect(self.mirror, p, sampling=settings, salt=s, label=lb) for p, s, lb in rows]
        self.engine.check_requests([p.request for p in pending])  # before anything is sent
        return pending

    def _finish(
        self, pending: Sequence[Pending], results: Sequence[EngineResult]
    ) -> list[Generation]:
        return [self._complete(p, r) for p, r in zip(pending, results, strict=True)]

    def fan_out(
        self,
        prompts: Sequence[BuiltPrompt],
        *,
        sampling: SamplingSettings | None = None,
        cache_salt: str | None = None,
        labels: Sequence[str | None] | None = None,
    ) -> list[Generation]:
        """Prefill the shared prefix once, then send all prompts so every one of them hits.

        Requests scheduled in the same batch cannot reuse each other's blocks, so N variants
        of one prefix sent together would all compute it. A one-token request for the first
        prompt warms the cache first (as vLLM's prefix-caching example does); it is recorded too.
        """
        if not prompts:
            return []
        warm = SamplingSettings(max_tokens=1)
        self.send([prompts[0]], sampling=warm, cache_salt=cache_salt, labels=["warm-up"])
        return self.send(prompts, sampling=sampling, cache_salt=cache_salt, labels=labels)

    def batch(
        self,
        items: Sequence[BatchItem],
        *,
        sampling: SamplingSettings | None = None,
        cache_salt: str | None = None,
        salts: Sequence[str | None] | None = None,
        labels: Sequence[str | None] | None = None,
        progress: Callable[[BatchProgress], None] | None = None,
    ) -> list[Generation]:
        """Run many requests in the order that prefills each shared prefix once.

        Requests are grouped by shared prefix, ordered depth-first, cut into waves that fit the
        engine's KV cache (``engine.kv_capacity_blocks``), and each shared prefix is computed
        by one request before the others that share it run (see :mod:`promptkit._batch`).
        Results come back in input order. ``progress`` is called after every engine call.
        """
        job = self._batch_job(items, sampling, cache_salt, salts, labels, progress)
        for number, call in enumerate(job.calls()):
            job.answered(number, call, self.send(**job.request(call), sampling=sampling))
        return job.results()

    async def abatch(
        self,
        items: Sequence[BatchItem],
        *,
        sampling: SamplingSettings | None = None,
        cache_salt: str | None = None,
        salts: Sequence[str | None] | None = None,
        labels: Sequence[str | None] | None = None,
        progress: Callable[[BatchProgress], None] | None = None,
    ) -> list[Generation]:
        """:meth:`batch` for async code."""
        job = self._batch_job(items, sampling, cache_salt, salts, labels, progress)
        for number, call in enumerate(job.calls()):
            job.answered(number, call, await self.asend(**job.request(call), sampling=sampling))
        return job.results()

    def _batch_job(
        self,
        items: Sequence[BatchItem],
        sampling: SamplingSettings | None,
        cache_salt: str | None,
        salts: Sequence[str | None] | None,
        labels: Sequence[str | None] | None,
        progress: Callable[[BatchProgress], None] | None,
    ) -> BatchJob:
        prompts = [
            item if isinstance(item, BuiltPrompt) else self.build(item[0], item[1])
            for item in items
        ]
        return BatchJob(
            prompts,
            salts=list(salts) if salts is not None else [cache_salt] * len(prompts),
            labels=list(labels) if labels is not None else [None] * len(prompts),
            max_tokens=(sampling or SamplingSettings()).max_tokens,
            capacity_blocks=self.engine.kv_capacity_blocks,
            progress=progress,
        )

    def _complete(self, pending: Pending, result: EngineResult) -> Generation:
        """Audit, remember and log one answered request; nothing here may lose the answer."""
        request_id = next(self._ids)
        record = audit(request_id=request_id, pending=pending, result=result, drift=self.drift)
        try:
            self.mirror.record(
                pending.prompt.token_ids,
                result.token_ids,
                salt=pending.salt,
                prompt_hashes=pending.hashes,
            )
        except Exception:  # expectations may then run low; the answer stands
            log.exception("request %d: the mirror could not record it", request_id)
        self.records.append(record)
        if self._sink is not None:
            try:
                self._sink.write(record)
            except OSError:  # a full disk must not cost the caller the answer either
                log.exception("request %d: could not write its record to the log", request_id)
        return Generation(prompt=pending.prompt, result=result, record=record)

    def sync_kv_events(self) -> int:
        """Apply the engine's KV-cache events received so far to the mirror; returns how many."""
        if self._kv_events is None:
            return 0
        events = self._kv_events.poll()
        self.mirror.apply(events)
        return len(events)

    def summary(self) -> RunSummary:
        """Totals of this client's records, cross-checked with the engine's counters."""
        self.sync_kv_events()
        return summarize(
            self.records,
            counters=self.engine.prefix_cache_counters(),
            counters_baseline=self._counters_baseline,
            replica_counters=self.engine.replica_counters(),
            replica_baseline=self._replica_baseline,
        )

    def forget_cache(self) -> None:
        """Tell the client the engine's cache is gone (after a restart or an explicit reset)."""
        self.mirror.clear()

    def reset_prefix_cache(self) -> bool:
        """Empty the engine's prefix cache and the client's mirror of it, together."""
        self.sync_kv_events()  # events from before the reset must not end the wait for its clear
        done = self.engine.reset_prefix_cache()
        if done:
            self.mirror.clear(await_engine_clear=self._kv_events is not None)
        return done

    def close(self) -> None:
        if self._kv_events is not None:
            self._kv_events.close()
        if self._sink is not None:
            self._sink.close()
        if self._owns_engine:
            self.engine.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
