"""``promptkit report``: the rich summary, the JSON summary, the HTML report and its plots.

Hand-built records cover every verdict (no engine needed: the outputs depend only on records).
``tests/data/demo_log.jsonl`` is a real log captured from ``promptkit demo --log`` on the embedded
engine (19 requests; the engine's prefix-cache hit counter read 7296 tokens, matching the records),
so the CLI and the browser rendering are tested on real output without starting another engine.
The same log with its cached counts removed is what a vLLM server started without
``--enable-prompt-tokens-details`` records: every output must say "unknown" there, never 0%.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from engine_adapter import PrefixCacheCounters
from promptkit.cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, app
from promptkit.cli._console import print_summary
from promptkit.reporting.html import render_html
from promptkit.reporting.plots import CACHED_COLOR, UNCACHED_COLOR, VERDICT_COLORS
from promptkit.reporting.records import (
    MissExplanation,
    RequestRecord,
    RunSummary,
    SegmentHit,
    Verdict,
    read_records,
    summarize,
)
from promptkit.reporting.table import summary_rows

DEMO_LOG = Path(__file__).resolve().parents[1] / "data" / "demo_log.jsonl"
DEMO_ENGINE_HITS = 7296
EVIL = '<script>alert("x")</script> & co'
runner = CliRunner()


def _record(
    request_id: int,
    verdict: Verdict,
    *,
    cached: int | None,
    expected: int,
    ttft: float | None,
    template: str = "qa",
    label: str | None = None,
    explanation: MissExplanation | None = None,
) -> RequestRecord:
    prompt, static = 200, 160
    return RequestRecord(
        request_id=request_id,
        template=template,
        template_file=f"templates/{template}.j2",
        prompt_tokens=prompt,
        stable_tokens=static,
        cacheable_tokens=static,
        expected_cached_tokens=expected,
        cached_tokens=cached,
        block_size=32,
        hit_ratio=None if cached is None else cached / prompt,
        ttft_s=ttft,
        latency_s=1.0,
        timing_source="engine",
        verdict=verdict,
        segments=[
            SegmentHit(
                name="system",
                stability="static",
                tokens=static,
                cached_tokens=None if cached is None else min(cached, static),
            ),
            SegmentHit(
                name="question",
                stability="request",
                tokens=prompt - static,
                cached_tokens=None if cached is None else max(0, cached - static),
            ),
        ],
        prefix_fingerprint="0" * 32,
        explanation=explanation,
        label=label,
    )


EVICTED = MissExplanation(cause="eviction or engine restart", position=128)
VOLATILE = MissExplanation(
    cause="volatile value in a stable segment",
    position=40,
    segment="system",
    template_file="templates/qa.j2",
    line=3,
    variable="today",
)


@pytest.fixture()
def records() -> list[RequestRecord]:
    """One request of every verdict; the HIT has HTML in its template name and label."""
    return [
        _record(1, Verdict.MISS, cached=0, expected=0, ttft=0.8),
        _record(
            2, Verdict.HIT, cached=160, expected=160, ttft=0.05, template=EVIL, label="<b>x</b>"
        ),
        _record(3, Verdict.PARTIAL, cached=128, expected=128, ttft=0.1),
        _record(4, Verdict.UNEXPECTED_MISS, cached=0, expected=160, ttft=0.9, explanation=EVICTED),
        _record(5, Verdict.DRIFT, cached=32, expected=32, ttft=0.2, explanation=VOLATILE),
        _record(6, Verdict.UNKNOWN, cached=None, expected=0, ttft=None),
    ]


def _table(summary: RunSummary) -> str:
    console = Console(record=True, width=250, file=io.StringIO())
    print_summary(console, summary)
    return console.export_text()


def test_summary_table_has_every_template_verdict_and_top_cause(
    records: list[RequestRecord],
) -> None:
    text = _table(summarize(records))
    assert "qa" in text and EVIL in text
    for verdict in Verdict:
        assert verdict.value in text
    qa = next(t for t in summarize(records).templates if t.template == "qa")
    assert f"{qa.hit_ratio:.1%}" in text and f"{qa.hit_vs_expected:.1%}" in text
    assert "Top causes of misses" in text and VOLATILE.cause in text and EVICTED.cause in text
    assert "not given (pass --engine-hits" in text


def test_summary_table_flags_an_engine_counter_mismatch(records: list[RequestRecord]) -> None:
    known = [r for r in records if r.cached_tokens is not None]
    cached = sum(r.cached_tokens or 0 for r in known)
    same = PrefixCacheCounters(queries=1200, hits=cached)
    assert "match the records: yes" in _table(summarize(known, counters=same))
    other = PrefixCacheCounters(queries=1200, hits=cached + 32)
    text = _table(summarize(known, counters=other))
    assert "MISMATCH" in text and f"counted {cached + 32}" in text


def test_html_escapes_every_string_taken_from_records(records: list[RequestRecord]) -> None:
    page = render_html(records=records, summary=summarize(records), source="<log>.jsonl")
    assert "<script" not in page and "<b>x</b>" not in page and "<log>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page


def test_html_loads_nothing_from_anywhere(records: list[RequestRecord]) -> None:
    page = render_html(records=records, summary=summarize(records))
    for needle in ("<script", "<link", "src=", "url(", "@import", "<iframe"):
        assert needle not in page
    assert set(re.findall(r"https?://[^\"' ]+", page)) == {"http://www.w3.org/2000/svg"}
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_html_plots_every_request_coloured_by_its_verdict(records: list[RequestRecord]) -> None:
    page = render_html(records=records, summary=summarize(records))
    for plot in ("plot-hit-ratio", "plot-ttft", "plot-segments"):
        assert page.count(f'id="{plot}"') == 1
    for verdict in set(Verdict) - {Verdict.UNKNOWN}:
        dots = re.findall(rf'<circle class="request verdict-{verdict.value}"[^>]*>', page)
        assert len(dots) == 1, verdict
        assert f'stroke="{VERDICT_COLORS[verdict]}"' in dots[0]
    # Unknown is no dot at all (a dot would sit at 0%), but a dashed line across the plot.
    assert "verdict-UNKNOWN" not in "".join(re.findall(r"<circle [^>]*>", page))
    marks = re.findall(r'<line class="unknown verdict-UNKNOWN"[^>]*>', page)
    assert len(marks) == 1 and "stroke-dasharray" in marks[0]
    # TTFT: HIT, PARTIAL and DRIFT got cached tokens; MISS and UNEXPECTED_MISS did not; the
    # UNKNOWN request has no TTFT and is in neither group.
    assert "cached (3, p50 100 ms)" in page and "uncached (2, p50 850 ms)" in page


def test_html_is_deterministic(records: list[RequestRecord]) -> None:
    summary = summarize(records)
    assert render_html(records=records, summary=summary) == render_html(
        records=records, summary=summary
    )


@pytest.mark.parametrize(
    "case",
    ["empty", "one request", "identical TTFTs", "no TTFT at all"],
)
def test_degenerate_logs_still_render(case: str) -> None:
    one = _record(1, Verdict.HIT, cached=160, expected=160, ttft=0.1)
    records = {
        "empty": [],
        "one request": [one],
        "identical TTFTs": [one, one.model_copy(update={"request_id": 2})],
        "no TTFT at all": [one.model_copy(update={"ttft_s": None})],
    }[case]
    page = render_html(records=records, summary=summarize(records))
    assert page.count("<svg") == 3 and page.rstrip().endswith("</html>")
    if case == "empty":
        assert "no requests in this log" in page and "no segments in this log" in page
    if case == "no TTFT at all":
        assert "no request in this log has a TTFT" in page


# -- unknown cached counts: never 0 ------------------------------------------------------------


def test_unknown_cached_counts_are_left_out_of_hit_ratios_not_counted_as_zero() -> None:
    records = [
        _record(1, Verdict.MISS, cached=0, expected=0, ttft=0.8),
        _record(2, Verdict.HIT, cached=160, expected=160, ttft=0.05),
        _record(3, Verdict.UNKNOWN, cached=None, expected=160, ttft=0.3),
        _record(4, Verdict.DRIFT, cached=None, expected=0, ttft=0.4, explanation=VOLATILE),
    ]
    summary = summarize(records)
    assert (summary.requests, summary.known_requests, summary.unknown_requests) == (4, 2, 2)
    assert summary.prompt_tokens == 800 and summary.known_prompt_tokens == 400
    assert summary.cached_tokens == 160 and summary.hit_ratio == pytest.approx(0.4)
    assert summary.hit_vs_expected == pytest.approx(1.0)  # 160 of the known requests' 160
    assert summary.unknown_reason is not None
    assert "--enable-prompt-tokens-details" in summary.unknown_reason
    (qa,) = summary.templates
    assert qa.hit_ratio_text() == "40.0% over 2 of 4 requests; 2 unknown"
    # A TTFT of a request with an unknown count is neither cached nor uncached.
    assert (qa.ttft_cached_p50_s, qa.ttft_uncached_p50_s) == (0.05, 0.8)
    text = summary.describe()
    assert "hit ratio 40.0% over 2 of 4 requests; 2 unknown" in text
    assert "--enable-prompt-tokens-details" in text


def test_all_unknown_summary_says_unknown_and_names_the_flag_not_zero_percent() -> None:
    records = [_record(i, Verdict.UNKNOWN, cached=None, expected=0, ttft=0.2) for i in (1, 2)]
    summary = summarize(records)
    assert summary.cached_tokens is None and summary.hit_ratio is None
    assert summary.hit_vs_expected is None
    assert (summary.known_requests, summary.unknown_requests) == (0, 2)
    assert summary.templates[0].hit_ratio is None
    assert summary.templates[0].ttft_uncached_p50_s is None
    for text in (str(summary), _table(summary)):
        assert "hit ratio unknown" in text and "--enable-prompt-tokens-details" in text
        assert "0.0%" not in text and "0%" not in text
    row = re.search(r"│ all .*", _table(summary))
    assert row is not None and row.group(0).count("unknown") == 3  # cached, ratio, vs expected


def test_engine_counters_with_unknown_records_are_not_a_mismatch() -> None:
    records = [
        _record(1, Verdict.HIT, cached=160, expected=160, ttft=0.05),
        _record(2, Verdict.UNKNOWN, cached=None, expected=160, ttft=0.3),
    ]
    # The engine counts the unknown request's hits too: 320 is consistent, proves nothing.
    summary = summarize(records, counters=PrefixCacheCounters(queries=400, hits=320))
    assert summary.counters_match is None
    assert summary.counters_note is not None and "cannot cross-check" in summary.counters_note
    text = _table(summary)
    assert "MISMATCH" not in text and "cannot cross-check" in text and "320" in text
    # Fewer engine hits than the known records alone sum to is a real mismatch.
    short = summarize(records, counters=PrefixCacheCounters(queries=400, hits=100))
    assert short.counters_match is False
    assert "MISMATCH" in _table(short) and "fewer than the 160" in _table(short)


def test_html_of_unknown_counts_says_unknown_and_plots_no_zero() -> None:
    records = [
        _record(1, Verdict.HIT, cached=160, expected=160, ttft=0.05),
        _record(2, Verdict.UNKNOWN, cached=None, expected=160, ttft=0.3),
        _record(3, Verdict.UNKNOWN, cached=None, expected=160, ttft=0.35),
    ]
    page = render_html(records=records, summary=summarize(records))
    assert "hit ratio 80.0% over 1 of 3 requests; 2 unknown" in page
    assert "--enable-prompt-tokens-details" in page
    assert len(re.findall(r'<line class="unknown verdict-UNKNOWN"', page)) == 2
    assert len(re.findall(r'<circle class="request', page)) == 1
    assert len(re.findall(r'<rect class="bar unknown"', page)) >= 1
    assert "cached count unknown (2)" in page
    assert "160 of 160 tokens cached (100%); 2 unknown" in page  # the static segment
    unknown_only = records[1:]
    page = render_html(records=unknown_only, summary=summarize(unknown_only))
    assert "%" not in re.sub(r"<svg.*?</svg>|<style>.*?</style>|<dd>.*?</dd>", "", page)
    assert "hit ratio unknown" in page and "no hit ratio to plot" in page
    assert "cached unknown" in page and 'class="segment-cached"' not in page
    assert 'class="cumulative"' not in page and '<td class="num">unknown</td>' in page


# -- the CLI over a real demo log ---------------------------------------------------------------


def test_report_prints_the_table_for_a_demo_log() -> None:
    result = runner.invoke(app, ["report", str(DEMO_LOG)])
    assert result.exit_code == EXIT_OK, result.output
    for needle in ("table_qa", "principal", "HIT 8", "MISS 11", "38.8%", "speed-up"):
        assert needle in result.output


def test_report_json_is_the_run_summary() -> None:
    result = runner.invoke(app, ["report", str(DEMO_LOG), "--json"])
    assert result.exit_code == EXIT_OK, result.output
    summary = RunSummary.model_validate_json(result.stdout)
    assert summary == summarize(read_records(DEMO_LOG))
    assert summary.requests == 19 and summary.cached_tokens == DEMO_ENGINE_HITS
    assert summary.verdicts == {"HIT": 8, "MISS": 11}
    assert {t.template for t in summary.templates} == {"table_qa", "principal"}


def test_report_cross_checks_engine_hits_and_exits_1_on_a_mismatch() -> None:
    ok = runner.invoke(app, ["report", str(DEMO_LOG), "--engine-hits", str(DEMO_ENGINE_HITS)])
    assert ok.exit_code == EXIT_OK and "match the records: yes" in ok.output
    args = ["report", str(DEMO_LOG), "--json", "--engine-hits", "7000", "--engine-queries", "9"]
    bad = runner.invoke(app, args)
    assert bad.exit_code == EXIT_FINDINGS
    summary = json.loads(bad.stdout)
    assert summary["counters_match"] is False
    assert summary["engine_counters"] == {"queries": 9, "hits": 7000}


def _without_cached_counts(path: Path, *, every: int = 1) -> Path:
    """The demo log as a server without --enable-prompt-tokens-details records it (every
    ``every``-th request), with the verdict such a record gets."""
    out = path.parent / "no_details.jsonl"
    lines = []
    for record in read_records(DEMO_LOG):
        if record.request_id % every == 0:
            record = record.model_copy(
                update={
                    "cached_tokens": None,
                    "hit_ratio": None,
                    "verdict": Verdict.UNKNOWN,
                    "segments": [
                        s.model_copy(update={"cached_tokens": None}) for s in record.segments
                    ],
                }
            )
        lines.append(record.model_dump_json())
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def test_report_of_a_log_without_cached_counts_says_unknown_not_a_mismatch(
    tmp_path: Path,
) -> None:
    log = _without_cached_counts(tmp_path / "x.jsonl")
    args = ["report", str(log), "--engine-hits", str(DEMO_ENGINE_HITS)]
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_OK, result.output
    text = " ".join(result.output.split())
    assert "MISMATCH" not in text and "0.0%" not in text
    assert "hit ratio unknown" in text and "--enable-prompt-tokens-details" in text
    assert "cannot cross-check" in text and f"{DEMO_ENGINE_HITS} prefix-cache hit tokens" in text

    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == EXIT_OK, result.output
    summary = json.loads(result.stdout)
    assert summary["cached_tokens"] is None and summary["hit_ratio"] is None
    assert (summary["known_requests"], summary["unknown_requests"]) == (0, 19)
    assert (
        summary["counters_match"] is None
        and "--enable-prompt-tokens-details" in (summary["unknown_reason"])
    )
    assert all(t["cached_tokens"] is None and t["hit_ratio"] is None for t in summary["templates"])


def test_report_json_of_a_partly_unknown_log_counts_known_and_unknown(tmp_path: Path) -> None:
    log = _without_cached_counts(tmp_path / "x.jsonl", every=2)
    known = [r for r in read_records(DEMO_LOG) if r.request_id % 2]
    result = runner.invoke(app, ["report", str(log), "--json"])
    assert result.exit_code == EXIT_OK, result.output
    summary = json.loads(result.stdout)
    assert (summary["known_requests"], summary["unknown_requests"]) == (10, 9)
    assert summary["cached_tokens"] == sum(r.cached_tokens or 0 for r in known)
    assert summary["known_prompt_tokens"] == sum(r.prompt_tokens for r in known)
    assert summary["hit_ratio"] == pytest.approx(
        summary["cached_tokens"] / summary["known_prompt_tokens"]
    )
    text = " ".join(runner.invoke(app, ["report", str(log)]).output.split())
    assert f"{summary['hit_ratio']:.1%} over 10 of 19 requests; 9 unknown" in text
    # The prompt cell of the `all` row is "known of all": cached / prompt is the ratio shown.
    (*_, total) = summary_rows(summarize(read_records(log)))
    assert total.numbers[0] == f"{summary['known_prompt_tokens']} of {summary['prompt_tokens']}"


def test_report_usage_errors_exit_2_and_say_where(tmp_path: Path) -> None:
    not_a_log = tmp_path / "notes.jsonl"
    not_a_log.write_text('{"kind": "summary"}\n', encoding="utf-8")
    result = runner.invoke(app, ["report", str(not_a_log)])
    assert result.exit_code == EXIT_USAGE and "notes.jsonl:1: not a promptkit record" in (
        result.output.replace("\n", "")
    )
    result = runner.invoke(app, ["report", str(DEMO_LOG), "--engine-queries", "5"])
    assert result.exit_code == EXIT_USAGE and "--engine-hits" in result.output
    result = runner.invoke(app, ["report", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == EXIT_USAGE


# -- the HTML of the demo log, rendered by a real browser ---------------------------------------


def _chromium(
    binary: str, tmp_path: Path, page: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *args,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def _pixels_of(image: Image.Image, color: str) -> int:
    rgb = tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))
    counts = image.convert("RGB").getcolors(maxcolors=1 << 24) or []
    return sum(count for count, pixel in counts if pixel == rgb)


def test_demo_log_html_renders_its_plots_in_headless_chromium(
    tmp_path: Path, chromium: str
) -> None:
    page = tmp_path / "out" / "report.html"
    result = runner.invoke(app, ["report", str(DEMO_LOG), "--html", str(page)])
    assert result.exit_code == EXIT_OK, result.output
    assert page.stat().st_size < 100_000

    dom = _chromium(chromium, tmp_path, page, "--dump-dom").stdout
    for plot in ("plot-hit-ratio", "plot-ttft", "plot-segments"):
        assert re.search(rf'<svg [^>]*id="{plot}"', dom), plot
    assert len(re.findall(r'<circle class="request verdict-HIT"', dom)) == 8
    assert len(re.findall(r'<circle class="request verdict-MISS"', dom)) == 11
    assert len(re.findall(r'<rect class="bar (?:cached|uncached)"', dom)) >= 2
    assert len(re.findall(r'<rect class="segment-cached"', dom)) == 4
    assert "table_qa" in dom and "principal" in dom

    shot = tmp_path / "report.png"
    _chromium(chromium, tmp_path, page, f"--screenshot={shot}", "--window-size=1000,1400")
    image = Image.open(shot)
    # Painted, not just present in the DOM: the 8 HIT dots, the cached and uncached bars.
    for color in (VERDICT_COLORS[Verdict.HIT], CACHED_COLOR, UNCACHED_COLOR):
        assert _pixels_of(image, color) > 300, color


def test_partly_unknown_demo_log_html_renders_unknown_marks_in_headless_chromium(
    tmp_path: Path,
    chromium: str,
) -> None:
    page = tmp_path / "out" / "report.html"
    log = _without_cached_counts(tmp_path / "x.jsonl", every=2)
    result = runner.invoke(app, ["report", str(log), "--html", str(page)])
    assert result.exit_code == EXIT_OK, result.output
    dom = _chromium(chromium, tmp_path, page, "--dump-dom").stdout
    assert len(re.findall(r'<line class="unknown verdict-UNKNOWN"', dom)) == 9
    assert len(re.findall(r'<circle class="request verdict-', dom)) == 10
    assert len(re.findall(r'<rect class="bar unknown"', dom)) >= 1
    assert "9 unknown" in dom and "--enable-prompt-tokens-details" in dom
