"""Inline SVG charts for the HTML report: no JavaScript, no plotting library, no network.

Each chart function takes records and returns one ``<svg>`` element as a string, so the report
stays a single file that opens anywhere, offline. Every piece of text that comes from a record
(template and segment names, labels) is escaped here; callers embed the result as it is.

Requests are "cached" when the engine served at least one cached token, and "uncached" when it
reported none, the same split :func:`promptkit.reporting.records.summarize` uses for its TTFT
medians. A request whose cached count the engine did not report is neither, and is never drawn as a
zero: the hit-ratio plot marks it with a dashed line instead of a dot, the TTFT plot puts it in a
group of its own, and the segment plot averages cached tokens over the known requests only.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from promptkit.reporting.records import RequestRecord, Verdict

__all__ = ["VERDICT_COLORS", "hit_ratio_svg", "segments_svg", "ttft_svg"]

# Keyed by Verdict members, which are strs, so verdicts read back as plain strings look up too.
VERDICT_COLORS: dict[str, str] = {
    Verdict.HIT: "#2e7d32",
    Verdict.PARTIAL: "#f9a825",
    Verdict.MISS: "#9e9e9e",
    Verdict.UNEXPECTED_MISS: "#c62828",
    Verdict.DRIFT: "#6a1b9a",
    Verdict.UNKNOWN: "#d81b60",
}
CACHED_COLOR = "#1565c0"
UNCACHED_COLOR = "#ef6c00"
UNKNOWN_COLOR = "#90a4ae"
_INK = "#333"
_GRID = "#e0e0e0"


@dataclass(frozen=True, slots=True)
class _Frame:
    """A plot area inside an SVG canvas; ``x``/``y`` map fractions of it to canvas pixels."""

    width: float = 760
    height: float = 280
    left: float = 60
    right: float = 20
    top: float = 34
    bottom: float = 46

    def x(self, fraction: float) -> float:
        return self.left + fraction * (self.width - self.left - self.right)

    def y(self, fraction: float) -> float:
        return self.height - self.bottom - fraction * (self.height - self.top - self.bottom)


def _f(value: float) -> str:
    return f"{value:.1f}"


def _text(
    x: float, y: float, text: str, *, anchor: str = "middle", size: int = 11, halo: bool = False
) -> str:
    # A white halo keeps text readable on top of marks.
    outline = ' stroke="#fff" stroke-width="4" paint-order="stroke"' if halo else ""
    return (
        f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}" font-size="{size}" '
        f'fill="{_INK}"{outline}>{escape(text)}</text>'
    )


def _svg(frame: _Frame, body: list[str], *, plot_id: str, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{plot_id}" class="plot" role="img" '
        f'viewBox="0 0 {_f(frame.width)} {_f(frame.height)}" width="{_f(frame.width)}" '
        f'height="{_f(frame.height)}" font-family="sans-serif">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _empty(plot_id: str, title: str, why: str) -> str:
    frame = _Frame(height=80)
    return _svg(frame, [_text(frame.width / 2, 44, why)], plot_id=plot_id, title=title)


def _nice_step(span: float, target: int) -> float:
    """A 1-2-5 step that cuts ``span`` into about ``target`` intervals."""
    raw = span / max(1, target)
    if raw <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if raw <= m * magnitude)


def _axes(
    frame: _Frame,
    *,
    x_ticks: Sequence[tuple[float, str]],
    y_ticks: Sequence[tuple[float, str]],
    x_title: str,
    y_title: str,
) -> list[str]:
    parts = []
    for fraction, label in y_ticks:
        y = frame.y(fraction)
        parts.append(
            f'<line x1="{_f(frame.x(0))}" x2="{_f(frame.x(1))}" y1="{_f(y)}" y2="{_f(y)}" '
            f'stroke="{_GRID}"/>'
        )
        parts.append(_text(frame.left - 6, y + 4, label, anchor="end"))
    base = frame.y(0)
    for fraction, label in x_ticks:
        x = frame.x(fraction)
        parts.append(
            f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{_f(base)}" y2="{_f(base + 4)}" stroke="{_INK}"/>'
        )
        parts.append(_text(x, base + 16, label))
    parts.append(
        f'<line x1="{_f(frame.x(0))}" x2="{_f(frame.x(1))}" y1="{_f(base)}" y2="{_f(base)}" '
        f'stroke="{_INK}"/>'
    )
    parts.append(_text(frame.x(0.5), frame.height - 6, x_title))
    mid = frame.y(0.5)
    parts.append(
        f'<text transform="translate(14 {_f(mid)}) rotate(-90)" text-anchor="middle" '
        f'font-size="11" fill="{_INK}">{escape(y_title)}</text>'
    )
    return parts


def _legend(
    frame: _Frame, items: Sequence[tuple[str, str]], *, dashed: str | None = None
) -> list[str]:
    """Swatches in the top margin, left to right: (colour, label); the item labelled ``dashed``
    gets a dashed line for a swatch, like the marks it stands for."""
    parts, x = [], frame.left
    for color, label in items:
        if label == dashed:
            parts.append(
                f'<line x1="{_f(x + 5)}" x2="{_f(x + 5)}" y1="8" y2="22" stroke="{color}" '
                'stroke-width="1.5" stroke-dasharray="3 2"/>'
            )
        else:
            parts.append(f'<rect x="{_f(x)}" y="10" width="10" height="10" fill="{color}"/>')
        parts.append(_text(x + 14, 19, label, anchor="start"))
        # Capitals (the verdicts) are wider than the average character at this font size.
        x += 24 + sum(8.0 if c.isupper() else 6.2 for c in label)
    return parts


def _cache_group(record: RequestRecord) -> str:
    if record.cached_tokens is None:
        return "unknown"
    return "cached" if record.cached_tokens > 0 else "uncached"


def hit_ratio_svg(records: Sequence[RequestRecord]) -> str:
    """Per-request hit ratio (dots coloured by verdict), what was expected, and the running total.

    The running total is cumulative cached tokens over cumulative prompt tokens of the requests
    with a known count: the number a warm cache should push up and a regression pulls down. A
    request with an unknown count gets a dashed vertical line in place of a dot, so it reads as
    "no value here" rather than as a miss.
    """
    title = "Prefix-cache hit ratio over requests"
    if not records:
        return _empty("plot-hit-ratio", title, "no requests in this log")
    frame = _Frame()
    n = len(records)
    step = int(max(1, _nice_step(n, 10)))
    x_ticks = [((i - 0.5) / n, str(i)) for i in range(1, n + 1) if i == 1 or i % step == 0]
    y_ticks = [(q / 4, f"{q * 25}%") for q in range(5)]
    parts = _axes(
        frame,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        x_title="request (log order)",
        y_title="cached / prompt tokens",
    )
    radius = 4.0 if n <= 100 else 2.5 if n <= 400 else 1.5
    half = min(8.0, max(1.5, (frame.x(1) - frame.x(0)) / n * 0.4))
    running: list[str] = []
    cached_total = prompt_total = 0
    dots = []
    for i, record in enumerate(records):
        x = frame.x((i + 0.5) / n)
        prompt = max(1, record.prompt_tokens)
        expected_y = frame.y(min(1.0, record.expected_cached_tokens / prompt))
        parts.append(
            f'<line class="expected" x1="{_f(x - half)}" x2="{_f(x + half)}" '
            f'y1="{_f(expected_y)}" y2="{_f(expected_y)}" stroke="{_INK}" stroke-width="2"/>'
        )
        cached = "unknown" if record.cached_tokens is None else str(record.cached_tokens)
        tip = escape(
            f"#{record.request_id} {record.template} {record.label or ''}: {record.verdict.value},"
            f" {cached} of {record.prompt_tokens} cached, {record.expected_cached_tokens} expected"
        )
        color = VERDICT_COLORS[record.verdict]
        if record.cached_tokens is None:
            dots.append(
                f'<line class="unknown verdict-{record.verdict.value}" x1="{_f(x)}" x2="{_f(x)}" '
                f'y1="{_f(frame.y(0))}" y2="{_f(frame.y(1))}" stroke="{color}" '
                f'stroke-width="1.5" stroke-dasharray="3 3"><title>{tip}</title></line>'
            )
            continue
        cached_total += record.cached_tokens
        prompt_total += prompt
        running.append(f"{_f(x)},{_f(frame.y(cached_total / prompt_total))}")
        ratio = record.cached_tokens / prompt
        dots.append(
            f'<circle class="request verdict-{record.verdict.value}" cx="{_f(x)}" '
            f'cy="{_f(frame.y(min(1.0, ratio)))}" r="{radius}" fill="{color}" stroke="{color}">'
            f"<title>{tip}</title></circle>"
        )
    if running:
        parts.append(
            f'<polyline class="cumulative" points="{" ".join(running)}" fill="none" '
            f'stroke="{CACHED_COLOR}" stroke-width="2"/>'
        )
    parts += dots
    if not running:
        why = "the engine reported no cached count for any request: no hit ratio to plot"
        parts.append(_text(frame.x(0.5), frame.y(0.6), why, size=12, halo=True))
    present = [v for v in Verdict if any(r.verdict is v for r in records)]
    legend = [(VERDICT_COLORS[v], v.value) for v in present]
    legend += [(CACHED_COLOR, "cumulative")] if running else []
    legend += [(_INK, "expected")]
    # An UNKNOWN request is drawn as a dashed line, and so is its legend swatch.
    parts += _legend(frame, legend, dashed=Verdict.UNKNOWN.value)
    return _svg(frame, parts, plot_id="plot-hit-ratio", title=title)


def _seconds(value: float) -> str:
    return f"{value * 1000:.3g} ms" if value < 1 else f"{value:.3g} s"


def ttft_svg(records: Sequence[RequestRecord]) -> str:
    """Histogram of time to first token, cached vs uncached, on a log axis with both medians.

    The axis is logarithmic because a hit and a miss differ by a factor, not by an offset: on a
    linear axis every cached request would fall into the first bin. Requests whose cached count
    is unknown form a third group, without a median: they may be either.
    """
    title = "Time to first token, cached vs uncached"
    found: dict[str, list[float]] = {"uncached": [], "cached": [], "unknown": []}
    for record in records:
        if record.ttft_s:
            found[_cache_group(record)].append(record.ttft_s)
    groups = {name: group for name, group in found.items() if group}
    values = [value for group in groups.values() for value in group]
    if not values:
        return _empty("plot-ttft", title, "no request in this log has a TTFT")
    lo, hi = math.log10(min(values)), math.log10(max(values))
    pad = max(0.05, (hi - lo) * 0.05)
    lo, hi = lo - pad, hi + pad
    bins = min(30, max(8, round(2 * math.sqrt(len(values)))))
    width = (hi - lo) / bins

    def fraction(seconds: float) -> float:
        return (math.log10(seconds) - lo) / (hi - lo)

    counts = {name: [0] * bins for name in groups}
    for name, group in groups.items():
        for value in group:
            counts[name][min(bins - 1, int((math.log10(value) - lo) / width))] += 1
    top = max(max(c) for c in counts.values())
    y_step = int(max(1, _nice_step(top, 5)))
    y_max = math.ceil(top / y_step) * y_step
    frame = _Frame()
    x_ticks = [
        (fraction(m * 10**k), _seconds(m * 10**k))
        for k in range(math.floor(lo), math.ceil(hi) + 1)
        for m in (1, 2, 5)
        if lo <= math.log10(m * 10**k) <= hi
    ]
    y_ticks = [(c / y_max, str(c)) for c in range(0, y_max + 1, y_step)]
    parts = _axes(
        frame, x_ticks=x_ticks, y_ticks=y_ticks, x_title="TTFT (log scale)", y_title="requests"
    )
    bar = (frame.x(1) - frame.x(0)) / bins / len(groups)
    colors = {"uncached": UNCACHED_COLOR, "cached": CACHED_COLOR, "unknown": UNKNOWN_COLOR}
    for offset, name in enumerate(groups):
        for i, count in enumerate(counts[name]):
            if not count:
                continue
            x = frame.x(i / bins) + offset * bar
            y = frame.y(count / y_max)
            start = _seconds(10 ** (lo + i * width))
            end = _seconds(10 ** (lo + (i + 1) * width))
            parts.append(
                f'<rect class="bar {name}" x="{_f(x + 0.5)}" y="{_f(y)}" '
                f'width="{_f(bar - 1)}" height="{_f(frame.y(0) - y)}" fill="{colors[name]}">'
                f"<title>{count} {name} request(s), TTFT {start} to {end}</title></rect>"
            )
    legend = []
    for name, group in groups.items():
        if name == "unknown":
            legend.append((colors[name], f"cached count unknown ({len(group)})"))
            continue
        median = statistics.median(group)
        x = frame.x(fraction(median))
        # Dark ink with a white halo: a median line must stay visible on top of its own bars.
        for stroke, width in (("#fff", 4), (_INK, 1.5)):
            parts.append(
                f'<line class="median {name}" x1="{_f(x)}" x2="{_f(x)}" y1="{_f(frame.y(0))}" '
                f'y2="{_f(frame.y(1))}" stroke="{stroke}" stroke-width="{width}" '
                'stroke-dasharray="5 3"/>'
            )
        parts.append(_text(x, frame.y(1) - 3, f"p50 {name}", size=10))
        legend.append((colors[name], f"{name} ({len(group)}, p50 {_seconds(median)})"))
    parts += _legend(frame, legend)
    return _svg(frame, parts, plot_id="plot-ttft", title=title)


@dataclass(slots=True)
class _SegmentTotals:
    """One segment's sums over a template's requests; cached tokens over the known ones only."""

    stability: str
    tokens: int = 0
    requests: int = 0
    known_tokens: int = 0
    known_cached: int = 0
    known_requests: int = 0

    def label(self) -> str:
        mean = self.tokens / self.requests
        if not self.known_requests:
            return f"{mean:.0f} tokens, cached unknown"
        cached = self.known_cached / self.known_requests
        known = self.known_tokens / self.known_requests
        text = f"{cached:.0f} of {known:.0f} tokens cached ({self.share:.0%})"
        unknown = self.requests - self.known_requests
        return f"{text}; {unknown} unknown" if unknown else text

    @property
    def share(self) -> float:
        return self.known_cached / self.known_tokens if self.known_tokens else 0.0


def segments_svg(records: Sequence[RequestRecord]) -> str:
    """For each template's segments: mean tokens per request, and how many of them were cached.

    Bars are scaled to the largest segment of the same template, so a 100-token template is as
    readable as a 2,000-token one; the numbers on the right are absolute. The cached share is
    over the requests with a known count; a segment with none gets no cached bar at all.
    """
    title = "Segment breakdown: mean tokens per request, cached part filled"
    table: dict[str, dict[str, _SegmentTotals]] = {}
    for record in records:
        for seg in record.segments:
            totals = table.setdefault(record.template, {}).setdefault(
                seg.name, _SegmentTotals(stability=seg.stability)
            )
            totals.tokens += seg.tokens
            totals.requests += 1
            # The record decides: logs from before SegmentHit.cached_tokens could be None hold
            # a 0 there for requests whose count was unknown.
            if record.cached_tokens is not None and seg.cached_tokens is not None:
                totals.known_tokens += seg.tokens
                totals.known_cached += seg.cached_tokens
                totals.known_requests += 1
    if not table:
        return _empty("plot-segments", title, "no segments in this log")
    rows = sum(len(segments) for segments in table.values())
    row_h, head_h = 22.0, 22.0
    height = 34 + rows * row_h + len(table) * head_h + 10
    frame = _Frame(height=height, left=210, right=250, bottom=10)
    full = frame.x(1) - frame.x(0)
    parts = _legend(frame, [(CACHED_COLOR, "cached"), ("#cfd8dc", "not cached")])
    y = frame.top
    for template, segments in table.items():
        parts.append(_text(8, y + 15, _clip(template, 90), anchor="start", size=12))
        y += head_h
        largest = max(t.tokens / t.requests for t in segments.values())
        for name, totals in segments.items():
            mean = totals.tokens / totals.requests
            width = full * mean / largest if largest else 0.0
            parts.append(
                _text(
                    frame.left - 8, y + 15, _clip(f"{name} ({totals.stability})", 30), anchor="end"
                )
            )
            parts.append(
                f'<rect class="segment" x="{_f(frame.x(0))}" y="{_f(y + 4)}" '
                f'width="{_f(width)}" height="14" fill="#cfd8dc"/>'
            )
            if totals.known_requests:
                tip = escape(f"{template} / {name}: {totals.share:.0%} cached")
                parts.append(
                    f'<rect class="segment-cached" x="{_f(frame.x(0))}" y="{_f(y + 4)}" '
                    f'width="{_f(width * totals.share)}" height="14" fill="{CACHED_COLOR}">'
                    f"<title>{tip}</title></rect>"
                )
            parts.append(_text(frame.x(1) + 8, y + 15, totals.label(), anchor="start"))
            y += row_h
    return _svg(frame, parts, plot_id="plot-segments", title=title)
