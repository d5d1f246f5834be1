"""RAG context assembly: the same retrieved set always renders to the same tokens.

Retrievers return chunks in score order, which changes with every query even when the set does
not -- and so does the prompt, so nothing after the first differing chunk is reused. promptkit
orders chunks by a stable key (document, then position) by default, de-duplicates them, and
frames them identically (``templates/rag_answer.j2``). ``order="relevance"`` keeps score order
for models that need the best chunk first; it costs the cache whenever scores reorder.

:class:`BM25Index` is a small, dependency-free lexical retriever for the examples and tests.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["BM25Index", "Chunk", "assemble_context"]

_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Chunk:
    """A retrieved piece of a document. ``(doc_id, position)`` is its stable identity."""

    doc_id: str
    position: int
    title: str
    text: str
    score: float = 0.0

    def as_variables(self) -> dict[str, str]:
        """What the shipped ``rag_answer`` template reads (no score: it must not be rendered)."""
        return {"title": self.title, "text": self.text}


def assemble_context(
    chunks: Iterable[Chunk],
    *,
    order: Literal["document", "relevance"] = "document",
    max_chunks: int | None = None,
) -> list[dict[str, str]]:
    """De-duplicate, choose ``max_chunks`` by score, then order them stably for the prompt."""
    best: dict[tuple[str, int], Chunk] = {}
    for chunk in chunks:
        key = (chunk.doc_id, chunk.position)
        if key not in best or chunk.score > best[key].score:
            best[key] = chunk
    chosen = sorted(best.values(), key=lambda c: (-c.score, c.doc_id, c.position))
    if max_chunks is not None:
        chosen = chosen[:max_chunks]
    if order == "document":
        chosen.sort(key=lambda c: (c.doc_id, c.position))
    return [c.as_variables() for c in chosen]


def _terms(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


class BM25Index:
    """Okapi BM25 over a list of chunks (k1=1.5, b=0.75)."""

    def __init__(self, chunks: Sequence[Chunk], *, k1: float = 1.5, b: float = 0.75) -> None:
        self.chunks = list(chunks)
        self.k1 = k1
        self.b = b
        self._tf = [Counter(_terms(f"{c.title} {c.text}")) for c in self.chunks]
        self._len = [sum(tf.values()) for tf in self._tf]
        self._avg = sum(self._len) / max(1, len(self._len))
        df: Counter[str] = Counter()
        for tf in self._tf:
            df.update(tf.keys())
        n = len(self.chunks)
        self._idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def search(self, query: str, *, k: int = 4) -> list[Chunk]:
        """The ``k`` best chunks with their scores, best first."""
        terms = _terms(query)
        scored = []
        for index, tf in enumerate(self._tf):
            score = 0.0
            for term in terms:
                freq = tf.get(term, 0)
                if freq:
                    norm = self.k1 * (1 - self.b + self.b * self._len[index] / self._avg)
                    score += self._idf.get(term, 0.0) * freq * (self.k1 + 1) / (freq + norm)
            if score > 0:
                chunk = self.chunks[index]
                scored.append(Chunk(chunk.doc_id, chunk.position, chunk.title, chunk.text, score))
        scored.sort(key=lambda c: (-c.score, c.doc_id, c.position))
        return scored[:k]
