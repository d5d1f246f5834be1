"""Rich rendering of promptkit results for the terminal (the CLI's printing, kept apart)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from promptkit.demo import DemoReport

__all__ = ["print_demo"]

_VERDICT_STYLE = {
    "HIT": "green",
    "PARTIAL": "yellow",
    "MISS": "dim",
    "UNEXPECTED_MISS": "red",
    "DRIFT": "bold red",
    "UNKNOWN": "magenta",
}


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_demo(console: Console, report: DemoReport) -> None:
    table = Table(title=f"promptkit demo — {report.model}, KV block size {report.block_size}")
    for column in (
        "workload",
        "phase",
        "request",
        "prompt",
        "expected",
        "cached",
        "verdict",
        "TTFT s",
        "answer",
    ):
        numeric = column in ("prompt", "expected", "cached", "TTFT s")
        table.add_column(
            column, justify="right" if numeric else "left", no_wrap=True, overflow="ellipsis"
        )
    for row in report.requests:
        style = _VERDICT_STYLE.get(row.verdict, "")
        table.add_row(
            row.workload,
            row.phase,
            row.label[:24],
            str(row.prompt_tokens),
            str(row.expected_cached_tokens),
            "-" if row.cached_tokens is None else str(row.cached_tokens),
            f"[{style}]{row.verdict}[/]",
            _seconds(row.ttft_s),
            row.text.strip().replace("\n", " ")[:24],
        )
    console.print(table)
    if report.engine_start_s is not None:
        console.print(f"Engine start: {report.engine_start_s:.1f} s")
    for workload, speedup in report.speedups.items():
        text = "n/a" if speedup is None else f"{speedup:.1f}x"
        console.print(f"TTFT speed-up, cached vs uncached ({workload}): {text}")
    if report.counters_match is not None:
        console.print(
            f"Engine prefix-cache hit counter matches the records: {report.counters_match}"
        )
    console.print(f"Generated answers are the same: {report.same_outputs}")
