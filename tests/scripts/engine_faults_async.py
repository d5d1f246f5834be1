"""Engine faults on a real AsyncVLLMEngine, in a process of its own (run by
tests/engine_adapter/test_engine_faults_vllm.py): the engine core killed while an ``asend`` call
is generating, a later call, a restart; prints a REPORT line and closes the engine.

The kill waits until vLLM's own counters show the call generating (``vllm:generation_tokens``
rising) and the call has not returned, instead of a timer: a timer that fires after the whole
answer is back makes the test fail for nothing, and one that fires before the request is queued
tests another case."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import psutil
from vllm.v1.metrics.reader import Counter, get_metrics_snapshot

from engine_adapter import EngineDeadError, SamplingSettings
from engine_adapter.vllm_async import AsyncVLLMEngine
from promptkit import Client, PromptTemplate, Tokenizer
from promptkit._model_store import resolve_model_dir

ONE = "{% vars q=request %}{% segment r request %}{{ q }}{% endsegment %}"
LONG = "Write the numbers from 1 to 500, separated by commas: 1, 2, 3, 4,"


def _cores() -> list[int]:
    return [c.pid for c in psutil.Process().children(recursive=True) if "EngineCore" in c.name()]


def _alive(pids: list[int]) -> list[int]:
    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]


def _generated_tokens() -> float:
    return sum(
        m.value
        for m in get_metrics_snapshot()
        if isinstance(m, Counter) and m.name == "vllm:generation_tokens"
    )


async def main() -> dict[str, object]:
    path = resolve_model_dir()
    options = {"block_size": 32, "kv_cache_gib": 1}
    client = Client(engine=AsyncVLLMEngine(path, **options), tokenizer=Tokenizer.from_dir(path))
    client.engine_factory = lambda: AsyncVLLMEngine(path, **options)  # type: ignore[arg-type]
    template = PromptTemplate.from_string(ONE, name="one")
    cores = _cores()
    first_engine = [
        c.pid for c in psutil.Process().children(recursive=True) if c.name().startswith("VLLM")
    ]
    report: dict[str, object] = {"cores": cores}
    try:
        baseline = _generated_tokens()
        started = time.monotonic()
        in_flight = asyncio.create_task(
            client.asend(
                [client.build(template, {"q": LONG})], sampling=SamplingSettings(max_tokens=2000)
            )
        )
        while _generated_tokens() <= baseline and not in_flight.done():
            if time.monotonic() - started > 300:
                raise TimeoutError("the engine generated nothing in 300 s")
            await asyncio.sleep(0.05)
        report["generating_at_kill"] = not in_flight.done()
        report["tokens_at_kill"] = _generated_tokens() - baseline
        for pid in cores:
            os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        try:
            await in_flight
            report["in_flight"] = "returned"
        except EngineDeadError as exc:
            report["in_flight"] = f"EngineDeadError after {time.monotonic() - killed:.1f} s: {exc}"
        started = time.monotonic()
        try:
            await client.asend([client.build(template, {"q": "Hi"})])
            report["later"] = "returned"
        except EngineDeadError:
            report["later"] = f"EngineDeadError after {time.monotonic() - started:.2f} s"
        await asyncio.to_thread(client.restart)
        (out,) = await client.asend(
            [client.build(template, {"q": "Hi"})], sampling=SamplingSettings(max_tokens=2)
        )
        report["after_restart"] = {
            "tokens": len(out.token_ids),
            "restarts": out.record.engine_restarts,
        }
    finally:
        client.engine.close()
        # What the killed core left behind (its workers) must not outlive the fault.
        time.sleep(2)
        report["leftover"] = _alive(first_engine)
        for pid in report["leftover"]:  # type: ignore[attr-defined]
            os.kill(pid, signal.SIGKILL)
    return report


if __name__ == "__main__":
    print("REPORT " + json.dumps(asyncio.run(main())), flush=True)
