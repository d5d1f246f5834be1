"""The oracle: the most prompt tokens any prefix cache could have served for a request sequence.

Definition (the one ``docs/benchmarks.md`` states): requests run one after another. Request ``i``
sends ``N`` prompt ids. A KV block of ``B`` tokens is *available* to it when an earlier request
``j < i`` with the same cache salt *computed* that block: a full block of ``j``'s prompt ids
followed by its generated ids except the last one (the last sampled token is never fed back, so
its KV never exists). Blocks are identified by their whole prefix, as vLLM's hash chain does.
If the first ``S`` full blocks of request ``i`` are available, the oracle serves

    B * min(S, (N - 1) // B)

tokens -- vLLM's rule: only full blocks, and the last prompt token is always computed. Nothing
is ever evicted. The oracle is written independently of :mod:`promptkit._expectation` (a trie of
exact token blocks, no hashes), so the benchmark checks promptkit rather than restating it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Sent", "oracle_cached"]


@dataclass(frozen=True, slots=True)
class Sent:
    """A request as the engine saw it: its prompt ids, the ids it generated, its salt."""

    prompt_ids: tuple[int, ...]
    output_ids: tuple[int, ...] = ()
    salt: str | None = None

    @property
    def computed_ids(self) -> tuple[int, ...]:
        """The ids whose KV the engine computed: the prompt, then all but the last output id."""
        return self.prompt_ids + self.output_ids[:-1]


@dataclass
class _Node:
    children: dict[tuple[int, ...], _Node] = field(default_factory=dict)


def _blocks(ids: tuple[int, ...], block_size: int) -> list[tuple[int, ...]]:
    return [ids[i : i + block_size] for i in range(0, len(ids) - block_size + 1, block_size)]


def oracle_cached(requests: Sequence[Sent], *, block_size: int) -> list[int]:
    """For each request, the tokens a perfect, never-evicting prefix cache would serve."""
    if block_size <= 0:
        raise ValueError(f"block_size must be positive, got {block_size}")
    roots: dict[str | None, _Node] = {}
    out: list[int] = []
    for request in requests:
        root = roots.setdefault(request.salt, _Node())
        node, shared = root, 0
        for block in _blocks(request.prompt_ids, block_size):
            child = node.children.get(block)
            if child is None:
                break
            node, shared = child, shared + 1
        n = len(request.prompt_ids)
        out.append(block_size * min(shared, (n - 1) // block_size) if n else 0)
        node = root
        for block in _blocks(request.computed_ids, block_size):
            node = node.children.setdefault(block, _Node())
    return out
