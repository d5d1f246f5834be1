"""The audit stage on its own: one pending value per request, the drift promise, the bounded
history, and a record for every answer (no engine; the real tokenizer)."""

from __future__ import annotations

import pytest

from engine_adapter import SamplingSettings
from promptkit import PrefixCacheMirror, PromptBuilder, PromptTemplate, Verdict
from promptkit._audit import DriftDetector, audit, expect, promised_shared_tokens
from promptkit._tokenization import Tokenizer
from tests.prefix_cache_fake import SimulatedPrefixCache
from tests.test_client_fast import DOCUMENT, QA


def test_one_pending_value_carries_the_request_and_what_was_expected(
    builder: PromptBuilder,
) -> None:
    mirror = PrefixCacheMirror(block_size=32)
    prompt = builder.build(
        PromptTemplate.from_string(QA), {"document": DOCUMENT, "question": "When?"}
    )
    sampling = SamplingSettings(max_tokens=4)
    cold = expect(mirror, prompt, sampling=sampling, salt="tenant", label="first")
    assert (cold.expected, cold.salt, cold.label) == (0, "tenant", "first")
    assert cold.request.prompt_token_ids == prompt.token_ids and cold.request.sampling == sampling
    mirror.record(prompt.token_ids, salt="tenant", prompt_hashes=cold.hashes)
    warm = expect(mirror, prompt, sampling=sampling, salt="tenant", label=None)
    assert warm.expected == prompt.total_tokens // 32 * 32 > 0
    assert expect(mirror, prompt, sampling=sampling, salt=None, label=None).expected == 0


def test_a_changed_session_value_lowers_the_promise_a_changed_static_one_does_not(
    builder: PromptBuilder,
) -> None:
    template = PromptTemplate.from_string(QA)
    first = builder.build(template, {"document": DOCUMENT, "question": "When?"})
    same_doc = builder.build(template, {"document": DOCUMENT, "question": "How much?"})
    other_doc = builder.build(template, {"document": "Another document.", "question": "When?"})
    assert promised_shared_tokens(template, same_doc, first) == first.stable_tokens
    assert promised_shared_tokens(template, other_doc, first) == first.segments[0].token_end


def test_audit_records_every_answer_even_when_the_audit_itself_fails(
    builder: PromptBuilder, tokenizer: Tokenizer, caplog: pytest.LogCaptureFixture
) -> None:
    mirror = PrefixCacheMirror(block_size=32)
    prompt = builder.build(
        PromptTemplate.from_string(QA), {"document": DOCUMENT, "question": "When?"}
    )
    pending = expect(mirror, prompt, sampling=SamplingSettings(), salt=None, label="x")
    engine = SimulatedPrefixCache()
    detector = DriftDetector(tokenizer)
    record = audit(request_id=1, pending=pending, result=engine(pending.request), drift=detector)
    assert (record.verdict, record.label, record.text) == (Verdict.MISS, "x", " ok")
    assert record.prefix_fingerprint == prompt.prefix_fingerprint

    class Broken(DriftDetector):
        def check(self, **_: object) -> None:  # type: ignore[override]
            raise ZeroDivisionError("a bug")

    failed = audit(
        request_id=2, pending=pending, result=engine(pending.request), drift=Broken(tokenizer)
    )
    assert failed.verdict is Verdict.UNKNOWN
    assert (failed.cached_tokens or 0) >= prompt.cacheable_tokens > 0  # the engine's count
    assert failed.explanation is not None and "ZeroDivisionError: a bug" in failed.explanation.cause
    assert "the answer is kept" in caplog.text


def test_drift_history_is_bounded_in_tokens_keeping_the_newest(
    builder: PromptBuilder, tokenizer: Tokenizer
) -> None:
    detector = DriftDetector(tokenizer, history=3, max_tokens=1_000)
    # Nine sources (each template's own text), of very different sizes.
    sources = [PromptTemplate.from_string(QA.replace("one short", f"{i} short")) for i in range(9)]
    prompts = [
        builder.build(template, {"document": document, "question": "?"})
        for template, document in zip(sources, [DOCUMENT, DOCUMENT * 2, "short"] * 3, strict=True)
    ] * 2
    for request_id, prompt in enumerate(prompts, 1):
        assert detector.check(request_id=request_id, prompt=prompt, continued=prompt) is None
        kept = [p for seen in detector._seen.values() for _, p in seen]
        assert detector._tokens == sum(p.total_tokens for p in kept)
        assert detector._tokens <= 1_000 or kept == [prompt]
        assert kept[-1] is prompt
    assert all(len(seen) <= 3 for seen in detector._seen.values())
