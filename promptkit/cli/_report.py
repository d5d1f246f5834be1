"""``promptkit report``: summarize a JSONL log of request records, as a table, JSON or HTML."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from engine_adapter import PrefixCacheCounters
from promptkit.cli._app import EXIT_FINDINGS, EXIT_OK, app, console, fail
from promptkit.errors import ConfigError, PromptkitError
from promptkit.reporting.records import RequestRecord, read_records, summarize


@app.command()
def report(
    log: Annotated[
        Path,
        typer.Argument(
            help="JSONL log of request records (Client(log_path=...) or `promptkit demo --log`).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML report here.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run summary as JSON instead of tables.")
    ] = False,
    engine_hits: Annotated[
        int | None,
        typer.Option(
            "--engine-hits",
            min=0,
            help="Prefix-cache hit tokens the engine counted over the same requests "
            "(the increase of vllm:prefix_cache_hits_total); a mismatch exits 1.",
        ),
    ] = None,
    engine_queries: Annotated[
        int | None,
        typer.Option(
            "--engine-queries",
            min=0,
            help="Prefix-cache query tokens the engine counted (vllm:prefix_cache_queries_total); "
            "shown next to the hits, not compared. Default: the records' prompt tokens.",
        ),
    ] = None,
    replica_hits: Annotated[
        list[str] | None,
        typer.Option(
            "--replica-hits",
            metavar="NAME=HITS",
            help="Prefix-cache hit tokens one replica counted over the same requests (records "
            "name their replica when a RoutedEngine served them); repeat per replica. A "
            "mismatch exits 1.",
        ),
    ] = None,
) -> None:
    """Per-template hit ratios, TTFT cached vs uncached and top miss causes for a request log."""
    try:
        if engine_queries is not None and engine_hits is None:
            raise ConfigError("--engine-queries needs --engine-hits: only hits are cross-checked")
        records = read_records(log)
        counters = None
        if engine_hits is not None:
            queries = engine_queries
            if queries is None:
                queries = sum(r.prompt_tokens for r in records)
            counters = PrefixCacheCounters(queries=queries, hits=engine_hits)
        per_replica = _replica_counters(replica_hits or [], records)
        summary = summarize(records, counters=counters, replica_counters=per_replica)
        if html is not None:
            from promptkit.reporting.html import render_html

            html.parent.mkdir(parents=True, exist_ok=True)
            html.write_text(
                render_html(records=records, summary=summary, source=log.name), encoding="utf-8"
            )
    except (PromptkitError, OSError) as exc:
        raise fail(exc) from None
    if as_json:
        sys.stdout.write(summary.model_dump_json(indent=2) + "\n")
    else:
        from promptkit.cli._console import print_summary

        print_summary(console, summary, title=f"promptkit report — {log.name}")
        if html is not None:
            console.print(f"HTML report: {html}")
    mismatch = summary.counters_match is False or any(
        r.counters_match is False for r in summary.replicas
    )
    raise typer.Exit(EXIT_FINDINGS if mismatch else EXIT_OK)


def _replica_counters(
    given: list[str], records: list[RequestRecord]
) -> dict[str, PrefixCacheCounters | None]:
    """``NAME=HITS`` options as counters; the queries are the replica's records' prompt tokens."""
    out: dict[str, PrefixCacheCounters | None] = {}
    for item in given:
        name, _, hits = item.partition("=")
        if not name or not hits.isdigit():
            raise ConfigError(f"--replica-hits {item!r}: expected NAME=HITS, e.g. replica-0=4096")
        queries = sum(r.prompt_tokens for r in records if r.replica == name)
        out[name] = PrefixCacheCounters(queries=queries, hits=int(hits))
    return out
