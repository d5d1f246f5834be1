"""The per-template summary as display cells, shared by the terminal table and the HTML report.

Both show the same numbers in the same format; only the markup differs, so the numbers are
computed and formatted once, here. An unknown value (no TTFT, nothing expected) shows as ``-``.
"""

from __future__ import annotations

from dataclasses import dataclass

from promptkit.report import RunSummary

__all__ = ["COLUMNS", "TEXT_COLUMNS", "SummaryRow", "summary_rows"]

COLUMNS = (
    "template",
    "requests",
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
TEXT_COLUMNS = frozenset({"template", "verdicts"})


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One template (or the ``all`` row): verdict counts for the renderer to colour, and the
    numeric cells already formatted, in :data:`COLUMNS` order after ``verdicts``."""

    template: str
    requests: str
    verdicts: dict[str, int]
    numbers: tuple[str, ...]
    total: bool = False


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def _show(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def summary_rows(summary: RunSummary) -> list[SummaryRow]:
    """A row per template in first-seen order, then the ``all`` row (no TTFT medians)."""
    rows = []
    for t in summary.templates:
        speedup = _ratio(t.ttft_uncached_p50_s, t.ttft_cached_p50_s)
        numbers = (
            str(t.prompt_tokens),
            str(t.expected_cached_tokens),
            str(t.cached_tokens),
            _show(t.hit_ratio, ".1%"),
            _show(t.hit_vs_expected, ".1%"),
            _show(t.ttft_cached_p50_s, ".3f"),
            _show(t.ttft_uncached_p50_s, ".3f"),
            "-" if speedup is None else f"{speedup:.1f}x",
        )
        rows.append(SummaryRow(t.template, str(t.requests), t.verdicts, numbers))
    expected = summary.expected_cached_tokens
    totals = (
        str(summary.prompt_tokens),
        str(expected),
        str(summary.cached_tokens),
        _show(summary.hit_ratio, ".1%"),
        _show(_ratio(summary.cached_tokens, expected), ".1%"),
        "",
        "",
        "",
    )
    rows.append(SummaryRow("all", str(summary.requests), summary.verdicts, totals, total=True))
    return rows
