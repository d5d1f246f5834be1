"""The built prompt: token ids plus everything needed to reason about its cacheable prefix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine_adapter._block_chain import block_hashes, chain_hash, chain_seed
from promptkit._segments import Stability

if TYPE_CHECKING:
    from promptkit._source import PromptSource

__all__ = [
    "BlockAccounting",
    "Boundary",
    "BuiltPrompt",
    "SegmentSpan",
    "block_hashes",
    "cacheable_tokens",
    "chain_hash",
    "chain_seed",
    "prefix_fingerprint",
]


def cacheable_tokens(shared_tokens: int, total_tokens: int, block_size: int) -> int:
    """Tokens an engine can serve from cache: full shared blocks, never the last prompt token.

    vLLM caches only full KV blocks and always computes the last prompt token, so for an N-token
    prompt sharing S tokens with the cache the hit is ``B * min(S // B, (N - 1) // B)``.
    """
    if total_tokens <= 0:
        return 0
    return block_size * min(shared_tokens // block_size, (total_tokens - 1) // block_size)


def prefix_fingerprint(hashes: Sequence[str], cacheable: int, block_size: int) -> str:
    """The chain hash at the last cacheable block: one value names the whole cacheable prefix."""
    blocks = cacheable // block_size
    return hashes[blocks - 1] if blocks else chain_seed(None)


@dataclass(frozen=True, slots=True)
class SegmentSpan:
    """Where a segment landed: characters in :attr:`BuiltPrompt.text`, tokens in the ids.

    ``char_start``/``char_end`` include the chat-template scaffolding attributed to the segment
    (role headers, end-of-turn markers); ``text_start`` is where the segment's own rendered text
    begins (equal to ``char_start`` for plain templates).
    """

    name: str
    stability: Stability
    role: str | None
    char_start: int
    char_end: int
    token_start: int
    token_end: int
    text_start: int

    @property
    def tokens(self) -> int:
        return self.token_end - self.token_start


@dataclass(frozen=True, slots=True)
class Boundary:
    """A segment boundary and whether tokens merged across it.

    ``moved_tokens > 0`` means the last tokens of ``after`` tokenize differently once the next
    segment is appended; those tokens are counted in the later segment (and so are not part of a
    stable prefix that ends at this boundary).
    """

    after: str
    moved_tokens: int

    @property
    def safe(self) -> bool:
        return self.moved_tokens == 0


@dataclass(frozen=True, slots=True)
class BlockAccounting:
    """How a prompt's stable prefix lies over KV blocks."""

    total_tokens: int
    stable_tokens: int
    cacheable_tokens: int
    block_size: int

    @property
    def partial_block_tokens(self) -> int:
        """Stable tokens past the last full block: recomputed on every request."""
        return self.stable_tokens - self.cacheable_tokens

    @property
    def volatile_tokens(self) -> int:
        return self.total_tokens - self.stable_tokens


@dataclass(frozen=True, slots=True, kw_only=True)
class BuiltPrompt:
    """A prompt ready for the engine: ids, text, segment spans and fingerprints.

    :attr:`stable_tokens` counts the leading tokens that every request from the same template and
    the same stable values shares; :attr:`cacheable_tokens` rounds that down to full KV blocks
    (and never covers the last token), which is what the engine can reuse.
    """

    template: str
    template_file: str
    text: str
    token_ids: tuple[int, ...]
    segments: tuple[SegmentSpan, ...]
    boundaries: tuple[Boundary, ...]
    stable_tokens: int
    block_size: int
    tokenizer_fingerprint: str
    chat_template_fingerprint: str | None
    template_fingerprint: str
    variables: Mapping[str, Any] = field(repr=False, compare=False)
    #: Where the prompt came from (a template, or a conversation's messages), for the audit. The
    #: prompt carries it so that nothing has to find it again by name: two templates may share a
    #: name (every unnamed one is "<string>"), and a conversation has no file at all.
    source: PromptSource = field(repr=False, compare=False)
    #: How the prompt was put together from an earlier one, when that matters to a reader of
    #: its record (e.g. a stateless history whose assistant reply the app edited).
    note: str | None = field(default=None, compare=False)
    #: Values (variable paths, ``messages[i]``) that held control-token text, whatever the
    #: client's policy did with them (see :mod:`promptkit._control_tokens`).
    control_token_values: tuple[str, ...] = ()
    #: What the client's policy did with them: ``"escape"``d (plain text to the model) or
    #: ``"allow"``ed (real control tokens); ``None`` when no value held any.
    control_token_policy: str | None = None

    @property
    def total_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def cacheable_tokens(self) -> int:
        return cacheable_tokens(self.stable_tokens, len(self.token_ids), self.block_size)

    @property
    def accounting(self) -> BlockAccounting:
        return BlockAccounting(
            total_tokens=len(self.token_ids),
            stable_tokens=self.stable_tokens,
            cacheable_tokens=self.cacheable_tokens,
            block_size=self.block_size,
        )

    def block_hashes(self, *, salt: str | None = None) -> tuple[str, ...]:
        """The prefix fingerprint chain of this prompt (see :func:`block_hashes`)."""
        return block_hashes(self.token_ids, self.block_size, salt=salt)

    @property
    def prefix_fingerprint(self) -> str:
        """The chain hash naming the cacheable prefix; equal across requests that can share it."""
        return prefix_fingerprint(self.block_hashes(), self.cacheable_tokens, self.block_size)

    def segment_at_token(self, index: int) -> SegmentSpan | None:
        """The segment containing token ``index``."""
        for span in self.segments:
            if span.token_start <= index < span.token_end:
                return span
        return None
