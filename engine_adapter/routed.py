"""One :class:`Engine` over several replicas, routed by prefix, with failover.

A prefix cache lives in one replica: spread requests round robin and a prefix must be computed
on every replica. The client already holds each prompt's token ids, so the router computes the
block-hash chain (:func:`engine_adapter._block_chain.block_hashes`) without re-tokenizing, and
-- for ``precise`` -- follows each replica's KV-cache events to know which blocks it holds. The
policies are in :mod:`engine_adapter._routing`; docs/scale-out.md compares them.

Failover: when a request fails, the router asks the replica whether it is healthy
(:meth:`Engine.healthy`). If it is, the failure was the request's own (a prompt too long, say)
and is raised: a request is never sent twice to a live replica. If it is not, the replica is
marked down, its block index dropped, and the request goes to the next replica, the result
saying so in ``routing_note``. A down replica is asked again every ``recheck_s`` seconds and
rejoins, with an empty index, once healthy. When no replica is left, :class:`EngineDeadError`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar, Protocol

from engine_adapter._block_chain import block_hashes, chain_seed
from engine_adapter._resident_blocks import ResidentBlocks
from engine_adapter._routing import POLICIES, Candidate, Policy, decide
from engine_adapter.base import Engine
from engine_adapter.errors import (
    EngineCapabilityError,
    EngineDeadError,
    EngineError,
    EngineStartError,
)
from engine_adapter.models import EngineRequest, EngineResult, PrefixCacheCounters

if TYPE_CHECKING:
    from engine_adapter._kv_events import KVEvent

__all__ = ["KVEventSource", "Policy", "RoutedEngine"]


class KVEventSource(Protocol):
    """Where a replica's KV-cache events come from (:class:`KVEventSubscriber` by default)."""

    def poll(self) -> list[KVEvent]: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class _Replica:
    name: str
    engine: Engine
    blocks: ResidentBlocks
    events: KVEventSource | None = None
    up: bool = True
    in_flight: int = 0
    down_since: float = 0.0
    checked_at: float = 0.0
    #: Since (re)joining: requests sent, and whether any KV event arrived. Events are unknown
    #: while requests were sent and none arrived (a subscriber still connecting, or no events).
    sent: int = 0
    heard: bool = False
    served: int = 0

    @property
    def events_known(self) -> bool:
        return self.events is not None and (self.heard or self.sent == 0)


class RoutedEngine(Engine):
    """Routes each request to one of ``replicas`` (engines of the same model and block size).

    Args:
        replicas: name -> engine (a sequence is named ``replica-0`` ...). For ``precise`` each
            should declare ``kv_events_endpoint`` (:class:`OpenAIEngine` takes it; a
            :class:`promptkit.LocalFleet` sets it up); a replica without one keeps the router
            on ``affinity``.
        policy: ``round_robin``, ``least_loaded``, ``affinity`` or ``precise``.
        affinity_blocks: leading blocks the ``affinity`` key hashes (a prompt's "prefix").
        load_factor: bounded load: a replica may hold at most ``load_factor`` times its share
            of the requests in flight (>= 1).
        balance_blocks: ``precise`` treats replicas within this many held blocks as equal.
        recheck_s: how often a down replica is asked whether it is healthy again.
        max_concurrency: requests of one :meth:`generate` call in flight at once.
        owns_replicas: :meth:`close` closes the replica engines too.
        kv_events: name -> event source, for replicas whose events arrive another way than a
            ZeroMQ subscription to their ``kv_events_endpoint`` (the default).
    """

    name: ClassVar[str] = "routed"

    def __init__(
        self,
        replicas: Mapping[str, Engine] | Sequence[Engine],
        *,
        policy: Policy = "precise",
        affinity_blocks: int = 4,
        load_factor: float = 1.25,
        balance_blocks: int = 4,
        recheck_s: float = 5.0,
        max_concurrency: int = 16,
        owns_replicas: bool = False,
        kv_events: Mapping[str, KVEventSource] | None = None,
    ) -> None:
        named = dict(replicas) if isinstance(replicas, Mapping) else _named(replicas)
        if not named:
            raise EngineStartError("RoutedEngine needs at least one replica")
        if policy not in POLICIES:
            raise ValueError(f"unknown routing policy {policy!r}; choose one of {POLICIES}")
        if load_factor < 1:
            raise ValueError(f"load_factor must be at least 1, got {load_factor}")
        sizes = {name: engine.block_size for name, engine in named.items()}
        if len(set(sizes.values())) != 1:
            raise EngineStartError(
                f"replicas disagree on the KV block size ({sizes}): start every server with "
                "the same --block-size, or block hashes cannot name the same prefixes"
            )
        self._block_size = next(iter(sizes.values()))
        self.policy: Policy = policy
        self.affinity_blocks = max(1, affinity_blocks)
        self.load_factor = load_factor
        self.balance_blocks = balance_blocks
        self.recheck_s = recheck_s
        self.max_concurrency = max(1, max_concurrency)
        self._owns = owns_replicas
        self._lock = threading.Lock()
        self._turn = 0
        self._replicas = {
            name: _Replica(name, engine, ResidentBlocks(block_size=self._block_size))
            for name, engine in named.items()
        }
        caching = {e.prefix_caching for e in named.values()}
        self.prefix_caching = caching.pop() if len(caching) == 1 else None
        # Every policy follows the events it can: precise routes by them, and the others can
        # then tell when they sent a request away from the replica that held its prefix.
        self._subscribe(kv_events or {})

    @property
    def block_size(self) -> int:
        return self._block_size

    @property
    def replicas(self) -> dict[str, Engine]:
        """Every replica engine, by name, up or down."""
        return {name: replica.engine for name, replica in self._replicas.items()}

    def up(self) -> list[str]:
        """The replicas currently taking requests."""
        with self._lock:
            return [name for name, replica in self._replicas.items() if replica.up]

    def held_blocks(self, name: str, token_ids: Sequence[int], salt: str | None = None) -> int:
        """Leading blocks of ``token_ids`` that replica ``name`` holds, by its KV events."""
        hashes = block_hashes(token_ids, self._block_size, salt=salt)
        with self._lock:
            self._poll_events()
            return self._replicas[name].blocks.leading(hashes)

    # -- the Engine seam ------------------------------------------------------------------

    def generate(self, requests: Sequence[EngineRequest]) -> list[EngineResult]:
        self.check_requests(requests)
        if len(requests) <= 1:
            return [self._serve(request) for request in requests]
        workers = min(len(requests), self.max_concurrency)
        with ThreadPoolExecutor(workers, thread_name_prefix="promptkit-route") as pool:
            return list(pool.map(self._serve, requests))

    async def agenerate(self, requests: Sequence[EngineRequest]) -> list[EngineResult]:
        self.check_requests(requests)
        return list(await asyncio.gather(*(asyncio.to_thread(self._serve, r) for r in requests)))

    def check_requests(self, requests: Iterable[EngineRequest]) -> None:
        """Any replica may serve any request, so each replica's checks apply."""
        listed = list(requests)
        for replica in self._replicas.values():
            replica.engine.check_requests(listed)

    def healthy(self) -> bool:
        """Whether some replica is up (after asking the down ones that are due)."""
        self._recheck()
        return bool(self.up())

    def prefix_cache_counters(self) -> PrefixCacheCounters | None:
        """The sum over replicas; ``None`` unless every replica reports its counters."""
        per = self.replica_counters()
        if any(counters is None for counters in per.values()):
            return None
        known = [c for c in per.values() if c is not None]
        return PrefixCacheCounters(
            queries=sum(c.queries for c in known), hits=sum(c.hits for c in known)
        )

    def replica_counters(self) -> dict[str, PrefixCacheCounters | None]:
        """Each replica's counters; ``None`` for one that is down or does not publish them
        (a restarted server counts from zero again)."""
        out: dict[str, PrefixCacheCounters | None] = {}
        for name, replica in self._replicas.items():
            try:
                out[name] = replica.engine.prefix_cache_counters() if replica.up else None
            except EngineError:
                out[name] = None
        return out

    def reset_prefix_cache(self) -> bool:
        """Reset every live replica's cache and index; ``True`` only if all did."""
        done = True
        for replica in self._replicas.values():
            if not replica.up:
                continue
            with self._lock:
                self._poll_events()
            ok = replica.engine.reset_prefix_cache()
            with self._lock:
                replica.blocks.clear(await_engine_clear=ok and replica.events is not None)
            done = done and ok
        return done

    def close(self) -> None:
        for replica in self._replicas.values():
            if replica.events is not None:
                replica.events.close()
                replica.events = None
            if self._owns:
                replica.engine.close()

    # -- routing and failover -------------------------------------------------------------

    def _serve(self, request: EngineRequest) -> EngineResult:
        hashes = block_hashes(request.prompt_token_ids, self._block_size, salt=request.cache_salt)
        failed: dict[str, str] = {}
        while True:
            self._recheck()
            replica, note = self._choose(request, hashes, failed=failed)
            try:
                (result,) = replica.engine.generate([request])
            except EngineCapabilityError:
                self._release(replica)
                raise
            except EngineError as exc:
                self._release(replica)
                if replica.engine.healthy() is not False:
                    raise  # a live replica refused the request itself: never send it twice
                self._mark_down(replica, exc)
                failed[replica.name] = f"{replica.name} ({type(exc).__name__})"
                continue
            self._release(replica, served=True)
            if failed:
                note = (
                    f"failover: {', '.join(failed.values())} failed, so {replica.name} served it; "
                    + (note or "the prefix may not be cached there")
                )
            return replace(result, replica=replica.name, routing_note=note)

    def _choose(
        self, request: EngineRequest, hashes: tuple[str, ...], *, failed: Mapping[str, str]
    ) -> tuple[_Replica, str | None]:
        with self._lock:
            self._poll_events()
            live = [r for r in self._replicas.values() if r.up and r.name not in failed]
            if not live:
                tried = f" (failed here: {', '.join(failed.values())})" if failed else ""
                raise EngineDeadError(
                    f"no replica of {len(self._replicas)} is up{tried}; restart the servers "
                    "and retry (a down replica rejoins once its /health answers)"
                )
            candidates = [
                Candidate(
                    r.name,
                    r.in_flight,
                    r.blocks.leading(hashes) if r.events_known else None,
                    len(r.blocks),
                )
                for r in live
            ]
            decision = decide(
                self.policy,
                candidates,
                hashes=hashes,
                turn=self._turn,
                affinity_blocks=self.affinity_blocks,
                load_factor=self.load_factor,
                balance_blocks=self.balance_blocks,
                fallback_key=chain_seed(request.cache_salt),
            )
            self._turn += 1
            replica = self._replicas[decision.name]
            replica.in_flight += 1
            replica.sent += 1
            return replica, decision.note or self._elsewhere(candidates, decision.name)

    def _elsewhere(self, candidates: Sequence[Candidate], chosen: str) -> str | None:
        """A note when another replica held more of the prompt than the chosen one."""
        held = {c.name: c.held_blocks for c in candidates if c.held_blocks is not None}
        if chosen not in held or not held:
            return None
        holder = max(held, key=held.__getitem__)
        if held[holder] <= held[chosen]:
            return None
        return (
            f"{self.policy}: sent to {chosen}, which held {held[chosen]} blocks of this prompt; "
            f"{holder} held {held[holder]}"
        )

    def _release(self, replica: _Replica, *, served: bool = False) -> None:
        with self._lock:
            replica.in_flight -= 1
            replica.served += int(served)

    def _mark_down(self, replica: _Replica, exc: EngineError) -> None:
        with self._lock:
            if replica.up:
                replica.up = False
                replica.down_since = replica.checked_at = time.monotonic()
                replica.blocks.clear()

    def _recheck(self) -> None:
        """Ask each down replica that is due whether it is healthy; let it rejoin if so."""
        now = time.monotonic()
        with self._lock:
            due = [
                r
                for r in self._replicas.values()
                if not r.up and now - r.checked_at >= self.recheck_s
            ]
            for replica in due:
                replica.checked_at = now
        for replica in due:
            if replica.engine.healthy():
                with self._lock:
                    self._poll_events()  # whatever arrived belongs to its previous life
                    replica.blocks.clear()
                    replica.up, replica.sent, replica.heard = True, 0, False

    def _poll_events(self) -> None:
        # Called with the lock held: events reach the index in the order they were published.
        for replica in self._replicas.values():
            if replica.events is None:
                continue
            events = replica.events.poll()
            if events and replica.up:
                replica.heard = True
                replica.blocks.apply(events)

    def _subscribe(self, given: Mapping[str, KVEventSource]) -> None:
        for replica in self._replicas.values():
            endpoint = replica.engine.kv_events_endpoint
            if replica.name in given:
                replica.events = given[replica.name]
            elif endpoint is not None:
                from engine_adapter._kv_events import KVEventSubscriber

                replica.events = KVEventSubscriber(endpoint)


def _named(engines: Sequence[Engine]) -> dict[str, Engine]:
    return {f"replica-{index}": engine for index, engine in enumerate(engines)}
