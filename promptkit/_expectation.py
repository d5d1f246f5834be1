"""A client-side mirror of the engine's prefix cache, to know what *should* hit.

The mirror keeps the block-hash chain (:func:`promptkit._built_prompt.block_hashes`) of every prompt
sent, plus the generated tokens that completed a block -- vLLM caches those too, which is what
makes multi-turn history hit. Memory is bounded: an LRU over blocks, like the engine's own
eviction. When the engine evicts earlier than the mirror, the report says ``UNEXPECTED_MISS``
-- unless the engine publishes KV-cache events, which the mirror then follows exactly.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from engine_adapter._kv_events import AllBlocksCleared, BlocksRemoved, BlocksStored, KVEvent
from promptkit._built_prompt import block_hashes, cacheable_tokens, chain_hash, chain_seed

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
        # Engine block hash -> our block hash, learnt from BlockStored events.
        self._engine_to_ours: dict[Any, str] = {}
        self.events_applied = 0
        self._awaiting_engine_clear = False

    def __len__(self) -> int:
        return len(self._blocks)

    def expected_cached(self, ids: Sequence[int], *, salt: str | None = None) -> int:
        """Tokens a request with these ids should find cached, as the engine would cap it."""
        return self.lookup(ids, salt=salt)[0]

    def lookup(self, ids: Sequence[int], *, salt: str | None = None) -> tuple[int, tuple[str, ...]]:
        """:meth:`expected_cached` and the prompt's block hashes, which :meth:`record` can reuse."""
        hashes = block_hashes(ids, self.block_size, salt=salt)
        shared = 0
        for digest in hashes:
            if digest not in self._blocks:
                break
            shared += 1
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
        for digest in block_hashes(computed, self.block_size, salt=salt, known=prompt_hashes):
            self._blocks[digest] = None
            self._blocks.move_to_end(digest)
        while len(self._blocks) > self.capacity_blocks:
            self._blocks.popitem(last=False)

    def apply(self, events: Iterable[KVEvent]) -> None:
        """Follow the engine's KV-cache events (see :mod:`engine_adapter._kv_events`).

        Stored blocks are hashed our way (the chain continues from the parent's hash, or starts
        from the salt), so a later ``BlockRemoved`` can drop exactly the blocks it names.
        """
        for event in events:
            self.events_applied += 1
            if self._awaiting_engine_clear:
                # Events from before a reset we asked for are stale; the engine's own
                # AllBlocksCleared marks where the fresh ones begin.
                if isinstance(event, AllBlocksCleared):
                    self._awaiting_engine_clear = False
                    self._engine_to_ours.clear()
                continue
            if isinstance(event, BlocksStored):
                self._stored(event)
            elif isinstance(event, BlocksRemoved):
                for engine_hash in event.hashes:
                    ours = self._engine_to_ours.pop(engine_hash, None)
                    if ours is not None:
                        self._blocks.pop(ours, None)
            elif isinstance(event, AllBlocksCleared):
                self.clear()

    def _stored(self, event: BlocksStored) -> None:
        if event.block_size != self.block_size:
            return
        if event.parent is None:
            previous: str | None = chain_seed(event.salt)
        else:
            previous = self._engine_to_ours.get(event.parent)
        if previous is None:  # parent stored before we subscribed: cannot place these blocks
            return
        size = self.block_size
        for index, engine_hash in enumerate(event.hashes):
            block = event.token_ids[index * size : (index + 1) * size]
            if len(block) < size:
                break
            previous = chain_hash(previous, block)
            self._engine_to_ours[engine_hash] = previous
            self._blocks[previous] = None
            self._blocks.move_to_end(previous)

    def clear(self, *, await_engine_clear: bool = False) -> None:
        """Forget everything (the engine was restarted or its cache reset).

        ``await_engine_clear``: we reset the engine ourselves and follow its events; ignore
        events until its ``AllBlocksCleared`` (vLLM publishes it with its next step).
        """
        self._blocks.clear()
        self._engine_to_ours.clear()
        self._awaiting_engine_clear = await_engine_clear
