"""The benchmark suite: the oracle by hand, row arithmetic, and one tiny run on the real engine."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from promptkit import Tokenizer
from promptkit.cli import EXIT_USAGE, app
from promptkit_bench.measure import Measured
from promptkit_bench.oracle import Sent, oracle_cached
from promptkit_bench.rows import summarize_row
from promptkit_bench.suite import run_suite
from promptkit_bench.workloads import (
    ConversationWorkload,
    Question,
    QuestionWorkload,
    Step,
    build_workloads,
)

B = 4  # small blocks keep the hand computations readable


def ids(*ranges: tuple[int, int]) -> tuple[int, ...]:
    return tuple(i for start, stop in ranges for i in range(start, stop))


def test_oracle_first_request_hits_nothing() -> None:
    assert oracle_cached([Sent(ids((0, 40)))], block_size=B) == [0]


def test_oracle_never_serves_the_last_prompt_token() -> None:
    # 8 ids = 2 full blocks, both computed before; vLLM still computes token 8: 1 block.
    assert oracle_cached([Sent(ids((0, 8))), Sent(ids((0, 8)))], block_size=B) == [0, 4]
    # 9 ids: the last token sits in a partial block, so both full blocks are served.
    assert oracle_cached([Sent(ids((0, 8))), Sent(ids((0, 9)))], block_size=B) == [0, 8]


def test_oracle_counts_only_full_blocks_of_the_shared_prefix() -> None:
    first = ids((0, 12))
    second = ids((0, 6), (100, 106))  # diverges inside block 2
    assert oracle_cached([Sent(first), Sent(second)], block_size=B) == [0, 4]


def test_oracle_counts_generated_blocks_except_the_last_token() -> None:
    prompt, output = ids((0, 8)), ids((50, 55))  # computed: 8 + 4 ids = 3 full blocks
    follow_up = prompt + output + ids((200, 203))  # 16 ids
    assert oracle_cached([Sent(prompt, output), Sent(follow_up)], block_size=B) == [0, 12]


def test_oracle_block_ending_on_the_last_generated_token_was_never_computed() -> None:
    prompt, output = ids((0, 8)), ids((50, 54))  # computed: 8 + 3 ids, block 3 incomplete
    follow_up = prompt + output + ids((200, 205))
    assert oracle_cached([Sent(prompt, output), Sent(follow_up)], block_size=B) == [0, 8]


def test_oracle_reuses_any_earlier_request_not_just_the_previous() -> None:
    a, b = ids((0, 12)), ids((500, 512))
    assert oracle_cached([Sent(a), Sent(b), Sent((*a, 7))], block_size=B) == [0, 0, 12]


def test_oracle_blocks_are_prefixes_not_contents() -> None:
    # Same block contents at a different position, after a different first block: no reuse.
    first = ids((0, 4), (10, 14), (20, 24))
    second = ids((90, 94), (10, 14), (20, 24))
    assert oracle_cached([Sent(first), Sent((*second, 1))], block_size=B) == [0, 0]


def test_oracle_salts_isolate() -> None:
    sent = [Sent(ids((0, 9)), salt="a"), Sent(ids((0, 9)), salt="b"), Sent(ids((0, 9)), salt="a")]
    assert oracle_cached(sent, block_size=B) == [0, 0, 8]


def test_oracle_rejects_a_bad_block_size() -> None:
    with pytest.raises(ValueError, match="block_size"):
        oracle_cached([], block_size=0)


def _measured(prompt: tuple[int, ...], cached: int, ttft: float, *, warm_up: bool) -> Measured:
    return Measured(
        prompt_ids=prompt,
        output_ids=(),
        cached_tokens=cached,
        ttft_s=ttft,
        engine_s=1.0,
        sdk_s=0.01,
        warm_up=warm_up,
    )


def test_summarize_row_excludes_warm_up_from_ttft_and_uses_the_oracle() -> None:
    prompt = ids((0, 9))
    rows = [
        _measured(prompt, 0, 5.0, warm_up=True),
        _measured(prompt, 8, 0.2, warm_up=False),
        _measured(prompt, 4, 0.4, warm_up=False),
    ]
    row = summarize_row("w", "c", rows, block_size=B, wall_s=3.0)
    assert (row.oracle_cached_tokens, row.cached_tokens) == (16, 12)
    assert row.oracle_fraction == pytest.approx(0.75)
    assert row.hit_ratio == pytest.approx(12 / 27)
    assert row.ttft_p50_s == pytest.approx(0.3)
    assert row.ttft_p95_s == pytest.approx(0.4)
    assert row.prefill_s == pytest.approx(5.6)
    assert row.requests_per_s == pytest.approx(1.0)
    assert row.sdk_overhead_fraction == pytest.approx(0.01)


def test_summarize_row_oracle_fraction_is_unknown_when_nothing_could_hit() -> None:
    row = summarize_row(
        "w", "c", [_measured(ids((0, 9)), 0, 1.0, warm_up=True)], block_size=B, wall_s=1
    )
    assert row.oracle_fraction is None
    assert row.ttft_p50_s is None


def test_workloads_are_deterministic_from_the_seed() -> None:
    assert build_workloads(seed=3, quick=True) == build_workloads(seed=3, quick=True)
    assert build_workloads(seed=3, quick=True) != build_workloads(seed=4, quick=True)


def test_cli_rejects_an_unknown_workload_before_starting_an_engine() -> None:
    result = CliRunner().invoke(app, ["bench", "--workload", "nope"])
    assert result.exit_code == EXIT_USAGE
    assert "unknown workload" in result.output


@pytest.mark.engine
def test_suite_smoke_on_the_real_engine(fresh_engine: object, tokenizer: Tokenizer) -> None:
    system = "You are a terse assistant. " * 12  # a few blocks of shared prefix
    questions = QuestionWorkload(
        "tiny_questions",
        "",
        system,
        "instruction",
        tuple(Question(q, warm_up=i == 0) for i, q in enumerate(("Hi?", "Why?", "How?"))),
        max_tokens=2,
    )
    chat = ConversationWorkload(
        "tiny_chat",
        "",
        system,
        ({"name": "noop", "description": "Does nothing.", "parameters": {"type": "object"}},),
        (Step("Hello."), Step(None, ({"result": 1},)), Step("Thanks.")),
        max_tokens=4,
        clients=("promptkit", "apc-off", "langchain"),
    )
    rows = run_suite(engine=fresh_engine, tokenizer=tokenizer, workloads=[questions, chat])  # type: ignore[arg-type]
    by_key = {(r.workload, r.client): r for r in rows}
    assert set(by_key) == {
        *(("tiny_questions", c) for c in ("promptkit", "apc-off", "naive", "langchain")),
        *(("tiny_chat", c) for c in ("promptkit", "apc-off", "langchain")),
    }
    for name in ("tiny_questions", "tiny_chat"):
        promptkit = by_key[(name, "promptkit")]
        assert promptkit.oracle_cached_tokens > 0
        assert promptkit.oracle_fraction is not None and promptkit.oracle_fraction >= 0.99
        assert promptkit.sdk_ms_per_request is not None
        off = by_key[(name, "apc-off")]
        assert off.cached_tokens == 0 and off.oracle_cached_tokens == 0
        assert off.prompt_tokens == promptkit.prompt_tokens  # the same ids, replayed
        assert off.ttft_speedup == pytest.approx(1.0)
