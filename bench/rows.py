"""Rows of the benchmark report: per-workload, per-client totals and the acceptance checks."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from pydantic import BaseModel

from .measure import Measured
from .oracle import oracle_cached

__all__ = ["BenchReport", "Check", "Row", "acceptance_checks", "summarize_row"]

#: The acceptance thresholds of issue 7, checked on every run.
MIN_ORACLE_FRACTION = 0.99
MIN_LONG_DOC_SPEEDUP = 4.0
MAX_SDK_OVERHEAD = 0.02


class Row(BaseModel):
    """One workload run by one client. Fractions are ``None`` when their denominator is 0."""

    workload: str
    client: str
    requests: int
    prompt_tokens: int
    cached_tokens: int
    oracle_cached_tokens: int
    oracle_fraction: float | None
    hit_ratio: float
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    ttft_speedup: float | None
    requests_per_s: float
    wall_s: float
    prefill_s: float
    engine_s: float
    sdk_ms_per_request: float | None
    sdk_overhead_fraction: float | None
    sdk_overhead_max: float | None
    notes: str = ""


class Check(BaseModel):
    name: str
    passed: bool
    detail: str


class BenchReport(BaseModel):
    seed: int
    quick: bool
    model: str
    block_size: int
    engine_start_s: float | None
    duration_s: float
    machine: dict[str, str]
    versions: dict[str, str]
    rows: list[Row]
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def _percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def summarize_row(
    workload: str,
    client: str,
    measured: Sequence[Measured],
    *,
    block_size: int,
    wall_s: float,
    notes: str = "",
) -> Row:
    """Totals, the oracle over this client's own ids, TTFT percentiles after warm-up."""
    oracle = oracle_cached([m.sent for m in measured], block_size=block_size)
    cached = sum(m.cached_tokens or 0 for m in measured)
    prompt_tokens = sum(len(m.prompt_ids) for m in measured)
    warm = [m.ttft_s for m in measured if not m.warm_up and m.ttft_s is not None]
    engine_s = sum(m.engine_s for m in measured)
    sdk = [m.sdk_s for m in measured if m.sdk_s is not None]
    per_request = [m.sdk_s / m.engine_s for m in measured if m.sdk_s is not None and m.engine_s > 0]
    return Row(
        workload=workload,
        client=client,
        requests=len(measured),
        prompt_tokens=prompt_tokens,
        cached_tokens=cached,
        oracle_cached_tokens=sum(oracle),
        oracle_fraction=_ratio(cached, sum(oracle)),
        hit_ratio=_ratio(cached, prompt_tokens) or 0.0,
        ttft_p50_s=statistics.median(warm) if warm else None,
        ttft_p95_s=_percentile(warm, 0.95),
        ttft_speedup=None,
        requests_per_s=len(measured) / wall_s if wall_s > 0 else 0.0,
        wall_s=wall_s,
        prefill_s=sum(m.ttft_s or 0.0 for m in measured),
        engine_s=engine_s,
        sdk_ms_per_request=1e3 * statistics.fmean(sdk) if sdk else None,
        sdk_overhead_fraction=_ratio(sum(sdk), engine_s) if sdk else None,
        sdk_overhead_max=max(per_request) if per_request else None,
        notes=notes,
    )


def acceptance_checks(rows: Sequence[Row]) -> list[Check]:
    """Issue 7's acceptance figures, from this run's rows."""
    checks = []
    for row in rows:
        if row.client != "promptkit":
            continue
        fraction = row.oracle_fraction
        checks.append(
            Check(
                name=f"{row.workload}: promptkit cached >= {MIN_ORACLE_FRACTION:.0%} of oracle",
                passed=fraction is not None and fraction >= MIN_ORACLE_FRACTION,
                detail=f"{row.cached_tokens} of {row.oracle_cached_tokens} tokens",
            )
        )
        overhead = row.sdk_overhead_fraction
        checks.append(
            Check(
                name=f"{row.workload}: promptkit SDK time < {MAX_SDK_OVERHEAD:.0%} of engine time",
                passed=overhead is not None and overhead < MAX_SDK_OVERHEAD,
                detail=f"{(overhead or 0):.2%} overall, {(row.sdk_overhead_max or 0):.2%} worst "
                f"request, {(row.sdk_ms_per_request or 0):.2f} ms per request",
            )
        )
        if row.workload == "long_doc":
            speedup = row.ttft_speedup
            checks.append(
                Check(
                    name=f"long_doc: promptkit TTFT p50 >= {MIN_LONG_DOC_SPEEDUP:g}x lower "
                    "than APC-off",
                    passed=speedup is not None and speedup >= MIN_LONG_DOC_SPEEDUP,
                    detail=f"{speedup or 0:.1f}x",
                )
            )
    return checks
