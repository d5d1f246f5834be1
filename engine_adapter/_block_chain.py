"""The block-hash chain: one hash per full KV block of token ids, each depending on all before.

The client (prompts, mirror, reports) and the router (which replica holds a prefix) name blocks
the same way, so this lives in ``engine_adapter``, which ``promptkit`` imports. vLLM's own block
hashes are not reproduced here (they depend on its hash function and seed, set per server); a
``BlockStored`` event carries both vLLM's hashes and the blocks' token ids, and
:func:`place_stored` translates one into the other.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Callable, Sequence
from typing import Any

from engine_adapter._kv_events import BlocksStored

__all__ = ["block_hashes", "chain_hash", "chain_seed", "place_stored"]


def chain_seed(salt: str | None) -> str:
    """The hash a block-hash chain starts from (per cache salt)."""
    return hashlib.blake2b((salt or "").encode(), digest_size=16).hexdigest()


def chain_hash(previous: str, block: Sequence[int]) -> str:
    """The next link: ``H(previous, block ids)``."""
    digest = hashlib.blake2b(bytes.fromhex(previous), digest_size=16)
    digest.update(array("q", block).tobytes())
    return digest.hexdigest()


def block_hashes(
    ids: Sequence[int],
    block_size: int,
    *,
    salt: str | None = None,
    known: tuple[str, ...] = (),
) -> tuple[str, ...]:
    """A hash chain with one entry per *full* block: ``h_i = H(h_{i-1}, block_i)``.

    ``known`` are hashes already computed for the first blocks of the same ids and salt; the
    chain continues from them instead of starting over.

    Contract: equal chains mean equal token prefixes; routers and reports compare these instead
    of the ids. Changing this function changes every stored fingerprint.
    """
    previous = known[-1] if known else chain_seed(salt)
    out: list[str] = list(known)
    for start in range(len(known) * block_size, len(ids) - block_size + 1, block_size):
        previous = chain_hash(previous, ids[start : start + block_size])
        out.append(previous)
    return tuple(out)


def place_stored(
    event: BlocksStored, block_size: int, ours: Callable[[Any], str | None]
) -> list[tuple[Any, str]]:
    """``(engine hash, our hash)`` for each full block a ``BlockStored`` event names.

    The chain continues from the parent's hash (``ours(parent)``, the caller's map from engine
    hashes), or starts from the salt's seed. Empty when the block size differs or the parent is
    unknown (stored before the caller subscribed): such blocks cannot be placed in the chain.
    """
    if event.block_size != block_size:
        return []
    previous = chain_seed(event.salt) if event.parent is None else ours(event.parent)
    if previous is None:
        return []
    placed: list[tuple[Any, str]] = []
    for index, engine_hash in enumerate(event.hashes):
        block = event.token_ids[index * block_size : (index + 1) * block_size]
        if len(block) < block_size:
            break
        previous = chain_hash(previous, block)
        placed.append((engine_hash, previous))
    return placed
