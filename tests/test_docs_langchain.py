"""docs/langchain.md's request handler runs as written and prints what its ``# ->`` lines say.
Engine-free: the page's ``client`` is the prefix-cache simulator, with the real tokenizer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from promptkit import Client, Tokenizer
from tests.prefix_cache_fake import SimulatedPrefixCache

PAGE = Path(__file__).resolve().parent.parent / "docs" / "langchain.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
_EXPECTED = re.compile(r"^\s*# -> (.*)$", re.MULTILINE)


def test_the_stateless_request_handler_runs_and_prints_what_it_says(
    tokenizer: Tokenizer, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = " We are open every day from 9:00 to 19:00."
    cache = SimulatedPrefixCache(answer=answer, answer_ids=tuple(tokenizer.encode(answer).ids))
    client = Client(engine=cache.engine(), tokenizer=tokenizer)
    blocks = _BLOCK.findall(PAGE.read_text(encoding="utf-8"))
    assert blocks
    namespace: dict[str, object] = {"__name__": "docs_langchain", "client": client}
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"{PAGE.name}, python block {number}", "exec"), namespace)
    printed = capsys.readouterr().out
    expected = [line for block in blocks for line in _EXPECTED.findall(block)]
    assert expected
    for line in expected:
        assert line in printed, f"docs/langchain.md says {line!r}; the code printed:\n{printed}"
