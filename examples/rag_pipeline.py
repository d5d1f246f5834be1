"""RAG over a small bundled handbook: document order keeps the context cached, score order not.

Run: ``.venv/bin/python examples/rag_pipeline.py``. BM25 retrieves the same three chunks for the
four questions, in a different score order each time. Assembled in document order (the default)
the sources render to the same tokens every time, so every question after the first reuses the
whole context. In relevance order the context changes whenever the order does. Each mode runs
under its own cache salt, so neither reuses the other's cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from _report import example_client, print_report

from promptkit import BM25Index, Chunk, Client, SamplingSettings, assemble_context

HANDBOOK = Path(__file__).parent / "data" / "handbook.json"
QUESTIONS = [
    "Who charges the e-bike battery?",
    "How much extra do e-bike rides cost?",
    "What does the e-bike battery display show?",
    "Can I charge the e-bike battery myself?",
]
Order = Literal["document", "relevance"]


def load_chunks() -> list[Chunk]:
    entries = json.loads(HANDBOOK.read_text(encoding="utf-8"))
    return [Chunk(e["doc"], i, e["title"], e["text"]) for i, e in enumerate(entries)]


def main(client: Client | None = None) -> None:
    index = BM25Index(load_chunks())
    answer = SamplingSettings(max_tokens=32)
    orders: tuple[Order, ...] = ("document", "relevance")
    with example_client(client) as client:
        template = client.template("rag_answer")
        for order in orders:
            for number, question in enumerate(QUESTIONS, 1):
                hits = index.search(question, k=3)
                chunks = assemble_context(hits, order=order)
                out = client.generate(
                    template,
                    {"chunks": chunks, "question": question},
                    sampling=answer,
                    cache_salt=order,
                    label=f"{order} q{number}",
                )
                print(f"[{order} q{number}] {question} sources {[c['title'] for c in chunks]}")
                print(f"    {out.text.strip()}")
        for order in orders:
            records = [r for r in client.records if r.cache_salt == order]
            cached = sum(r.cached_tokens or 0 for r in records)
            prompt = sum(r.prompt_tokens for r in records)
            print(f"{order} order: {cached} of {prompt} prompt tokens cached")
        print_report(client, title="rag_pipeline: document vs relevance order")


if __name__ == "__main__":  # vLLM spawns worker processes
    main()
