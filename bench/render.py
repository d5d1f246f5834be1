"""The report as a rich table, and as the markdown page ``docs/benchmarks.md``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from .rows import BenchReport, Row

__all__ = ["markdown", "page", "print_report"]

INTRO = Path(__file__).resolve().parent / "benchmarks_intro.md"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1e3:,.0f}"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}x"


COLUMNS: tuple[tuple[str, Callable[[Row], str]], ...] = (
    ("workload", lambda r: r.workload),
    ("client", lambda r: r.client),
    ("reqs", lambda r: str(r.requests)),
    ("prompt tok", lambda r: f"{r.prompt_tokens:,}"),
    ("cached tok", lambda r: f"{r.cached_tokens:,}"),
    ("oracle tok", lambda r: f"{r.oracle_cached_tokens:,}"),
    ("of oracle", lambda r: _pct(r.oracle_fraction)),
    ("hit ratio", lambda r: _pct(r.hit_ratio)),
    ("TTFT p50 ms", lambda r: _ms(r.ttft_p50_s)),
    ("TTFT p95 ms", lambda r: _ms(r.ttft_p95_s)),
    ("vs APC-off", lambda r: _x(r.ttft_speedup)),
    ("req/s", lambda r: f"{r.requests_per_s:.2f}"),
    ("prefill s", lambda r: f"{r.prefill_s:.1f}"),
    ("SDK ms/req", lambda r: _num(r.sdk_ms_per_request)),
    ("SDK/eng", lambda r: _pct(r.sdk_overhead_fraction)),
)
_LEFT = {"workload", "client"}


def _title(report: BenchReport) -> str:
    mode = "--quick" if report.quick else "full"
    return (
        f"promptkit bench ({mode}, seed {report.seed}): {report.model}, block size "
        f"{report.block_size}, {report.duration_s / 60:.1f} min"
    )


def print_report(console: Console, report: BenchReport) -> None:
    # One header word per line, so the table fits 150 columns (CI logs are not terminals).
    table = Table(title=_title(report), box=box.SIMPLE_HEAD, pad_edge=False)
    for name, _ in COLUMNS:
        left = name in _LEFT
        table.add_column(name.replace(" ", "\n"), justify="left" if left else "right")
    previous = None
    for row in report.rows:
        if previous is not None and row.workload != previous:
            table.add_section()
        previous = row.workload
        table.add_row(*(cell(row) for _, cell in COLUMNS))
    console.print(table)
    for check in report.checks:
        mark = "[green]PASS[/]" if check.passed else "[bold red]FAIL[/]"
        console.print(f"{mark} {check.name}: {check.detail}")


def markdown(report: BenchReport, *, plot: str | None = None, intro: str = "") -> str:
    """The whole benchmarks page: intro, machine and versions, the table, checks, plot."""
    lines = [intro.rstrip(), ""] if intro else []
    lines += [f"## Latest run: {_title(report)}", ""]
    lines.append(
        "Machine: "
        + ", ".join(f"{k} {v}" for k, v in report.machine.items() if v)
        + ". Versions: "
        + ", ".join(f"{k} {v}" for k, v in report.versions.items())
        + "."
    )
    lines.append("")
    lines.append("| " + " | ".join(name for name, _ in COLUMNS) + " |")
    lines.append("|" + "|".join("---" if n in _LEFT else "---:" for n, _ in COLUMNS) + "|")
    for row in report.rows:
        lines.append("| " + " | ".join(cell(row) for _, cell in COLUMNS) + " |")
    lines += ["", "Acceptance checks (issue 7), from this run:", ""]
    for check in report.checks:
        lines.append(f"- {'PASS' if check.passed else 'FAIL'} {check.name}: {check.detail}")
    notes = [r for r in report.rows if r.notes]
    if notes:
        lines += ["", "promptkit's own request verdicts:", ""]
        lines += [f"- {r.workload} / {r.client}: {r.notes}" for r in notes]
    if plot:
        lines += ["", f"![cached tokens and TTFT per workload and client]({plot})"]
    return "\n".join(lines) + "\n"


def page(report: BenchReport, *, plot: str | None = None) -> str:
    """``docs/benchmarks.md``: the method (``bench/benchmarks_intro.md``), then this run."""
    return markdown(report, plot=plot, intro=INTRO.read_text(encoding="utf-8"))
