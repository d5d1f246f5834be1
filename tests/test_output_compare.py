"""compare_greedy: vLLM's check_logprobs_close criterion, on hand-made candidates."""

from __future__ import annotations

from engine_adapter import EngineResult
from promptkit._output_compare import OutputMatch, compare_greedy, compare_token_ids


def _result(
    ids: tuple[int, ...], logprobs: list[dict[int, float]] | None, text: str = ""
) -> EngineResult:
    return EngineResult(
        prompt_token_ids=(1, 2, 3),
        num_cached_tokens=None,
        text=text,
        token_ids=ids,
        finish_reason="length",
        ttft_s=None,
        latency_s=0.0,
        timing_source="measured",
        logprobs=tuple(logprobs) if logprobs is not None else None,
    )


def test_identical_tokens_are_identical() -> None:
    a = _result((5, 6, 7), [{5: -0.1}, {6: -0.2}, {7: -0.3}])
    assert compare_greedy(a, a).match is OutputMatch.IDENTICAL


def test_divergence_where_each_token_is_in_the_others_top_k_is_a_near_tie() -> None:
    # The "Ms. Sarah Johnson" / "Ms. Emily Johnson" case: at position 1 both names are candidates.
    a = _result((5, 10, 7), [{5: -0.1}, {10: -0.70, 11: -0.71}, {7: -0.3}])
    b = _result((5, 11, 9), [{5: -0.1}, {11: -0.69, 10: -0.70}, {9: -0.3}])
    result = compare_greedy(a, b)
    assert result.match is OutputMatch.NEAR_TIE and result.acceptable
    assert result.position == 1 and result.tokens == (10, 11)
    assert result.gap is not None and abs(result.gap - 0.01) < 1e-9
    assert "near-tie at generated token 1" in result.describe()


def test_divergence_outside_the_others_candidates_is_different() -> None:
    a = _result((5, 10), [{5: -0.1}, {10: -0.1, 12: -3.0}])
    b = _result((5, 11), [{5: -0.1}, {11: -0.1, 10: -4.0}])
    result = compare_greedy(a, b)
    assert result.match is OutputMatch.DIFFERENT and not result.acceptable
    assert result.position == 1


def test_divergence_without_candidates_cannot_be_excused() -> None:
    assert compare_greedy(_result((5, 10), None), _result((5, 11), None)).match is (
        OutputMatch.DIFFERENT
    )


def test_only_the_first_divergence_counts() -> None:
    # After the first differing token the sequences are no longer comparable (vLLM breaks there).
    first = compare_token_ids(
        (1, 2, 3), (1, 4, 99), [{1: 0}, {2: 0, 4: -0.1}, {3: 0}], [{1: 0}, {4: 0, 2: -0.1}, {99: 0}]
    )
    assert first.match is OutputMatch.NEAR_TIE


def test_results_without_token_ids_compare_by_text() -> None:
    assert (
        compare_greedy(_result((), None, "a"), _result((), None, "a")).match
        is OutputMatch.IDENTICAL
    )
    assert (
        compare_greedy(_result((), None, "a"), _result((), None, "b")).match
        is OutputMatch.DIFFERENT
    )
