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
DRIFT            the prompt shares less with the closest earlier prompt from the same source
                 (template or conversation) than its stable segments promise: something
                 volatile reached a stable segment, or a chat template re-rendered history
UNKNOWN          the engine did not report cached tokens
================ =========================================================================

:mod:`promptkit._audit` decides them and writes the records; this module reads and sums them.

An unknown cached count is ``None`` everywhere, never ``0``: a record keeps it (with the
engine's reason in ``cached_unknown_reason``), and summaries compute hit ratios over the requests
whose count is known, next to how many are unknown (``hit ratio 61.2% over 40 of 52 requests;
12 unknown``). When none is known the ratio is ``None``, shown as "unknown", never as 0%.
"""

from __future__ import annotations

import enum
import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ConfigDict, Field

from engine_adapter import PrefixCacheCounters

__all__ = [
    "UNKNOWN_CACHED_HINT",
    "CacheTotals",
    "MissExplanation",
    "ReplicaSummary",
    "RequestRecord",
    "RunSummary",
    "SegmentHit",
    "TemplateSummary",
    "Verdict",
    "read_records",
    "summarize",
]

log = logging.getLogger(__name__)

#: Why a cached count is unknown when the engine did not say: by far the most common cause.
UNKNOWN_CACHED_HINT = (
    "the engine reported no cached-token count; a vLLM OpenAI server reports it only when "
    "started with --enable-prompt-tokens-details: restart the server with that flag"
)


class Verdict(enum.StrEnum):
    HIT = "HIT"
    PARTIAL = "PARTIAL"
    MISS = "MISS"
    UNEXPECTED_MISS = "UNEXPECTED_MISS"
    DRIFT = "DRIFT"
    UNKNOWN = "UNKNOWN"


class SegmentHit(BaseModel):
    """Cached tokens that fell inside one segment (``None`` when the engine did not say)."""

    model_config = ConfigDict(frozen=True)

    name: str
    stability: str
    tokens: int
    cached_tokens: int | None


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
    cached_unknown_reason: str | None = Field(
        default=None, description="why cached_tokens is None, and how to make it known"
    )
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
    note: str | None = Field(
        default=None,
        description="how the prompt continued an earlier one (stateless history), or why not",
    )
    engine_restarts: int = Field(
        default=0, description="how many times the client had restarted its engine before this"
    )
    control_tokens: list[str] = Field(
        default_factory=list,
        description="values (variables, messages[i]) that held control-token text",
    )
    control_tokens_policy: str | None = Field(
        default=None,
        description="what the client did with them: 'escape' (sent as plain text) or 'allow' "
        "(sent as real control tokens)",
    )
    replica: str | None = Field(
        default=None, description="the replica that served it, when a router chose among several"
    )
    routing_note: str | None = Field(
        default=None, description="why the router sent it where its prefix was not held"
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
    """Load a JSONL log written by a client (blank lines ignored).

    A last line without its newline that does not parse is a record cut short (the writer was
    killed mid-line): it is skipped with a warning. Any other bad line is an error naming it.
    """
    from promptkit.errors import ConfigError

    records = []
    try:
        with Path(path).open(encoding="utf-8") as handle:
            lines = list(enumerate(handle, 1))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the log: {exc}") from None
    for number, line in lines:
        if not line.strip():
            continue
        try:
            records.append(RequestRecord.model_validate_json(line))
        except ValueError as exc:
            if number == len(lines) and not line.endswith("\n"):
                log.warning("%s:%d: skipped a truncated last record", path, number)
                continue
            raise ConfigError(f"{path}:{number}: not a promptkit record: {exc}") from None
    return records


class CacheTotals(BaseModel):
    """Totals over a group of requests, with the cached counts the engine did not report apart.

    Hit ratios are over the ``known_requests`` only: an unknown count is not a zero. The ratios
    are ``None`` when no request of the group has a known count.
    """

    requests: int
    known_requests: int = Field(description="requests whose cached count the engine reported")
    unknown_requests: int = Field(description="requests whose cached count is unknown (null)")
    prompt_tokens: int = Field(description="prompt tokens of all requests")
    known_prompt_tokens: int = Field(description="prompt tokens of the known requests")
    cached_tokens: int | None = Field(description="sum over the known requests; null if none")
    expected_cached_tokens: int = Field(description="what the client expected, all requests")
    known_expected_cached_tokens: int = Field(description="what it expected of the known ones")
    hit_ratio: float | None = Field(description="cached_tokens / known_prompt_tokens")
    hit_vs_expected: float | None = Field(description="cached / known_expected_cached_tokens")
    verdicts: dict[str, int]

    def hit_ratio_text(self) -> str:
        """``61.2%``, ``61.2% over 40 of 52 requests; 12 unknown``, or ``unknown``."""
        if self.hit_ratio is None:
            return "unknown"
        if not self.unknown_requests:
            return f"{self.hit_ratio:.1%}"
        return (
            f"{self.hit_ratio:.1%} over {self.known_requests} of {self.requests} requests; "
            f"{self.unknown_requests} unknown"
        )


class TemplateSummary(CacheTotals):
    template: str
    ttft_cached_p50_s: float | None
    ttft_uncached_p50_s: float | None
    top_causes: list[tuple[str, int]]
    control_tokens: list[tuple[str, str, int]] = Field(
        default_factory=list,
        description="(value, policy, requests): the values that held control-token text, what "
        "the client did with them ('escape', 'allow'), and in how many requests",
    )


class PrefixCacheCountersModel(BaseModel):
    queries: int
    hits: int


class ReplicaSummary(CacheTotals):
    """Totals of the requests one replica served, checked against that replica's counters."""

    replica: str
    engine_counters: PrefixCacheCountersModel | None = None
    counters_match: bool | None = None
    counters_note: str | None = None


class RunSummary(CacheTotals):
    """Totals over a run, per template, and the engine counter cross-check.

    ``counters_match`` is ``None`` when there were no engine counters, or when records with an
    unknown count make the check impossible; ``counters_note`` then says why.
    """

    templates: list[TemplateSummary]
    unknown_reason: str | None = Field(
        default=None, description="why some cached counts are unknown, and the fix"
    )
    engine_counters: PrefixCacheCountersModel | None = None
    counters_match: bool | None = None
    counters_note: str | None = None
    replicas: list[ReplicaSummary] = Field(
        default_factory=list, description="per replica, when a router named one per request"
    )

    def describe(self) -> str:
        """One sentence for people: requests, hit ratio, what is unknown and why."""
        if not self.requests:
            return "0 requests."
        if self.hit_ratio is None:
            return (
                f"{self.requests} requests: hit ratio unknown, no request has a known cached "
                f"count: {self.unknown_reason}."
            )
        text = (
            f"{self.requests} requests: {self.cached_tokens} of {self.known_prompt_tokens} prompt "
            f"tokens served from the prefix cache, hit ratio {self.hit_ratio_text()}"
        )
        if self.unknown_requests:
            return f"{text}: {self.unknown_reason}."
        return f"{text}; {self.expected_cached_tokens} expected."

    def __str__(self) -> str:
        return self.describe()


def _median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _ratio(numerator: int | None, denominator: int) -> float | None:
    return None if numerator is None or denominator <= 0 else numerator / denominator


def _totals(records: Sequence[RequestRecord]) -> CacheTotals:
    """Totals of ``records``: known cached counts summed, unknown ones counted apart."""
    known = [r for r in records if r.cached_tokens is not None]
    cached = sum(r.cached_tokens or 0 for r in known) if known else None
    known_prompt = sum(r.prompt_tokens for r in known)
    known_expected = sum(r.expected_cached_tokens for r in known)
    return CacheTotals(
        requests=len(records),
        known_requests=len(known),
        unknown_requests=len(records) - len(known),
        prompt_tokens=sum(r.prompt_tokens for r in records),
        known_prompt_tokens=known_prompt,
        cached_tokens=cached,
        expected_cached_tokens=sum(r.expected_cached_tokens for r in records),
        hit_ratio=_ratio(cached, known_prompt),
        known_expected_cached_tokens=known_expected,
        hit_vs_expected=_ratio(cached, known_expected),
        verdicts=dict(Counter(r.verdict.value for r in records)),
    )


def _template_summary(name: str, records: list[RequestRecord]) -> TemplateSummary:
    causes = Counter(r.explanation.cause for r in records if r.explanation is not None)
    # A request with an unknown count is neither cached nor uncached: it is in neither median.
    cached: list[float] = []
    uncached: list[float] = []
    for r in records:
        if r.ttft_s is not None and r.cached_tokens is not None:
            (cached if r.cached_tokens > 0 else uncached).append(r.ttft_s)
    return TemplateSummary(
        template=name,
        **dict(_totals(records)),
        ttft_cached_p50_s=_median(cached),
        ttft_uncached_p50_s=_median(uncached),
        top_causes=causes.most_common(5),
        control_tokens=[
            (value, policy, count)
            for (value, policy), count in Counter(
                (value, r.control_tokens_policy or "not recorded")
                for r in records
                for value in r.control_tokens
            ).most_common()
        ],
    )


def _unknown_reason(records: Sequence[RequestRecord]) -> str | None:
    reasons = Counter(
        r.cached_unknown_reason or UNKNOWN_CACHED_HINT for r in records if r.cached_tokens is None
    )
    return reasons.most_common(1)[0][0] if reasons else None


def _cross_check(
    counters: PrefixCacheCountersModel, totals: CacheTotals
) -> tuple[bool | None, str]:
    """Compare the engine's hit tokens with the records', as far as the records are known.

    The engine counts the hits of every request, known to the records or not. So with unknown
    records only one direction is sound: fewer engine hits than the known records alone sum to
    is a real mismatch; more may be the unknown requests' hits, and proves nothing either way.
    """
    hits, cached = counters.hits, totals.cached_tokens or 0
    counted = f"the engine counted {hits} prefix-cache hit tokens (of {counters.queries} queried)"
    if not totals.unknown_requests:
        if hits == cached:
            return True, f"{counted}, the records sum to the same"
        return False, f"{counted}, the records sum to {cached}"
    if hits < cached:
        return False, (
            f"{counted}, fewer than the {cached} that the {totals.known_requests} requests with "
            "a known cached count alone sum to"
        )
    known = (
        f"; the {totals.known_requests} known requests account for {cached} of them"
        if totals.known_requests
        else ""
    )
    return None, (
        f"cannot cross-check: the cached count of {totals.unknown_requests} of "
        f"{totals.requests} requests is unknown, and the engine's {hits} prefix-cache hit tokens "
        f"(of {counters.queries} queried) include their hits{known}"
    )


def _checked(
    counters: PrefixCacheCounters | None,
    baseline: PrefixCacheCounters | None,
    totals: CacheTotals,
) -> tuple[PrefixCacheCountersModel | None, bool | None, str | None]:
    if counters is None:
        return None, None, None
    hits = counters.hits - (baseline.hits if baseline else 0)
    queries = counters.queries - (baseline.queries if baseline else 0)
    model = PrefixCacheCountersModel(queries=queries, hits=hits)
    match, note = _cross_check(model, totals)
    if match is False:
        log.warning("prefix-cache counters disagree: %s", note)
    return model, match, note


def _replica_summaries(
    records: Sequence[RequestRecord],
    counters: Mapping[str, PrefixCacheCounters | None],
    baseline: Mapping[str, PrefixCacheCounters | None],
) -> list[ReplicaSummary]:
    by_replica: dict[str, list[RequestRecord]] = {}
    for record in records:
        if record.replica is not None:
            by_replica.setdefault(record.replica, []).append(record)
    for name in counters:
        by_replica.setdefault(name, [])
    summaries = []
    for name in sorted(by_replica):
        totals = _totals(by_replica[name])
        model, match, note = _checked(counters.get(name), baseline.get(name), totals)
        summaries.append(
            ReplicaSummary(
                replica=name,
                **dict(totals),
                engine_counters=model,
                counters_match=match,
                counters_note=note,
            )
        )
    return summaries


def summarize(
    records: Iterable[RequestRecord],
    *,
    counters: PrefixCacheCounters | None = None,
    counters_baseline: PrefixCacheCounters | None = None,
    replica_counters: Mapping[str, PrefixCacheCounters | None] | None = None,
    replica_baseline: Mapping[str, PrefixCacheCounters | None] | None = None,
) -> RunSummary:
    """Summarize records; with engine counters, check that the hits add up.

    ``counters_baseline`` is the counter snapshot taken before the first record, so that
    requests sent outside this client before it started do not count. Records whose cached
    count is unknown count in ``unknown_requests``, never as 0 hits; with any of them the
    engine counters can only show a mismatch, not a match (see ``counters_note``).

    Records that name a replica are also summed per replica, each checked against that
    replica's own counters (``replica_counters``, less ``replica_baseline``) when given.
    """
    items = list(records)
    by_template: dict[str, list[RequestRecord]] = {}
    for record in items:
        by_template.setdefault(record.template, []).append(record)
    totals = _totals(items)
    model, match, note = _checked(counters, counters_baseline, totals)
    return RunSummary(
        **dict(totals),
        templates=[_template_summary(name, recs) for name, recs in by_template.items()],
        unknown_reason=_unknown_reason(items),
        engine_counters=model,
        counters_match=match,
        counters_note=note,
        replicas=_replica_summaries(items, replica_counters or {}, replica_baseline or {}),
    )
