"""A client-side mirror of the engine's prefix cache, to know what *should* hit.

The mirror keeps the block-hash chain (:func:`promptkit.prompt.block_hashes`) of every prompt
sent, plus the generated tokens that completed a block -- vLLM caches those too, which is what
makes multi-turn history hit. Memory is bounded: an LRU over blocks, like the engine's own
eviction. When the engine evicts earlier than the mirror, the report says ``UNEXPECTED_MISS``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from promptkit.prompt import block_hashes, cacheable_tokens

__all__ = ["PrefixCacheMirror"]


class PrefixCacheMirror:
    """Which full blocks the engine should hold, per salt.

    Args:
        block_size: the engine's KV block size.
        capacity_blocks: how many blocks to remember (LRU); match the engine's KV capacity when
            known, or leave the generous default.
    """

    def __init__(self, *, block_size: int, capacity_blocks: int = 200_000) -> None:
        self.block_size = block_size
        self.capacity_blocks = capacity_blocks
        self._blocks: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def expected_cached(self, ids: Sequence[int], *, salt: str | None = None) -> int:
        """Tokens a request with these ids should find cached, as the engine would cap it."""
        hashes = block_hashes(tuple(ids), self.block_size, salt=salt)
        shared = 0
        for digest in hashes:
            if digest not in self._blocks:
                break
            shared += 1
        return cacheable_tokens(shared * self.block_size, len(ids), self.block_size)

    def record(
        self, prompt_ids: Sequence[int], output_ids: Sequence[int] = (), *, salt: str | None = None
    ) -> None:
        """Remember a finished request's blocks (prompt, then generated tokens whose KV exists)."""
        computed = tuple(prompt_ids) + tuple(output_ids)
        # The last generated token was sampled but never fed back, so it has no KV yet.
        if output_ids:
            computed = computed[:-1]
        for digest in block_hashes(computed, self.block_size, salt=salt):
            self._blocks[digest] = None
            self._blocks.move_to_end(digest)
        while len(self._blocks) > self.capacity_blocks:
            self._blocks.popitem(last=False)

    def forget(self, digest: str) -> None:
        """Drop one block (e.g. from an engine ``BlockRemoved`` event)."""
        self._blocks.pop(digest, None)

    def clear(self) -> None:
        """Forget everything (the engine was restarted or its cache reset)."""
        self._blocks.clear()
