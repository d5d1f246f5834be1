"""Prometheus metrics fed by request records, on a private registry per test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from engine_adapter import FunctionEngine
from promptkit import Client, ConfigError, PromptTemplate, Tokenizer, Verdict, read_records
from promptkit.metrics import PrefixMetrics

DEMO_LOG = Path(__file__).parent / "data" / "demo_log.jsonl"


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
    # FunctionEngine reports no cached count, as an engine without prefix-cache stats would.
    engine = FunctionEngine(lambda request: "ok")
    template = PromptTemplate.from_string(
        "{% vars q=request %}{% segment system static %}Be brief.{% endsegment %}"
        "{% segment q request %}{{ q }}{% endsegment %}",
        name="brief",
    )
    registry = CollectorRegistry()
    metrics = PrefixMetrics(registry=registry, namespace="app")
    with Client(engine=engine, tokenizer=tokenizer) as client:
        out = client.generate(template, {"q": "Why?"})
    metrics.observe(out.record)
    assert out.record.verdict is Verdict.UNKNOWN
    assert _value(registry, "app_requests_total", template="brief", verdict="UNKNOWN") == 1
    assert _value(registry, "app_prompt_tokens_total", template="brief") == out.prompt.total_tokens
    assert _value(registry, "app_cached_tokens_total", template="brief") is None
    assert _value(registry, "app_ttft_seconds_count", template="brief", cached="false") is None


def test_missing_prometheus_client_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # what `import` sees when absent
    with pytest.raises(ConfigError, match=r"pip install 'promptkit-vllm\[metrics\]'"):
        PrefixMetrics(registry=CollectorRegistry())
