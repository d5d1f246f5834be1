"""Following an engine's KV-cache events, so the client knows evictions instead of guessing.

vLLM publishes ``BlockStored`` / ``BlockRemoved`` / ``AllBlocksCleared`` over ZeroMQ when started
with ``kv_events_config`` (``VLLMEngine(kv_events=True)`` sets up an ``ipc://`` endpoint). This
module subscribes and turns them into engine-neutral events; promptkit's prefix-cache mirror maps
the engine's block hashes to its own. Reading is non-blocking: :meth:`KVEventSubscriber.poll`
returns what has arrived so far.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

__all__ = ["AllBlocksCleared", "BlocksRemoved", "BlocksStored", "KVEvent", "KVEventSubscriber"]


@dataclass(frozen=True, slots=True)
class BlocksStored:
    """Full blocks the engine cached: its hashes, the parent's hash, their token ids."""

    hashes: tuple[Any, ...]
    parent: Any | None
    token_ids: tuple[int, ...]
    block_size: int
    salt: str | None


@dataclass(frozen=True, slots=True)
class BlocksRemoved:
    hashes: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class AllBlocksCleared:
    pass


KVEvent = BlocksStored | BlocksRemoved | AllBlocksCleared


def _salt(extra_keys: Any) -> str | None:
    # vLLM puts the cache salt, when there is one, last among the first block's extra keys.
    if not extra_keys or not extra_keys[0]:
        return None
    strings = [k for k in extra_keys[0] if isinstance(k, str)]
    return strings[-1] if strings else None


def _hashable(value: Any) -> Any:
    return bytes(value) if isinstance(value, bytearray | memoryview) else value


class KVEventSubscriber:
    """A ZeroMQ SUB socket on a vLLM KV-event endpoint."""

    def __init__(self, endpoint: str, *, topic: str = "") -> None:
        import msgspec
        import zmq
        from vllm.distributed.kv_events import KVEventBatch

        self.endpoint = endpoint
        # Our own context, not zmq's process-wide instance: closing the subscriber ends it.
        self._context: Any = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.connect(endpoint)
        self._socket.setsockopt_string(zmq.SUBSCRIBE, topic)
        self._decoder = msgspec.msgpack.Decoder(type=KVEventBatch)
        self._again = zmq.Again
        self._noblock = zmq.NOBLOCK
        # A client dropped without close() must not leave an open context for zmq to warn about.
        self._closer = weakref.finalize(self, _close, self._socket, self._context)

    def poll(self) -> list[KVEvent]:
        """Every event that has arrived, in order; never blocks."""
        events: list[KVEvent] = []
        while True:
            try:
                frames = self._socket.recv_multipart(flags=self._noblock)
            except self._again:
                return events
            batch = self._decoder.decode(frames[-1])
            for raw in batch.events:
                event = _convert(raw)
                if event is not None:
                    events.append(event)

    def close(self) -> None:
        self._closer()


def _close(socket: Any, context: Any) -> None:
    socket.close(linger=0)
    context.term()


def _convert(raw: Any) -> KVEvent | None:
    kind = type(raw).__name__
    if kind == "BlockStored":
        return BlocksStored(
            hashes=tuple(_hashable(h) for h in raw.block_hashes),
            parent=_hashable(raw.parent_block_hash),
            token_ids=tuple(raw.token_ids),
            block_size=int(raw.block_size),
            salt=_salt(getattr(raw, "extra_keys", None)),
        )
    if kind == "BlockRemoved":
        return BlocksRemoved(tuple(_hashable(h) for h in raw.block_hashes))
    if kind == "AllBlocksCleared":
        return AllBlocksCleared()
    return None
