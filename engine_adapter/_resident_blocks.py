"""Which full KV blocks an engine holds, named by promptkit's block-hash chain.

Fed by the engine's KV-cache events (``BlockStored`` / ``BlockRemoved`` / ``AllBlocksCleared``)
and, where a caller predicts them, by blocks it knows were computed. The client's prefix-cache
mirror keeps one for its engine; a router keeps one per replica. Bounded: an LRU over blocks,
like the engine's own eviction.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from engine_adapter._block_chain import place_stored
from engine_adapter._kv_events import AllBlocksCleared, BlocksRemoved, BlocksStored, KVEvent

__all__ = ["ResidentBlocks"]


class ResidentBlocks:
    """A bounded set of block hashes, kept in step with an engine's KV-cache events."""

    def __init__(self, *, block_size: int, capacity_blocks: int = 200_000) -> None:
        self.block_size = block_size
        self.capacity_blocks = capacity_blocks
        self._blocks: OrderedDict[str, None] = OrderedDict()
        # Engine block hash -> ours, learnt from BlockStored events (bounded with the blocks).
        self._engine_to_ours: OrderedDict[Any, str] = OrderedDict()
        self.events_applied = 0
        self._awaiting_engine_clear = False

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, digest: object) -> bool:
        return digest in self._blocks

    def leading(self, hashes: Sequence[str]) -> int:
        """How many of ``hashes`` (a prompt's chain) are held, counted from the first."""
        held = 0
        for digest in hashes:
            if digest not in self._blocks:
                break
            held += 1
        return held

    def add(self, hashes: Iterable[str]) -> None:
        """Mark blocks as held (most recently used)."""
        for digest in hashes:
            self._blocks[digest] = None
            self._blocks.move_to_end(digest)
        self._trim()

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
                placed = place_stored(event, self.block_size, self._ours)
                for engine_hash, digest in placed:
                    self._engine_to_ours[engine_hash] = digest
                self.add(digest for _, digest in placed)
            elif isinstance(event, BlocksRemoved):
                for engine_hash in event.hashes:
                    removed = self._engine_to_ours.pop(engine_hash, "")
                    self._blocks.pop(removed, None)
            elif isinstance(event, AllBlocksCleared):
                self.clear()

    def clear(self, *, await_engine_clear: bool = False) -> None:
        """Forget everything (the engine was restarted, died or its cache was reset).

        ``await_engine_clear``: the caller reset the engine and follows its events; ignore
        events until its ``AllBlocksCleared`` (vLLM publishes it with its next step).
        """
        self._blocks.clear()
        self._engine_to_ours.clear()
        self._awaiting_engine_clear = await_engine_clear

    def _ours(self, engine_hash: Any) -> str | None:
        return self._engine_to_ours.get(engine_hash)

    def _trim(self) -> None:
        while len(self._blocks) > self.capacity_blocks:
            self._blocks.popitem(last=False)
        while len(self._engine_to_ours) > self.capacity_blocks:
            self._engine_to_ours.popitem(last=False)
