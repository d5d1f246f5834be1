"""AsyncVLLMEngine: many concurrent sessions on one engine, each turn hitting its history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "async_sessions.py"


def test_concurrent_sessions_share_one_async_engine_and_hit() -> None:
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "8"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["block_size"] == 32
    sessions = report["sessions"]
    assert len(sessions) == 8
    for rows in sessions:
        # Turn 1 may hit the shared system prompt (another session computed it first) or not;
        # every later turn must hit exactly what the mirror expected: the whole history.
        for row in rows[1:]:
            assert row["verdict"] == "HIT" and row["cached"] == row["expected"] > 0, rows
    assert report["counters_match"] is True
    # The sessions overlapped: the engine batched them instead of running them one by one.
    assert report["wall_s"] < report["sum_latency_s"]
