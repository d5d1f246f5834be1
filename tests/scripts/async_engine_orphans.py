"""Starts an ``AsyncVLLMEngine``, prints the process ids it started, and waits to be SIGKILLed.

Run by tests/engine_adapter/test_engine_faults_vllm.py: the engine's processes must not outlive
this process, although it dies without closing the engine.
"""

from __future__ import annotations

import json
import time

import psutil  # type: ignore[import-untyped,unused-ignore]

from engine_adapter.vllm_async import AsyncVLLMEngine
from promptkit._model_store import resolve_model_dir


def main() -> None:
    AsyncVLLMEngine(resolve_model_dir(), block_size=32, kv_cache_gib=1)
    pids = [c.pid for c in psutil.Process().children(recursive=True)]
    print("PIDS " + json.dumps(pids), flush=True)
    time.sleep(600)  # the test SIGKILLs this process here


if __name__ == "__main__":
    main()
