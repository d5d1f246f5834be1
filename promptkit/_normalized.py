"""Normalized stable text, remembered: the builder's hot path normalizes the same document for
every question over it.

:func:`promptkit._canonical.normalize_text` walks every line of a segment (a 4,000-token document
is ~1,000 lines); a stable segment renders to the same text request after request, so its
normalized form is looked up instead (one hash and one compare of the string). Bounded by
characters, least recently used first out.
"""

from __future__ import annotations

from collections import OrderedDict

from promptkit._canonical import normalize_text

__all__ = ["NormalizedTexts"]


class NormalizedTexts:
    """``normalize_text`` with an LRU of results, at most ``max_chars`` characters of keys."""

    def __init__(self, *, max_chars: int = 4_000_000) -> None:
        self.max_chars = max_chars
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._chars = 0

    def __call__(self, text: str) -> str:
        found = self._texts.get(text)
        if found is not None:
            self._texts.move_to_end(text)
            return found
        normalized = normalize_text(text)
        if len(text) <= self.max_chars:
            self._texts[text] = normalized
            self._chars += len(text)
            while self._chars > self.max_chars:
                old, _ = self._texts.popitem(last=False)
                self._chars -= len(old)
        return normalized
