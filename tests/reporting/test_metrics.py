"""Prometheus metrics fed by request records, on a private registry per test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from engine_adapter import EngineRequest, EngineResult, FunctionEngine
from promptkit import (
    Client,
    ConfigError,
    PromptTemplate,
    Tokenizer,
    Verdict,
    read_records,
    summarize,
)
from promptkit.reporting.metrics import PrefixMetrics

DEMO_LOG = Path(__file__).resolve().parents[1] / "data" / "demo_log.jsonl"


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_counters_add_up_to_the_records_of_a_demo_log() -> None:
    records = read_records(DEMO_LOG)
    registry = CollectorRegistry()
    PrefixMetrics(registry=registry).observe_all(records)
    for template in ("table_qa", "principal"):
        mine = [r for r in records if r.template == template]
        for verdict in ("HIT", "MISS"):
            count = sum(r.verdict == verdict for r in mine)
            assert (
                _value(registry, "promptkit_requests_total", template=template, verdict=verdict)
                == count
            )
        assert _value(registry, "promptkit_prompt_tokens_total", template=template) == sum(
            r.prompt_tokens for r in mine
        )
        assert _value(registry, "promptkit_cached_tokens_total", template=template) == sum(
            r.cached_tokens or 0 for r in mine
        )
        assert _value(registry, "promptkit_expected_cached_tokens_total", template=template) == sum(
            r.expected_cached_tokens for r in mine
        )
        hot = [r for r in mine if (r.cached_tokens or 0) > 0]
        labels = {"template": template, "cached": "true"}
        assert _value(registry, "promptkit_ttft_seconds_count", **labels) == len(hot)
        assert _value(registry, "promptkit_ttft_seconds_sum", **labels) == pytest.approx(
            sum(r.ttft_s or 0.0 for r in hot)
        )
    assert b"promptkit_ttft_seconds_bucket" in generate_latest(registry)


def test_a_client_request_with_an_unknown_cached_count_adds_no_cached_tokens(
    tokenizer: Tokenizer,
) -> None:
    # As a vLLM server without --enable-prompt-tokens-details answers: no cached count.
    def respond(request: EngineRequest) -> EngineResult:
        return EngineResult(
            prompt_token_ids=request.prompt_token_ids,
            num_cached_tokens=None,
            text="ok",
            token_ids=(),
            finish_reason="stop",
            ttft_s=0.2,
            latency_s=0.3,
            timing_source="measured",
            cached_unknown_reason="restart the server with --enable-prompt-tokens-details",
        )

    template = PromptTemplate.from_string(
        "{% vars q=request %}{% segment system static %}Be brief.{% endsegment %}"
        "{% segment q request %}{{ q }}{% endsegment %}",
        name="brief",
    )
    registry = CollectorRegistry()
    metrics = PrefixMetrics(registry=registry, namespace="app")
    with Client(engine=FunctionEngine(respond), tokenizer=tokenizer) as client:
        out = client.generate(template, {"q": "Why?"})
    metrics.observe(out.record)
    assert out.record.verdict is Verdict.UNKNOWN
    assert out.record.cached_unknown_reason is not None
    assert "--enable-prompt-tokens-details" in out.record.cached_unknown_reason
    assert all(segment.cached_tokens is None for segment in out.record.segments)
    assert _value(registry, "app_requests_total", template="brief", verdict="UNKNOWN") == 1
    assert _value(registry, "app_prompt_tokens_total", template="brief") == out.prompt.total_tokens
    assert _value(registry, "app_unknown_requests_total", template="brief") == 1
    for name in ("cached_tokens", "expected_cached_tokens", "known_prompt_tokens"):
        assert _value(registry, f"app_{name}_total", template="brief") is None, name
    for cached in ("true", "false"):
        assert _value(registry, "app_ttft_seconds_count", template="brief", cached=cached) is None
    assert _value(registry, "app_ttft_seconds_count", template="brief", cached="unknown") == 1


def test_hit_ratio_from_the_counters_is_over_known_requests_only() -> None:
    records = read_records(DEMO_LOG)
    # Every other request as a server without --enable-prompt-tokens-details records it.
    mixed = [
        r.model_copy(update={"cached_tokens": None, "verdict": Verdict.UNKNOWN})
        if r.request_id % 2 == 0
        else r
        for r in records
    ]
    registry = CollectorRegistry()
    PrefixMetrics(registry=registry).observe_all(mixed)
    known = [r for r in mixed if r.cached_tokens is not None]

    def total(name: str) -> float:
        return sum(
            _value(registry, f"promptkit_{name}_total", template=t) or 0.0
            for t in ("table_qa", "principal")
        )

    assert total("unknown_requests") == len(mixed) - len(known) == 9
    assert total("prompt_tokens") == sum(r.prompt_tokens for r in mixed)
    assert total("known_prompt_tokens") == sum(r.prompt_tokens for r in known)
    assert total("cached_tokens") == sum(r.cached_tokens or 0 for r in known)
    assert total("expected_cached_tokens") == sum(r.expected_cached_tokens for r in known)
    # The documented PromQL ratio equals the summary's hit ratio over the known requests.
    assert total("cached_tokens") / total("known_prompt_tokens") == pytest.approx(
        summarize(mixed).hit_ratio
    )


def test_missing_prometheus_client_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # what `import` sees when absent
    with pytest.raises(ConfigError, match=r"pip install 'promptkit-vllm\[metrics\]'"):
        PrefixMetrics(registry=CollectorRegistry())
