"""Cache-aware batch jobs: order many requests so that each shared prefix is prefilled once.

vLLM schedules first come, first served. When thousands of questions over hundreds of documents
arrive in random order and the KV cache cannot hold every document at once, a document's
blocks are evicted before its next question comes, and most hits are lost. A client that knows
every prompt's block hashes can order the batch itself (as SGLang's scheduler does over its
radix tree):

1. **Group** requests in a trie of block hashes (per cache salt: a salt starts its own chain).
2. **Order** them depth-first, so requests that share a prefix are adjacent, deepest first.
3. **Cut waves** in that order, each small enough for the engine's KV capacity
   (``Engine.kv_capacity_blocks``): the distinct blocks of a wave plus each request's own tail
   and answer must fit, so no block a wave shares is evicted before its members have run.
4. **Warm each shared prefix once**: requests sent in one engine call are scheduled together
   and cannot reuse each other's blocks, so within a wave a request runs one step after the
   first request that computes the deepest block it shares. The first requests of each prefix
   are the warm-up; they are real requests with their own answers.

:func:`plan_batch` is pure (hashes and lengths in, engine calls out); :class:`BatchJob` builds
the prompts, holds the plan and puts results back in input order. ``Client.batch`` and
``Client.abatch`` only do the I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promptkit._built_prompt import BuiltPrompt, block_hashes

if TYPE_CHECKING:
    from promptkit._client import Generation

__all__ = ["BatchJob", "BatchPlan", "BatchProgress", "depth_first", "plan_batch"]


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """Where a batch is: requests answered so far, of how many; the wave being run."""

    done: int
    total: int
    wave: int
    waves: int


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """Engine calls in order, each a tuple of input indices; ``waves[i]`` is call i's wave.

    ``order`` is the depth-first order of the inputs; ``capacity_blocks`` the KV capacity the
    waves were cut to (``None``: unknown, one wave).
    """

    calls: tuple[tuple[int, ...], ...]
    waves: tuple[int, ...]
    order: tuple[int, ...]
    capacity_blocks: int | None

    @property
    def wave_count(self) -> int:
        return self.waves[-1] + 1 if self.waves else 0


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    members: list[int] = field(default_factory=list)


def depth_first(hashes: Sequence[Sequence[str]]) -> list[int]:
    """Input indices in depth-first order of their block-hash trie (first-seen order among
    siblings), so requests sharing a prefix are adjacent and the order is stable."""
    root = _Node()
    for index, chain in enumerate(hashes):
        node = root
        for digest in chain:
            node = node.children.setdefault(digest, _Node())
        node.members.append(index)
    order: list[int] = []
    stack = [root]
    while stack:
        node = stack.pop()
        order += node.members
        stack += reversed(node.children.values())
    return order


def plan_batch(
    hashes: Sequence[Sequence[str]],
    lengths: Sequence[int],
    *,
    block_size: int,
    max_tokens: int,
    capacity_blocks: int | None,
) -> BatchPlan:
    """Order, cut into waves and schedule requests (see the module docstring).

    ``hashes[i]`` is request i's block-hash chain (full blocks, its salt included), ``lengths[i]``
    its prompt length in tokens; ``max_tokens`` bounds each answer.
    """
    order = depth_first(hashes)
    calls: list[tuple[int, ...]] = []
    waves: list[int] = []
    wave: list[int] = []
    wave_blocks: set[str] = set()
    need = 0
    for index in order:
        chain = hashes[index]
        own = max(1, math.ceil((lengths[index] + max_tokens) / block_size)) - len(chain)
        new_blocks = sum(1 for digest in chain if digest not in wave_blocks)
        if wave and capacity_blocks is not None and need + new_blocks + own > capacity_blocks:
            _schedule(wave, hashes, lengths, block_size, calls, waves)
            wave, wave_blocks, need = [], set(), 0
            new_blocks = len(set(chain))
        wave.append(index)
        wave_blocks.update(chain)
        need += new_blocks + own
    if wave:
        _schedule(wave, hashes, lengths, block_size, calls, waves)
    return BatchPlan(
        calls=tuple(calls), waves=tuple(waves), order=tuple(order), capacity_blocks=capacity_blocks
    )


def _schedule(
    wave: Sequence[int],
    hashes: Sequence[Sequence[str]],
    lengths: Sequence[int],
    block_size: int,
    calls: list[tuple[int, ...]],
    waves: list[int],
) -> None:
    """Append one wave's engine calls: a request runs one step after the request that first
    computes the deepest block it can reuse (blocks cached before the wave need no step)."""
    provider: dict[str, int] = {}  # block hash -> step of the request computing it
    steps: dict[int, int] = {}
    for index in wave:
        chain = hashes[index]
        reusable = (lengths[index] - 1) // block_size if lengths[index] else 0
        step = 0
        for digest in chain[:reusable]:
            if digest not in provider:
                break
            step = provider[digest] + 1
        steps[index] = step
        for digest in chain:
            provider.setdefault(digest, step)
    number = waves[-1] + 1 if waves else 0
    for step in range(max(steps.values()) + 1):
        call = tuple(i for i in wave if steps[i] == step)
        if call:
            calls.append(call)
            waves.append(number)


class BatchJob:
    """One batch on its way: the built prompts, their plan, and the answers as they come."""

    def __init__(
        self,
        prompts: Sequence[BuiltPrompt],
        *,
        salts: Sequence[str | None],
        labels: Sequence[str | None],
        max_tokens: int,
        capacity_blocks: int | None,
        progress: Callable[[BatchProgress], None] | None,
    ) -> None:
        self.prompts = list(prompts)
        self.salts = list(salts)
        self.labels = list(labels)
        self._progress = progress
        block_size = self.prompts[0].block_size if self.prompts else 1
        chains = [
            block_hashes(p.token_ids, p.block_size, salt=s)
            for p, s in zip(self.prompts, self.salts, strict=True)
        ]
        self.plan = plan_batch(
            chains,
            [p.total_tokens for p in self.prompts],
            block_size=block_size,
            max_tokens=max_tokens,
            capacity_blocks=capacity_blocks,
        )
        self._results: list[Generation | None] = [None] * len(self.prompts)
        self._done = 0

    def calls(self) -> list[tuple[int, ...]]:
        return list(self.plan.calls)

    def request(self, call: Sequence[int]) -> dict[str, Any]:
        """Keyword arguments of ``Client.send`` for one planned call."""
        return {
            "prompts": [self.prompts[i] for i in call],
            "salts": [self.salts[i] for i in call],
            "labels": [self.labels[i] for i in call],
        }

    def answered(self, number: int, call: Sequence[int], results: Sequence[Generation]) -> None:
        for index, result in zip(call, results, strict=True):
            self._results[index] = result
        self._done += len(call)
        if self._progress is not None:
            self._progress(
                BatchProgress(
                    done=self._done,
                    total=len(self.prompts),
                    wave=self.plan.waves[number] + 1,
                    waves=self.plan.wave_count,
                )
            )

    def results(self) -> list[Generation]:
        out = [r for r in self._results if r is not None]
        if len(out) != len(self._results):  # a planner bug, never the caller's fault
            raise RuntimeError("the batch plan left requests unsent")
        return out
