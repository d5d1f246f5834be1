"""Are two greedy outputs "the same"? The answer vLLM's own prefix-caching tests give.

Greedy decoding in bf16 on a CPU is not bit-for-bit invariant to the batch shape or to which part
of the prompt came from the prefix cache: where the two best candidates are nearly tied, a
rounding difference can pick the other one, and the texts then diverge for good. Comparing texts
as strings calls that a failure; it is not one. vLLM's ``check_logprobs_close`` compares the
generated token ids and, at the first position where they differ, requires each side's token to
be among the *other* side's top-k candidates (a near-tie); after that point the sequences are no
longer comparable. :func:`compare_greedy` does exactly that and says which case it found.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine_adapter import EngineResult

__all__ = ["GreedyComparison", "OutputMatch", "compare_greedy"]


class OutputMatch(enum.StrEnum):
    """How two greedy outputs of the same prompt relate."""

    #: The same generated token ids.
    IDENTICAL = "identical"
    #: They diverge at a near-tie: each side's token is among the other's top-k candidates.
    NEAR_TIE = "near_tie"
    #: A real difference: one side's token is not among the other's candidates, or there are
    #: no candidates to tell (request ``SamplingSettings(logprobs=k)`` to get them).
    DIFFERENT = "different"


@dataclass(frozen=True, slots=True)
class GreedyComparison:
    """The result of :func:`compare_greedy`.

    ``position`` is the index of the first differing generated token (``None`` when identical);
    ``tokens`` the two token ids there; ``gap`` the log-probability margin, on the first side,
    between its own token and the other side's (small at a near-tie; ``None`` when unknown).
    """

    match: OutputMatch
    position: int | None = None
    tokens: tuple[int, int] | None = None
    gap: float | None = None

    @property
    def acceptable(self) -> bool:
        """Identical, or diverged only at a near-tie."""
        return self.match is not OutputMatch.DIFFERENT

    def describe(self) -> str:
        if self.match is OutputMatch.IDENTICAL:
            return "identical"
        where = f"at generated token {self.position}"
        if self.match is OutputMatch.NEAR_TIE:
            gap = f", logprob gap {self.gap:.3f}" if self.gap is not None else ""
            return f"near-tie {where}{gap}"
        return f"different {where}"


def compare_greedy(first: EngineResult, second: EngineResult) -> GreedyComparison:
    """Compare two greedy generations of the same prompt, the way vLLM's tests do.

    Both results should carry top-k candidates (``SamplingSettings(logprobs=k)``); without them
    a divergence cannot be shown to be a near-tie and counts as :attr:`OutputMatch.DIFFERENT`.
    Results without token ids (servers that do not return them) are compared by text.
    """
    if not first.token_ids and not second.token_ids:
        same = first.text == second.text
        return GreedyComparison(OutputMatch.IDENTICAL if same else OutputMatch.DIFFERENT)
    return compare_token_ids(first.token_ids, second.token_ids, first.logprobs, second.logprobs)


def compare_token_ids(
    first: Sequence[int],
    second: Sequence[int],
    first_logprobs: Sequence[Mapping[int, float]] | None,
    second_logprobs: Sequence[Mapping[int, float]] | None,
) -> GreedyComparison:
    """:func:`compare_greedy` on bare token ids and per-token candidates."""
    position = next(
        (i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b), None
    )
    if position is None:
        # Equal, or one is a prefix of the other (it stopped on a limit of its own): every
        # token both generated agrees.
        return GreedyComparison(OutputMatch.IDENTICAL)
    ours, theirs = first[position], second[position]
    candidates_first = _at(first_logprobs, position)
    candidates_second = _at(second_logprobs, position)
    if candidates_first is None or candidates_second is None:
        return GreedyComparison(OutputMatch.DIFFERENT, position, (ours, theirs))
    near_tie = theirs in candidates_first and ours in candidates_second
    gap = None
    if ours in candidates_first and theirs in candidates_first:
        gap = candidates_first[ours] - candidates_first[theirs]
    return GreedyComparison(
        OutputMatch.NEAR_TIE if near_tie else OutputMatch.DIFFERENT, position, (ours, theirs), gap
    )


def _at(logprobs: Sequence[Mapping[int, float]] | None, index: int) -> Mapping[int, float] | None:
    if logprobs is None or index >= len(logprobs):
        return None
    return logprobs[index]
