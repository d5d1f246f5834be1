"""Replicas for routing tests without vLLM: a simulated prefix cache that publishes KV events.

Each :class:`FakeReplica` answers through :class:`tests.prefix_cache_fake.SimulatedPrefixCache`
(its own block keys, independent of promptkit's hashing) and queues ``BlocksStored`` events the
way vLLM does: engine-side hashes that are not promptkit's, a parent hash, the block's token ids.
It can die (requests raise, ``/health`` fails) and come back with an empty cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from engine_adapter import (
    Engine,
    EngineRequest,
    EngineRequestError,
    EngineResult,
    PrefixCacheCounters,
)
from engine_adapter._kv_events import AllBlocksCleared, BlocksStored, KVEvent
from tests.prefix_cache_fake import SimulatedPrefixCache


class FakeReplica(Engine):
    name: ClassVar[str] = "fake-replica"
    supports_cache_salt: ClassVar[bool] = True

    def __init__(self, label: str, *, block_size: int = 32) -> None:
        self.label = label
        self.cache = SimulatedPrefixCache(block_size=block_size)
        self._block_size = block_size
        self.alive = True
        self.refuse: set[tuple[int, ...]] = set()
        self.requests: list[EngineRequest] = []
        self.queries = self.hits = 0
        self._events: list[KVEvent] = []

    @property
    def block_size(self) -> int:
        return self._block_size

    def generate(self, requests: Sequence[EngineRequest]) -> list[EngineResult]:
        results = []
        for request in requests:
            if not self.alive:
                raise EngineRequestError(f"{self.label}: connection refused")
            self.requests.append(request)
            if request.prompt_token_ids in self.refuse:
                raise EngineRequestError(f"{self.label}: HTTP 400 prompt too long")
            before = set(self.cache.blocks)
            result = self.cache(request)
            self.queries += len(request.prompt_token_ids)
            self.hits += result.num_cached_tokens or 0
            self._publish(before, request)
            results.append(result)
        return results

    def _publish(self, before: set[tuple[str, tuple[int, ...]]], request: EngineRequest) -> None:
        size, salt = self._block_size, request.cache_salt
        ids = request.prompt_token_ids
        for end in range(size, len(ids) + 1, size):
            key = (salt or "", ids[:end])
            if key in before:
                continue
            parent = ("vllm", self.label, salt, ids[: end - size]) if end > size else None
            self._events.append(
                BlocksStored(
                    hashes=(("vllm", self.label, salt, ids[:end]),),
                    parent=parent,
                    token_ids=ids[end - size : end],
                    block_size=size,
                    salt=salt,
                )
            )

    def healthy(self) -> bool:
        return self.alive

    def prefix_cache_counters(self) -> PrefixCacheCounters:
        return PrefixCacheCounters(queries=self.queries, hits=self.hits)

    def die(self) -> None:
        self.alive = False

    def revive(self) -> None:
        """Back with an empty cache and counters, as a restarted server."""
        self.alive = True
        self.cache.evict_all()
        self.queries = self.hits = 0
        self._events.append(AllBlocksCleared())

    # The replica's KV-event source, handed to RoutedEngine(kv_events=...).
    def poll(self) -> list[KVEvent]:
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        return None
