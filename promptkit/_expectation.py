"""A client-side mirror of the engine's prefix cache, to know what *should* hit.

The mirror keeps the block-hash chain (:func:`promptkit._built_prompt.block_hashes`) of every prompt
sent, plus the generated tokens that completed a block -- vLLM caches those too, which is what
makes multi-turn history hit. Memory is bounded: an LRU over blocks.

When the engine declares its KV capacity (``Engine.kv_capacity_blocks``) the mirror evicts as
vLLM's block pool does (``vllm/v1/core/block_pool.py``): a finished request's blocks join the
tail of the free queue in reverse order (its last block is evicted first, its first block last),
blocks a request reuses leave the queue while it runs, and the blocks a new request allocates
come first from blocks that hold no cached prefix, then from the head of the queue -- evicting
the least recently freed prefix blocks. A prefix lost that way is foreseen: the expectation
drops and the miss is explained as eviction instead of being an ``UNEXPECTED_MISS``. When the
engine publishes KV-cache events, the mirror also follows them exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from engine_adapter._block_chain import block_hashes
from engine_adapter._kv_events import KVEvent
from engine_adapter._resident_blocks import ResidentBlocks
from promptkit._built_prompt import cacheable_tokens

__all__ = ["PrefixCacheMirror"]


class PrefixCacheMirror:
    """Which full blocks the engine should hold, per salt.

    Args:
        block_size: the engine's KV block size.
        capacity_blocks: how many blocks to remember at most (LRU), whatever the engine holds.
        engine_blocks: the engine's usable KV blocks (``Engine.kv_capacity_blocks``); when
            known, the mirror evicts as the engine does. ``None``: only ``capacity_blocks``.
    """

    def __init__(
        self, *, block_size: int, capacity_blocks: int = 200_000, engine_blocks: int | None = None
    ) -> None:
        self.block_size = block_size
        self.capacity_blocks = capacity_blocks
        self.engine_blocks = engine_blocks
        self._held = ResidentBlocks(block_size=block_size, capacity_blocks=capacity_blocks)

    def __len__(self) -> int:
        return len(self._held)

    @property
    def events_applied(self) -> int:
        return self._held.events_applied

    def expected_cached(self, ids: Sequence[int], *, salt: str | None = None) -> int:
        """Tokens a request with these ids should find cached, as the engine would cap it."""
        return self.lookup(ids, salt=salt)[0]

    def lookup(self, ids: Sequence[int], *, salt: str | None = None) -> tuple[int, tuple[str, ...]]:
        """:meth:`expected_cached` and the prompt's block hashes, which :meth:`record` can reuse."""
        hashes = block_hashes(ids, self.block_size, salt=salt)
        shared = self._held.leading(hashes)
        return cacheable_tokens(shared * self.block_size, len(ids), self.block_size), hashes

    def evicted_blocks(self, hashes: Sequence[str]) -> int:
        """Blocks past the cached run of ``hashes`` that were cached once and evicted since.

        Non-zero means the request would have hit further had the engine's cache been larger.
        """
        return self._held.evicted_after(hashes)

    def record(
        self,
        prompt_ids: Sequence[int],
        output_ids: Sequence[int] = (),
        *,
        salt: str | None = None,
        prompt_hashes: tuple[str, ...] = (),
    ) -> None:
        """Remember a finished request's blocks (prompt, then generated tokens whose KV exists).

        ``prompt_hashes`` (from :meth:`lookup`) spares hashing the prompt's blocks again.
        """
        computed = tuple(prompt_ids) + tuple(output_ids)
        # The last generated token was sampled but never fed back, so it has no KV yet.
        if output_ids:
            computed = computed[:-1]
        hashes = block_hashes(computed, self.block_size, salt=salt, known=prompt_hashes)
        if self.engine_blocks is not None:
            self._allocate(hashes, len(prompt_ids), len(computed), self.engine_blocks)
        # vLLM frees a request's blocks in reverse: its first block is the last to be evicted.
        self._held.add(reversed(hashes))

    def _allocate(
        self, hashes: Sequence[str], prompt_tokens: int, computed_tokens: int, capacity: int
    ) -> None:
        """Evict what the engine evicts to give a request the blocks it does not reuse."""
        reusable = (prompt_tokens - 1) // self.block_size if prompt_tokens else 0
        reused: list[str] = []
        for digest in hashes[:reusable]:
            if digest not in self._held:
                break
            reused.append(digest)
        # Reused blocks are held by the request, out of the free queue, until it finishes.
        for digest in reused:
            self._held.take(digest)
        needed = max(1, math.ceil(computed_tokens / self.block_size)) - len(reused)
        # Blocks holding no prefix (never used, or a request's partial tail) go first.
        empty = capacity - len(self._held) - len(reused)
        self._held.evict_oldest(max(0, needed - max(0, empty)))
        # The caller puts the request's blocks, reused ones included, back at the tail.

    def apply(self, events: Iterable[KVEvent]) -> None:
        """Follow the engine's KV-cache events (see :class:`ResidentBlocks.apply`)."""
        self._held.apply(events)

    def clear(self, *, await_engine_clear: bool = False) -> None:
        """Forget everything (the engine was restarted or its cache reset).

        ``await_engine_clear``: we reset the engine ourselves and follow its events; ignore
        events until its ``AllBlocksCleared`` (vLLM publishes it with its next step).
        """
        self._held.clear(await_engine_clear=await_engine_clear)
