"""Cost of building a ~4,000-token prompt whose stable prefix is cached, vs tokenizing it whole.

Run: ``python -m promptkit_bench.bench_builder`` (no engine needed). Prints a table; the ratio is
taken within this one run, so machine noise affects both sides alike.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from promptkit import PromptBuilder, Tokenizer, load_template
from promptkit._model_store import resolve_model_dir

WORDS = (
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "table",
    "row",
    "column",
    "value",
    "index",
    "query",
    "answer",
    "cache",
    "block",
)


def make_document(tokens: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    lines = []
    # Roughly 1.3 tokens per word with this vocabulary; trimmed by the caller's measurement.
    for _ in range(tokens // 13):
        lines.append(" ".join(rng.choice(WORDS) for _ in range(10)) + ".")
    return "\n".join(lines)


def timed(fn: Callable[[int], object], repeats: int) -> list[float]:
    samples = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - start)
    return samples


def run(repeats: int) -> dict[str, float]:
    tokenizer = Tokenizer.from_dir(resolve_model_dir())
    builder = PromptBuilder(tokenizer, block_size=32)
    template = load_template("long_doc_qa")
    document = make_document(4300)
    variables = {"title": "Benchmark", "document": document, "question": "q"}
    prompt = builder.build(template, variables)  # warm: the stable prefix is now cached

    def build(i: int) -> object:
        return builder.build(template, {**variables, "question": f"What is item {i}?"})

    def whole(i: int) -> object:
        text = prompt.text.replace("Question: q", f"Question: What is item {i}?")
        return tokenizer.encode(text)

    for _ in range(20):  # let allocators and caches settle
        build(0)
        whole(0)
    build_s = timed(build, repeats)
    whole_s = timed(whole, repeats)
    return {
        "prompt_tokens": float(prompt.total_tokens),
        "cacheable_tokens": float(prompt.cacheable_tokens),
        "build_p50_ms": statistics.median(build_s) * 1e3,
        "build_p95_ms": sorted(build_s)[int(0.95 * len(build_s))] * 1e3,
        "whole_p50_ms": statistics.median(whole_s) * 1e3,
        "whole_p95_ms": sorted(whole_s)[int(0.95 * len(whole_s))] * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    r = run(args.repeats)
    title = f"Building a {int(r['prompt_tokens'])}-token prompt"
    table = Table(title=f"{title} ({int(r['cacheable_tokens'])} cacheable tokens)")
    for col in ("method", "p50 ms", "p95 ms"):
        table.add_column(col, justify="right" if col != "method" else "left")
    table.add_row(
        "promptkit build (stable prefix cached)",
        f"{r['build_p50_ms']:.3f}",
        f"{r['build_p95_ms']:.3f}",
    )
    table.add_row("tokenize the whole text", f"{r['whole_p50_ms']:.3f}", f"{r['whole_p95_ms']:.3f}")
    Console().print(table)
    print(f"ratio whole / build (p50): {r['whole_p50_ms'] / r['build_p50_ms']:.1f}x")


if __name__ == "__main__":
    main()
