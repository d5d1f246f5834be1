"""Engine start time and peak memory of ``promptkit demo``, for the whole process tree.

vLLM runs the engine core and its worker in child processes, so the demo's memory is the sum
over the tree. RSS double-counts pages the processes share (torch, the model's libraries); PSS
splits shared pages fairly and is the honest total. Run: ``python -m bench.bench_demo_resources``.
"""

from __future__ import annotations

import json
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


def run() -> dict[str, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "promptkit.cli", "demo", "--json"],
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
    return {
        "engine_start_s": float(report["engine_start_s"]),
        "wall_s": wall,
        "peak_rss_gib": peak["rss"] / GIB,
        "peak_pss_gib": peak["pss"] / GIB,
        "processes": float(peak["procs"]),
        "speedup": float(report["speedup"] or 0.0),
        "same_outputs": float(report["same_outputs"]),
    }


def main() -> None:
    r = run()
    table = Table(title="promptkit demo: start-up and peak memory (whole process tree)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("engine start (s)", f"{r['engine_start_s']:.1f}")
    table.add_row("demo wall time (s)", f"{r['wall_s']:.1f}")
    table.add_row("peak PSS, sum over processes (GiB)", f"{r['peak_pss_gib']:.2f}")
    table.add_row("peak RSS, sum over processes (GiB)", f"{r['peak_rss_gib']:.2f}")
    table.add_row("processes", f"{int(r['processes'])}")
    table.add_row("TTFT speed-up, table workload", f"{r['speedup']:.1f}x")
    table.add_row("same outputs with and without APC", str(bool(r["same_outputs"])))
    Console().print(table)


if __name__ == "__main__":
    main()
