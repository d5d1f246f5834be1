"""A self-contained HTML report of a run: summary tables and three inline SVG plots.

The page loads nothing: no scripts, no fonts, no stylesheets from elsewhere, and a
Content-Security-Policy that forbids trying. It can be archived as a CI artifact and opened
offline years later. Every string taken from a record is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from promptkit.reporting.plots import VERDICT_COLORS, hit_ratio_svg, segments_svg, ttft_svg
from promptkit.reporting.records import RequestRecord, RunSummary, Verdict
from promptkit.reporting.table import (
    COLUMNS,
    REPLICA_COLUMNS,
    TEXT_COLUMNS,
    replica_rows,
    summary_rows,
)

__all__ = ["render_html"]

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1em; max-width: 1100px;
  color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; font-size: .9em; }
th, td { border-bottom: 1px solid #ddd; padding: .25em .6em; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { font-weight: 600; } .bad { color: #c62828; font-weight: 600; } .good { color: #2e7d32; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: .9em; max-width: 760px; }
td.verdicts { white-space: nowrap; }
dt { font-weight: 600; margin-top: .4em; } .muted { color: #777; }
.unknown { color: #ad1457; font-weight: 600; }
"""

_VERDICT_MEANING = {
    Verdict.HIT: "the engine served everything expected, and the whole cacheable stable prefix",
    Verdict.PARTIAL: "some tokens hit, but less than the cacheable stable prefix",
    Verdict.MISS: "nothing expected and nothing hit: a cold request",
    Verdict.UNEXPECTED_MISS: (
        "the engine served fewer tokens than the client-side mirror expected: eviction, another "
        "cache salt, an engine restart"
    ),
    Verdict.DRIFT: (
        "the prompt shares less with the closest earlier prompt of its template than its stable "
        "segments promise: something volatile reached a stable segment"
    ),
    Verdict.UNKNOWN: (
        "the engine did not report cached tokens; this is not a miss, and hit ratios leave it out "
        "(a vLLM server reports them when started with --enable-prompt-tokens-details)"
    ),
}


def _num(value: float | int | None, spec: str = "", *, missing: str = "-") -> str:
    return '<td class="num">' + (missing if value is None else format(value, spec)) + "</td>"


def _verdict(verdict: str) -> str:
    color = VERDICT_COLORS.get(verdict, "#222")
    return f'<span class="verdict" style="color:{color}">{escape(verdict)}</span>'


def _verdict_counts(verdicts: dict[str, int]) -> str:
    return ", ".join(f"{_verdict(v)} {n}" for v, n in sorted(verdicts.items()))


def _row(cells: Sequence[str]) -> str:
    return "<tr>" + "".join(cells) + "</tr>"


def _head(*names: str) -> str:
    text = TEXT_COLUMNS | {"cause", "label", "verdict", "why"}
    cells = [
        f"<th>{escape(n)}</th>" if n in text else f'<th class="num">{escape(n)}</th>' for n in names
    ]
    return "<thead>" + _row(cells) + "</thead>"


def _templates_table(summary: RunSummary) -> str:
    rows = []
    for row in summary_rows(summary):
        name = f"<b>{escape(row.template)}</b>" if row.total else escape(row.template)
        cells = [
            f"<td>{name}</td>",
            f'<td class="num">{row.requests}</td>',
            f'<td class="num">{row.unknown}</td>',
            f'<td class="verdicts">{_verdict_counts(row.verdicts)}</td>',
        ]
        cells += [f'<td class="num">{cell}</td>' for cell in row.numbers]
        rows.append(_row(cells))
    head = _head(*COLUMNS)
    return f'<table id="templates">{head}<tbody>{"".join(rows)}</tbody></table>'


def _counters(summary: RunSummary) -> str:
    counters = summary.engine_counters
    if counters is None:
        return (
            '<p id="counters" class="muted">Engine counters: not given (pass '
            "<code>--engine-hits</code> to cross-check the records).</p>"
        )
    if summary.counters_match:
        return (
            f'<p id="counters">Engine prefix-cache counters: {counters.hits} hit tokens of '
            f"{counters.queries} queried; the records sum to {summary.cached_tokens} cached "
            'tokens: <span class="good">match</span>.</p>'
        )
    note = escape(summary.counters_note or "")
    if summary.counters_match is False:
        return f'<p id="counters"><span class="bad">MISMATCH</span>: {note}.</p>'
    return f'<p id="counters">Engine counters: <span class="unknown">{note}</span>.</p>'


def _replicas_table(summary: RunSummary) -> str:
    rows = []
    for row in replica_rows(summary):
        check = {True: "good", False: "bad", None: "muted"}[row.counters_match]
        rows.append(
            _row(
                [
                    f"<td>{escape(row.replica)}</td>",
                    f'<td class="num">{row.requests}</td>',
                    f'<td class="num">{row.unknown}</td>',
                    f'<td class="verdicts">{_verdict_counts(row.verdicts)}</td>',
                    *(f'<td class="num">{escape(cell)}</td>' for cell in row.numbers),
                    f'<td class="{check}">{escape(row.counters)}</td>',
                ]
            )
        )
    head = _head(*REPLICA_COLUMNS)
    return f'<table id="replicas">{head}<tbody>{"".join(rows)}</tbody></table>'


def _causes_table(summary: RunSummary) -> str:
    rows = [
        _row([f"<td>{escape(t.template)}</td>", f"<td>{escape(cause)}</td>", _num(count)])
        for t in summary.templates
        for cause, count in t.top_causes
    ]
    if not rows:
        return '<p id="causes" class="muted">No request needed an explanation.</p>'
    head = _head("template", "cause", "count")
    return f'<table id="causes">{head}<tbody>{"".join(rows)}</tbody></table>'


def _control_tokens_table(summary: RunSummary) -> str:
    rows = [
        _row(
            [
                f"<td>{escape(t.template)}</td>",
                f"<td>{escape(value)}</td>",
                f'<td class="bad">{escape(policy)}: sent as control tokens</td>'
                if policy == "allow"
                else f"<td>{escape(policy)}: sent as plain text</td>",
                _num(count),
            ]
        )
        for t in summary.templates
        for value, policy, count in t.control_tokens
    ]
    if not rows:
        return '<p id="control-tokens" class="muted">No value held control-token text.</p>'
    head = _head("template", "value", "policy", "requests")
    return f'<table id="control-tokens">{head}<tbody>{"".join(rows)}</tbody></table>'


def _requests_table(records: Sequence[RequestRecord]) -> str:
    rows = [
        _row(
            [
                _num(r.request_id),
                f"<td>{escape(r.template)}</td>",
                f"<td>{escape(r.label or '')}</td>",
                f"<td>{_verdict(r.verdict.value)}</td>",
                _num(r.prompt_tokens),
                _num(r.expected_cached_tokens),
                _num(r.cached_tokens, missing="unknown"),
                _num(r.ttft_s, ".3f"),
                f"<td>{escape(r.explanation.one_line()) if r.explanation else ''}</td>",
            ]
        )
        for r in records
    ]
    head = _head(
        "id", "template", "label", "verdict", "prompt", "expected", "cached", "TTFT s", "why"
    )
    return (
        f"<details><summary>All {len(records)} requests</summary>"
        f'<table id="requests">{head}<tbody>{"".join(rows)}</tbody></table></details>'
    )


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def render_html(*, records: Sequence[RequestRecord], summary: RunSummary, source: str = "") -> str:
    """The whole report page for ``records`` and their ``summary`` (from ``summarize``).

    ``source`` names the log in the heading. The output is deterministic (no timestamps), so two
    reports of the same log are byte-identical and diff cleanly.
    """
    glossary = "".join(
        f"<dt>{_verdict(v.value)}</dt><dd>{escape(meaning)}</dd>"
        for v, meaning in _VERDICT_MEANING.items()
    )
    title = "promptkit report" + (f" — {source}" if source else "")
    unknown = ' class="unknown"' if summary.unknown_requests else ""
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p id="totals"{unknown}>{escape(summary.describe())}</p>',
        _counters(summary),
        "<h2>Per template</h2>",
        _templates_table(summary),
        *(["<h2>Per replica</h2>", _replicas_table(summary)] if summary.replicas else []),
        "<h2>Plots</h2>",
        _figure(
            hit_ratio_svg(records),
            "Each dot is one request's cached share of its prompt, coloured by verdict; the dash "
            "is what the client expected; the line is the running total. A dashed vertical line "
            "is a request whose cached count the engine did not report: unknown, not zero.",
        ),
        _figure(
            ttft_svg(records),
            "Time to first token of requests that hit the cache (at least one cached token) and "
            "of those that did not; dashed lines are the medians. Requests whose cached count is "
            "unknown, if any, are a third group.",
        ),
        _figure(
            segments_svg(records),
            "Mean tokens per request of each template segment, and the part served from cache. "
            "Static segments should fill up once the cache is warm; request segments never do. "
            "Cached shares are over the requests whose cached count is known.",
        ),
        "<h2>Top causes of misses</h2>",
        _causes_table(summary),
        "<h2>Values that held control-token text</h2>",
        _control_tokens_table(summary),
        "<h2>Requests</h2>",
        _requests_table(records),
        "<h2>Verdicts</h2>",
        f"<dl>{glossary}</dl>",
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
