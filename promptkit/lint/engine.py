"""Run the linter over paths: find files, pick the rules for each kind, apply config and comments.

File kinds, by name: ``*.py`` is Python (linted only if it imports promptkit), ``*.jinja`` and
``*chat_template*`` are model chat templates, anything else given explicitly -- and every
``*.j2`` found in a directory -- is a promptkit template.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from promptkit._tokenization import Tokenizer
from promptkit.errors import LintConfigError, PromptkitError
from promptkit.lint.config import LintConfig
from promptkit.lint.prefix import PrefixPolicy
from promptkit.lint.rules import Finding
from promptkit.lint.sources import lint_chat_template, lint_python
from promptkit.lint.suppress import apply_suppressions, jinja_suppressions, python_suppressions
from promptkit.lint.template_rules import lint_template
from promptkit.lint.whitespace import whitespace_findings

__all__ = [
    "Report",
    "discover",
    "display_path",
    "is_chat_template",
    "lint_paths",
    "tokenizer_loader",
]

_WALKED_SUFFIXES = (".j2", ".jinja", ".py")
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "venv", "build", "dist"})


@dataclass(frozen=True, slots=True)
class Report:
    """Findings of one ``lint`` or ``check`` run, sorted by file and line."""

    findings: tuple[Finding, ...]
    files: int

    @property
    def active(self) -> tuple[Finding, ...]:
        """Findings not suppressed inline: these fail the run."""
        return tuple(f for f in self.findings if f.suppressed is None)

    @property
    def failed(self) -> bool:
        return bool(self.active)


def display_path(path: Path, *, root: Path | None = None) -> str:
    """``path`` relative to ``root`` (default: the cwd) when under it, with ``/`` separators."""
    base = (root or Path.cwd()).resolve()
    resolved = path.resolve()
    try:
        return resolved.relative_to(base).as_posix()
    except ValueError:
        return resolved.as_posix()


def _walk(directory: Path) -> Iterator[Path]:
    for current, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
        for name in sorted(files):
            if name.endswith(_WALKED_SUFFIXES):
                yield Path(current) / name


def discover(
    paths: Sequence[Path], *, config: LintConfig, suffixes: tuple[str, ...] = _WALKED_SUFFIXES
) -> list[Path]:
    """Files to process: explicit files as given, directories walked; excludes applied."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += [p for p in _walk(path) if p.name.endswith(suffixes)]
        elif path.is_file():
            found.append(path)
        else:
            raise LintConfigError(f"{path}: no such file or directory")
    kept = [
        p
        for p in dict.fromkeys(found)
        if not any(
            fnmatch.fnmatch(display_path(p, root=config.root), pattern)
            for pattern in config.exclude
        )
    ]
    return kept


def tokenizer_loader(config: LintConfig) -> Callable[[], Tokenizer]:
    """Load the configured model's tokenizer on first call only (lint rarely needs it)."""

    @cache
    def load() -> Tokenizer:
        from promptkit._model_store import resolve_model_dir

        try:
            return Tokenizer.from_dir(resolve_model_dir(config.model))
        except PromptkitError as exc:
            raise LintConfigError(
                f"PK601 measures the stable prefix with the model's tokenizer: {exc}; pass "
                "--model, set [tool.promptkit] model, or ignore PK601"
            ) from None

    return load


def is_chat_template(path: Path) -> bool:
    """Whether ``path`` is a model chat template rather than a promptkit template."""
    return path.suffix == ".jinja" or "chat_template" in path.name


def _lint_file(
    path: Path, *, shown: str, prefix: PrefixPolicy | None, config: LintConfig
) -> list[Finding]:
    try:
        # Bytes, not read_text: universal newlines would hide CRLF from PK402.
        source = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Finding("PK001", shown, None, f"cannot read the file: {exc}")]
    if path.suffix == ".py":
        sups, bad = python_suppressions(source, path=shown)
        findings = lint_python(source, path=shown, prefix=prefix)
        if not findings:
            return []  # comments in unrelated Python files are none of our business
    else:
        sups, bad = jinja_suppressions(source, path=shown)
        if is_chat_template(path):
            findings = lint_chat_template(source, path=shown)
        else:
            findings = lint_template(
                source,
                path=shown,
                prefix=prefix,
                declared=config.declared,
                directory=path.resolve().parent,
            )
        findings += whitespace_findings(source, path=shown)
    return apply_suppressions(findings, sups) + bad


def lint_paths(
    paths: Sequence[Path],
    *,
    config: LintConfig,
    tokenizer: Callable[[], Tokenizer] | None = None,
) -> Report:
    """Lint every template, chat template and promptkit-using Python file under ``paths``."""
    files = discover(paths, config=config)
    prefix = None
    if config.enabled("PK601"):
        prefix = PrefixPolicy(
            tokenizer=tokenizer or tokenizer_loader(config),
            block_size=config.block_size,
            minimum=config.min_prefix_tokens,
        )
    findings: list[Finding] = []
    for path in files:
        shown = display_path(path)
        findings += [
            f
            for f in _lint_file(path, shown=shown, prefix=prefix, config=config)
            if config.enabled(f.rule)
        ]
    return Report(tuple(sorted(findings, key=lambda f: f.sort_key)), len(files))
