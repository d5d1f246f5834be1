"""``promptkit lint`` (static rules) and ``promptkit check`` (token-level, against the lock)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from promptkit.cli._app import EXIT_FINDINGS, EXIT_OK, ModelOption, app, fail, quiet_engine_logs
from promptkit.errors import LintConfigError, PromptkitError
from promptkit.lint import FORMATS, LintConfig, Report, check_paths, lint_paths, load_config, render
from promptkit.lint.config import DEFAULT_BLOCK_SIZE

PathsArgument = Annotated[
    list[Path], typer.Argument(help="Template files or directories (walked for *.j2).")
]
FormatOption = Annotated[
    str, typer.Option("--format", "-f", help="Output: text, json, sarif or github.")
]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="pyproject.toml to read (default: the nearest one)."),
]
SelectOption = Annotated[
    list[str] | None, typer.Option("--select", help="Only these rule ids/prefixes (repeatable).")
]
IgnoreOption = Annotated[
    list[str] | None, typer.Option("--ignore", help="Skip these rule ids/prefixes (repeatable).")
]
MinPrefixOption = Annotated[
    int | None, typer.Option("--min-prefix-tokens", help="PK601 floor (beyond one KV block).")
]
BlockSizeOption = Annotated[
    int | None,
    typer.Option(
        "--block-size",
        help=f"KV block size (default: pyproject.toml's block-size, else {DEFAULT_BLOCK_SIZE}).",
    ),
]


def _emit(report: Report, fmt: str) -> None:
    sys.stdout.write(render(report, fmt=fmt))
    raise typer.Exit(EXIT_FINDINGS if report.failed else EXIT_OK)


def _settings(
    config: Path | None,
    fmt: str,
    select: list[str] | None,
    ignore: list[str] | None,
    model: str | None,
    min_prefix_tokens: int | None,
    block_size: int | None,
) -> LintConfig:
    """``[tool.promptkit]`` with the command line's overrides."""
    if fmt not in FORMATS:
        raise LintConfigError(f"unknown --format {fmt!r}; use one of {', '.join(FORMATS)}")
    if model is not None and not Path(model).is_dir():
        raise LintConfigError(
            f"--model {model!r} is not a model directory: pass a local Hugging Face model "
            "directory, set [tool.promptkit] model, or leave --model out"
        )
    return load_config(config).with_overrides(
        select=tuple(select or ()),
        ignore=tuple(ignore or ()),
        model=model,
        min_prefix_tokens=min_prefix_tokens,
        block_size=block_size,
    )


@app.command()
def lint(
    paths: PathsArgument,
    fmt: FormatOption = "text",
    config: ConfigOption = None,
    select: SelectOption = None,
    ignore: IgnoreOption = None,
    model: ModelOption = None,
    min_prefix_tokens: MinPrefixOption = None,
    block_size: BlockSizeOption = None,
) -> None:
    """Lint templates for cache-busters without running them (exit 1 on findings)."""
    quiet_engine_logs()
    try:
        settings = _settings(config, fmt, select, ignore, model, min_prefix_tokens, block_size)
        report = lint_paths(paths, config=settings)
    except PromptkitError as exc:  # config errors, and a model that cannot load for PK601
        raise fail(exc) from None
    _emit(report, fmt)


@app.command()
def check(
    paths: PathsArgument,
    update: Annotated[
        bool, typer.Option("--update", help="Rewrite promptkit.lock with the current state.")
    ] = False,
    lockfile: Annotated[
        Path | None, typer.Option("--lockfile", help="Lock file (default: promptkit.lock).")
    ] = None,
    fmt: FormatOption = "text",
    config: ConfigOption = None,
    select: SelectOption = None,
    ignore: IgnoreOption = None,
    model: ModelOption = None,
    min_prefix_tokens: MinPrefixOption = None,
    block_size: BlockSizeOption = None,
) -> None:
    """Build templates from their samples with the real tokenizer, perturb them, check the lock."""
    quiet_engine_logs()
    try:
        settings = _settings(config, fmt, select, ignore, model, min_prefix_tokens, block_size)
        if lockfile is not None:
            settings = settings.with_overrides(lockfile=lockfile.resolve())
        report = check_paths(paths, config=settings, update=update)
    except PromptkitError as exc:
        raise fail(exc) from None
    _emit(report, fmt)
