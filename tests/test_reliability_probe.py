"""Every API and CLI case of the reliability probe passes (a typed error or a checked result),
and docs/reliability.md, which the probe writes, lists exactly these cases."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from promptkit import Tokenizer
from promptkit_bench.reliability_probe import Probe, api_cases, cli_cases, fault_cases, run_case

ROOT = Path(__file__).resolve().parent.parent
CASES = [*api_cases(), *cli_cases(), *fault_cases()]


@pytest.fixture(scope="module")
def probe(tokenizer: Tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Probe:
    return Probe(tokenizer, tmp_path_factory.mktemp("probe"))


def test_the_probe_has_at_least_150_bad_inputs() -> None:
    assert len(CASES) >= 150
    assert len({(c.area, c.name) for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.area}: {c.name}")
def test_probe_case(probe: Probe, case: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # lock and CLI cases read the repository's promptkit.lock
    result = run_case(probe, case, time_limit=60)  # type: ignore[arg-type]
    assert result.outcome in ("typed", "ok"), result.detail


def test_the_reliability_page_lists_the_probe_cases() -> None:
    page = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    listed = {
        (m.group(1), m.group(2).replace("\\|", "|"))
        for m in re.finditer(r"^\| ([^|]+) \| ((?:\\\||[^|])+) \| (?:typed|ok) \|", page, re.M)
    }
    missing = {(c.area, c.name) for c in CASES} - listed
    assert not missing, f"regenerate docs/reliability.md (bench/reliability_probe.py): {missing}"
    assert not re.search(r"\| (UNTYPED|WRONG|HANG) \|", page)
