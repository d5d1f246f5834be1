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

Concurrency: one client may be shared by threads and by coroutines. Its own state (request ids,
mirror, drift history, records, log) changes under one lock, held only between engine calls, so
requests from many threads interleave safely; the embedded engines serialize (``VLLMEngine``)
or batch (``AsyncVLLMEngine``) the calls themselves. See docs/reliability.md.

Tenants: with a :class:`~promptkit._tenancy.Tenancy` (or ``$PROMPTKIT_TENANT_SECRET``) every
request is salted per tenant, and a request without a tenant is refused (docs/tenants.md).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeAlias

from engine_adapter import Engine, EngineDelta, EngineResult, PartialBatchError, SamplingSettings
from engine_adapter._kv_events import KVEventSubscriber
from promptkit._audit import DriftDetector, Pending, audit, expect
from promptkit._batch import BatchJob, BatchProgress
from promptkit._builder import PromptBuilder
from promptkit._built_prompt import BuiltPrompt
from promptkit._chat_template import DEFAULT_PINNED_DATE
from promptkit._control_tokens import ControlTokenPolicy
from promptkit._expectation import PrefixCacheMirror
from promptkit._templating.finder import load_template
from promptkit._templating.prompt_template import PromptTemplate
from promptkit._tenancy import Tenancy, TenantArg, resolve_salt
from promptkit._tokenization import Tokenizer
from promptkit.errors import ArgumentError
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
        tenancy: salt every request per tenant (docs/tenants.md); ``None`` reads
            ``$PROMPTKIT_TENANT_SECRET``, and without it requests share the cache.
        tenant: the client-wide default tenant (a single-tenant deployment).
        control_tokens: what to do with values that hold the model's control tokens:
            ``"escape"`` (default), ``"reject"`` or ``"allow"`` (see
            :mod:`promptkit._control_tokens`).
        max_records: how many recent records :attr:`records` keeps (older ones stay in the log).
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
        tenancy: Tenancy | None = None,
        tenant: str | None = None,
        control_tokens: ControlTokenPolicy = "escape",
        max_records: int = 10_000,
    ) -> None:
        self.engine = engine
        self.tokenizer = tokenizer
        self.builder = PromptBuilder(
            tokenizer,
            block_size=engine.block_size,
            pinned_date=pinned_date,
            control_tokens=control_tokens,
        )
        self.tenancy = tenancy if tenancy is not None else Tenancy.from_env()
        self.tenant = tenant
        if tenant is not None:  # a bad default fails here, not on the first request
            resolve_salt(self.tenancy, tenant=tenant, cache_salt=None)
        # One lock over the client's own state (ids, mirror, drift, records, log); never held
        # while the engine computes, so threads and coroutines interleave.
        self._lock = threading.RLock()
        self.mirror = PrefixCacheMirror(
            block_size=engine.block_size,
            capacity_blocks=mirror_capacity_blocks,
            engine_blocks=engine.kv_capacity_blocks,
        )
        self.drift = DriftDetector(tokenizer)
        #: The most recent records (``max_records`` of them); the log keeps them all.
        self.records: deque[RequestRecord] = deque(maxlen=max_records)
        self._ids = itertools.count(1)
        self._sink = JsonlSink(log_path) if log_path is not None else None
        self._owns_engine = owns_engine
        #: Builds a replacement engine for :meth:`restart` (set by :meth:`embedded`).
        self.engine_factory: Callable[[], Engine] | None = None
        #: How many times :meth:`restart` replaced the engine; every record carries it.
        self.restarts = 0
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
        tenancy: Tenancy | None = None,
        tenant: str | None = None,
        control_tokens: ControlTokenPolicy = "escape",
        **engine_kwargs: Any,
    ) -> Client:
        """A client over an embedded vLLM engine (prefix caching on) and the model's tokenizer.

        ``model`` defaults to ``$PROMPTKIT_MODEL`` or the bundled SmolLM2 (converted on first use).
        ``log_path``, ``pinned_date``, ``tenancy``, ``tenant`` and ``control_tokens`` are the
        client's (see :class:`Client`); other keyword arguments go to
        :class:`engine_adapter.VLLMEngine`.
        """
        from engine_adapter.vllm import VLLMEngine
        from promptkit._model_store import resolve_model_dir

        path = resolve_model_dir(model)
        tokenizer = Tokenizer.from_dir(path)
        engine = VLLMEngine(path, **engine_kwargs)
        client = cls(
            engine=engine,
            tokenizer=tokenizer,
            log_path=log_path,
            pinned_date=pinned_date,
            owns_engine=True,
            tenancy=tenancy,
            tenant=tenant,
            control_tokens=control_tokens,
        )
        client.engine_factory = lambda: VLLMEngine(path, **engine_kwargs)
        return client

    def restart(self) -> None:
        """Replace the engine (after :class:`~engine_adapter.EngineDeadError`) with a new one.

        The old engine is closed (its processes killed if need be), the mirror is cleared (the
        new engine's cache is empty), and later records carry ``engine_restarts``. Only a client
        that started its engine (:meth:`embedded`) or was given ``engine_factory`` can restart.
        """
        from engine_adapter import EngineError

        if self.engine_factory is None:
            raise EngineError(
                "this client did not start its engine, so it cannot start another: close it "
                "and build a new Client, or set client.engine_factory"
            )
        with self._lock:
            try:
                self.engine.close()
            except Exception:  # a dead engine may fail to close; the new one matters
                log.exception("closing the old engine failed; starting a new one anyway")
            if self._kv_events is not None:
                self._kv_events.close()
                self._kv_events = None
            self.engine = self.engine_factory()
            self.mirror.clear()
            self.restarts += 1
            self._counters_baseline = self.engine.prefix_cache_counters()
            if self.engine.kv_events_endpoint:
                self._kv_events = KVEventSubscriber(self.engine.kv_events_endpoint)
            log.warning(
                "engine restarted (restart %d); the prefix cache starts empty", self.restarts
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
        tenant: TenantArg = None,
        label: str | None = None,
    ) -> Generation:
        """Build one prompt, send it, and return the answer with its cache record."""
        prompt = self.build(template, variables, tools=tools)
        return self.send(
            [prompt], sampling=sampling, cache_salt=cache_salt, tenant=tenant, labels=[label]
        )[0]

    def send(
        self,
        prompts: Sequence[BuiltPrompt],
        *,
        sampling: SamplingSettings | None = None,
        cache_salt: str | None = None,
        salts: Sequence[str | None] | None = None,
        labels: Sequence[str | None] | None = None,
        tenant: TenantArg = None,
    ) -> list[Generation]:
        """Send built prompts as one engine batch and record each request.

        ``tenant`` salts every prompt of the batch (see docs/tenants.md); ``cache_salt`` and
        ``salts`` set raw salts instead (non-empty).

        Expectations are taken before the batch runs: requests scheduled together cannot reuse
        each other's blocks, so the mirror's view before the batch is the fair expectation.
        """
        pending = self._prepare(prompts, sampling, cache_salt, salts, labels, tenant)
        try:
            results = self.engine.generate([p.request for p in pending])
        except PartialBatchError as exc:
            raise self._partial(pending, exc)  # noqa: B904 - the same error, with its answers
        return self._finish(pending, results)

    async def asend(
        self,
        prompts: Sequence[BuiltPrompt],
        *,
        sampling: SamplingSettings | None = None,
        cache_salt: str | None = None,
        salts: Sequence[str | None] | None = None,
        labels: Sequence[str | None] | None = None,
        tenant: TenantArg = None,
    ) -> list[Generation]:
        """:meth:`send` for async code: many sessions can await at once (use
        :class:`engine_adapter.AsyncVLLMEngine` so the engine batches them continuously)."""
        pending = self._prepare(prompts, sampling, cache_salt, salts, labels, tenant)
        try:
            results = await self.engine.agenerate([p.request for p in pending])
        except PartialBatchError as exc:
            raise self._partial(pending, exc)  # noqa: B904 - the same error, with its answers
        return self._finish(pending, results)

    def stream(
        self,
        prompt: BuiltPrompt,
        *,
        sampling: SamplingSettings | None = None,
        cache_salt: str | None = None,
        tenant: TenantArg = None,
        label: str | None = None,
    ) -> Iterator[EngineDelta | Generation]:
        """Send one prompt and yield its output as it is generated (:class:`EngineDelta` items),
        then its :class:`Generation`, recorded like :meth:`send`'s (last, exactly once).

        Tokens arrive one scheduler step at a time on engines with ``supports_streaming``;
        others yield the whole answer as one delta."""
        pending = self._prepare([prompt], sampling, cache_salt, None, [label], tenant)[0]
        for item in self.engine.stream(pending.request):
            yield self._complete(pending, item) if isinstance(item, EngineResult) else item

    async def astream(
        self,
        prompt: BuiltPrompt,
        *,
        sampling: SamplingSettings | None = None,
        cache_salt: str | None = None,
        tenant: TenantArg = None,
        label: str | None = None,
    ) -> AsyncIterator[EngineDelta | Generation]:
        """:meth:`stream` for async code."""
        pending = self._prepare([prompt], sampling, cache_salt, None, [label], tenant)[0]
        async for item in self.engine.astream(pending.request):
            yield self._complete(pending, item) if isinstance(item, EngineResult) else item

    def _prepare(
        self,
        prompts: Sequence[BuiltPrompt],
        sampling: SamplingSettings | None,
        cache_salt: str | None,
        salts: Sequence[str | None] | None,
        labels: Sequence[str | None] | None,
        tenant: TenantArg,
    ) -> list[Pending]:
        settings = _sampling(sampling)
        prompts = _prompts(prompts)
        if salts is not None:
            if tenant is not None or cache_salt is not None:
                raise ArgumentError("pass salts= alone, without tenant= or cache_salt=")
            request_salts = [
                resolve_salt(self.tenancy, tenant=self.tenant if s is None else None, cache_salt=s)
                for s in salts
            ]
        else:
            chosen = tenant if tenant is not None or cache_salt is not None else self.tenant
            salt = resolve_salt(self.tenancy, tenant=chosen, cache_salt=cache_salt)
            request_salts = [salt] * len(prompts)
        request_labels = list(labels) if labels is not None else [None] * len(prompts)
        if len(request_salts) != len(prompts) or len(request_labels) != len(prompts):
            raise ArgumentError(
                f"{len(prompts)} prompt(s) but {len(request_salts)} salt(s) and "
                f"{len(request_labels)} label(s): give one each"
            )
        with self._lock:
            self.sync_kv_events()
            rows = zip(prompts, request_salts, request_labels, strict=True)
            pending = [
                expect(self.mirror, p, sampling=settings, salt=s, label=lb) for p, s, lb in rows
            ]
        self.engine.check_requests([p.request for p in pending])  # before anything is sent
        return pending

    def _finish(
        self, pending: Sequence[Pending], results: Sequence[EngineResult]
    ) -> list[Generation]:
        with self._lock:
            return [self._complete(p, r) for p, r in zip(pending, results, strict=True)]

    def _partial(self, pending: Sequence[Pending], error: PartialBatchError) -> PartialBatchError:
        """Record the answers a partly failed batch got, and put them on the error."""
        with self._lock:
            error.generations = [
                self._complete(p, r) if r is not None else None
                for p, r in zip(pending, error.results, strict=True)
            ]
        return error

    def fan_out(
        self,
        prompts: Sequence[BuiltPrompt],
        *,
        sampling: SamplingSettings | None = None,
        cache_salt: str | None = None,
        labels: Sequence[str | None] | None = None,
        tenant: TenantArg = None,
    ) -> list[Generation]:
        """Prefill the shared prefix once, then send all prompts so every one of them hits.

        Requests scheduled in the same batch cannot reuse each other's blocks, so N variants
        of one prefix sent together would all compute it. A one-token request for the first
        prompt warms the cache first (as vLLM's prefix-caching example does); it is recorded too.
        """
        if not prompts:
            return []
        warm = SamplingSettings(max_tokens=1)
        self.send(
            [prompts[0]], sampling=warm, cache_salt=cache_salt, tenant=tenant, labels=["warm-up"]
        )
        return self.send(
            prompts, sampling=sampling, cache_salt=cache_salt, tenant=tenant, labels=labels
        )

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
        if self.restarts:
            record = record.model_copy(update={"engine_restarts": self.restarts})
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
        with self._lock:
            events = self._kv_events.poll()
            self.mirror.apply(events)
            return len(events)

    def summary(self) -> RunSummary:
        """Totals of this client's records, cross-checked with the engine's counters."""
        self.sync_kv_events()
        with self._lock:
            records = list(self.records)
        return summarize(
            records,
            counters=self.engine.prefix_cache_counters(),
            counters_baseline=self._counters_baseline,
            replica_counters=self.engine.replica_counters(),
            replica_baseline=self._replica_baseline,
        )

    def forget_cache(self) -> None:
        """Tell the client the engine's cache is gone (after a restart or an explicit reset)."""
        with self._lock:
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


def _sampling(sampling: SamplingSettings | None) -> SamplingSettings:
    if sampling is None:
        return SamplingSettings()
    if not isinstance(sampling, SamplingSettings):
        raise ArgumentError(
            f"sampling= takes SamplingSettings(...), not {type(sampling).__name__}: write "
            "sampling=SamplingSettings(max_tokens=32) (from promptkit import SamplingSettings)"
        )
    return sampling


def _prompts(prompts: Sequence[BuiltPrompt]) -> list[BuiltPrompt]:
    if isinstance(prompts, BuiltPrompt) or not isinstance(prompts, Sequence):
        raise ArgumentError(
            f"send() takes a list of built prompts, not {type(prompts).__name__}: "
            "send([client.build(template, variables)])"
        )
    wrong = [type(p).__name__ for p in prompts if not isinstance(p, BuiltPrompt)]
    if wrong:
        raise ArgumentError(
            f"send() takes BuiltPrompts (from client.build), got {', '.join(sorted(set(wrong)))}"
        )
    return list(prompts)
