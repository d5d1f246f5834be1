"""Rich rendering of promptkit results for the terminal (the CLI's printing, kept apart)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from promptkit._output_compare import OutputMatch
from promptkit.cli._demo_run import TOP_LOGPROBS, DemoReport
from promptkit.reporting.records import RunSummary
from promptkit.reporting.table import (
    COLUMNS,
    REPLICA_COLUMNS,
    TEXT_COLUMNS,
    replica_rows,
    summary_rows,
)

__all__ = ["print_demo", "print_summary"]

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
    identical, near = report.count(OutputMatch.IDENTICAL), report.count(OutputMatch.NEAR_TIE)
    different = report.count(OutputMatch.DIFFERENT)
    console.print(
        f"Greedy answers, uncached vs cached: {identical} identical, {near} diverged at a "
        f"near-tie (each side's token among the other's top-{TOP_LOGPROBS}), "
        f"{different} different"
    )
    for check in report.outputs:
        if check.match is not OutputMatch.IDENTICAL:
            console.print(f"  {check.workload} / {check.label}: {check.detail}")
    agree = "[green]yes[/]" if report.outputs_agree else "[bold red]no[/]"
    console.print(f"Outputs agree with and without the cache: {agree}")


def _verdicts(counts: dict[str, int]) -> str:
    return " ".join(f"[{_VERDICT_STYLE.get(v, '')}]{v}[/] {n}" for v, n in sorted(counts.items()))


def _print_replicas(console: Console, summary: RunSummary) -> None:
    rows = replica_rows(summary)
    if not rows:
        return
    table = Table(title="per replica")
    for column in REPLICA_COLUMNS:
        right = column not in TEXT_COLUMNS
        table.add_column(column, justify="right" if right else "left", overflow="fold")
    for row in rows:
        style = {True: "green", False: "bold red", None: ""}[row.counters_match]
        counters = f"[{style}]{escape(row.counters)}[/]" if style else escape(row.counters)
        table.add_row(
            row.replica, row.requests, row.unknown, _verdicts(row.verdicts), *row.numbers, counters
        )
    console.print(table)


def print_summary(console: Console, summary: RunSummary, *, title: str = "") -> None:
    """Per-template hit table, the run in a sentence (what is unknown and why), top causes of
    misses, and the engine-counter cross-check."""
    table = Table(title=title or "promptkit report")
    for column in COLUMNS:
        right = column not in TEXT_COLUMNS
        table.add_column(column, justify="right" if right else "left", overflow="fold")
    for row in summary_rows(summary):
        if row.total:
            table.add_section()
        name = f"[bold]{row.template}[/]" if row.total else row.template
        table.add_row(name, row.requests, row.unknown, _verdicts(row.verdicts), *row.numbers)
    console.print(table)
    _print_replicas(console, summary)
    line = escape(summary.describe())
    console.print(f"[{_VERDICT_STYLE['UNKNOWN']}]{line}[/]" if summary.unknown_requests else line)
    causes = [(t.template, c, n) for t in summary.templates for c, n in t.top_causes]
    if causes:
        table = Table(title="Top causes of misses")
        for column in ("template", "cause", "count"):
            table.add_column(column, justify="right" if column == "count" else "left")
        for template, cause, count in causes:
            table.add_row(template, cause, str(count))
        console.print(table)
    _print_control_tokens(console, summary)
    counters = summary.engine_counters
    note = escape(summary.counters_note or "")
    if counters is None:
        console.print("Engine counters: not given (pass --engine-hits to cross-check).")
    elif summary.counters_match:
        console.print(
            f"Engine prefix-cache hits {counters.hits} (of {counters.queries} queried) "
            f"match the records: [green]yes[/]"
        )
    elif summary.counters_match is False:
        console.print(f"[bold red]MISMATCH[/]: {note}")
    else:
        console.print(f"Engine counters: [{_VERDICT_STYLE['UNKNOWN']}]{note}[/]")


def _print_control_tokens(console: Console, summary: RunSummary) -> None:
    """Values that held the model's control-token text: escaped ones are a probe worth knowing
    about; allowed ones reached the model as real control tokens."""
    rows = [(t.template, *row) for t in summary.templates for row in t.control_tokens]
    if not rows:
        return
    table = Table(title="Values that held control-token text")
    for column in ("template", "value", "sent as", "requests"):
        table.add_column(column, justify="right" if column == "requests" else "left")
    for template, value, policy, count in rows:
        sent = _CONTROL_POLICY_TEXT.get(policy, policy)
        style = "bold red" if policy == "allow" else ""
        shown = f"[{style}]{escape(sent)}[/]" if style else escape(sent)
        table.add_row(escape(template), escape(value), shown, str(count))
    console.print(table)


_CONTROL_POLICY_TEXT = {
    "escape": "plain text (escaped)",
    "allow": "CONTROL TOKENS (policy allow)",
}
