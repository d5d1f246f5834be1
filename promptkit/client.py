"""The client: build token-stable prompts, send ids to an engine, report every prefix hit.

::

    client = Client.embedded()                       # default model, embedded vLLM, APC on
    qa = client.template("long_doc_qa")              # a shipped template, or a path
    out = client.generate(qa, {"document": doc, "question": "Who?"})
    print(out.text, out.record.verdict, out.record.cached_tokens)
    print(client.summary())
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from engine_adapter import Engine, EngineRequest, EngineResult, SamplingSettings
from engine_adapter.kv_events import KVEventSubscriber
from promptkit.builder import PromptBuilder
from promptkit.chat import DEFAULT_PINNED_DATE
from promptkit.expectation import PrefixCacheMirror
from promptkit.explain import DriftDetector, explain_unexpected_miss
from promptkit.prompt import BuiltPrompt, prefix_fingerprint
from promptkit.report import (
    JsonlSink,
    MissExplanation,
    RequestRecord,
    RunSummary,
    Verdict,
    decide_verdict,
    make_record,
    summarize,
)
from promptkit.template import PromptTemplate
from promptkit.templates import load_template
from promptkit.tokenization import Tokenizer

__all__ = ["Client", "Generation"]

log = logging.getLogger(__name__)


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


@dataclass(frozen=True, slots=True)
class _Batch:
    """Requests ready for the engine, with what the mirror expected before they ran."""

    prompts: list[BuiltPrompt]
    requests: list[EngineRequest]
    expected: list[int]
    hashes: list[tuple[str, ...]]
    salts: list[str | None]
    labels: list[str | None]


class Client:
    """Builds prompts for one model and sends them to one engine, recording every prefix hit.

    Args:
        engine: any :class:`engine_adapter.Engine`; its ``block_size`` drives block accounting.
        tokenizer: the same model's tokenizer.
        log_path: append a JSONL record per request here (opt-in).
        mirror_capacity_blocks: blocks the expectation mirror remembers (LRU).
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
            block_size=engine.block_size, capacity_blocks=mirror_capacity_blocks
        )
        self.drift = DriftDetector(tokenizer)
        self.records: list[RequestRecord] = []
        self._ids = itertools.count(1)
        self._sink = JsonlSink(log_path) if log_path is not None else None
        self._owns_engine = owns_engine
        self._counters_baseline = engine.prefix_cache_counters()
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
        from promptkit.model_store import resolve_model_dir

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
        batch = self._prepare(prompts, sampling, cache_salt, salts, labels)
        return self._finish(batch, self.engine.generate(batch.requests))

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
        batch = self._prepare(prompts, sampling, cache_salt, salts, labels)
        return self._finish(batch, await self.engine.agenerate(batch.requests))

    def _prepare(
        self,
        prompts: Sequence[BuiltPrompt],
        sampling: SamplingSettings | None,
        cache_salt: str | None,
        salts: Sequence[str | None] | None,
        labels: Sequence[str | None] | None,
    ) -> _Batch:
        self.sync_kv_events()
        settings = sampling or SamplingSettings()
        request_salts = list(salts) if salts is not None else [cache_salt] * len(prompts)
        pairs = list(zip(prompts, request_salts, strict=True))
        looked_up = [self.mirror.lookup(p.token_ids, salt=s) for p, s in pairs]
        batch = _Batch(
            prompts=list(prompts),
            requests=[
                EngineRequest(prompt_token_ids=p.token_ids, sampling=settings, cache_salt=s)
                for p, s in pairs
            ],
            expected=[e for e, _ in looked_up],
            hashes=[h for _, h in looked_up],
            salts=request_salts,
            labels=list(labels) if labels is not None else [None] * len(prompts),
        )
        self.engine.check_requests(batch.requests)  # before anything is sent
        return batch

    def _finish(self, batch: _Batch, results: Sequence[EngineResult]) -> list[Generation]:
        rows = zip(
            batch.prompts, results, batch.expected, batch.hashes, batch.salts, batch.labels,
            strict=True,
        )  # fmt: skip
        return [self._record(p, r, e, h, s, label) for p, r, e, h, s, label in rows]

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

    def _record(
        self,
        prompt: BuiltPrompt,
        result: EngineResult,
        expected: int,
        hashes: tuple[str, ...],
        salt: str | None,
        label: str | None,
    ) -> Generation:
        request_id = next(self._ids)
        try:
            record = self._audit(request_id, prompt, result, expected, hashes, salt, label)
        except Exception as exc:
            # The engine has answered: a fault in our own bookkeeping must not lose the answer.
            # The request is recorded as UNKNOWN with the fault named, and logged with its
            # traceback so the bug can be reported.
            log.exception("request %d: the cache audit failed; the answer is kept", request_id)
            record = make_record(
                request_id=request_id,
                prompt=prompt,
                prefix_fingerprint=prefix_fingerprint(
                    hashes, prompt.cacheable_tokens, prompt.block_size
                ),
                result=result,
                expected=expected,
                verdict=Verdict.UNKNOWN,
                explanation=MissExplanation(
                    cause=f"the cache audit failed: {type(exc).__name__}: {exc}"
                ),
                salt=salt,
                label=label,
            )
        self.records.append(record)
        if self._sink is not None:
            try:
                self._sink.write(record)
            except OSError:  # a full disk must not cost the caller the answer either
                log.exception("request %d: could not write its record to the log", request_id)
        return Generation(prompt=prompt, result=result, record=record)

    def _audit(
        self,
        request_id: int,
        prompt: BuiltPrompt,
        result: EngineResult,
        expected: int,
        hashes: tuple[str, ...],
        salt: str | None,
        label: str | None,
    ) -> RequestRecord:
        explanation = None
        if prompt.source is not None:
            explanation = self.drift.check(
                request_id=request_id, template=prompt.source, prompt=prompt
            )
        actual = result.num_cached_tokens
        verdict = decide_verdict(
            prompt=prompt, expected=expected, actual=actual, drift=explanation is not None
        )
        if verdict is Verdict.UNEXPECTED_MISS and actual is not None:
            explanation = explain_unexpected_miss(
                prompt=prompt, expected=expected, actual=actual, salt=salt
            )
        self.mirror.record(prompt.token_ids, result.token_ids, salt=salt, prompt_hashes=hashes)
        record = make_record(
            request_id=request_id,
            prompt=prompt,
            prefix_fingerprint=prefix_fingerprint(
                hashes, prompt.cacheable_tokens, prompt.block_size
            ),
            result=result,
            expected=expected,
            verdict=verdict,
            explanation=explanation,
            salt=salt,
            label=label,
        )
        log.debug(
            "request %d %s: %s cached of %d (expected %d)",
            request_id,
            verdict,
            actual,
            prompt.total_tokens,
            expected,
        )
        if explanation is not None:
            log.info("request %d %s: %s", request_id, verdict.value, explanation.one_line())
        return record

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
