"""docs/engines.md runs as written: its ``python`` blocks, in order, print what their ``# ->``
lines say. Engine-free: the page's engine is its own, with the real tokenizer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine_adapter import Engine

PAGE = Path(__file__).resolve().parent.parent / "docs" / "engines.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
_EXPECTED = re.compile(r"^\s*# -> (.*)$", re.MULTILINE)


def _blocks() -> list[str]:
    return _BLOCK.findall(PAGE.read_text(encoding="utf-8"))


def test_the_write_your_own_engine_page_runs_and_prints_what_it_says(
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocks = _blocks()
    assert len(blocks) >= 4  # the engine, the client, the refused salt, the error mapping
    namespace: dict[str, object] = {"__name__": "docs_engines"}
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"{PAGE.name}, python block {number}", "exec"), namespace)
    printed = capsys.readouterr().out
    echo = namespace["EchoEngine"]
    assert isinstance(echo, type) and issubclass(echo, Engine)
    expected = [line.split("...")[0] for block in blocks for line in _EXPECTED.findall(block)]
    assert len(expected) >= 3
    for line in expected:
        assert line in printed, f"docs/engines.md says {line!r}; the code printed:\n{printed}"
    assert "a bug stays a KeyError" in printed
