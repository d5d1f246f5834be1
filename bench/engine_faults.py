"""The engine-fault runs of the reliability probe (``--engine``): the scripts the engine tier runs
(tests/scripts/engine_faults.py and engine_faults_async.py), each in its own process with its own
engine, one after the other; their reports go on docs/reliability.md.

Each kills the engine core under a long request (max_tokens=2000) and reports what the call in
flight and a later call raised and whether restart() served again; for the sync engine the client
process is then SIGKILLed and its engine processes must die with it (the watchdog).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

__all__ = ["run_engine_faults"]

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "tests" / "scripts"


def _report(process: subprocess.Popen[str]) -> dict[str, Any]:
    """The REPORT line the script prints (the script may keep running after it)."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("REPORT "):
            report: dict[str, Any] = json.loads(line.removeprefix("REPORT "))
            return report
    return {"error": f"no report (exit {process.wait()})"}


def _run(script: str, *, kill_after_report: bool) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VLLM_CPU_KVCACHE_SPACE": "1"}
    process = subprocess.Popen(
        [sys.executable, str(SCRIPTS / script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    # A hang is killed whole (engine processes included), which also ends the read below.
    timer = threading.Timer(900, os.killpg, (process.pid, signal.SIGKILL))
    timer.start()
    try:
        report = _report(process)
        if kill_after_report:
            process.send_signal(signal.SIGKILL)
            process.wait()
            survivors = report.get("new_cores", [])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and any(psutil.pid_exists(p) for p in survivors):
                time.sleep(0.5)
            report["outlived_client"] = [
                p
                for p in survivors
                if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
            ]
        else:
            process.wait(timeout=120)
    finally:
        timer.cancel()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    return report


def run_engine_faults() -> dict[str, Any]:
    """Both fault scripts' reports, keyed by engine; ``skipped`` when the scripts are absent."""
    if not (SCRIPTS / "engine_faults.py").is_file():
        return {"skipped": f"no {SCRIPTS} (run from a repository checkout)"}
    return {
        "VLLMEngine.generate": _run("engine_faults.py", kill_after_report=True),
        "AsyncVLLMEngine via Client.asend": _run("engine_faults_async.py", kill_after_report=False),
    }
