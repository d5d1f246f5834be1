"""The client's own logic without an engine: every verdict path, unnamed templates, the record
path, and the rule that nothing after the engine returns may lose the answer.

The engine is a :class:`FunctionEngine` driven by an independent prefix-cache simulator
(``tests/prefix_cache_fake.py``); the tokenizer is the real one. These run in seconds, before
the real-engine tier (``-m engine``), which checks the same verdicts against vLLM itself.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import pytest

from engine_adapter import EngineRequest, EngineResult, FunctionEngine
from promptkit import Client, PromptTemplate, Tokenizer, Verdict, read_records
from tests.prefix_cache_fake import SimulatedPrefixCache
from tests.sample_templates import DATED, DOCUMENT, QA

OTHER_DOCUMENT = "The library lends books for three weeks and charges no fees at all. " * 12


@pytest.fixture()
def cache() -> SimulatedPrefixCache:
    return SimulatedPrefixCache(block_size=32)


@pytest.fixture()
def fast_client(cache: SimulatedPrefixCache, tokenizer: Tokenizer) -> Client:
    return Client(engine=cache.engine(), tokenizer=tokenizer)


def _ask(client: Client, template: PromptTemplate, document: str, question: str) -> Verdict:
    out = client.generate(template, {"document": document, "question": question})
    return out.record.verdict


def test_cold_request_is_miss_and_repeat_is_hit(fast_client: Client) -> None:
    qa = PromptTemplate.from_string(QA, name="qa")
    first = fast_client.generate(qa, {"document": DOCUMENT, "question": "When?"})
    second = fast_client.generate(qa, {"document": DOCUMENT, "question": "How much?"})
    assert first.record.verdict is Verdict.MISS and first.record.cached_tokens == 0
    assert second.record.verdict is Verdict.HIT
    assert second.record.cached_tokens == second.prompt.cacheable_tokens > 0
    assert second.record.expected_cached_tokens == second.record.cached_tokens


def test_new_session_is_partial(fast_client: Client) -> None:
    qa = PromptTemplate.from_string(QA, name="qa")
    _ask(fast_client, qa, DOCUMENT, "When?")
    other = fast_client.generate(qa, {"document": OTHER_DOCUMENT, "question": "When?"})
    assert other.record.verdict is Verdict.PARTIAL
    assert 0 < (other.record.cached_tokens or 0) < other.prompt.cacheable_tokens


def test_cache_lost_behind_the_clients_back_is_unexpected_miss(
    fast_client: Client, cache: SimulatedPrefixCache
) -> None:
    qa = PromptTemplate.from_string(QA, name="qa")
    _ask(fast_client, qa, DOCUMENT, "When?")
    cache.evict_all()
    out = fast_client.generate(qa, {"document": DOCUMENT, "question": "How much?"})
    assert out.record.verdict is Verdict.UNEXPECTED_MISS
    assert out.record.cached_tokens == 0 < out.record.expected_cached_tokens
    assert out.record.explanation is not None


def test_volatile_value_in_a_static_segment_is_drift_naming_line_and_variable(
    fast_client: Client,
) -> None:
    template = PromptTemplate.from_string(DATED, name="museum.j2")
    days = (f"2026-11-{d:02d}" for d in itertools.count(20))
    fast_client.generate(template, {"today": next(days), "question": "Open?"})
    out = fast_client.generate(template, {"today": next(days), "question": "Open?"})
    assert out.record.verdict is Verdict.DRIFT
    explanation = out.record.explanation
    assert explanation is not None
    assert (explanation.line, explanation.variable, explanation.segment) == (5, "today", "system")


def test_engine_without_cache_reports_is_unknown_not_zero(tokenizer: Tokenizer) -> None:
    cache = SimulatedPrefixCache(report=False)
    client = Client(engine=cache.engine(), tokenizer=tokenizer)
    qa = PromptTemplate.from_string(QA, name="qa")
    verdicts = [_ask(client, qa, DOCUMENT, q) for q in ("When?", "How much?")]
    assert verdicts == [Verdict.UNKNOWN, Verdict.UNKNOWN]
    assert all(r.cached_tokens is None and r.hit_ratio is None for r in client.records)


def test_two_unnamed_templates_in_one_client_keep_their_answers_and_verdicts(
    fast_client: Client,
) -> None:
    # Regression: both are named "<string>"; the second request used to raise a KeyError from
    # the drift check after the engine had run, and the answer was lost.
    qa = PromptTemplate.from_string(QA)
    dated = PromptTemplate.from_string(DATED)
    assert qa.filename == dated.filename
    outs = [
        fast_client.generate(qa, {"document": DOCUMENT, "question": "When?"}),
        fast_client.generate(dated, {"today": "2026-11-20", "question": "Open?"}),
        fast_client.generate(qa, {"document": DOCUMENT, "question": "How much?"}),
        fast_client.generate(dated, {"today": "2026-11-20", "question": "Closed?"}),
    ]
    assert [o.text for o in outs] == [" ok"] * 4
    assert [o.record.verdict for o in outs] == [
        Verdict.MISS,
        Verdict.MISS,
        Verdict.HIT,
        Verdict.HIT,
    ]
    # Drift is still found per template: the date changing is caught on the dated one.
    late = fast_client.generate(dated, {"today": "2026-11-21", "question": "Open?"})
    assert late.record.verdict is Verdict.DRIFT


def test_a_failing_audit_keeps_the_answer_and_says_why(
    fast_client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(**_: object) -> None:
        raise RuntimeError("a bug in the drift check")

    monkeypatch.setattr(fast_client.drift, "check", broken)
    qa = PromptTemplate.from_string(QA, name="qa")
    with caplog.at_level(logging.ERROR, logger="promptkit._client"):
        out = fast_client.generate(qa, {"document": DOCUMENT, "question": "When?"})
    assert out.text == " ok"
    assert out.record.verdict is Verdict.UNKNOWN
    assert out.record.explanation is not None
    assert "a bug in the drift check" in out.record.explanation.cause
    assert "the answer is kept" in caplog.text
    assert list(fast_client.records) == [out.record]


def test_records_reach_the_jsonl_log_and_read_back_equal(
    cache: SimulatedPrefixCache, tokenizer: Tokenizer, tmp_path: Path
) -> None:
    log = tmp_path / "requests.jsonl"
    with Client(engine=cache.engine(), tokenizer=tokenizer, log_path=log) as client:
        qa = PromptTemplate.from_string(QA, name="qa")
        for question in ("When?", "How much?", "Why?"):
            _ask(client, qa, DOCUMENT, question)
        written = list(client.records)
    assert read_records(log) == written
    assert [r.verdict for r in written] == [Verdict.MISS, Verdict.HIT, Verdict.HIT]


def test_an_unwritable_log_does_not_lose_the_answer(
    cache: SimulatedPrefixCache,
    tokenizer: Tokenizer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = Client(engine=cache.engine(), tokenizer=tokenizer, log_path=tmp_path / "log.jsonl")

    def disk_full(_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(client._sink, "write", disk_full)
    qa = PromptTemplate.from_string(QA, name="qa")
    out = client.generate(qa, {"document": DOCUMENT, "question": "When?"})
    assert out.text == " ok" and out.record.verdict is Verdict.MISS
    client.close()


def test_the_engine_sees_only_token_ids_and_the_salt(tokenizer: Tokenizer) -> None:
    seen: list[EngineRequest] = []

    def respond(request: EngineRequest) -> str:
        seen.append(request)
        return "fine"

    client = Client(engine=FunctionEngine(respond), tokenizer=tokenizer)
    qa = PromptTemplate.from_string(QA, name="qa")
    out = client.generate(qa, {"document": DOCUMENT, "question": "When?"}, cache_salt="tenant-a")
    assert isinstance(out.result, EngineResult)
    assert seen[0].prompt_token_ids == out.prompt.token_ids
    assert seen[0].cache_salt == "tenant-a"


def test_a_long_run_on_one_client_holds_bounded_state_issue_14(tokenizer: Tokenizer) -> None:
    """Regression: docs/reliability.md's long_run grew ~32 MB per 1,000 requests because
    FunctionEngine kept every request (each with its prompt's ids). Past the bounds, a second
    stretch of requests must leave every store the client and its engine own the same size."""
    engine = FunctionEngine(lambda r: "ok", max_requests=40)
    client = Client(engine=engine, tokenizer=tokenizer, max_records=40)
    qa = PromptTemplate.from_string(QA, name="qa")

    def stretch(start: int) -> tuple[int, ...]:
        for n in range(start, start + 120):
            _ask(client, qa, f"Document {n % 10}. {DOCUMENT}", f"Question {n}?")
        sizes = (len(engine.requests), len(client.records), len(client.mirror))
        return (*sizes, sum(len(seen) for seen in client.drift._seen.values()))

    first = stretch(0)
    assert first[:2] == (40, 40)
    assert stretch(120) == first


def test_function_engine_keeps_only_its_last_requests_by_default() -> None:
    engine = FunctionEngine(lambda r: "ok")
    for n in range(2_500):
        engine.generate([EngineRequest(prompt_token_ids=(n,))])
    assert len(engine.requests) == 1_000  # the default max_requests
    assert [r.prompt_token_ids[0] for r in engine.requests[::999]] == [1_500, 2_499]
