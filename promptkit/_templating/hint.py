"""A heuristic finding of the template analysis, before it becomes a lint finding."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Hint"]


@dataclass(frozen=True, slots=True)
class Hint:
    """A heuristic finding: rule id, line, message and the variable it is about."""

    rule: str
    line: int
    message: str
    variable: str | None = None
