"""Batch RAG under KV pressure: arrival order vs promptkit's batch order vs the ideal.

Many questions over many long documents; the engine's KV cache is deliberately small (a
fraction of the documents fit at once) and the questions arrive in random order. One engine,
one run, three ways:

* **arrival** -- every request in arrival order in one engine call: vLLM schedules first come,
  first served, as an offline ``LLM.generate`` over the batch would;
* **promptkit** -- :meth:`promptkit.Client.batch` over the same prompts: grouped by shared
  prefix, depth-first, waves sized to ``kv_capacity_blocks``, each shared prefix warmed once;
* **ideal** -- every distinct prefix block prefilled once (a bound computed from the prompts'
  block hashes, not a run: it has no wall time).

Prefill tokens are prompt tokens minus the cached tokens the engine reported. Run:
``promptkit bench --batch-rag`` or ``python -m promptkit_bench.bench_batch_rag`` (``--markdown
bench/batch_rag.md`` writes the table that
``docs/benchmarks.md`` includes).
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel
from rich.console import Console
from rich.progress import Progress

from engine_adapter import SamplingSettings
from promptkit import BatchProgress, BuiltPrompt, Client, PromptTemplate, Tokenizer
from promptkit._built_prompt import block_hashes

from . import corpus

__all__ = ["BatchRagReport", "ideal_prefill", "main", "run"]

TEMPLATE = Path(__file__).resolve().parent / "templates" / "document_qa.j2"
SYSTEM = (
    "You are a careful assistant. Answer questions using only the document the user provides. "
    "Answer in one sentence."
)


class BatchRagRow(BaseModel):
    order: str
    requests: int
    prompt_tokens: int
    prefill_tokens: int
    wall_s: float | None
    verdicts: str = ""


class BatchRagReport(BaseModel):
    documents: int
    questions: int
    kv_blocks: int | None
    document_blocks: float
    rows: list[BatchRagRow]

    def row(self, order: str) -> BatchRagRow:
        return next(r for r in self.rows if r.order == order)

    def checks(self) -> list[tuple[str, bool, str]]:
        orders = ("arrival", "promptkit", "ideal")
        arrival, ours, ideal = (self.row(o).prefill_tokens for o in orders)
        return [
            ("promptkit prefill <= 1.2x ideal", ours <= 1.2 * ideal, f"{ours / ideal:.2f}x"),
            ("arrival prefill >= 2x promptkit", arrival >= 2 * ours, f"{arrival / ours:.2f}x"),
        ]


def ideal_prefill(prompts: Sequence[BuiltPrompt]) -> int:
    """Tokens to prefill if every distinct reusable block were computed once and never evicted:
    the distinct blocks, plus each prompt's tokens past its reusable blocks (vLLM always
    computes the last prompt token, so a prompt reuses at most ``(N - 1) // B`` blocks)."""
    distinct: set[str] = set()
    tails = 0
    for prompt in prompts:
        size = prompt.block_size
        reusable = (prompt.total_tokens - 1) // size
        distinct.update(block_hashes(prompt.token_ids, size)[:reusable])
        tails += prompt.total_tokens - reusable * size
    return len(distinct) * prompts[0].block_size + tails


def _questions(seed: int, documents: int, per_document: int) -> list[dict[str, str]]:
    asked = []
    for number in range(documents):
        text, facts = corpus.handbook(random.Random(f"{seed}:doc:{number}"), 4)
        title = f"Handbook {number + 1}"
        asked += [
            {"system": SYSTEM, "title": title, "document": text, "question": fact.question}
            for fact in facts[:per_document]
        ]
    random.Random(f"{seed}:arrival").shuffle(asked)
    return asked


def _row(order: str, client: Client, start: int, wall: float) -> BatchRagRow:
    records = client.records[start:]
    verdicts = Counter(r.verdict.value for r in records)
    return BatchRagRow(
        order=order,
        requests=len(records),
        prompt_tokens=sum(r.prompt_tokens for r in records),
        prefill_tokens=sum(r.prompt_tokens - (r.cached_tokens or 0) for r in records),
        wall_s=wall,
        verdicts=", ".join(f"{v} {n}" for v, n in sorted(verdicts.items())),
    )


def run(
    *, seed: int = 0, documents: int = 16, per_document: int = 6, kv_blocks: int = 80
) -> BatchRagReport:
    """Start one embedded engine with ``kv_blocks`` KV blocks and run both orders on it."""
    from engine_adapter.vllm import VLLMEngine
    from promptkit._model_store import resolve_model_dir

    path = resolve_model_dir()
    engine = VLLMEngine(
        path,
        block_size=32,
        max_model_len=min(4096, (kv_blocks - 1) * 32),
        engine_kwargs={"num_gpu_blocks_override": kv_blocks},
    )
    sampling = SamplingSettings(max_tokens=8)
    console = Console(stderr=True)
    with Client(engine=engine, tokenizer=Tokenizer.from_dir(path), owns_engine=True) as client:
        template = PromptTemplate.from_file(TEMPLATE)
        prompts = [client.build(template, v) for v in _questions(seed, documents, per_document)]
        client.send([prompts[0]], sampling=SamplingSettings(max_tokens=2))  # warm the engine up
        rows = []
        client.reset_prefix_cache()
        start, started = len(client.records), time.perf_counter()
        client.send(prompts, sampling=sampling)
        rows.append(_row("arrival", client, start, time.perf_counter() - started))
        console.print(f"arrival order: {rows[-1].wall_s:.1f} s")
        client.reset_prefix_cache()
        start, started = len(client.records), time.perf_counter()
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("promptkit batch", total=len(prompts))

            def progress(p: BatchProgress) -> None:
                bar.update(task, completed=p.done, description=f"wave {p.wave}/{p.waves}")

            client.batch(prompts, sampling=sampling, progress=progress)
        rows.append(_row("promptkit", client, start, time.perf_counter() - started))
        console.print(f"promptkit order: {rows[-1].wall_s:.1f} s")
        total = sum(p.total_tokens for p in prompts)
        rows.append(
            BatchRagRow(
                order="ideal",
                requests=len(prompts),
                prompt_tokens=total,
                prefill_tokens=ideal_prefill(prompts),
                wall_s=None,
            )
        )
        document_blocks = sum(p.segments[1].tokens for p in prompts) / len(prompts) / 32
        return BatchRagReport(
            documents=documents,
            questions=len(prompts),
            kv_blocks=engine.kv_capacity_blocks,
            document_blocks=document_blocks,
            rows=rows,
        )


def markdown(report: BatchRagReport) -> str:
    fit = (report.kv_blocks or 0) / report.document_blocks
    lines = [
        f"{report.questions} questions over {report.documents} documents "
        f"(~{report.document_blocks:.0f} blocks each) in random arrival order; the KV cache "
        f"holds {report.kv_blocks} blocks, about {fit:.1f} documents.",
        "",
        "| order | requests | prompt tok | prefill tok | vs ideal | wall s | verdicts |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    ideal = report.row("ideal").prefill_tokens
    for row in report.rows:
        wall = "–" if row.wall_s is None else f"{row.wall_s:.1f}"
        lines.append(
            f"| {row.order} | {row.requests} | {row.prompt_tokens:,} | {row.prefill_tokens:,} "
            f"| {row.prefill_tokens / ideal:.2f}x | {wall} | {row.verdicts} |"
        )
    lines += [""] + [
        f"- {'PASS' if ok else 'FAIL'} {name}: {detail}" for name, ok, detail in report.checks()
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--documents", type=int, default=16)
    parser.add_argument("--questions", type=int, default=6, help="per document")
    parser.add_argument("--kv-blocks", type=int, default=80)
    parser.add_argument("--markdown", type=Path, help="write the results table here")
    parser.add_argument("--json", type=Path, help="write the report as JSON here")
    args = parser.parse_args()
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    report = run(
        seed=args.seed,
        documents=args.documents,
        per_document=args.questions,
        kv_blocks=args.kv_blocks,
    )
    text = markdown(report)
    print(text)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    if args.json:
        args.json.write_text(report.model_dump_json(indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
