"""The per-template summary as display cells, shared by the terminal table and the HTML report.

Both show the same numbers in the same format; only the markup differs, so the numbers are
computed and formatted once, here. A value that does not apply (no TTFT, nothing expected) shows
as ``-``; a cached count the engine did not report shows as ``unknown``, never as 0, and the
``unknown`` column says how many requests the ratios leave out. With some of them unknown, the
prompt and expected cells read ``known of all`` (``9456 of 18789``): cached / prompt is then the
hit ratio shown, and cached / expected the share shown, in every row.
"""

from __future__ import annotations

from dataclasses import dataclass

from promptkit.reporting.records import CacheTotals, RunSummary

__all__ = [
    "COLUMNS",
    "REPLICA_COLUMNS",
    "TEXT_COLUMNS",
    "ReplicaRow",
    "SummaryRow",
    "replica_rows",
    "summary_rows",
]

COLUMNS = (
    "template",
    "requests",
    "unknown",
    "verdicts",
    "prompt",
    "expected",
    "cached",
    "hit ratio",
    "vs expected",
    "TTFT p50 cached s",
    "TTFT p50 uncached s",
    "speed-up",
)
TEXT_COLUMNS = frozenset({"template", "verdicts", "replica", "engine counters"})
#: The per-replica table: the same cache cells, and each replica's own counter cross-check.
REPLICA_COLUMNS = (
    "replica",
    "requests",
    "unknown",
    "verdicts",
    "prompt",
    "expected",
    "cached",
    "hit ratio",
    "vs expected",
    "engine counters",
)


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One template (or the ``all`` row): verdict counts for the renderer to colour, and the
    numeric cells already formatted, in :data:`COLUMNS` order after ``verdicts``."""

    template: str
    requests: str
    unknown: str
    verdicts: dict[str, int]
    numbers: tuple[str, ...]
    total: bool = False


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def _show(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _part(known: int, everything: int, partly: bool) -> str:
    return f"{known} of {everything}" if partly else str(everything)


def _cache_cells(totals: CacheTotals) -> tuple[str, ...]:
    """prompt, expected, cached, hit ratio and vs expected: the last three unknown, not 0."""
    known = totals.cached_tokens is not None
    partly = known and totals.unknown_requests > 0
    return (
        _part(totals.known_prompt_tokens, totals.prompt_tokens, partly),
        _part(totals.known_expected_cached_tokens, totals.expected_cached_tokens, partly),
        str(totals.cached_tokens) if known else "unknown",
        _show(totals.hit_ratio, ".1%") if known else "unknown",
        _show(totals.hit_vs_expected, ".1%") if known else "unknown",
    )


def summary_rows(summary: RunSummary) -> list[SummaryRow]:
    """A row per template in first-seen order, then the ``all`` row (no TTFT medians)."""
    rows = []
    for t in summary.templates:
        speedup = _ratio(t.ttft_uncached_p50_s, t.ttft_cached_p50_s)
        numbers = (
            *_cache_cells(t),
            _show(t.ttft_cached_p50_s, ".3f"),
            _show(t.ttft_uncached_p50_s, ".3f"),
            "-" if speedup is None else f"{speedup:.1f}x",
        )
        rows.append(
            SummaryRow(t.template, str(t.requests), str(t.unknown_requests), t.verdicts, numbers)
        )
    totals = (*_cache_cells(summary), "", "", "")
    rows.append(
        SummaryRow(
            "all",
            str(summary.requests),
            str(summary.unknown_requests),
            summary.verdicts,
            totals,
            total=True,
        )
    )
    return rows


@dataclass(frozen=True, slots=True)
class ReplicaRow:
    """One replica: verdict counts, cache cells (:data:`REPLICA_COLUMNS` order) and whether its
    own prefix-cache counters agree with its records (``None``: not checked)."""

    replica: str
    requests: str
    unknown: str
    verdicts: dict[str, int]
    numbers: tuple[str, ...]
    counters: str
    counters_match: bool | None


def replica_rows(summary: RunSummary) -> list[ReplicaRow]:
    """A row per replica that served a request (empty when no record names a replica)."""
    rows = []
    for r in summary.replicas:
        if r.engine_counters is None:
            check = "-"
        elif r.counters_match:
            check = f"match ({r.engine_counters.hits} hit tokens)"
        else:
            check = r.counters_note or "-"
        rows.append(
            ReplicaRow(
                replica=r.replica,
                requests=str(r.requests),
                unknown=str(r.unknown_requests),
                verdicts=r.verdicts,
                numbers=_cache_cells(r),
                counters=check,
                counters_match=r.counters_match,
            )
        )
    return rows
