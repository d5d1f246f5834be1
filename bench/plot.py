"""``--plot``: cached tokens against the oracle, hit ratio and TTFT p50, per workload and client."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .rows import BenchReport, Row

__all__ = ["plot_report"]

_COLORS = {
    "promptkit": "#1565c0",
    "promptkit-window": "#64b5f6",
    "langchain": "#2e7d32",
    "naive": "#ef6c00",
    "apc-off": "#9e9e9e",
}


def plot_report(report: BenchReport, path: str | Path) -> None:
    """Three grouped bar charts in one PNG. Needs matplotlib (``pip install matplotlib``)."""
    try:
        import matplotlib
    except ImportError as exc:
        raise RuntimeError("--plot needs matplotlib: pip install matplotlib") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    workloads = list(dict.fromkeys(r.workload for r in report.rows))
    clients = list(dict.fromkeys(r.client for r in report.rows))
    by_key = {(r.workload, r.client): r for r in report.rows}
    width = 0.8 / len(clients)
    panels: tuple[tuple[str, Callable[[Row], float | None], bool], ...] = (
        ("cached tokens / oracle", lambda r: r.oracle_fraction, False),
        ("cached tokens / prompt tokens", lambda r: r.hit_ratio, False),
        ("TTFT p50 after warm-up (s, log)", lambda r: r.ttft_p50_s, True),
    )
    figure, axes = plt.subplots(len(panels), 1, figsize=(11, 10), constrained_layout=True)
    for axis, (title, value, log) in zip(axes, panels, strict=True):
        for offset, client in enumerate(clients):
            xs, ys = [], []
            for index, workload in enumerate(workloads):
                row = by_key.get((workload, client))
                y = value(row) if row is not None else None
                if y is not None:
                    xs.append(index + (offset - (len(clients) - 1) / 2) * width)
                    ys.append(y)
            axis.bar(xs, ys, width, color=_COLORS.get(client, "#555555"))
        axis.set_title(title)
        axis.set_xticks(range(len(workloads)), workloads)
        if log:
            axis.set_yscale("log")
        else:
            axis.set_ylim(0, 1.05)
        axis.grid(axis="y", alpha=0.3)
    mode = "--quick" if report.quick else "full"
    figure.suptitle(f"promptkit bench ({mode}, seed {report.seed}, {report.model})")
    handles = [Patch(color=_COLORS.get(c, "#555555"), label=c) for c in clients]
    figure.legend(handles=handles, loc="outside lower center", ncols=len(clients))
    figure.savefig(path, dpi=110)
    plt.close(figure)
