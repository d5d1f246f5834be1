"""Explaining cache misses down to the template line and variable.

:func:`locate_token` answers "which segment, and which template expression or text, produced
token *i* of this prompt": it re-renders the prompt's source in tracking mode and maps the token
back through normalization and chat scaffolding. Drift explanations (:func:`explain_divergence`),
``promptkit check`` and the pytest plugin (both through :mod:`promptkit.lint.tokens`) all ask it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from promptkit._built_prompt import BuiltPrompt, SegmentSpan
from promptkit._templating.environment import TrackedExpression
from promptkit._templating.prompt_template import TrackedSpan
from promptkit._tenancy import salt_digest
from promptkit._tokenization import Tokenizer
from promptkit.reporting.records import MissExplanation

__all__ = [
    "TokenOrigin",
    "changed_variables",
    "explain_divergence",
    "explain_eviction",
    "explain_unexpected_miss",
    "locate_token",
]

_CONTEXT_TOKENS = 3
_MISSING = object()


def changed_variables(a: Mapping[str, Any], b: Mapping[str, Any]) -> set[str]:
    """Names whose values differ between two prompts' variables (or that only one has)."""
    return {k for k in set(a) | set(b) if a.get(k, _MISSING) != b.get(k, _MISSING)}


@dataclass(frozen=True, slots=True)
class TokenOrigin:
    """What produced one token: its segment, and the tracked expression or text, if known.

    ``tracked`` is ``None`` when the source has no tracked render (a conversation's messages),
    when rendering failed, or for chat-template scaffolding (``scaffolding`` then says so).
    """

    index: int
    segment: SegmentSpan | None
    tracked: TrackedExpression | None = None
    scaffolding: bool = False

    def describe(self) -> str:
        """Where the token is, for messages: ``in segment 'doc', expression on line 7``."""
        if self.segment is None:
            return "in the prompt"
        where = f"in segment {self.segment.name!r}"
        if self.tracked is not None:
            return f"{where}, {self.tracked.kind} on line {self.tracked.line}"
        return f"{where} (chat template scaffolding)" if self.scaffolding else where


def locate_token(prompt: BuiltPrompt, index: int, *, tokenizer: Tokenizer) -> TokenOrigin:
    """The origin of token ``index`` of ``prompt`` (its end, if ``index`` is past the last)."""
    span = prompt.segment_at_token(index) or (prompt.segments[-1] if prompt.segments else None)
    if span is None:
        return TokenOrigin(index, None)
    position = next(i for i, s in enumerate(prompt.segments) if s.name == span.name)
    try:
        raw_texts, tracked = prompt.source.render_tracked(prompt.variables)
    except Exception:  # an explanation must never break what asked for it
        return TokenOrigin(index, span)
    if position >= len(raw_texts):
        return TokenOrigin(index, span)
    decoded = tokenizer.decode(prompt.token_ids[span.token_start : min(index, span.token_end)])
    char = span.char_start + len(decoded)
    if char < span.text_start:  # the role header before the segment's own text
        return TokenOrigin(index, span, scaffolding=True)
    # Map the position in the normalized, chat-wrapped text back into the raw segment text by
    # line and column: normalization only changes line ends and trailing blanks.
    segment_text = prompt.text[span.text_start : span.char_end]
    row, col = _line_col(segment_text, min(char - span.text_start, len(segment_text)))
    found = _innermost(tracked, position, _offset(raw_texts[position], row, col))
    if found is None:
        return TokenOrigin(index, span, scaffolding=True)
    return TokenOrigin(index, span, found.origin)


def _line_col(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    line = before.count("\n")
    return line, offset - (before.rfind("\n") + 1)


def _offset(text: str, line: int, col: int) -> int:
    start = 0
    for _ in range(line):
        found = text.find("\n", start)
        if found < 0:
            return len(text)
        start = found + 1
    return min(start + col, len(text))


def _innermost(spans: list[TrackedSpan], segment: int, offset: int) -> TrackedSpan | None:
    covering = [
        s for s in spans if s.segment == segment and s.start <= offset < max(s.end, s.start + 1)
    ]
    return min(covering, key=lambda s: s.end - s.start) if covering else None


def explain_divergence(
    *,
    ours: BuiltPrompt,
    theirs: BuiltPrompt,
    theirs_id: int | None,
    position: int,
    tokenizer: Tokenizer,
) -> MissExplanation:
    """Explain why ``ours`` stops matching ``theirs`` (an earlier prompt) at token ``position``."""
    if ours.tokenizer_fingerprint != theirs.tokenizer_fingerprint:
        return MissExplanation(
            cause="tokenizer changed", position=position, compared_with=theirs_id
        )
    if ours.chat_template_fingerprint != theirs.chat_template_fingerprint:
        return MissExplanation(
            cause="chat template changed", position=position, compared_with=theirs_id
        )
    lo = max(0, position - _CONTEXT_TOKENS)
    ours_text = tokenizer.decode(ours.token_ids[lo : position + _CONTEXT_TOKENS])
    theirs_text = tokenizer.decode(theirs.token_ids[lo : position + _CONTEXT_TOKENS])
    span = ours.segment_at_token(position)
    if span is None:
        return MissExplanation(
            cause="prompt ended",
            position=position,
            compared_with=theirs_id,
            ours=ours_text,
            theirs=theirs_text,
        )
    source = ours.source
    changed = changed_variables(ours.variables, theirs.variables)
    segment_vars = source.segment_variables.get(span.name, frozenset())
    origin = locate_token(ours, position, tokenizer=tokenizer)
    line = variable = expression = None
    if origin.tracked is not None:
        line = origin.tracked.line
        if origin.tracked.kind == "expression":
            expression = origin.tracked.source
            named = [o for o in map(source.derived_origin, origin.tracked.names) if o is not None]
            variable = next((o for o in named if o in changed), named[0] if named else None)
    if variable is None:
        variable = next(iter(sorted(changed & segment_vars)), None)
    if line is None and variable is not None:
        lines = source.variable_lines(variable)
        line = lines[0] if lines else None
    diff = "\n".join(
        list(
            difflib.unified_diff(
                theirs.text[span.char_start : span.char_end].splitlines(),
                ours.text[span.char_start : span.char_end].splitlines(),
                "earlier",
                "this",
                lineterm="",
                n=1,
            )
        )[:12]
    )
    return MissExplanation(
        cause=(
            "volatile value in a stable segment"
            if changed & segment_vars
            else "unstable rendering with equal variables"
        ),
        position=position,
        compared_with=theirs_id,
        segment=span.name,
        template_file=source.filename,
        line=line,
        variable=variable,
        expression=expression,
        ours=ours_text,
        theirs=theirs_text,
        diff=diff or None,
    )


def explain_unexpected_miss(
    *,
    prompt: BuiltPrompt,
    expected: int,
    actual: int,
    salt: str | None,
    routing_note: str | None = None,
) -> MissExplanation:
    """Explain an engine serving fewer cached tokens than the mirror expected.

    ``routing_note`` is the router's word on why it sent the request where it did (a failover,
    a load bound, a policy blind to prefixes): then that is the cause, not an eviction.
    """
    span = prompt.segment_at_token(actual)
    return MissExplanation(
        cause=(
            f"routed away from the replica holding the prefix: {routing_note}"
            if routing_note
            else "engine served fewer cached tokens than this client sent before: eviction (KV "
            "cache too small), an engine restart or cache reset, or another cache salt"
        ),
        position=actual,
        segment=span.name if span else None,
        template_file=prompt.template_file,
        diff=(
            f"expected {expected} cached tokens, engine reported {actual} "
            f"(salt {salt_digest(salt)})"
        ),
    )


def explain_eviction(
    *, prompt: BuiltPrompt, actual: int, evicted_blocks: int, capacity_blocks: int | None
) -> MissExplanation:
    """Explain a miss the mirror foresaw: blocks of this prefix were evicted for lack of room."""
    holds = f"KV cache holds {capacity_blocks} blocks" if capacity_blocks else "KV cache is full"
    span = prompt.segment_at_token(actual)
    return MissExplanation(
        cause=(
            f"evicted: {holds}, this prefix needed {evicted_blocks} more "
            f"({evicted_blocks * prompt.block_size} tokens); send requests that share a prefix "
            "together (Client.batch orders them) or give the engine more KV cache"
        ),
        position=actual,
        segment=span.name if span else None,
        template_file=prompt.template_file,
    )
