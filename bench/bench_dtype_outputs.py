"""How often do greedy outputs change with the batch shape and the prefix cache, per dtype?

The demo's question, asked of many prompts: each prompt shares the school-principal instruction
of vLLM's prefix-caching example and ends in its own continuation. Every prompt is generated
greedily three ways on one engine: alone and uncached (a unique cache salt), in a batch of 8
uncached, and in a batch of 8 after a warm-up put the shared prefix in the cache. The second and
third are compared with the first: identical tokens, a divergence at a near-tie (each token among
the other's top-5), or a real difference. Run with ``python -m
promptkit_bench.bench_dtype_outputs``; one engine per dtype, one after the other, in one run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
import uuid
from collections import Counter

from rich.console import Console
from rich.table import Table

from engine_adapter import EngineRequest, EngineResult, SamplingSettings
from engine_adapter.vllm import VLLMEngine
from promptkit import Tokenizer
from promptkit._model_store import resolve_model_dir
from promptkit._output_compare import compare_greedy

PREFIX = (
    "You are an expert school principal, skilled in effectively managing faculty and staff. "
    "Draft 10-15 questions for a potential first grade Head Teacher for my K-12, all-girls', "
    "independent school that emphasizes community, joyful discovery, and life-long learning. "
    "The candidate is coming in for a first-round panel interview for a 8th grade Math teaching "
    "role. They have 5 years of previous teaching experience as an assistant teacher at a co-ed, "
    "public school with experience in middle school math teaching. Based on these information, "
    "fulfill the following paragraph:"
)
OPENINGS = (
    "Hello, my name is",
    "The most important quality of a teacher is",
    "My first question would be",
    "The future of AI is",
    "The capital of France is",
    "In my experience, students learn best when",
    "The president of the United States is",
    "A good math lesson starts with",
)
TOPICS = ("", " Remember to be concise.", " Think step by step.", " Answer as a parent would.",
          " Be honest.", " Use simple words.")  # fmt: skip
BATCH = 8


def _prompts(tokenizer: Tokenizer) -> list[tuple[int, ...]]:
    texts = [f"{PREFIX}{topic} {opening}" for topic, opening in itertools.product(TOPICS, OPENINGS)]
    return [tuple(tokenizer.hf.encode(text)) for text in texts]


def _run(
    engine: VLLMEngine, prompts: list[tuple[int, ...]], sampling: SamplingSettings, *, cached: bool
) -> list[EngineResult]:
    def request(ids: tuple[int, ...]) -> EngineRequest:
        salt = None if cached else uuid.uuid4().hex
        return EngineRequest(prompt_token_ids=ids, sampling=sampling, cache_salt=salt)

    out: list[EngineResult] = []
    for start in range(0, len(prompts), BATCH):
        chunk = prompts[start : start + BATCH]
        if cached:  # warm the shared prefix first, as the demo does
            engine.generate([EngineRequest(prompt_token_ids=chunk[0], sampling=sampling)])
        out += engine.generate([request(ids) for ids in chunk])
    return out


def measure(dtype: str, max_tokens: int) -> dict[str, object]:
    model = resolve_model_dir()
    tokenizer = Tokenizer.from_dir(model)
    prompts = _prompts(tokenizer)
    sampling = SamplingSettings(max_tokens=max_tokens, logprobs=5)
    engine = VLLMEngine(model, block_size=32, dtype=dtype)
    try:
        started = time.perf_counter()
        alone = [
            engine.generate(
                [EngineRequest(prompt_token_ids=p, sampling=sampling, cache_salt=uuid.uuid4().hex)]
            )[0]
            for p in prompts
        ]
        batched = _run(engine, prompts, sampling, cached=False)
        cached = _run(engine, prompts, sampling, cached=True)
        wall = time.perf_counter() - started
    finally:
        engine.close()
    return {
        "dtype": dtype,
        "prompts": len(prompts),
        "wall_s": wall,
        "batched_vs_alone": _matches(alone, batched),
        "cached_vs_alone": _matches(alone, cached),
    }


def _matches(reference: list[EngineResult], other: list[EngineResult]) -> Counter[str]:
    return Counter(compare_greedy(a, b).match.value for a, b in zip(reference, other, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dtype", action="append", help="repeat to compare (default bf16, fp32)")
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    results = [measure(d, args.max_tokens) for d in args.dtype or ["bfloat16", "float32"]]
    table = Table(title=f"greedy outputs vs the same prompt alone and uncached ({BATCH}-batches)")
    for column in ("dtype", "prompts", "vs", "identical", "near_tie", "different", "wall s"):
        table.add_column(column)
    for r in results:
        for key in ("batched_vs_alone", "cached_vs_alone"):
            counts = r[key]
            assert isinstance(counts, Counter)
            table.add_row(
                str(r["dtype"]), str(r["prompts"]), key,
                *(str(counts.get(m, 0)) for m in ("identical", "near_tie", "different")),
                f"{r['wall_s']:.0f}",
            )  # fmt: skip
    Console().print(table)
    print(json.dumps(results, default=dict))


if __name__ == "__main__":
    main()
