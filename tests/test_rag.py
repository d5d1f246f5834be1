"""Retrieval context: chunks in a stable order, so questions over one retrieved set share it."""

from __future__ import annotations

from promptkit import Client, SamplingSettings, Verdict, load_template
from promptkit._rag import BM25Index, Chunk, assemble_context

REPLY = SamplingSettings(max_tokens=24)


def test_rag_two_questions_over_the_same_retrieved_set_hit(client: Client) -> None:
    corpus = [
        Chunk(
            "apc",
            0,
            "Prefix caching",
            "vLLM reuses the KV cache of a prompt prefix that matches an earlier request token for token.",
        ),
        Chunk(
            "apc",
            1,
            "KV blocks",
            "The KV cache is split into blocks; only full blocks are cached and shared between requests.",
        ),
        Chunk(
            "salt",
            0,
            "Cache salt",
            "Requests with different cache salts never share cached blocks, which isolates tenants.",
        ),
        Chunk(
            "cpu",
            0,
            "CPU backend",
            "On the CPU backend the block size must be a multiple of 32 and defaults to 128.",
        ),
    ]
    index = BM25Index(corpus)
    template = load_template("rag_answer")
    outs = []
    for question in (
        "Which blocks of the KV cache are shared?",
        "Are KV cache blocks cached when partial?",
    ):
        hits = index.search(question, k=3)
        chunks = assemble_context(hits)
        outs.append(
            client.generate(template, {"chunks": chunks, "question": question}, sampling=REPLY)
        )
    scored = [
        index.search(q, k=3)
        for q in (
            "Which blocks of the KV cache are shared?",
            "Are KV cache blocks cached when partial?",
        )
    ]
    assert {(c.doc_id, c.position) for c in scored[0]} == {
        (c.doc_id, c.position) for c in scored[1]
    }
    second = outs[1].record
    assert second.verdict is Verdict.HIT
    assert second.cached_tokens == second.cacheable_tokens > 0


def test_assemble_context_is_order_independent_and_deduplicated() -> None:
    a = Chunk("d1", 2, "A", "alpha", 0.9)
    b = Chunk("d1", 0, "B", "beta", 0.5)
    c = Chunk("d2", 1, "C", "gamma", 0.7)
    assert assemble_context([a, b, c]) == assemble_context([c, a, b, a])
    assert [x["title"] for x in assemble_context([a, b, c])] == ["B", "A", "C"]
    assert [x["title"] for x in assemble_context([a, b, c], order="relevance")] == ["A", "C", "B"]
    assert [x["title"] for x in assemble_context([a, b, c], max_chunks=2)] == ["A", "C"]
