"""Tokenization with the model's own tokenizer, done once per stable text.

:class:`Tokenizer` wraps a Hugging Face fast tokenizer. :meth:`Tokenizer.extend` appends text to
an already tokenized prefix by re-tokenizing only a short *window* that starts at a hard
pre-token boundary (just after a newline, before a non-blank, or at a special token). If the
window's first tokens come back unchanged, the result equals tokenizing the whole text; if they
do not, the boundary merged across the pieces and the whole text is tokenized instead, and the
number of prefix tokens that changed is reported -- never silently sent.

Tokenized stable prefixes are kept in an LRU keyed by the tokenizer fingerprint and a hash of the
text, so a stable segment is tokenized once per process. The LRU is bounded by entries and by an
estimate of the bytes they hold (text, ids and offsets): 300 documents of 100 KB must not grow a
process by a gigabyte.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from promptkit.errors import ModelError, TokenizationError

__all__ = ["Encoded", "ExtendedEncoding", "StablePrefix", "Tokenizer", "common_prefix"]

# How many tokens back the window may reach for a hard boundary before we tokenize everything.
_WINDOW_SEARCH = 48


@dataclass(frozen=True, slots=True)
class Encoded:
    """A text and its token ids, with each token's start offset (characters) in the text."""

    text: str
    ids: tuple[int, ...]
    starts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class StablePrefix:
    """A tokenized run of pieces: the encoding, each piece's end token, each boundary's moves.

    The stable prefix is one (cached by :meth:`Tokenizer.encode_stable`); the builder extends it
    with the volatile pieces, or starts one empty for a chat prompt. Boundary moves are booked
    here and nowhere else.
    """

    encoded: Encoded
    ends: tuple[int, ...]
    moved: tuple[int, ...]

    def extended(self, tokenizer: Tokenizer, piece: str, *, leading_special: bool) -> StablePrefix:
        ext = tokenizer.extend(self.encoded, piece, leading_special=leading_special)
        ends = self.ends
        if ext.moved_tokens:
            # Tokens that merged across the boundary now belong to the new piece.
            cut = len(self.encoded.ids) - ext.moved_tokens
            ends = tuple(min(e, cut) for e in ends)
        return StablePrefix(
            ext.encoded, (*ends, len(ext.encoded.ids)), (*self.moved, ext.moved_tokens)
        )


@dataclass(frozen=True, slots=True)
class ExtendedEncoding:
    """The result of :meth:`Tokenizer.extend`: the whole encoding and what the boundary did.

    ``moved_tokens`` is how many trailing tokens of the base changed because the boundary merged
    with the appended text (0 when the boundary is safe).
    """

    encoded: Encoded
    moved_tokens: int
    checked: str  # "window" (fast path) or "full" (whole text re-tokenized)


class Tokenizer:
    """The model's tokenizer and chat template, with a cache for stable prefixes.

    Args:
        hf_tokenizer: a ``transformers`` fast tokenizer.
        name: where it came from (for messages).
        cache_size: how many tokenized stable prefixes to keep.
        cache_bytes: the most memory (estimated) those prefixes may hold.
    """

    def __init__(
        self,
        hf_tokenizer: Any,
        *,
        name: str = "tokenizer",
        cache_size: int = 256,
        cache_bytes: int = 256 * 2**20,
    ) -> None:
        backend = getattr(hf_tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise TokenizationError(
                f"{name}: promptkit needs a fast (Rust) tokenizer with tokenizer.json; "
                "save the tokenizer with a recent transformers to get one"
            )
        self.hf = hf_tokenizer
        self.name = name
        self._backend = backend
        self._cache: OrderedDict[bytes, StablePrefix] = OrderedDict()
        self._cache_size = cache_size
        self._cache_bytes = cache_bytes
        self._cached_bytes = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self.bos_token_id: int | None = hf_tokenizer.bos_token_id
        self.eos_token_id: int | None = hf_tokenizer.eos_token_id
        plain = backend.encode("a", add_special_tokens=False).ids
        with_special = backend.encode("a", add_special_tokens=True).ids
        #: ids the tokenizer puts in front of a plain (non-chat) prompt, e.g. a BOS.
        self.leading_special_ids: tuple[int, ...] = (
            tuple(with_special[: max(0, len(with_special) - len(plain))])
            if with_special[-len(plain) :] == plain
            else ()
        )
        self._special_texts = frozenset(
            str(t) for t in hf_tokenizer.all_special_tokens
        ) | frozenset(str(t) for t in getattr(hf_tokenizer, "added_tokens_decoder", {}).values())
        # Computed now, not in the first request: it serializes the whole tokenizer (~40 ms).
        _ = self.fingerprint

    @classmethod
    def from_dir(cls, path: str | os.PathLike[str], **kwargs: Any) -> Tokenizer:
        """Load the tokenizer of a local Hugging Face model directory (offline)."""
        directory = Path(path)
        if not directory.is_dir():
            raise ModelError(f"tokenizer directory {str(directory)!r} does not exist")
        try:
            from transformers import AutoTokenizer

            hf = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        except Exception as exc:
            raise ModelError(f"cannot load the tokenizer from {str(directory)!r}: {exc}") from exc
        return cls(hf, name=str(directory), **kwargs)

    @cached_property
    def fingerprint(self) -> str:
        """Identifies the tokenizer's behaviour: vocabulary, merges, normalizer, special tokens."""
        state = self._backend.to_str()
        digest = hashlib.blake2b(state.encode(), digest_size=8)
        digest.update(json.dumps(sorted(self._special_texts)).encode())
        return digest.hexdigest()

    # -- encoding ------------------------------------------------------------------------

    def encode(self, text: str, *, leading_special: bool = False) -> Encoded:
        """Tokenize ``text`` whole (no cache). ``leading_special`` adds e.g. a BOS in front."""
        enc = self._backend.encode(text, add_special_tokens=False)
        lead = self.leading_special_ids if leading_special else ()
        return Encoded(
            text=text,
            ids=lead + tuple(enc.ids),
            starts=(0,) * len(lead) + tuple(start for start, _ in enc.offsets),
        )

    def encode_stable(
        self, pieces: Sequence[str], *, leading_special: bool = False
    ) -> StablePrefix:
        """Tokenize consecutive stable pieces, each boundary checked, through the LRU.

        Cache keys chain (``key_i = H(key_{i-1}, piece_i)``), so a request whose stable pieces were
        seen before costs one hash of their text and one dictionary lookup; a new session
        document after a cached static head is appended to the cached head (window check).
        """
        keys: list[bytes] = []
        key = hashlib.blake2b(
            f"{self.fingerprint}|{leading_special}".encode(), digest_size=16
        ).digest()
        for piece in pieces:
            key = hashlib.blake2b(key + piece.encode(), digest_size=16).digest()
            keys.append(key)
        start = len(pieces)
        found: StablePrefix | None = None
        while start > 0:
            found = self._cache.get(keys[start - 1])
            if found is not None:
                self._cache.move_to_end(keys[start - 1])
                break
            start -= 1
        if start == len(pieces) and found is not None:
            self.cache_hits += 1
            return found
        self.cache_misses += 1
        prefix = found or StablePrefix(
            Encoded(
                "",
                self.leading_special_ids if leading_special else (),
                (0,) * len(self.leading_special_ids) if leading_special else (),
            ),
            (),
            (),
        )
        for index in range(start, len(pieces)):
            prefix = prefix.extended(self, pieces[index], leading_special=leading_special)
            self._remember(keys[index], prefix)
        return prefix

    @property
    def cached_bytes(self) -> int:
        """Estimated bytes held by the stable-prefix cache."""
        return self._cached_bytes

    def _remember(self, key: bytes, prefix: StablePrefix) -> None:
        old = self._cache.pop(key, None)
        if old is not None:
            self._cached_bytes -= _size(old)
        self._cache[key] = prefix
        self._cached_bytes += _size(prefix)
        while len(self._cache) > 1 and (
            len(self._cache) > self._cache_size or self._cached_bytes > self._cache_bytes
        ):
            _, evicted = self._cache.popitem(last=False)
            self._cached_bytes -= _size(evicted)

    def extend(
        self, base: Encoded, text: str, *, leading_special: bool = False
    ) -> ExtendedEncoding:
        """Encode ``base.text + text`` reusing ``base``'s ids; see the module docstring."""
        if not text:
            return ExtendedEncoding(base, 0, "window")
        if not base.text:
            return ExtendedEncoding(self.encode(text, leading_special=leading_special), 0, "full")
        window_token = self._window_start(base)
        full_text = base.text + text
        if window_token is not None:
            char = base.starts[window_token]
            enc = self._backend.encode(full_text[char:], add_special_tokens=False)
            kept = base.ids[window_token:]
            if tuple(enc.ids[: len(kept)]) == kept:
                ids = base.ids + tuple(enc.ids[len(kept) :])
                starts = base.starts + tuple(char + s for s, _ in enc.offsets[len(kept) :])
                return ExtendedEncoding(Encoded(full_text, ids, starts), 0, "window")
        whole = self.encode(full_text, leading_special=leading_special)
        moved = len(base.ids) - common_prefix(base.ids, whole.ids)
        return ExtendedEncoding(whole, moved, "full")

    def _window_start(self, base: Encoded) -> int | None:
        """The latest token index where re-tokenization can safely start, if one is near.

        Pre-tokenizers (GPT-2 style regexes, SentencePiece's word split) always split before a
        word that starts with a blank, after a newline, and around special tokens. A window
        starting there re-tokenizes identically; :meth:`extend` verifies that anyway.
        """
        text = base.text
        stop = max(0, len(base.ids) - _WINDOW_SEARCH)
        # Never start on the very last token: it is the one a merge would change.
        for index in range(len(base.ids) - 2, stop - 1, -1):
            char = base.starts[index]
            if char == 0 or char >= len(text):
                continue
            here, before = text[char], text[char - 1]
            if before == "\n" and not here.isspace():
                return index
            if (
                here == " "
                and not before.isspace()
                and char + 1 < len(text)
                and not text[char + 1].isspace()
            ):
                return index
            if here == "<" and any(text.startswith(s, char) for s in self._special_texts):
                return index
        return None

    @cached_property
    def control_texts(self) -> frozenset[str]:
        """Texts this tokenizer reads as control tokens wherever they occur in a text.

        Its special tokens, and added tokens that look like markup (``<think>``, ``[INST]``);
        added tokens that are plain words or blanks are ordinary text to the model.
        """
        added = getattr(self.hf, "added_tokens_decoder", {}).values()
        markup = {
            str(t)
            for t in added
            if getattr(t, "special", False)
            or (str(t)[:1] in "<[" and str(t)[-1:] in ">]" and len(str(t)) > 2)
        }
        return frozenset(str(t) for t in self.hf.all_special_tokens) | markup

    def decode(self, ids: tuple[int, ...] | list[int]) -> str:
        """Token ids back to text (special tokens kept)."""
        return str(self._backend.decode(list(ids), skip_special_tokens=False))


def _size(prefix: StablePrefix) -> int:
    # A str of n ASCII characters holds ~n bytes (up to 4n); ids and offsets are tuples of
    # pointers to ints (8 + 32 bytes each, small ints shared).
    encoded = prefix.encoded
    return len(encoded.text) * (1 if encoded.text.isascii() else 4) + 80 * len(encoded.ids)


def common_prefix(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the common prefix of two id tuples (or strings)."""
    n = min(len(a), len(b))
    lo = 0
    # Compare in chunks first: prompts usually share long runs, and slices compare in C.
    step = 256
    while lo + step <= n and a[lo : lo + step] == b[lo : lo + step]:
        lo += step
    while lo < n and a[lo] == b[lo]:
        lo += 1
    return lo
