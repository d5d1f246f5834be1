"""One wire translation: the embedded and the remote backends sample alike and read the same
prefix-cache counters (``engine_adapter._wire``). Engine-free: ``SamplingParams`` is vLLM's own,
and the completions request is caught at the transport (tests/vllm_wire_fake.py)."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from vllm import SamplingParams

from engine_adapter import CachedTokensNotReported, EngineRequest, SamplingSettings
from engine_adapter._wire import parse_prometheus, prefix_counters, sampling_fields
from tests.vllm_wire_fake import COMPLETION, remote, stream

SETTINGS = [
    SamplingSettings(),
    SamplingSettings(max_tokens=7, temperature=0.7, top_p=0.9, seed=3, logprobs=5),
    SamplingSettings(stop=("\n", "END"), stop_token_ids=(2, 7)),
]


@pytest.mark.parametrize("settings", SETTINGS)
def test_sampling_fields_give_the_sampling_params_the_engine_always_built(
    settings: SamplingSettings,
) -> None:
    built = SamplingParams(**sampling_fields(settings))
    by_hand = SamplingParams(
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        seed=settings.seed,
        stop=list(settings.stop) or None,
        stop_token_ids=list(settings.stop_token_ids) or None,
        logprobs=settings.logprobs,
    )
    assert repr(built) == repr(by_hand)


@pytest.mark.parametrize("settings", SETTINGS)
def test_the_completions_request_carries_the_same_sampling_fields(
    settings: SamplingSettings,
) -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        bodies.append(json.loads(request.content))
        choice = {"index": 0, "text": " hi", "finish_reason": "length", "logprobs": None}
        usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        return stream(
            {**COMPLETION, "choices": [{**choice, "token_ids": [42]}]},
            {**COMPLETION, "choices": [], "usage": {**usage, "prompt_tokens_details": None}},
        )

    with remote(handler) as engine, pytest.warns(CachedTokensNotReported):
        (result,) = engine.generate(
            [EngineRequest(prompt_token_ids=(1, 2, 3), sampling=settings, cache_salt="s")]
        )
    (body,) = bodies
    protocol = {"model", "prompt", "stream", "stream_options", "cache_salt", "return_token_ids"}
    protocol |= {"return_tokens_as_token_ids"} if settings.logprobs is not None else set()
    assert set(body) - set(sampling_fields(settings)) == protocol
    assert {k: body[k] for k in sampling_fields(settings)} == sampling_fields(settings)
    assert body["prompt"] == [1, 2, 3] and body["cache_salt"] == "s"
    assert result.text == " hi" and result.token_ids == (42,)


def test_prefix_counters_sum_engines_and_accept_prometheus_names() -> None:
    exposition = """# HELP vllm:prefix_cache_queries_total Prefix cache queries.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="m"} 100.0
vllm:prefix_cache_queries_total{engine="1",model_name="m"} 28.0
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 64.0
vllm:prefix_cache_hits_total{engine="1",model_name="m"} 0.0
vllm:cache_config_info{block_size="32",enable_prefix_caching="True"} 1.0
"""
    samples = parse_prometheus(exposition)
    assert samples[-1] == (
        "vllm:cache_config_info",
        {"block_size": "32", "enable_prefix_caching": "True"},
        1.0,
    )
    counters = prefix_counters((name, value) for name, _, value in samples)
    assert counters is not None and (counters.queries, counters.hits) == (128, 64)
    in_process = [("vllm:prefix_cache_queries", 5.0), ("vllm:prefix_cache_hits", 2.0)]
    assert prefix_counters(in_process) == prefix_counters(
        [("vllm:prefix_cache_queries_total", 5.0), ("vllm:prefix_cache_hits_total", 2.0)]
    )
    assert prefix_counters([("vllm:prefix_cache_queries", 5.0)]) is None
