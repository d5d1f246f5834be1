"""Lint and check settings from ``pyproject.toml``, overridable from the command line::

    [tool.promptkit]
    model = "models/my-model"        # tokenizer + chat template (default: the bundled model)
    block-size = 32                  # the engine's KV block size (DEFAULT_BLOCK_SIZE)

    [tool.promptkit.lint]
    select = ["PK"]                  # rule id prefixes to report
    ignore = ["PK102"]               # rule id prefixes to drop (wins over select)
    exclude = ["tests/fixtures/*"]   # glob patterns of files not to lint
    min-prefix-tokens = 256          # PK601 floor, on top of one KV block
    lockfile = "promptkit.lock"      # where `promptkit check` keeps fingerprints

    [tool.promptkit.lint.filters]    # filters your renderer adds, with the stability of their
    markdown = "static"              # output (also [tool.promptkit.lint.tests] and .globals)
    local_time = "request"

Other keys under ``[tool.promptkit]`` belong to other commands and are left alone; unknown keys
under ``[tool.promptkit.lint]`` are an error, so a typo cannot silently turn a rule off.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from promptkit._segments import Stability
from promptkit.errors import LintConfigError
from promptkit.lint.rules import RULES

__all__ = ["DEFAULT_BLOCK_SIZE", "Declared", "LintConfig", "find_pyproject", "load_config"]

#: The KV block size promptkit's embedded engine uses (``VLLMEngine(block_size=32)``). vLLM's
#: own defaults differ (16 on GPU, 128 on CPU): set ``block-size`` in ``[tool.promptkit]`` to
#: the value your engine reports (``engine.block_size``).
DEFAULT_BLOCK_SIZE = 32
_DECLARABLE = ("filters", "tests", "globals")
_LINT_KEYS = frozenset(
    {"select", "ignore", "exclude", "min-prefix-tokens", "lockfile", *_DECLARABLE}
)


@dataclass(frozen=True, slots=True)
class Declared:
    """A filter, test or global promptkit does not know, declared in config with its class."""

    kind: str  # "filters", "tests" or "globals"
    name: str
    stability: Stability


@dataclass(frozen=True, slots=True, kw_only=True)
class LintConfig:
    """Resolved settings. ``root`` is where relative paths (lockfile, excludes) start."""

    root: Path = field(default_factory=Path.cwd)
    select: tuple[str, ...] = ("PK",)
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    min_prefix_tokens: int = 0
    block_size: int = DEFAULT_BLOCK_SIZE
    model: str | None = None
    lockfile: Path = Path("promptkit.lock")
    #: Filters, tests and globals declared in ``[tool.promptkit.lint.filters]`` (and .tests,
    #: .globals): lint parses templates that use them and holds their output to its class.
    declared: tuple[Declared, ...] = ()

    def enabled(self, rule_id: str) -> bool:
        """Whether findings of ``rule_id`` are reported (ignore wins over select)."""
        return any(rule_id.startswith(p) for p in self.select) and not any(
            rule_id.startswith(p) for p in self.ignore
        )

    @property
    def lock_path(self) -> Path:
        return self.lockfile if self.lockfile.is_absolute() else self.root / self.lockfile

    def with_overrides(self, **overrides: Any) -> LintConfig:
        """Apply command-line values; ``None`` and empty sequences mean "not given"."""
        given = {k: v for k, v in overrides.items() if v is not None and v != ()}
        for key in ("select", "ignore"):
            if key in given:
                given[key] = _prefixes(list(given[key]), key)
        config = replace(self, **given)
        _validate_numbers(config)
        return config


def find_pyproject(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start``."""
    for directory in (start.resolve(), *start.resolve().parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def _prefixes(values: Any, key: str) -> tuple[str, ...]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise LintConfigError(f"[tool.promptkit.lint] {key} must be a list of rule ids or prefixes")
    out = tuple(v.strip().upper() for v in values)
    unknown = [p for p in out if not any(r.startswith(p) for r in RULES)]
    if unknown:
        raise LintConfigError(
            f"{key}: no rule matches {', '.join(unknown)}; rule ids are listed in docs/lint.md"
        )
    return out


def _validate_numbers(config: LintConfig) -> None:
    if config.block_size <= 0:
        raise LintConfigError(f"block-size must be positive, got {config.block_size}")
    if config.min_prefix_tokens < 0:
        raise LintConfigError(f"min-prefix-tokens must be >= 0, got {config.min_prefix_tokens}")


def _declared(lint: dict[str, Any], path: Path) -> tuple[Declared, ...]:
    out: list[Declared] = []
    for kind in _DECLARABLE:
        table = lint.get(kind, {})
        if not isinstance(table, dict):
            raise LintConfigError(f"{path}: [tool.promptkit.lint.{kind}] must be a table")
        for name, label in sorted(table.items()):
            try:
                out.append(Declared(kind, name, Stability.parse(str(label))))
            except ValueError as exc:
                raise LintConfigError(
                    f"{path}: [tool.promptkit.lint.{kind}] {name}: {exc}"
                ) from None
    return tuple(out)


def _int(table: dict[str, Any], key: str, default: int) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise LintConfigError(f"[tool.promptkit] {key} must be an integer, got {value!r}")
    return value


def load_config(pyproject: Path | None = None, *, start: Path | None = None) -> LintConfig:
    """Read ``pyproject`` (or the nearest one above ``start``/the cwd); defaults if none."""
    path = pyproject or find_pyproject(start or Path.cwd())
    if path is None:
        return LintConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LintConfigError(f"{path}: cannot read the configuration: {exc}") from None
    tool = data.get("tool", {}).get("promptkit", {})
    lint = tool.get("lint", {})
    if not isinstance(tool, dict) or not isinstance(lint, dict):
        raise LintConfigError(f"{path}: [tool.promptkit] and [tool.promptkit.lint] must be tables")
    unknown = sorted(set(lint) - _LINT_KEYS)
    if unknown:
        raise LintConfigError(
            f"{path}: unknown [tool.promptkit.lint] keys {unknown}; known: {sorted(_LINT_KEYS)}"
        )
    model = tool.get("model")
    if model is not None and not isinstance(model, str):
        raise LintConfigError(f"{path}: [tool.promptkit] model must be a path string")
    exclude = lint.get("exclude", [])
    if not isinstance(exclude, list) or not all(isinstance(e, str) for e in exclude):
        raise LintConfigError(f"{path}: [tool.promptkit.lint] exclude must be a list of globs")
    root = path.parent
    config = LintConfig(
        root=root,
        select=_prefixes(lint.get("select", ["PK"]), "select"),
        ignore=_prefixes(lint.get("ignore", []), "ignore"),
        exclude=tuple(exclude),
        min_prefix_tokens=_int(lint, "min-prefix-tokens", 0),
        block_size=_int(tool, "block-size", DEFAULT_BLOCK_SIZE),
        model=str(root / Path(model).expanduser()) if model else None,
        lockfile=Path(str(lint.get("lockfile", "promptkit.lock"))),
        declared=_declared(lint, path),
    )
    _validate_numbers(config)
    return config
