"""The rule catalogue: stable ids, severities, one-line summaries, and the finding type.

Rule ids are a contract: CI configs select and ignore them, inline suppressions name them and
``docs/lint.md`` has one section per id (its anchor is the lower-cased id). Never renumber a
rule; retire an id instead. ``PK0xx`` are about the linter itself, ``PK1xx`` volatile content,
``PK2xx`` serialization, ``PK3xx`` segment order, ``PK4xx`` whitespace, ``PK5xx`` variables,
``PK6xx`` prefix length, ``PK7xx`` the token-level ``promptkit check``, ``PK8xx`` security.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["RULES", "Finding", "Rule", "Severity", "rule"]


class Severity(enum.Enum):
    """How bad a finding is. Both fail CI; ``warning`` marks heuristics that can be wrong."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Rule:
    """One lint or check rule."""

    id: str
    name: str
    severity: Severity
    summary: str

    @property
    def docs(self) -> str:
        """Where the rule is explained, with a bad and a good example."""
        return f"docs/lint.md#{self.id.lower()}"


_E, _W = Severity.ERROR, Severity.WARNING

RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("PK001", "template-error", _E, "the template does not parse or load"),
        Rule("PK002", "bad-suppression", _W, "a suppression comment without reason or rule"),
        Rule("PK101", "volatile-call", _E, "a clock, uuid or random value in a stable segment"),
        Rule("PK102", "volatile-field", _W, "a request id or per-user field in a stable segment"),
        Rule("PK103", "chat-template-clock", _W, "the chat template prints today's date"),
        Rule("PK104", "volatile-variable", _E, "a variable more volatile than its segment"),
        Rule("PK105", "volatile-condition", _E, "stable content depends on a volatile condition"),
        Rule(
            "PK106",
            "volatile-python-value",
            _E,
            "Python passes a clock or uuid into a stable variable",
        ),
        Rule("PK201", "non-canonical-json", _E, "JSON or a repr serialized without sorted keys"),
        Rule("PK202", "unordered-iteration", _W, "dict iteration order in a stable segment"),
        Rule("PK203", "volatile-sort-key", _W, "stable content sorted by a live score or counter"),
        Rule("PK301", "segment-order", _E, "a less stable segment before a more stable one"),
        Rule("PK302", "history-not-append-only", _E, "history rendered so each turn rewrites it"),
        Rule("PK401", "trailing-whitespace", _W, "trailing spaces or tabs"),
        Rule("PK402", "crlf", _W, "CRLF line endings"),
        Rule("PK403", "mixed-indentation", _W, "tabs and spaces mixed in indentation"),
        Rule("PK404", "strip-sensitive-blank-lines", _W, "blank lines a strip() would remove"),
        Rule("PK501", "undeclared-variable", _E, "a variable used but not declared"),
        Rule("PK502", "unused-variable", _W, "a variable declared but never used"),
        Rule("PK601", "short-stable-prefix", _W, "the stable prefix is shorter than the minimum"),
        Rule("PK701", "prefix-not-shared", _E, "samples with equal stable values differ in ids"),
        Rule("PK702", "not-append-only", _E, "a turn's ids do not extend the previous turn's"),
        Rule("PK703", "unsafe-boundary", _W, "tokens merge across a segment boundary"),
        Rule("PK704", "lock-mismatch", _E, "stable prefix or fingerprints differ from the lock"),
        Rule("PK705", "not-locked", _E, "the template has no entry in promptkit.lock"),
        Rule("PK706", "render-error", _E, "a sample does not render"),
        Rule("PK707", "missing-samples", _E, "no NAME.samples.json next to the template"),
        Rule(
            "PK708", "moves-under-perturbation", _E, "the stable prefix moves under a perturbation"
        ),
        Rule(
            "PK801",
            "control-tokens-allowed",
            _W,
            "values may become the model's control tokens (control_tokens='allow')",
        ),
    )
}


def rule(rule_id: str) -> Rule:
    """Look a rule up by id (``KeyError`` for an unknown id is a programming error)."""
    return RULES[rule_id]


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem at one place. ``suppressed`` holds the reason of an inline suppression."""

    rule: str
    path: str
    line: int | None
    message: str
    column: int | None = None
    suppressed: str | None = None

    @property
    def severity(self) -> Severity:
        return RULES[self.rule].severity

    @property
    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.line or 0, self.column or 0, self.rule)
