"""``promptkit demo`` and ``promptkit model``."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from promptkit.cli._app import (
    EXIT_FINDINGS,
    EXIT_OK,
    ModelOption,
    app,
    console,
    fail,
    quiet_engine_logs,
    stdout_to_stderr,
)
from promptkit.errors import PromptkitError

model_app = typer.Typer(no_args_is_help=True, help="Manage the default model.")
app.add_typer(model_app, name="model")


@model_app.command("prepare")
def model_prepare(
    force: Annotated[bool, typer.Option(help="Convert again even if present.")] = False,
) -> None:
    """Convert the bundled SmolLM2 GGUF into a Hugging Face dir (once; offline)."""
    quiet_engine_logs()
    from promptkit._model_store import prepare_default_model

    try:
        path = prepare_default_model(force=force)
    except PromptkitError as exc:
        raise fail(exc) from None
    console.print(f"default model ready: {path}")


@model_app.command("path")
def model_path() -> None:
    """Print where the default model lives (it may not be prepared yet)."""
    from promptkit._model_store import default_model_dir

    console.print(str(default_model_dir()))


@app.command()
def demo(
    model: ModelOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    log: Annotated[
        Path | None, typer.Option(help="Append per-request records to this JSONL file.")
    ] = None,
    dtype: Annotated[
        str | None,
        typer.Option(help="Engine dtype (bfloat16, float32, auto); default: the engine's."),
    ] = None,
) -> None:
    """Run both seed examples through promptkit on the embedded engine; report every hit."""
    quiet_engine_logs()
    from promptkit._client import Client
    from promptkit._model_store import resolve_model_dir
    from promptkit.cli._demo_run import run_demo

    quiet = stdout_to_stderr() if as_json else contextlib.nullcontext()
    try:
        with quiet:
            path = resolve_model_dir(model)
            with Client.embedded(path, log_path=log, dtype=dtype) as client:
                start = client.engine.start_seconds
                report = run_demo(client, model_name=path.name, engine_start_s=start)
    except PromptkitError as exc:  # engine errors included
        raise fail(exc) from None
    if as_json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    else:
        from promptkit.cli._console import print_demo

        print_demo(console, report)
    raise typer.Exit(EXIT_OK if report.outputs_agree else EXIT_FINDINGS)
