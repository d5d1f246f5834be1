"""Many concurrent conversations on one AsyncVLLMEngine; prints a JSON summary.

Run by tests/test_engine_async.py in its own process: vLLM's Prometheus registry is global per
process, so a second engine inside the test session would reset the session engine's counters.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from engine_adapter import SamplingSettings
from engine_adapter.vllm_async import AsyncVLLMEngine
from promptkit import Client, Conversation, Tokenizer
from promptkit._model_store import resolve_model_dir

SYSTEM = (
    "You are a helpful assistant for a public library. You know the opening hours (nine to six), "
    "the loan period (three weeks) and the fine for late returns (ten cents a day). Be brief."
)
QUESTIONS = ("When do you open?", "How long can I keep a book?", "What if I return it late?")


async def session(client: Client, index: int) -> list[dict[str, object]]:
    chat = Conversation(client, system=SYSTEM, name=f"session-{index}")
    rows = []
    for question in QUESTIONS:
        out = await chat.asay(
            f"{question} (visitor {index})", sampling=SamplingSettings(max_tokens=12)
        )
        rows.append(
            {
                "verdict": out.record.verdict.value,
                "cached": out.record.cached_tokens,
                "expected": out.record.expected_cached_tokens,
                "latency_s": out.result.latency_s,
            }
        )
    return rows


async def main(sessions: int) -> dict[str, object]:
    path = resolve_model_dir()
    engine = AsyncVLLMEngine(path, block_size=32, kv_cache_gib=1)
    try:
        client = Client(engine=engine, tokenizer=Tokenizer.from_dir(path))
        started = time.perf_counter()
        results = await asyncio.gather(*(session(client, i) for i in range(sessions)))
        wall = time.perf_counter() - started
        summary = client.summary()
        return {
            "block_size": engine.block_size,
            "start_s": engine.start_seconds,
            "wall_s": wall,
            "sum_latency_s": sum(r["latency_s"] for rows in results for r in rows),  # type: ignore[misc]
            "sessions": results,
            "counters_match": summary.counters_match,
            "cached_tokens": summary.cached_tokens,
        }
    finally:
        engine.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8))))
