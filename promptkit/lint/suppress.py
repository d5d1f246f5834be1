"""Inline suppressions: ``{# promptkit: ignore[PK101] reason #}`` (``# promptkit: ...`` in .py).

A suppression covers findings on the lines the comment spans and the line after it, so it can
stand at the end of the offending line or on its own line above it. The reason is required:
a suppression nobody can justify in review is a bug waiting for its cache miss. Comments are
found with Jinja's own lexer (and Python's ``tokenize``), never by searching the source.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass, replace

from jinja2.exceptions import TemplateSyntaxError as JinjaSyntaxError

from promptkit._templating.environment import template_environment
from promptkit.lint.rules import RULES, Finding

__all__ = ["Suppression", "apply_suppressions", "jinja_suppressions", "python_suppressions"]

# Matches the *text of one comment*, not template source.
_DIRECTIVE = re.compile(r"^\s*promptkit:\s*ignore\[(?P<rules>[^\]]*)\]\s*(?P<reason>.*?)\s*$", re.S)


@dataclass(frozen=True, slots=True)
class Suppression:
    rules: frozenset[str]
    first_line: int
    last_line: int
    reason: str

    def covers(self, finding: Finding) -> bool:
        return (
            finding.rule in self.rules
            and finding.line is not None
            and self.first_line <= finding.line <= self.last_line + 1
        )


def _parse(text: str, line: int, end_line: int) -> tuple[list[Suppression], list[str]]:
    match = _DIRECTIVE.match(text)
    if match is None:
        return [], []
    rules = frozenset(r.strip().upper() for r in match["rules"].split(",") if r.strip())
    problems = [f"unknown rule {r!r}" for r in sorted(rules - RULES.keys())]
    if not rules:
        problems.append("no rule id between the brackets")
    if not match["reason"]:
        problems.append("no reason; write why after the brackets")
    if problems:
        return [], problems
    return [Suppression(rules, line, end_line, match["reason"])], []


def jinja_suppressions(
    source: str, *, path: str, line_offset: int = 0
) -> tuple[list[Suppression], list[Finding]]:
    """Suppressions in a template's ``{# #}`` comments, and PK002 for malformed ones."""
    found: list[Suppression] = []
    bad: list[Finding] = []
    try:
        tokens = list(template_environment().lex(source))
    except JinjaSyntaxError:
        return [], []  # PK001 reports the syntax error
    for line, kind, value in tokens:
        if kind != "comment":
            continue
        start = line + line_offset
        sups, problems = _parse(value, start, start + value.count("\n"))
        found += sups
        bad += [Finding("PK002", path, start, f"bad suppression: {p}") for p in problems]
    return found, bad


def python_suppressions(source: str, *, path: str) -> tuple[list[Suppression], list[Finding]]:
    """Suppressions in a Python file's ``#`` comments, and PK002 for malformed ones."""
    found: list[Suppression] = []
    bad: list[Finding] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                line = tok.start[0]
                sups, problems = _parse(tok.string.lstrip("#"), line, line)
                found += sups
                bad += [Finding("PK002", path, line, f"bad suppression: {p}") for p in problems]
    except (tokenize.TokenError, SyntaxError):
        return [], []
    return found, bad


def apply_suppressions(
    findings: Iterable[Finding], suppressions: list[Suppression]
) -> list[Finding]:
    """Mark findings a suppression covers (they stay in the report, with the reason)."""
    out: list[Finding] = []
    for finding in findings:
        match = next((s for s in suppressions if s.covers(finding)), None)
        out.append(finding if match is None else replace(finding, suppressed=match.reason))
    return out
