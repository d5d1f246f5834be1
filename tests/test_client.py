"""Client records and verdicts against the real engine: HIT, MISS, DRIFT, UNEXPECTED_MISS."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from engine_adapter import SamplingSettings
from promptkit import Client, PromptTemplate, Verdict, load_template, read_records
from promptkit._tenancy import salt_digest
from tests.sample_templates import DATED, DOCUMENT, QA

pytestmark = pytest.mark.engine

SHORT = SamplingSettings(max_tokens=4)


def test_n_requests_from_one_template_hit_exactly_the_cacheable_tokens(client: Client) -> None:
    qa = PromptTemplate.from_string(QA, name="qa")
    outs = [
        client.generate(qa, {"document": DOCUMENT, "question": q}, sampling=SHORT)
        for q in (
            "When does it open?",
            "How much is a ticket?",
            "When does it close?",
            "Is it open late?",
        )
    ]
    first, rest = outs[0], outs[1:]
    assert first.record.verdict is Verdict.MISS and first.record.cached_tokens == 0
    for out in rest:
        assert (
            out.record.cached_tokens
            == out.prompt.cacheable_tokens
            == out.record.expected_cached_tokens
        )
        assert out.record.verdict is Verdict.HIT
        by_segment = {s.name: s.cached_tokens for s in out.record.segments}
        assert (
            by_segment["system"] + by_segment["doc"] == out.record.cached_tokens
            and by_segment["q"] == 0
        )


def test_summary_matches_the_engine_counters(client: Client, tmp_path: Path) -> None:
    qa = PromptTemplate.from_string(QA, name="qa")
    for q in ("One?", "Two?", "Three?"):
        client.generate(qa, {"document": DOCUMENT, "question": q}, sampling=SHORT)
    summary = client.summary()
    assert summary.engine_counters is not None
    assert summary.engine_counters.hits == summary.cached_tokens > 0
    assert summary.counters_match is True
    assert summary.verdicts == {"MISS": 1, "HIT": 2}


CHAT_DATED = DATED.replace(
    "{% segment system static %}", "{% segment system static role=system %}"
).replace("{% segment q request %}", "{% segment q request role=user %}")


@pytest.mark.parametrize("source", [DATED, CHAT_DATED], ids=["plain", "chat"])
def test_volatile_value_in_stable_segment_is_drift_with_file_line_and_variable(
    client: Client, tmp_path: Path, source: str
) -> None:
    path = tmp_path / "museum.j2"
    path.write_text(source)
    template = client.template(path)
    days = (f"2026-11-{d:02d}" for d in itertools.count(20))
    first = client.generate(
        template, {"today": next(days), "question": "When do you open?"}, sampling=SHORT
    )
    second = client.generate(
        template, {"today": next(days), "question": "When do you open?"}, sampling=SHORT
    )
    assert first.record.verdict is Verdict.MISS
    record = second.record
    assert record.verdict is Verdict.DRIFT
    explanation = record.explanation
    assert explanation is not None
    assert explanation.template_file == str(path)
    assert explanation.line == 5
    assert explanation.variable == "today"
    assert explanation.segment == "system"
    assert explanation.expression == "today"
    assert "20" in (explanation.theirs or "") and "21" in (explanation.ours or "")
    assert explanation.diff and "Today's date is 2026-11-21" in explanation.diff


def test_unstable_rendering_with_equal_variables_is_drift(client: Client) -> None:
    src = """{% vars flags=static, q=request %}
{% segment system static %}
Rules for this assistant, in order of importance, each one applied strictly to every answer:
{% for name, on in flags.items() %}{{ name }}={{ on }}; {% endfor %}

{% endsegment %}
{% segment q request %}{{ q }}{% endsegment %}
"""
    template = PromptTemplate.from_string(src, name="flags")
    flags = {f"rule_{i}": True for i in range(12)}
    client.generate(template, {"flags": flags, "q": "a"}, sampling=SHORT)
    reordered = dict(reversed(list(flags.items())))
    out = client.generate(template, {"flags": reordered, "q": "b"}, sampling=SHORT)
    assert out.record.verdict is Verdict.DRIFT
    assert out.record.explanation is not None
    assert out.record.explanation.cause == "unstable rendering with equal variables"
    assert out.record.explanation.line == 4


def test_new_session_is_partial_not_drift(client: Client) -> None:
    qa = PromptTemplate.from_string(QA, name="qa")
    client.generate(qa, {"document": DOCUMENT, "question": "q1"}, sampling=SHORT)
    other = client.generate(
        qa, {"document": "A different document. " * 30, "question": "q1"}, sampling=SHORT
    )
    assert other.record.verdict is Verdict.PARTIAL
    assert 0 < (other.record.cached_tokens or 0) < other.prompt.cacheable_tokens


def test_cache_loss_the_client_cannot_see_is_an_unexpected_miss(
    fresh_engine: object, tokenizer: object
) -> None:
    # A client that does not follow KV events is in the position of one whose engine restarted:
    # it still expects its blocks, and the engine has none.
    with Client(engine=fresh_engine, tokenizer=tokenizer, follow_kv_events=False) as client:  # type: ignore[arg-type]
        qa = PromptTemplate.from_string(QA, name="qa")
        client.generate(qa, {"document": DOCUMENT, "question": "q1"}, sampling=SHORT)
        assert (
            client.generate(
                qa, {"document": DOCUMENT, "question": "q2"}, sampling=SHORT
            ).record.verdict
            is Verdict.HIT
        )
        assert client.engine.reset_prefix_cache()
        out = client.generate(qa, {"document": DOCUMENT, "question": "q3"}, sampling=SHORT)
    assert out.record.verdict is Verdict.UNEXPECTED_MISS
    assert out.record.expected_cached_tokens > 0 and out.record.cached_tokens == 0
    assert out.record.explanation is not None and "restart" in out.record.explanation.cause


def test_kv_events_map_engine_blocks_to_the_mirror(client: Client) -> None:
    from engine_adapter._kv_events import AllBlocksCleared, BlocksRemoved, KVEventSubscriber
    from promptkit import PrefixCacheMirror

    endpoint = client.engine.kv_events_endpoint  # type: ignore[attr-defined]
    subscriber = KVEventSubscriber(endpoint)
    try:
        qa = PromptTemplate.from_string(QA, name="qa")
        first = client.generate(qa, {"document": DOCUMENT, "question": "q1"}, sampling=SHORT)
        stored = _wait_for(subscriber, lambda events: bool(events))
        # A mirror fed only by the engine's events knows exactly the blocks this client sent.
        mirror = PrefixCacheMirror(block_size=32)
        mirror.apply(stored)
        assert mirror.expected_cached(first.prompt.token_ids) == first.prompt.cacheable_tokens
        # vLLM publishes the reset with its next scheduler step: send one request to flush it.
        assert client.engine.reset_prefix_cache()
        client.generate(
            qa,
            {"document": "Another text. " * 5, "question": "q2"},
            sampling=SHORT,
            cache_salt="flush",
        )
        later = _wait_for(
            subscriber,
            lambda events: any(isinstance(e, AllBlocksCleared | BlocksRemoved) for e in events),
        )
        mirror.apply(later)
        assert mirror.expected_cached(first.prompt.token_ids) == 0
    finally:
        subscriber.close()


def _wait_for(subscriber: object, done: object, timeout: float = 10.0) -> list[object]:
    import time

    events: list[object] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events += subscriber.poll()  # type: ignore[attr-defined]
        if done(events):  # type: ignore[operator]
            return events
        time.sleep(0.05)
    raise AssertionError(f"no matching KV events within {timeout} s: {events!r}")


def test_client_reset_makes_the_next_repeat_a_plain_miss(client: Client) -> None:
    qa = PromptTemplate.from_string(QA, name="qa")
    client.generate(qa, {"document": DOCUMENT, "question": "q1"}, sampling=SHORT)
    assert client.reset_prefix_cache()
    out = client.generate(qa, {"document": DOCUMENT, "question": "q2"}, sampling=SHORT)
    assert out.record.expected_cached_tokens == 0 and out.record.verdict is Verdict.MISS
    # Once the engine's own clear arrives, the mirror follows events again: the repeat hits.
    again = client.generate(qa, {"document": DOCUMENT, "question": "q3"}, sampling=SHORT)
    assert (
        again.record.verdict is Verdict.HIT
        and again.record.cached_tokens == again.record.expected_cached_tokens
    )


def test_cache_salt_is_recorded_and_expected(client: Client) -> None:
    qa = PromptTemplate.from_string(QA, name="qa")
    client.generate(
        qa, {"document": DOCUMENT, "question": "q1"}, sampling=SHORT, cache_salt="tenant-a"
    )
    other = client.generate(
        qa, {"document": DOCUMENT, "question": "q2"}, sampling=SHORT, cache_salt="tenant-b"
    )
    assert other.record.verdict is Verdict.MISS
    assert other.record.cache_salt == salt_digest("tenant-b")  # a digest: never the salt


def test_records_stream_to_jsonl(fresh_engine: object, tokenizer: object, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    with Client(engine=fresh_engine, tokenizer=tokenizer, log_path=log) as client:  # type: ignore[arg-type]
        template = load_template("long_doc_qa")
        for q in ("Who?", "What?"):
            client.generate(
                template, {"title": "T", "document": DOCUMENT, "question": q}, sampling=SHORT
            )
    records = read_records(log)
    assert [r.verdict for r in records] == [Verdict.MISS, Verdict.HIT]
    assert records[1].cached_tokens == records[1].cacheable_tokens
