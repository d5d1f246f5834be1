"""Cache-aware batches, engine-free: the plan's guarantees, input order, progress, eviction."""

from __future__ import annotations

import asyncio
import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from engine_adapter import EngineRequest, EngineResult, FunctionEngine, SamplingSettings
from promptkit import BatchProgress, Client, PrefixCacheMirror, PromptTemplate, Tokenizer
from promptkit._batch import depth_first, plan_batch
from promptkit._built_prompt import block_hashes
from tests.prefix_cache_fake import SimulatedPrefixCache
from tests.sample_templates import QA

B = 4


def _chains(docs: int, questions: list[tuple[int, int]]) -> tuple[list[tuple[str, ...]], list[int]]:
    """Requests as id sequences: a shared 2-block head, a document of 3 blocks, a question."""
    chains, lengths = [], []
    for doc, question in questions:
        ids = (1,) * 8 + tuple(100 + doc for _ in range(12)) + (1000 + question, 7, 7)
        chains.append(block_hashes(ids, B))
        lengths.append(len(ids))
    return chains, lengths


@st.composite
def _batches(draw: st.DrawFn) -> tuple[list[tuple[int, int]], int | None]:
    docs = draw(st.integers(1, 6))
    questions = draw(
        st.lists(st.tuples(st.integers(0, docs - 1), st.integers(0, 3)), min_size=1, max_size=30)
    )
    capacity = draw(st.one_of(st.none(), st.integers(4, 40)))
    return questions, capacity


@settings(max_examples=200, deadline=None)
@given(batch=_batches())
def test_a_plan_sends_every_request_once_and_never_asks_a_call_to_share_with_itself(
    batch: tuple[list[tuple[int, int]], int | None],
) -> None:
    questions, capacity = batch
    chains, lengths = _chains(6, questions)
    plan = plan_batch(chains, lengths, block_size=B, max_tokens=4, capacity_blocks=capacity)
    sent = [i for call in plan.calls for i in call]
    assert sorted(sent) == list(range(len(questions)))
    computed: set[str] = set()  # blocks computed by earlier calls
    for call in plan.calls:
        first_seen: dict[str, int] = {}
        for i in call:
            reusable = chains[i][: (lengths[i] - 1) // B]
            for digest in reusable:
                # Two requests of one call may share a block only if an earlier call made it.
                assert digest in computed or first_seen.setdefault(digest, i) == i
        for i in call:
            computed.update(chains[i])
    for wave in range(plan.wave_count):
        members = [
            i for call, w in zip(plan.calls, plan.waves, strict=True) if w == wave for i in call
        ]
        need = len({d for i in members for d in chains[i]}) + sum(
            math.ceil((lengths[i] + 4) / B) - len(chains[i]) for i in members
        )
        assert capacity is None or need <= capacity or len(members) == 1


def test_depth_first_order_puts_requests_sharing_a_prefix_next_to_each_other() -> None:
    questions = [(d, q) for q in range(3) for d in range(4)]  # arrival: round robin
    chains, _ = _chains(4, questions)
    docs = [questions[i][0] for i in depth_first(chains)]
    # Each document's questions form one run, documents in order of first arrival.
    assert [d for i, d in enumerate(docs) if i == 0 or docs[i - 1] != d] == [0, 1, 2, 3]


def _client(tokenizer: Tokenizer, *, capacity: int | None = None) -> tuple[Client, FunctionEngine]:
    cache = SimulatedPrefixCache(block_size=32)
    engine = FunctionEngine(cache, block_size=32, kv_capacity_blocks=capacity)
    return Client(engine=engine, tokenizer=tokenizer), engine


def _items(n_docs: int, per_doc: int) -> list[tuple[PromptTemplate, dict[str, str]]]:
    qa = PromptTemplate.from_string(QA)
    asked = [(d, q) for d in range(n_docs) for q in range(per_doc)]
    random.Random(3).shuffle(asked)
    return [
        (qa, {"document": f"Document {d}. " + "Words about it. " * 60, "question": f"Q{q} on {d}?"})
        for d, q in asked
    ]


def test_batch_results_come_back_in_input_order_with_progress(tokenizer: Tokenizer) -> None:
    client, _ = _client(tokenizer, capacity=30)
    items = _items(5, 3)
    seen: list[BatchProgress] = []
    results = client.batch(items, sampling=SamplingSettings(max_tokens=2), progress=seen.append)
    assert [r.prompt.variables for r in results] == [v for _, v in items]
    assert [r.result.prompt_token_ids for r in results] == [r.prompt.token_ids for r in results]
    assert seen[-1].done == seen[-1].total == len(items)
    assert seen[-1].wave == seen[-1].waves > 1  # 5 documents of ~9 blocks: 30 blocks is tight


def test_abatch_is_batch_for_async_code(tokenizer: Tokenizer) -> None:
    items = _items(3, 2)
    sync_client, _ = _client(tokenizer, capacity=None)
    async_client, _ = _client(tokenizer, capacity=None)
    expected = [r.record.cached_tokens for r in sync_client.batch(items)]
    got = asyncio.run(async_client.abatch(items))
    assert [r.record.cached_tokens for r in got] == expected


def test_a_batch_of_built_prompts_hits_every_shared_document(tokenizer: Tokenizer) -> None:
    client, _ = _client(tokenizer, capacity=None)
    items = _items(4, 3)
    prompts = [client.build(t, v) for t, v in items]
    results = client.batch(prompts)
    docs = {r.prompt.variables["document"] for r in results}
    misses = [r for r in results if not r.record.cached_tokens]
    assert len(misses) == 1  # only the very first request; each document after it shares the head
    assert len(docs) == 4


def _respond(request: EngineRequest) -> EngineResult:
    return EngineResult(
        prompt_token_ids=request.prompt_token_ids,
        num_cached_tokens=0,
        text="",
        token_ids=(),
        finish_reason="stop",
        ttft_s=None,
        latency_s=0.0,
        timing_source="measured",
    )


def test_the_mirror_evicts_the_least_recently_freed_blocks_tail_first() -> None:
    mirror = PrefixCacheMirror(block_size=4, engine_blocks=6)
    a, b, c = ((*[n] * 12, 9) for n in (1, 2, 3))  # 3 full blocks + 1 token each
    mirror.record(a)  # 4 blocks: 3 cached, a partial one that holds no prefix
    mirror.record(b)  # 4 more: 3 hold no prefix, then a's last block is evicted (tail first)
    assert mirror.expected_cached(a) == 8
    assert mirror.evicted_blocks(block_hashes(a, 4)) == 1
    assert mirror.expected_cached(b) == 12
    mirror.record(c)  # 1 free, then a's two remaining blocks and b's last one
    assert mirror.expected_cached(a) == 0
    assert mirror.evicted_blocks(block_hashes(a, 4)) == 3
    assert mirror.expected_cached(b) == 8
    assert mirror.evicted_blocks(block_hashes(b, 4)) == 1


def test_a_mirror_without_the_engines_capacity_never_foresees_eviction() -> None:
    mirror = PrefixCacheMirror(block_size=4)
    blocks = [(*[n] * 12, 9) for n in range(50)]
    for ids in blocks:
        mirror.record(ids)
    assert all(mirror.expected_cached(ids) == 12 for ids in blocks)
    assert FunctionEngine(_respond).kv_capacity_blocks is None
