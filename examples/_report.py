"""Shared by the examples: the client they run on, and the hit report they print at the end."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.table import Table

from promptkit import Client

_STYLE = {"HIT": "green", "PARTIAL": "yellow", "MISS": "dim", "UNEXPECTED_MISS": "red"}


@contextmanager
def example_client(client: Client | None) -> Iterator[Client]:
    """The given client (tests pass theirs), else an embedded engine that is closed at the end."""
    if client is not None:
        yield client
        return
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with Client.embedded() as embedded:
        yield embedded


def print_report(client: Client, *, title: str) -> None:
    """One row per request (verdict, prompt, expected and cached tokens), then the totals."""
    console = Console()
    table = Table(title=title)
    for column in ("#", "request", "verdict", "prompt", "expected", "cached"):
        table.add_column(column, justify="left" if column in {"request", "verdict"} else "right")
    for r in client.records:
        style = _STYLE.get(r.verdict.value, "bold red")
        cached = "-" if r.cached_tokens is None else str(r.cached_tokens)
        table.add_row(
            str(r.request_id),
            r.label or r.template,
            f"[{style}]{r.verdict.value}[/]",
            str(r.prompt_tokens),
            str(r.expected_cached_tokens),
            cached,
        )
    console.print(table)
    s = client.summary()
    verdicts = ", ".join(f"{v} {n}" for v, n in sorted(s.verdicts.items()))
    # describe() says "unknown" (and why) rather than 0% when the engine reports no cached counts.
    console.print(s.describe(), markup=False)
    console.print(f"Verdicts: {verdicts}. Engine counters match the records: {s.counters_match}")
