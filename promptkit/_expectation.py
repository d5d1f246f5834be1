"""A client-side mirror of the engine's prefix cache, to know what *should* hit.

The mirror keeps the block-hash chain (:func:`promptkit._built_prompt.block_hashes`) of every prompt
sent, plus the generated tokens that completed a block -- vLLM caches those too, which is what
makes multi-turn history hit. Memory is bounded: an LRU over blocks, like the engine's own
eviction. When the engine evicts earlier than the mirror, the report says ``UNEXPECTED_MISS``
-- unless the engine publishes KV-cache events, which the mirror then follows exactly.
"""

from __future__ import annotations

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
        capacity_blocks: how many blocks to remember (LRU); match the engine's KV capacity when
            known, or leave the generous default.
    """

    def __init__(self, *, block_size: int, capacity_blocks: int = 200_000) -> None:
        self.block_size = block_size
        self.capacity_blocks = capacity_blocks
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
        self._held.add(block_hashes(computed, self.block_size, salt=salt, known=prompt_hashes))

    def apply(self, events: Iterable[KVEvent]) -> None:
        """Follow the engine's KV-cache events (see :class:`ResidentBlocks.apply`)."""
        self._held.apply(events)

    def clear(self, *, await_engine_clear: bool = False) -> None:
        """Forget everything (the engine was restarted or its cache reset).

        ``await_engine_clear``: we reset the engine ourselves and follow its events; ignore
        events until its ``AllBlocksCleared`` (vLLM publishes it with its next step).
        """
        self._held.clear(await_engine_clear=await_engine_clear)
