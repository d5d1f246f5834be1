"""``promptkit bench``: the benchmark suite (package ``promptkit_bench``), against the embedded
engine.

The suite ships beside the SDK as its own top-level package, built from the checkout's ``bench/``
folder: it is an application of promptkit, not part of its API, and it needs LangChain and
matplotlib (the ``bench`` extra), which the SDK does not. The command imports it like any other
installed package and, when the extra is missing, says which ``pip install`` to run.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Annotated

import typer

from promptkit.cli._app import (
    EXIT_FINDINGS,
    EXIT_OK,
    ModelOption,
    app,
    console,
    err,
    fail,
    quiet_engine_logs,
    stdout_to_stderr,
)
from promptkit.errors import ConfigError, PromptkitError


def _bench_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(f"promptkit_bench.{name}")
    except ImportError as exc:
        raise ConfigError(
            f"promptkit bench needs {exc.name or 'its dependencies'}: "
            "pip install 'promptkit-vllm[bench]'"
        ) from exc


@app.command()
def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="Smaller workloads (under 10 minutes on 2 cores).")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic workloads.")] = 0,
    workload: Annotated[
        list[str] | None,
        typer.Option(
            "--workload",
            "-w",
            help="Run only this workload (repeatable): long_doc, shared_prompt, chat, agent, "
            "rag, chat_truncation.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (a list `rows`).")
    ] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG bar chart here (matplotlib).")
    ] = None,
    markdown: Annotated[
        Path | None,
        typer.Option("--markdown", help="Write the benchmarks page (e.g. docs/benchmarks.md)."),
    ] = None,
    model: ModelOption = None,
) -> None:
    """Cached tokens vs the oracle, TTFT and SDK overhead: naive, LangChain and promptkit."""
    quiet_engine_logs()
    try:
        suite = _bench_module("suite")
        only = frozenset(workload) if workload else None
        with stdout_to_stderr():
            report = suite.run_bench(
                model=model, seed=seed, quick=quick, only=only, progress=err.print
            )
    except (PromptkitError, ValueError) as exc:  # engine errors included
        raise fail(exc) from None
    if plot is not None:
        _bench_module("plot").plot_report(report, plot)
    if markdown is not None:
        render = _bench_module("render")
        image = None
        if plot is not None:
            image = os.path.relpath(plot.resolve(), markdown.resolve().parent)
        markdown.write_text(render.page(report, plot=image), encoding="utf-8")
    if as_json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    else:
        _bench_module("render").print_report(console, report)
    raise typer.Exit(EXIT_OK if report.passed else EXIT_FINDINGS)
