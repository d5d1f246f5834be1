"""Engine processes never outlive their client: the watchdog kills them when the client dies,
even by SIGKILL, and leaves them alone when the client releases it (a clean close).

Child processes stand in for vLLM's engine core here; the watchdog does not care what they run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

from engine_adapter._watchdog import Watchdog

CLIENT = """
import subprocess, sys, time
from engine_adapter._watchdog import Watchdog
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
dog = Watchdog([child.pid])
if sys.argv[1] == "release":
    child.kill(); child.wait(); dog.release()
print(child.pid, flush=True)
time.sleep(300)
"""


def _client(mode: str) -> tuple[subprocess.Popen[str], int]:
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, mode],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert client.stdout is not None
    return client, int(client.stdout.readline())


def _gone(pid: int, within: float = 30.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.2)
    return False


def test_a_sigkilled_client_leaves_no_engine_process_behind() -> None:
    client, child = _client("keep")
    assert psutil.pid_exists(child)
    client.send_signal(signal.SIGKILL)
    client.wait()
    assert client.stdout is not None
    client.stdout.close()
    assert _gone(child), "the engine process outlived its client"


def test_a_released_watchdog_kills_nothing() -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dog = Watchdog([bystander.pid])
        dog.release()
        time.sleep(1)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
