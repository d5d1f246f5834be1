"""Per-request prefix-hit records, their verdicts, and run summaries.

Verdicts, for a request of N tokens with ``expected`` (from the client-side mirror) and
``actual`` (from the engine) cached tokens:

================ =========================================================================
HIT              the engine served everything expected, and the whole cacheable stable prefix
PARTIAL          some tokens hit, but less than the prompt's cacheable stable prefix (e.g. the
                 first request of a new session: the static head hit, the document did not)
MISS             nothing expected and nothing hit: a cold request
UNEXPECTED_MISS  the engine gave fewer tokens than the mirror expected: eviction, a different
                 cache salt, an engine restart
DRIFT            the prompt shares less with the closest earlier prompt from the same template
                 than its stable segments promise: something volatile reached a stable segment
UNKNOWN          the engine did not report cached tokens
================ =========================================================================
"""

from __future__ import annotations

import enum
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ConfigDict, Field

from engine_adapter import EngineResult, PrefixCacheCounters
from promptkit.prompt import BuiltPrompt

__all__ = [
    "MissExplanation",
    "RequestRecord",
    "RunSummary",
    "SegmentHit",
    "TemplateSummary",
    "Verdict",
    "decide_verdict",
    "read_records",
    "summarize",
]

log = logging.getLogger(__name__)


class Verdict(enum.StrEnum):
    HIT = "HIT"
    PARTIAL = "PARTIAL"
    MISS = "MISS"
    UNEXPECTED_MISS = "UNEXPECTED_MISS"
    DRIFT = "DRIFT"
    UNKNOWN = "UNKNOWN"


class SegmentHit(BaseModel):
    """Cached tokens that fell inside one segment."""

    model_config = ConfigDict(frozen=True)

    name: str
    stability: str
    tokens: int
    cached_tokens: int


class MissExplanation(BaseModel):
    """Why a request got fewer cached tokens than it should have.

    ``position`` is the first token where this prompt differs from ``compared_with`` (the closest
    earlier prompt, by request id); ``ours``/``theirs`` are the decoded tokens around it.
    """

    model_config = ConfigDict(frozen=True)

    cause: str
    position: int | None = None
    compared_with: int | None = None
    segment: str | None = None
    template_file: str | None = None
    line: int | None = None
    variable: str | None = None
    expression: str | None = None
    ours: str | None = None
    theirs: str | None = None
    diff: str | None = None

    def one_line(self) -> str:
        where = self.template_file or ""
        if self.line is not None:
            where += f":{self.line}"
        parts = [self.cause]
        if where:
            parts.append(f"at {where}")
        if self.segment:
            parts.append(f"segment {self.segment!r}")
        if self.variable:
            parts.append(f"variable {self.variable!r}")
        if self.position is not None:
            parts.append(f"token {self.position}: {self.theirs!r} -> {self.ours!r}")
        return ", ".join(parts)


class RequestRecord(BaseModel):
    """Everything known about one request's prefix-cache behaviour."""

    model_config = ConfigDict(frozen=True)

    request_id: int
    template: str
    template_file: str
    prompt_tokens: int
    stable_tokens: int
    cacheable_tokens: int
    expected_cached_tokens: int
    cached_tokens: int | None
    block_size: int
    hit_ratio: float | None = Field(description="cached / prompt tokens")
    ttft_s: float | None
    latency_s: float
    timing_source: str
    cache_salt: str | None = None
    verdict: Verdict
    segments: list[SegmentHit]
    prefix_fingerprint: str
    moved_boundaries: list[str] = Field(
        default_factory=list,
        description="segments whose last tokens merged with the next segment's text",
    )
    explanation: MissExplanation | None = None
    text: str = ""
    label: str | None = None


def decide_verdict(
    *, prompt: BuiltPrompt, expected: int, actual: int | None, drift: bool
) -> Verdict:
    """The verdict rules of the module docstring, in order of precedence."""
    # Drift is found on the client side alone, so it stands even when the engine reports nothing.
    if drift:
        return Verdict.DRIFT
    if actual is None:
        return Verdict.UNKNOWN
    if actual < expected:
        return Verdict.UNEXPECTED_MISS
    if actual == 0:
        return Verdict.MISS
    if actual >= prompt.cacheable_tokens:
        return Verdict.HIT
    return Verdict.PARTIAL


def segment_hits(prompt: BuiltPrompt, cached: int | None) -> list[SegmentHit]:
    hit = cached or 0
    return [
        SegmentHit(
            name=span.name,
            stability=span.stability.label,
            tokens=span.tokens,
            cached_tokens=max(0, min(hit, span.token_end) - span.token_start),
        )
        for span in prompt.segments
    ]


def make_record(
    *,
    request_id: int,
    prompt: BuiltPrompt,
    prefix_fingerprint: str,
    result: EngineResult,
    expected: int,
    verdict: Verdict,
    explanation: MissExplanation | None,
    salt: str | None,
    label: str | None = None,
) -> RequestRecord:
    cached = result.num_cached_tokens
    return RequestRecord(
        request_id=request_id,
        template=prompt.template,
        template_file=prompt.template_file,
        prompt_tokens=prompt.total_tokens,
        stable_tokens=prompt.stable_tokens,
        cacheable_tokens=prompt.cacheable_tokens,
        expected_cached_tokens=expected,
        cached_tokens=cached,
        block_size=prompt.block_size,
        hit_ratio=None if cached is None else cached / max(1, prompt.total_tokens),
        ttft_s=result.ttft_s,
        latency_s=result.latency_s,
        timing_source=result.timing_source,
        cache_salt=salt,
        verdict=verdict,
        segments=segment_hits(prompt, cached),
        prefix_fingerprint=prefix_fingerprint,
        moved_boundaries=[b.after for b in prompt.boundaries if not b.safe],
        explanation=explanation,
        text=result.text,
        label=label,
    )


class JsonlSink:
    """Appends records to a JSONL file, one line per request, flushed as it goes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")

    def write(self, record: RequestRecord) -> None:
        if self._file is not None:
            self._file.write(record.model_dump_json() + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_records(path: str | Path) -> list[RequestRecord]:
    """Load a JSONL log written by a client (blank lines ignored)."""
    records = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                records.append(RequestRecord.model_validate_json(line))
            except ValueError as exc:
                from promptkit.errors import ConfigError

                raise ConfigError(f"{path}:{number}: not a promptkit record: {exc}") from None
    return records


class TemplateSummary(BaseModel):
    template: str
    requests: int
    prompt_tokens: int
    cached_tokens: int
    expected_cached_tokens: int
    hit_ratio: float
    hit_vs_expected: float | None
    ttft_cached_p50_s: float | None
    ttft_uncached_p50_s: float | None
    verdicts: dict[str, int]
    top_causes: list[tuple[str, int]]


class PrefixCacheCountersModel(BaseModel):
    queries: int
    hits: int


class RunSummary(BaseModel):
    """Totals over a run, per template, and the engine counter cross-check."""

    requests: int
    prompt_tokens: int
    cached_tokens: int
    expected_cached_tokens: int
    hit_ratio: float
    verdicts: dict[str, int]
    templates: list[TemplateSummary]
    engine_counters: PrefixCacheCountersModel | None = None
    counters_match: bool | None = None


def _median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _template_summary(name: str, records: list[RequestRecord]) -> TemplateSummary:
    prompt = sum(r.prompt_tokens for r in records)
    cached = sum(r.cached_tokens or 0 for r in records)
    expected = sum(r.expected_cached_tokens for r in records)
    causes = Counter(r.explanation.cause for r in records if r.explanation is not None)
    return TemplateSummary(
        template=name,
        requests=len(records),
        prompt_tokens=prompt,
        cached_tokens=cached,
        expected_cached_tokens=expected,
        hit_ratio=cached / prompt if prompt else 0.0,
        hit_vs_expected=cached / expected if expected else None,
        ttft_cached_p50_s=_median(
            [r.ttft_s for r in records if r.ttft_s is not None and (r.cached_tokens or 0) > 0]
        ),
        ttft_uncached_p50_s=_median(
            [r.ttft_s for r in records if r.ttft_s is not None and not r.cached_tokens]
        ),
        verdicts=dict(Counter(r.verdict.value for r in records)),
        top_causes=causes.most_common(5),
    )


def summarize(
    records: Iterable[RequestRecord],
    *,
    counters: PrefixCacheCounters | None = None,
    counters_baseline: PrefixCacheCounters | None = None,
) -> RunSummary:
    """Summarize records; with engine counters, check that the hits add up.

    ``counters_baseline`` is the counter snapshot taken before the first record, so that
    requests sent outside this client before it started do not count.
    """
    items = list(records)
    by_template: dict[str, list[RequestRecord]] = {}
    for record in items:
        by_template.setdefault(record.template, []).append(record)
    prompt = sum(r.prompt_tokens for r in items)
    cached = sum(r.cached_tokens or 0 for r in items)
    counters_model = None
    match = None
    if counters is not None:
        hits = counters.hits - (counters_baseline.hits if counters_baseline else 0)
        queries = counters.queries - (counters_baseline.queries if counters_baseline else 0)
        counters_model = PrefixCacheCountersModel(queries=queries, hits=hits)
        match = hits == cached
        if not match:
            log.warning(
                "engine counted %d prefix-cache hit tokens, records sum to %d", hits, cached
            )
    return RunSummary(
        requests=len(items),
        prompt_tokens=prompt,
        cached_tokens=cached,
        expected_cached_tokens=sum(r.expected_cached_tokens for r in items),
        hit_ratio=cached / prompt if prompt else 0.0,
        verdicts=dict(Counter(r.verdict.value for r in items)),
        templates=[_template_summary(name, recs) for name, recs in by_template.items()],
        engine_counters=counters_model,
        counters_match=match,
    )
