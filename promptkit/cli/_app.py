"""The Typer app, the shared consoles and helpers every command module uses."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Cache-friendly prompts for vLLM."
)

# Wide enough for tables in CI logs, which are not terminals.
console = Console(width=None if sys.stdout.isatty() else 150)
err = Console(stderr=True, soft_wrap=True)  # one line per error, greppable in CI logs

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2

ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Local Hugging Face model dir (default: $PROMPTKIT_MODEL or the bundled SmolLM2).",
    ),
]


def quiet_engine_logs() -> None:
    """vLLM logs every step at INFO; keep stdout for our tables and JSON."""
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to fd 1 -- ours, vLLM's, its worker processes' -- to stderr.

    For ``--json``: stdout must carry the JSON document and nothing else, and engine workers
    inherit the file descriptor, so redirecting ``sys.stdout`` alone is not enough.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def fail(exc: Exception, code: int = EXIT_USAGE) -> typer.Exit:
    """Print an error the user can act on and return the exit to raise."""
    # Messages quote config keys and rule suppressions ("[tool.promptkit]", "ignore[PK101]"):
    # escape them, or rich would take them for style tags and drop them.
    err.print(f"[bold red]error:[/] {escape(str(exc))}")
    return typer.Exit(code)
