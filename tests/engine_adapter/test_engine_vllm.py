"""The embedded engine, for real: prefix hits, APC on/off equality, errors, wrapping an LLM."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from engine_adapter import (
    EngineClosedError,
    EngineRequest,
    EngineRequestError,
    EngineStartError,
    SamplingSettings,
)
from engine_adapter.vllm import VLLMEngine
from promptkit import Tokenizer, cacheable_tokens
from promptkit._output_compare import compare_greedy

pytestmark = pytest.mark.engine

GREEDY = SamplingSettings(max_tokens=12)
TOP5 = SamplingSettings(max_tokens=12, logprobs=5)


def _ids(tokenizer: Tokenizer, text: str) -> tuple[int, ...]:
    return tokenizer.encode(text).ids


def test_block_size_is_read_from_the_engine(engine: VLLMEngine) -> None:
    assert engine.block_size == 32
    assert engine.prefix_caching is True


def test_second_request_hits_the_block_aligned_common_prefix(
    fresh_engine: VLLMEngine, tokenizer: Tokenizer
) -> None:
    shared = _ids(tokenizer, "You are a helpful assistant. " * 30)
    first = shared + _ids(tokenizer, " Tell me about cats.")
    second = shared + _ids(tokenizer, " Tell me about dogs, please.")
    common = next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
    cold, warm = (
        fresh_engine.generate([EngineRequest(prompt_token_ids=p, sampling=GREEDY)])[0]
        for p in (first, second)
    )
    assert cold.num_cached_tokens == 0
    assert warm.num_cached_tokens == cacheable_tokens(common, len(second), 32)
    assert warm.num_cached_tokens == 32 * (common // 32)
    assert cold.timing_source == "engine" and cold.ttft_s is not None and cold.ttft_s > 0
    assert (
        warm.prompt_token_ids == second
        and len(warm.token_ids) > 0
        and warm.finish_reason in ("stop", "length")
    )


def test_identical_prompt_never_hits_its_last_token(
    fresh_engine: VLLMEngine, tokenizer: Tokenizer
) -> None:
    prompt = _ids(tokenizer, "word " * 64)[:64]  # exactly two blocks
    request = EngineRequest(prompt_token_ids=prompt, sampling=GREEDY)
    fresh_engine.generate([request])
    again = fresh_engine.generate([request])[0]
    assert again.num_cached_tokens == 32  # (N - 1) // B blocks: the last token is always computed


def test_greedy_outputs_agree_with_and_without_prefix_caching(
    fresh_engine: VLLMEngine, tokenizer: Tokenizer
) -> None:
    shared = _ids(
        tokenizer, "The following is a list of capital cities of Europe and facts about them. " * 8
    )
    prompts = [
        shared + _ids(tokenizer, f" The capital of {c} is") for c in ("France", "Italy", "Spain")
    ]
    # APC off for a request = a cache salt nobody else uses: vLLM can reuse no block.
    cold = fresh_engine.generate(
        [
            EngineRequest(prompt_token_ids=p, sampling=TOP5, cache_salt=uuid.uuid4().hex)
            for p in prompts
        ]
    )
    fresh_engine.generate([EngineRequest(prompt_token_ids=prompts[0], sampling=TOP5)])
    warm = fresh_engine.generate(
        [EngineRequest(prompt_token_ids=p, sampling=TOP5) for p in prompts]
    )
    assert all(r.num_cached_tokens == 0 for r in cold)
    assert all((r.num_cached_tokens or 0) > 0 for r in warm)
    # vLLM's own criterion: the same tokens, or a first divergence at a near-tie.
    comparisons = [compare_greedy(c, w) for c, w in zip(cold, warm, strict=True)]
    assert all(c.acceptable for c in comparisons), [c.describe() for c in comparisons]
    assert all(r.logprobs is not None and len(r.logprobs) == len(r.token_ids) for r in warm)


def test_cache_salt_isolates_tenants(fresh_engine: VLLMEngine, tokenizer: Tokenizer) -> None:
    prompt = _ids(tokenizer, "Shared system prompt for every tenant. " * 10)
    fresh_engine.generate(
        [EngineRequest(prompt_token_ids=prompt, sampling=GREEDY, cache_salt="tenant-a")]
    )
    same = fresh_engine.generate(
        [EngineRequest(prompt_token_ids=prompt, sampling=GREEDY, cache_salt="tenant-a")]
    )[0]
    other = fresh_engine.generate(
        [EngineRequest(prompt_token_ids=prompt, sampling=GREEDY, cache_salt="tenant-b")]
    )[0]
    assert (same.num_cached_tokens or 0) > 0 and other.num_cached_tokens == 0


def test_counters_count_cached_tokens(fresh_engine: VLLMEngine, tokenizer: Tokenizer) -> None:
    before = fresh_engine.prefix_cache_counters()
    assert before is not None
    prompt = _ids(tokenizer, "Counting cached tokens. " * 20)
    results = [
        fresh_engine.generate([EngineRequest(prompt_token_ids=prompt, sampling=GREEDY)])[0]
        for _ in range(2)
    ]
    after = fresh_engine.prefix_cache_counters()
    assert after is not None
    assert after.hits - before.hits == sum(r.num_cached_tokens or 0 for r in results)
    assert after.queries - before.queries == 2 * len(prompt)


def test_bad_model_path_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EngineStartError, match=r"missing or has no config\.json"):
        VLLMEngine(tmp_path / "nope")


def test_an_engine_option_vllm_rejects_is_a_start_error(model_dir: Path) -> None:
    # vLLM refuses it while building its config, before it starts any process.
    with pytest.raises(EngineStartError, match=r"max_model_len") as info:
        VLLMEngine(model_dir, max_model_len=1_000_000)
    assert isinstance(info.value.__cause__, ValueError)


def test_a_prompt_longer_than_max_model_len_is_a_request_error(engine: VLLMEngine) -> None:
    too_long = EngineRequest(prompt_token_ids=(1,) * 5000, sampling=GREEDY)
    with pytest.raises(EngineRequestError, match=r"maximum context length is 4096") as info:
        engine.generate([too_long])
    assert type(info.value.__cause__).__name__ == "VLLMValidationError"


def test_an_unknown_exception_inside_the_vllm_engine_is_not_relabelled(
    engine: VLLMEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: mapped_errors wrapped every Exception, so a bug read "vLLM generate failed".
    def generate(*args: object, **kwargs: object) -> object:
        raise KeyError("a bug inside the engine call")

    monkeypatch.setattr(engine.llm, "generate", generate)
    with pytest.raises(KeyError, match="a bug inside the engine call"):
        engine.generate([EngineRequest(prompt_token_ids=(1, 2, 3), sampling=GREEDY)])


def test_from_llm_wraps_a_running_llm_and_leaves_it_running(
    fresh_engine: VLLMEngine, tokenizer: Tokenizer
) -> None:
    prompt = _ids(tokenizer, "One engine, two adapters over the same vllm.LLM. " * 8)
    request = EngineRequest(prompt_token_ids=prompt, sampling=GREEDY)
    fresh_engine.generate([request])
    wrapped = VLLMEngine.from_llm(fresh_engine.llm)
    assert (wrapped.block_size, wrapped.prefix_caching) == (32, True)
    assert wrapped.start_seconds is None
    assert wrapped.kv_events_endpoint == fresh_engine.kv_events_endpoint is not None
    with wrapped:
        again = wrapped.generate([request])[0]  # the same cache: it hits
        assert again.num_cached_tokens == 32 * ((len(prompt) - 1) // 32)
        assert wrapped.prefix_cache_counters() == fresh_engine.prefix_cache_counters()
    with pytest.raises(EngineClosedError):
        wrapped.generate([request])
    assert fresh_engine.generate([request])[0].num_cached_tokens  # not shut down
