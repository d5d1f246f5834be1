"""Engine start time and peak memory of ``promptkit demo``, for the whole process tree.

vLLM runs the engine core and its worker in child processes, so the demo's memory is the sum
over the tree. RSS double-counts pages the processes share (torch, the model's libraries); PSS
splits shared pages fairly and is the honest total.
Run: ``python -m promptkit_bench.bench_demo_resources``.

``--dtype bfloat16 --dtype float32 --runs 3`` compares engine dtypes in one run, interleaved so
machine load hits both alike: prefill TTFT of the 1.7k-token table uncached and cached, peak
memory, and how often greedy answers with and without the cache were identical, diverged at a
near-tie, or differed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time

import psutil
from rich.console import Console
from rich.table import Table

GIB = 1024**3


def _tree_memory(root: psutil.Process) -> tuple[int, int, int]:
    """(RSS sum, PSS sum, processes) over ``root`` and its descendants."""
    rss = pss = count = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
        count += 1
    return rss, pss, count


def run(dtype: str | None = None) -> dict[str, float]:
    started = time.perf_counter()
    extra = ["--dtype", dtype] if dtype else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "promptkit.cli", "demo", "--json", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    root = psutil.Process(proc.pid)
    peak = {"rss": 0, "pss": 0, "procs": 0}

    def sample() -> None:
        while proc.poll() is None:
            rss, pss, count = _tree_memory(root)
            peak["rss"] = max(peak["rss"], rss)
            peak["pss"] = max(peak["pss"], pss)
            peak["procs"] = max(peak["procs"], count)
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    sampler.join()
    wall = time.perf_counter() - started
    report = json.loads(out)
    matches = [check["match"] for check in report["outputs"]]

    def ttft(phase: str) -> float:
        rows = report["requests"]
        values = [r["ttft_s"] for r in rows if r["workload"] == "table" and r["phase"] == phase]
        return float(statistics.median(values))

    return {
        "engine_start_s": float(report["engine_start_s"]),
        "wall_s": wall,
        "peak_rss_gib": peak["rss"] / GIB,
        "peak_pss_gib": peak["pss"] / GIB,
        "processes": float(peak["procs"]),
        "speedup": float(report["speedup"] or 0.0),
        "ttft_uncached_s": ttft("uncached"),
        "ttft_cached_s": ttft("cached"),
        "identical": float(matches.count("identical")),
        "near_tie": float(matches.count("near_tie")),
        "different": float(matches.count("different")),
        "outputs_agree": float(report["outputs_agree"]),
    }


_ROWS = (
    ("engine start (s)", "engine_start_s", "{:.1f}"),
    ("demo wall time (s)", "wall_s", "{:.1f}"),
    ("peak PSS, sum over processes (GiB)", "peak_pss_gib", "{:.2f}"),
    ("peak RSS, sum over processes (GiB)", "peak_rss_gib", "{:.2f}"),
    ("processes", "processes", "{:.0f}"),
    ("table TTFT uncached, median (s)", "ttft_uncached_s", "{:.3f}"),
    ("table TTFT cached, median (s)", "ttft_cached_s", "{:.3f}"),
    ("TTFT speed-up, table workload", "speedup", "{:.1f}x"),
)
_SUMS = ("identical", "near_tie", "different")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dtype", action="append", help="engine dtype; repeat to compare")
    parser.add_argument("--runs", type=int, default=1, help="demo runs per dtype (interleaved)")
    args = parser.parse_args()
    dtypes: list[str | None] = list(args.dtype or [None])
    results: dict[str | None, list[dict[str, float]]] = {d: [] for d in dtypes}
    for _ in range(args.runs):
        for dtype in dtypes:
            results[dtype].append(run(dtype))
    table = Table(title="promptkit demo: start-up, memory, outputs (whole process tree)")
    table.add_column("measure (median of runs; output pairs summed)")
    for dtype in dtypes:
        table.add_column(dtype or "default", justify="right")
    for label, key, fmt in _ROWS:
        table.add_row(label, *(fmt.format(_median(results[d], key)) for d in dtypes))
    for key in _SUMS:
        table.add_row(f"answer pairs: {key}", *(f"{_sum(results[d], key):.0f}" for d in dtypes))
    table.add_row("runs", *(str(len(results[d])) for d in dtypes))
    Console().print(table)
    print(json.dumps({str(d): results[d] for d in dtypes}))


def _median(runs: list[dict[str, float]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def _sum(runs: list[dict[str, float]], key: str) -> float:
    return sum(r[key] for r in runs)


if __name__ == "__main__":
    main()
