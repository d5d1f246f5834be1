"""Routing decisions, as pure functions of what the router knows: no I/O, no locks.

A decision sees, per live replica, its name, its requests in flight and -- for ``precise`` --
how many of the prompt's leading blocks it holds (``None`` while its KV events are unknown).
:class:`engine_adapter.routed.RoutedEngine` gathers that state and does the I/O.

- ``round_robin``: the next replica in turn.
- ``least_loaded``: the fewest requests in flight (ties: in turn).
- ``affinity``: rendezvous (highest-random-weight) hashing on the prompt's leading block hashes,
  so a prefix always lands on the same replica while the set of replicas is unchanged, and only
  the prefixes of a replica that leaves move. Bounded load (Mirrokni et al., "Consistent hashing
  with bounded loads"): a replica is skipped while it has ``ceil(load_factor * (in flight + 1) /
  replicas)`` requests in flight, so a hot prefix cannot swamp one replica.
- ``precise``: the replica holding the longest leading run of the prompt's blocks, by its KV
  events, within the same load bound. While any live replica's events are unknown it decides
  as ``affinity`` does.

  Precisely: when the best holder holds more than ``balance_blocks`` blocks beyond what every
  replica holds, or every full block of the prompt, it wins. Otherwise no replica holds clearly
  more (a new prefix behind a system header every replica holds, or nothing held at all): the
  replica holding the fewest blocks in all takes it, so new prefixes fill the replicas evenly,
  and rendezvous hashing on the first block past the common part (at least ``affinity_blocks``
  deep) breaks ties. Once there, a prefix's later requests follow it, since that replica now
  holds clearly more.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["POLICIES", "Candidate", "Decision", "Policy", "decide", "rendezvous_order"]

Policy = Literal["round_robin", "least_loaded", "affinity", "precise"]
POLICIES: tuple[Policy, ...] = ("round_robin", "least_loaded", "affinity", "precise")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A live replica as a decision sees it."""

    name: str
    in_flight: int
    #: Leading blocks of the prompt it holds, by its KV events; ``None``: events unknown.
    held_blocks: int | None = None
    #: Blocks its cache holds in all, by its KV events (0 when unknown).
    resident_blocks: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    name: str
    #: Why the choice is not where the prefix lives (load), for the result's ``routing_note``.
    note: str | None = None


def _weight(key: str, name: str) -> bytes:
    return hashlib.blake2b(f"{key}\x00{name}".encode(), digest_size=8).digest()


def rendezvous_order(key: str, names: Sequence[str]) -> list[str]:
    """``names`` by decreasing rendezvous weight for ``key`` (the first is the key's home)."""
    return sorted(names, key=lambda name: _weight(key, name), reverse=True)


def load_bound(candidates: Sequence[Candidate], load_factor: float) -> int:
    """The most requests in flight a replica may have and still take one more."""
    total = sum(c.in_flight for c in candidates) + 1
    return max(1, math.ceil(load_factor * total / len(candidates)))


def decide(
    policy: Policy,
    candidates: Sequence[Candidate],
    *,
    hashes: Sequence[str],
    turn: int,
    affinity_blocks: int,
    load_factor: float,
    balance_blocks: int,
    fallback_key: str,
) -> Decision:
    """Pick one of ``candidates`` (non-empty, in a fixed order) for a prompt whose block-hash
    chain is ``hashes``; ``turn`` counts decisions (round robin); ``fallback_key`` keys prompts
    shorter than a block."""
    if policy == "round_robin":
        return Decision(candidates[turn % len(candidates)].name)
    if policy == "least_loaded":
        low = min(c.in_flight for c in candidates)
        tied = [c for c in candidates if c.in_flight == low]
        return Decision(tied[turn % len(tied)].name)
    bound = load_bound(candidates, load_factor)
    open_ = {c.name for c in candidates if c.in_flight < bound}
    if policy == "affinity" or any(c.held_blocks is None for c in candidates):
        key = key_of(hashes, affinity_blocks) or fallback_key
        ordered = rendezvous_order(key, [c.name for c in candidates])
        name = _first_open(ordered, open_)
        if name == ordered[0]:
            return Decision(name)
        return Decision(
            name,
            note=(
                f"load: {ordered[0]}, this prefix's home replica, had {bound} requests in flight "
                f"(the bound); sent to {name}"
            ),
        )
    held = {c.name: c.held_blocks or 0 for c in candidates}
    common, best = min(held.values()), max(held.values())
    if best - common > balance_blocks or (best > common and best == len(hashes)):
        # One replica holds clearly more, or all of a short prompt: it goes first, the others
        # by what they hold.
        tie = key_of(hashes, best) or fallback_key
        ordered = sorted(held, key=lambda name: (held[name], _weight(tie, name)), reverse=True)
    else:
        # Nobody holds clearly more (a new prefix behind a header all hold, or none): the
        # replica whose cache holds the fewest blocks takes it, so prefixes fill the replicas
        # evenly -- hashing alone can give one replica five prefixes of eight. Ties: the
        # first block past what all hold keys a rendezvous, so new prefixes spread and a
        # prefix's later requests follow its first.
        depth = max(common + 1, affinity_blocks)
        ranked = rendezvous_order(key_of(hashes, depth) or fallback_key, list(held))
        resident = {c.name: c.resident_blocks for c in candidates}
        ordered = sorted(ranked, key=resident.__getitem__)  # stable: rendezvous breaks ties
    name = _first_open(ordered, open_)
    holder = ordered[0]
    if held[holder] > held[name]:
        return Decision(
            name,
            note=(
                f"load: {holder} held {held[holder]} blocks of this prompt but had {bound} "
                f"requests in flight (the bound); sent to {name}, which held {held[name]}"
            ),
        )
    return Decision(name)


def key_of(hashes: Sequence[str], depth: int) -> str | None:
    """The chain hash ``depth`` blocks deep, or the last one for a shorter prompt."""
    return hashes[min(depth, len(hashes)) - 1] if hashes else None


def _first_open(ordered: Sequence[str], open_: set[str]) -> str:
    # With load_factor >= 1 some replica is always under the bound; stay total regardless.
    return next((name for name in ordered if name in open_), ordered[0])
