"""Every example runs end to end on the session engine and prints its hit report."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from promptkit import Client, Verdict

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = ["agent_with_tools", "langchain_agent", "long_doc_qa", "multi_turn_chat", "rag_pipeline"]


def test_every_example_is_listed() -> None:
    found = sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_"))
    assert found == NAMES


@pytest.mark.engine
@pytest.mark.parametrize("name", NAMES)
def test_example_runs_and_reports_hits(
    name: str, client: Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    module = importlib.import_module(name)
    module.main(client=client)
    out = capsys.readouterr().out
    assert "Engine counters match the records: True" in out
    assert client.records and client.records[-1].verdict is Verdict.HIT
    assert all(r.verdict is not Verdict.DRIFT for r in client.records)
    assert sum(r.cached_tokens or 0 for r in client.records) > 0
