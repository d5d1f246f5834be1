"""First streamed chunk vs the whole answer, through ChatPromptkit on the embedded engines.

    python -m promptkit_bench.bench_stream_latency [--max-tokens 64] [--runs 3]

Prints, per engine, the median time from the call to the first non-empty chunk and to the last
chunk. The prompt is warmed first, so both runs measure decoding, not a cold prefill.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage

SYSTEM = "You are a friendly tour guide in Lyon. Answer in a few sentences."
QUESTION = "What should I visit on my first day in Lyon?"


def _timed(chunks: Iterator[Any]) -> tuple[float, float, int]:
    started = time.perf_counter()
    first, count = None, 0
    for chunk in chunks:
        if chunk.content and first is None:
            first = time.perf_counter() - started
        count += 1
    return first or 0.0, time.perf_counter() - started, count


async def _atimed(chunks: AsyncIterator[Any]) -> tuple[float, float, int]:
    started = time.perf_counter()
    first, count = None, 0
    async for chunk in chunks:
        if chunk.content and first is None:
            first = time.perf_counter() - started
        count += 1
    return first or 0.0, time.perf_counter() - started, count


def run(engine_name: str, *, max_tokens: int, runs: int) -> None:
    from engine_adapter import AsyncVLLMEngine, VLLMEngine
    from promptkit import Client, Tokenizer
    from promptkit._model_store import resolve_model_dir
    from promptkit.integrations.langchain import ChatPromptkit

    path = resolve_model_dir()
    engine_class = VLLMEngine if engine_name == "vllm" else AsyncVLLMEngine
    with Client(
        engine=engine_class(path), tokenizer=Tokenizer.from_dir(path), owns_engine=True
    ) as client:
        model = ChatPromptkit(client=client, max_tokens=max_tokens)
        messages = [SystemMessage(SYSTEM), HumanMessage(QUESTION)]
        model.invoke(messages)  # warm the prefix
        rows = []
        for _ in range(runs):
            if engine_name == "vllm":
                rows.append(_timed(model.stream(messages)))
            else:
                rows.append(asyncio.run(_atimed(model.astream(messages))))
    first = statistics.median(r[0] for r in rows)
    total = statistics.median(r[1] for r in rows)
    chunks = statistics.median(r[2] for r in rows)
    print(
        f"{engine_name:<11} first chunk {first * 1000:7.0f} ms   whole answer "
        f"{total * 1000:7.0f} ms   chunks {chunks:.0f}   ({max_tokens} tokens max, {runs} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engine", choices=["vllm", "vllm-async", "both"], default="both")
    args = parser.parse_args()
    for name in ("vllm", "vllm-async") if args.engine == "both" else (args.engine,):
        run(name, max_tokens=args.max_tokens, runs=args.runs)


if __name__ == "__main__":
    main()
