"""Engine faults on a real embedded engine, in a process of its own (run by
tests/engine_adapter/test_engine_faults_vllm.py): the engine core killed mid-request, a restart,
then this process waits to be SIGKILLed by the test, which checks no engine process survives."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import psutil

from engine_adapter import EngineDeadError, SamplingSettings
from promptkit import Client, PromptTemplate

ONE = "{% vars q=request %}{% segment r request %}{{ q }}{% endsegment %}"


def _cores() -> list[int]:
    return [c.pid for c in psutil.Process().children(recursive=True) if "EngineCore" in c.name()]


def main() -> None:
    report: dict[str, object] = {}
    client = Client.embedded(block_size=32, kv_cache_gib=1)
    template = PromptTemplate.from_string(ONE, name="one")
    long = SamplingSettings(max_tokens=2000)
    cores = _cores()
    report["cores"] = cores
    # One second in: on a quiet machine a 5 s delay let the whole answer finish first (the call
    # "returned"); if the kill lands before the request is queued, the call fails dead too.
    killer = threading.Timer(1.0, lambda: [os.kill(p, signal.SIGKILL) for p in cores])
    killer.start()
    started = time.monotonic()
    try:
        client.generate(
            template,
            {"q": "Write the numbers from 1 to 500, separated by commas: 1, 2, 3, 4,"},
            sampling=long,
        )
        report["in_flight"] = "returned"
    except EngineDeadError as exc:
        report["in_flight"] = f"EngineDeadError after {time.monotonic() - started:.1f} s: {exc}"
    started = time.monotonic()
    try:
        client.generate(template, {"q": "Hi"})
        report["later"] = "returned"
    except EngineDeadError:
        report["later"] = f"EngineDeadError after {time.monotonic() - started:.2f} s"
    client.restart()
    out = client.generate(template, {"q": "Hi"}, sampling=SamplingSettings(max_tokens=2))
    report["after_restart"] = {"tokens": len(out.token_ids), "restarts": out.record.engine_restarts}
    report["new_cores"] = _cores()
    print("REPORT " + json.dumps(report), flush=True)
    time.sleep(600)  # the test SIGKILLs this process here


if __name__ == "__main__":
    main()
