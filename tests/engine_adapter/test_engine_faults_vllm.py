"""Faults of the embedded engines, on the real thing: a killed engine core fails the call in
flight (``generate`` on VLLMEngine, ``asend`` on AsyncVLLMEngine) and later calls at once with
EngineDeadError; restart() serves again; and when the client process is SIGKILLed, no
VLLM::EngineCore outlives it (the watchdog)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "engine_faults.py"
ROOT = SCRIPT.parent.parent.parent


@pytest.mark.engine
def test_a_killed_engine_fails_fast_restarts_and_never_outlives_its_client() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VLLM_CPU_KVCACHE_SPACE": "1"}
    client = subprocess.Popen(
        [sys.executable, str(SCRIPT)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert client.stdout is not None
    try:
        report = next(
            json.loads(line.removeprefix("REPORT "))
            for line in client.stdout
            if line.startswith("REPORT ")
        )
    finally:
        client.send_signal(signal.SIGKILL)
        client.wait()
        client.stdout.close()
    assert str(report["in_flight"]).startswith("EngineDeadError"), report
    assert str(report["later"]).startswith("EngineDeadError"), report
    assert report["after_restart"] == {"tokens": 2, "restarts": 1}
    survivors = report["new_cores"]
    assert survivors
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(psutil.pid_exists(p) for p in survivors):
        time.sleep(0.5)
    alive = [
        p for p in survivors if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
    ]
    assert alive == [], "engine processes outlived the SIGKILLed client"


ASYNC_SCRIPT = SCRIPT.parent / "engine_faults_async.py"


@pytest.mark.engine
def test_a_killed_async_engine_fails_the_awaited_call_and_later_ones_then_restarts() -> None:
    # The script kills the core once vLLM's counters show the asend() call generating, so the
    # kill cannot come after the answer; its own session lets a hang be killed whole.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VLLM_CPU_KVCACHE_SPACE": "1"}
    script = subprocess.Popen(
        [sys.executable, str(ASYNC_SCRIPT)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, _ = script.communicate(timeout=900)
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait()
    assert script.returncode == 0, out[-3000:]
    line = next(x for x in out.splitlines() if x.startswith("REPORT "))
    report = json.loads(line.removeprefix("REPORT "))
    assert report["generating_at_kill"] is True, report
    assert str(report["in_flight"]).startswith("EngineDeadError"), report
    assert str(report["later"]).startswith("EngineDeadError"), report
    assert report["after_restart"] == {"tokens": 2, "restarts": 1}
    assert report["leftover"] == [], "the killed core's processes outlived it"


ORPHAN_SCRIPT = SCRIPT.parent / "async_engine_orphans.py"


@pytest.mark.engine
def test_a_sigkilled_client_leaves_no_async_engine_behind() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VLLM_CPU_KVCACHE_SPACE": "1"}
    client = subprocess.Popen(
        [sys.executable, str(ORPHAN_SCRIPT)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert client.stdout is not None
    try:
        started = [
            json.loads(line.removeprefix("PIDS "))
            for line in client.stdout
            if line.startswith("PIDS ")
        ][:1]
    finally:
        client.send_signal(signal.SIGKILL)
        client.wait()
        client.stdout.close()
    assert started and started[0], "the script did not start an engine"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(psutil.pid_exists(p) for p in started[0]):
        time.sleep(0.5)
    alive = [
        p for p in started[0] if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
    ]
    assert alive == [], "AsyncVLLMEngine processes outlived the SIGKILLed client"
