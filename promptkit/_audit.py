"""The audit of one request: expectation, drift, verdict, explanation and record, in one stage.

::

    pending = expect(mirror, prompt, sampling=..., salt=..., label=...)   # before the engine
    result = engine.generate([pending.request])[0]                       # the client's I/O
    record = audit(request_id=7, pending=pending, result=result, drift=detector)
    mirror.record(...)                                                   # the client, explicitly

:func:`expect` takes the mirror's expectation before the request runs. :func:`audit` turns the
engine's answer into a :class:`~promptkit.reporting.records.RequestRecord` whatever built the
prompt (a template, a conversation, an agent, a LangChain session): :class:`DriftDetector` compares
it with the earlier prompts of its source, the verdict follows the rules of
:mod:`promptkit.reporting.records`, and misses are explained. :func:`audit` never raises: the
engine has answered, and a fault in this bookkeeping records the request as ``UNKNOWN`` with the
fault named instead of losing the answer.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from dataclasses import dataclass

from engine_adapter import EngineRequest, EngineResult, SamplingSettings
from promptkit._built_prompt import BuiltPrompt, prefix_fingerprint
from promptkit._expectation import PrefixCacheMirror
from promptkit._explain import (
    changed_variables,
    explain_divergence,
    explain_eviction,
    explain_unexpected_miss,
)
from promptkit._segments import Stability
from promptkit._source import PromptSource, continued
from promptkit._tenancy import salt_digest
from promptkit._tokenization import Tokenizer, common_prefix
from promptkit.reporting.records import (
    UNKNOWN_CACHED_HINT,
    MissExplanation,
    RequestRecord,
    SegmentHit,
    Verdict,
)

__all__ = [
    "DriftDetector",
    "Pending",
    "audit",
    "decide_verdict",
    "expect",
    "promised_shared_tokens",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Pending:
    """A request on its way to the engine, with what the mirror expected before it ran."""

    prompt: BuiltPrompt
    request: EngineRequest
    expected: int
    hashes: tuple[str, ...]
    label: str | None
    #: Blocks past the expected hit that the mirror saw evicted, and the engine's capacity then.
    evicted_blocks: int = 0
    capacity_blocks: int | None = None

    @property
    def salt(self) -> str | None:
        return self.request.cache_salt


def expect(
    mirror: PrefixCacheMirror,
    prompt: BuiltPrompt,
    *,
    sampling: SamplingSettings,
    salt: str | None,
    label: str | None,
) -> Pending:
    """The engine request for ``prompt`` and the cached tokens the mirror expects for it."""
    expected, hashes = mirror.lookup(prompt.token_ids, salt=salt)
    request = EngineRequest(prompt_token_ids=prompt.token_ids, sampling=sampling, cache_salt=salt)
    return Pending(
        prompt=prompt,
        request=request,
        expected=expected,
        hashes=hashes,
        label=label,
        evicted_blocks=mirror.evicted_blocks(hashes),
        capacity_blocks=mirror.engine_blocks,
    )


# -- drift -----------------------------------------------------------------------------------


def promised_shared_tokens(source: PromptSource, ours: BuiltPrompt, theirs: BuiltPrompt) -> int:
    """Tokens ``ours`` must share with the earlier ``theirs`` given which variables changed.

    Static and deploy variables must not change between requests of one process, so their
    change does not lower the promise (it is reported as drift). A changed session or turn
    variable legitimately ends sharing at the first segment that reads it; so does one only the
    other prompt has (a message of another conversation). Segments pair up in order, so a
    conversation's history is held to the turn it repeats, reply included.
    """
    if ours.tokenizer_fingerprint != theirs.tokenizer_fingerprint:
        return 0
    declared = source.variables
    legit = {
        name
        for name in changed_variables(ours.variables, theirs.variables)
        if name not in declared or declared[name].stability >= Stability.SESSION
    }
    promised = 0
    for mine, other in zip(ours.segments, theirs.segments, strict=False):
        if not mine.stability.is_stable:
            break
        if source.segment_variables.get(mine.name, frozenset()) & legit:
            break
        promised = min(mine.token_end, other.token_end)
    return min(promised, ours.stable_tokens)


class DriftDetector:
    """Remembers recent requests per source and flags prompts that share less than promised.

    Each request is remembered as what the next prompt of its source starts with (a
    conversation's prompt and reply; a template's prompt). Bounded: ``history`` requests per
    source, and ``max_tokens`` over all sources, the least recently used source losing its
    oldest first.
    """

    def __init__(
        self, tokenizer: Tokenizer, *, history: int = 32, max_tokens: int = 500_000
    ) -> None:
        self.tokenizer = tokenizer
        self.history = history
        self.max_tokens = max_tokens
        self._seen: OrderedDict[str, deque[tuple[int, BuiltPrompt]]] = OrderedDict()
        self._tokens = 0

    def check(
        self, *, request_id: int, prompt: BuiltPrompt, continued: BuiltPrompt
    ) -> MissExplanation | None:
        """An explanation if ``prompt`` drifted from its closest earlier sibling, else ``None``;
        then remember ``continued`` (the prompt as its source's next prompt will start)."""
        key = prompt.source.fingerprint
        explanation = None
        seen = self._seen.get(key)
        if seen:
            shared, best_id, best = max(
                ((common_prefix(p.token_ids, prompt.token_ids), i, p) for i, p in seen),
                key=lambda candidate: candidate[0],
            )
            promised = promised_shared_tokens(prompt.source, prompt, best)
            # Only a loss the engine can see matters: compare in whole blocks.
            block = prompt.block_size
            if shared // block < promised // block:
                explanation = explain_divergence(
                    ours=prompt,
                    theirs=best,
                    theirs_id=best_id,
                    position=shared,
                    tokenizer=self.tokenizer,
                )
        self._remember(key, request_id, continued)
        return explanation

    def _remember(self, key: str, request_id: int, prompt: BuiltPrompt) -> None:
        seen = self._seen.setdefault(key, deque())
        self._seen.move_to_end(key)
        seen.append((request_id, prompt))
        self._tokens += len(prompt.token_ids)
        if len(seen) > self.history:
            self._tokens -= len(seen.popleft()[1].token_ids)
        while self._tokens > self.max_tokens:
            oldest_key, oldest = next(iter(self._seen.items()))
            if oldest is seen and len(seen) == 1:  # keep the request just remembered
                break
            self._tokens -= len(oldest.popleft()[1].token_ids)
            if not oldest:
                del self._seen[oldest_key]


# -- verdict and record ----------------------------------------------------------------------


def decide_verdict(
    *, prompt: BuiltPrompt, expected: int, actual: int | None, drift: bool
) -> Verdict:
    """The verdict rules of :mod:`promptkit.reporting.records`, in order of precedence."""
    # Drift is found on the client side alone, so it stands even when the engine reports nothing.
    if drift:
        return Verdict.DRIFT
    if actual is None:
        return Verdict.UNKNOWN
    if actual < expected:
        return Verdict.UNEXPECTED_MISS
    if actual == 0:
        return Verdict.MISS
    if actual >= prompt.cacheable_tokens:
        return Verdict.HIT
    return Verdict.PARTIAL


def audit(
    *, request_id: int, pending: Pending, result: EngineResult, drift: DriftDetector
) -> RequestRecord:
    """The record of one finished request (see the module docstring). Never raises."""
    try:
        return _judged(request_id, pending, result, drift)
    except Exception as exc:
        # The traceback is logged so that the bug can be reported; the record names the fault.
        log.exception("request %d: the cache audit failed; the answer is kept", request_id)
        cause = f"the cache audit failed: {type(exc).__name__}: {exc}"
        return _record(request_id, pending, result, Verdict.UNKNOWN, MissExplanation(cause=cause))


def _judged(
    request_id: int, pending: Pending, result: EngineResult, drift: DriftDetector
) -> RequestRecord:
    prompt = pending.prompt
    after = continued(prompt, generated_ids=result.token_ids, generated_text=result.text)
    explanation = drift.check(request_id=request_id, prompt=prompt, continued=after)
    actual = result.num_cached_tokens
    verdict = decide_verdict(
        prompt=prompt, expected=pending.expected, actual=actual, drift=explanation is not None
    )
    if verdict is Verdict.UNEXPECTED_MISS and actual is not None:
        explanation = explain_unexpected_miss(
            prompt=prompt,
            expected=pending.expected,
            actual=actual,
            salt=pending.salt,
            routing_note=result.routing_note,
        )
    elif verdict in (Verdict.PARTIAL, Verdict.MISS) and pending.evicted_blocks:
        explanation = explain_eviction(
            prompt=prompt,
            actual=actual or 0,
            evicted_blocks=pending.evicted_blocks,
            capacity_blocks=pending.capacity_blocks,
        )
    log.debug(
        "request %d %s: %s cached of %d (expected %d)",
        request_id,
        verdict,
        actual,
        prompt.total_tokens,
        pending.expected,
    )
    if explanation is not None:
        log.info("request %d %s: %s", request_id, verdict.value, explanation.one_line())
    return _record(request_id, pending, result, verdict, explanation)


def _record(
    request_id: int,
    pending: Pending,
    result: EngineResult,
    verdict: Verdict,
    explanation: MissExplanation | None,
) -> RequestRecord:
    prompt, cached = pending.prompt, result.num_cached_tokens
    return RequestRecord(
        request_id=request_id,
        template=prompt.template,
        template_file=prompt.template_file,
        prompt_tokens=prompt.total_tokens,
        stable_tokens=prompt.stable_tokens,
        cacheable_tokens=prompt.cacheable_tokens,
        expected_cached_tokens=pending.expected,
        cached_tokens=cached,
        cached_unknown_reason=(
            None if cached is not None else result.cached_unknown_reason or UNKNOWN_CACHED_HINT
        ),
        block_size=prompt.block_size,
        hit_ratio=None if cached is None else cached / max(1, prompt.total_tokens),
        ttft_s=result.ttft_s,
        latency_s=result.latency_s,
        timing_source=result.timing_source,
        cache_salt=salt_digest(pending.salt),  # never the salt itself: it is the isolation key
        verdict=verdict,
        segments=[
            SegmentHit(
                name=span.name,
                stability=span.stability.label,
                tokens=span.tokens,
                cached_tokens=(
                    None
                    if cached is None
                    else max(0, min(cached, span.token_end) - span.token_start)
                ),
            )
            for span in prompt.segments
        ],
        prefix_fingerprint=prefix_fingerprint(
            pending.hashes, prompt.cacheable_tokens, prompt.block_size
        ),
        moved_boundaries=[b.after for b in prompt.boundaries if not b.safe],
        explanation=explanation,
        text=result.text,
        label=pending.label,
        note=prompt.note,
        control_tokens=list(prompt.control_token_values),
        control_tokens_policy=prompt.control_token_policy,
        replica=result.replica,
        routing_note=result.routing_note,
    )
