"""Segments and stability classes: the vocabulary of a token-stable prompt.

A prompt is an ordered list of segments. Each has a stability class; from most to least stable:

========= ==========================================================
static    fixed text: system prompt, instructions, few-shot examples
deploy    changes per release: tool schemas, policies
session   per user or conversation: a document, a profile
turn      per conversational turn: history so far
request   per request: the query, the time, request ids
========= ==========================================================

Segments must never become *more* stable further down the prompt: anything after a volatile
segment can never be part of a cached prefix. Everything before the first ``request`` segment is
the *stable prefix*, tokenized once and cached.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["SegmentSpec", "Stability", "VariableSpec"]


class Stability(enum.IntEnum):
    """Stability classes, ordered from most stable (0) to least stable."""

    STATIC = 0
    DEPLOY = 1
    SESSION = 2
    TURN = 3
    REQUEST = 4

    @classmethod
    def parse(cls, name: str) -> Stability:
        """Parse a class name as written in a template (case-insensitive)."""
        try:
            return cls[name.upper()]
        except KeyError:
            choices = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown stability class {name!r}; use one of: {choices}") from None

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def is_stable(self) -> bool:
        """Whether content of this class belongs to the cached stable prefix."""
        return self is not Stability.REQUEST


@dataclass(frozen=True, slots=True)
class VariableSpec:
    """A declared template variable, where it was declared, and how stable its values are."""

    name: str
    stability: Stability
    line: int


@dataclass(frozen=True, slots=True)
class SegmentSpec:
    """A segment as declared in a template: ``{% segment NAME CLASS [role=ROLE] %}``."""

    name: str
    stability: Stability
    line: int
    role: str | None = None
