"""The main job: both seed examples, run through promptkit on the embedded engine.

(a) The APC introduction's long markdown table (30 rows), queried for several people's ages.
(b) vLLM's ``prefix_caching.py``: one shared "school principal" instruction, four prompts.

Each workload runs twice on the same engine: *uncached*, with a unique ``cache_salt`` per request
so vLLM can reuse no block (prefix caching is effectively off for those requests; same weights,
same scheduler), and *cached*, where a warm-up request computes the shared prefix first, as in
the seed. Greedy outputs of the two runs must agree the way vLLM's own prefix-caching tests
require: the same tokens, or a divergence at a near-tie (bf16 on CPU is not invariant to the
batch shape or to which part of the prompt came from the cache; see
:mod:`promptkit._output_compare`). Only a real difference fails the demo.
"""

from __future__ import annotations

import statistics
import uuid
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, computed_field

from engine_adapter import SamplingSettings
from promptkit._client import Client, Generation
from promptkit._output_compare import OutputMatch, compare_greedy
from promptkit._templating.prompt_template import PromptTemplate

__all__ = ["DemoReport", "DemoRequest", "OutputCheck", "run_demo"]

#: Top candidates kept per generated token, as in vLLM's prefix-caching tests.
TOP_LOGPROBS = 5

TABLE_NAMES = ("John Doe", "Zack Blue", "Emma Black", "Olivia Blue", "Ben Black")
PRINCIPAL_PROMPTS = (
    "Hello, my name is",
    "The president of the United States is",
    "The capital of France is",
    "The future of AI is",
)


class DemoRequest(BaseModel):
    workload: str
    phase: str  # "uncached", "warm-up" or "cached"
    label: str
    prompt_tokens: int
    expected_cached_tokens: int
    cacheable_tokens: int
    cached_tokens: int | None
    verdict: str
    ttft_s: float | None
    timing_source: str
    text: str


class OutputCheck(BaseModel):
    """One prompt's greedy answer uncached vs cached (see :mod:`promptkit._output_compare`)."""

    workload: str
    label: str
    match: OutputMatch
    detail: str


class DemoReport(BaseModel):
    model: str
    block_size: int
    engine_start_s: float | None
    requests: list[DemoRequest]
    outputs: list[OutputCheck]
    speedup: float | None
    speedups: dict[str, float | None]
    counters_match: bool | None

    def count(self, match: OutputMatch) -> int:
        return sum(1 for check in self.outputs if check.match is match)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def outputs_agree(self) -> bool:
        """No real difference: every pair identical or diverging only at a near-tie."""
        return self.count(OutputMatch.DIFFERENT) == 0


def _data_dir() -> Path:
    return Path(str(resources.files("promptkit") / "data" / "demo"))


def _row(workload: str, phase: str, generation: Generation) -> DemoRequest:
    record = generation.record
    return DemoRequest(
        workload=workload,
        phase=phase,
        label=record.label or "",
        prompt_tokens=record.prompt_tokens,
        expected_cached_tokens=record.expected_cached_tokens,
        cacheable_tokens=record.cacheable_tokens,
        cached_tokens=record.cached_tokens,
        verdict=record.verdict.value,
        ttft_s=record.ttft_s,
        timing_source=record.timing_source,
        text=generation.text,
    )


def _checks(workload: str, cold: list[Generation], hot: list[Generation]) -> list[OutputCheck]:
    checks = []
    for a, b in zip(cold, hot, strict=True):
        comparison = compare_greedy(a.result, b.result)
        checks.append(
            OutputCheck(
                workload=workload,
                label=b.record.label or "",
                match=comparison.match,
                detail=comparison.describe(),
            )
        )
    return checks


def _median_ttft(rows: list[DemoRequest]) -> float | None:
    values = [r.ttft_s for r in rows if r.ttft_s is not None]
    return statistics.median(values) if values else None


def _cold_salt() -> str:
    return f"promptkit-demo-cold-{uuid.uuid4().hex}"


def run_demo(
    client: Client, *, model_name: str = "", engine_start_s: float | None = None
) -> DemoReport:
    """Run both workloads; return the per-request rows, output agreement and speed-up."""
    data = _data_dir()
    table = (data / "people_table.md").read_text(encoding="utf-8")
    table_qa = PromptTemplate.from_file(data / "table_qa.j2")
    principal = PromptTemplate.from_file(data / "principal.j2")
    rows: list[DemoRequest] = []
    outputs: list[OutputCheck] = []
    speedups: dict[str, float | None] = {}

    # (a) long document: one request at a time, as the seed does, so TTFT is per request.
    table_sampling = SamplingSettings(max_tokens=16, logprobs=TOP_LOGPROBS)
    prompts = [client.build(table_qa, {"table": table, "name": name}) for name in TABLE_NAMES]
    pairs = list(zip(prompts, TABLE_NAMES, strict=True))
    cold_table = [
        client.send([p], sampling=table_sampling, cache_salt=_cold_salt(), labels=[n])[0]
        for p, n in pairs
    ]
    hot_table = [client.send([p], sampling=table_sampling, labels=[n])[0] for p, n in pairs]
    uncached = [_row("table", "uncached", g) for g in cold_table]
    cached = [_row("table", "warm-up" if i == 0 else "cached", g) for i, g in enumerate(hot_table)]
    rows += uncached + cached
    outputs += _checks("table", cold_table, hot_table)
    speedups["table"] = _ratio(_median_ttft(uncached), _median_ttft(cached[1:]))

    # (b) shared prefix, four prompts in one batch; warm-up with the first prompt, as the seed.
    principal_sampling = SamplingSettings(max_tokens=24, logprobs=TOP_LOGPROBS)
    prompts = [client.build(principal, {"prompt": text}) for text in PRINCIPAL_PROMPTS]
    cold = client.send(
        prompts,
        sampling=principal_sampling,
        salts=[_cold_salt() for _ in prompts],
        labels=list(PRINCIPAL_PROMPTS),
    )
    warm = client.send(
        prompts[:1], sampling=principal_sampling, labels=["warm-up: " + PRINCIPAL_PROMPTS[0]]
    )
    hot = client.send(prompts, sampling=principal_sampling, labels=list(PRINCIPAL_PROMPTS))
    cold_rows = [_row("principal", "uncached", g) for g in cold]
    rows += cold_rows
    rows += [_row("principal", "warm-up", g) for g in warm]
    hot_rows = [_row("principal", "cached", g) for g in hot]
    rows += hot_rows
    outputs += _checks("principal", cold, hot)
    speedups["principal"] = _ratio(_median_ttft(cold_rows), _median_ttft(hot_rows))

    summary = client.summary()
    return DemoReport(
        model=model_name,
        block_size=client.engine.block_size,
        engine_start_s=engine_start_s,
        requests=rows,
        outputs=outputs,
        speedup=speedups["table"],
        speedups=speedups,
        counters_match=summary.counters_match,
    )


def _ratio(slow: float | None, fast: float | None) -> float | None:
    if slow is None or fast is None or fast <= 0:
        return None
    return slow / fast
