"""Finding and explaining cache misses down to the template line and variable.

:class:`DriftDetector` remembers recent prompts per template. A new prompt is compared with the
earlier one it shares the most tokens with; the template's stability declarations say how much
they *should* share (everything up to the first segment that reads a session/turn variable whose
value changed). Sharing less is ``DRIFT``. The explanation re-renders the template in tracking
mode to find the expression or text that produced the first differing token.
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Mapping
from typing import Any

from promptkit.prompt import BuiltPrompt
from promptkit.report import MissExplanation
from promptkit.segments import Stability
from promptkit.template import PromptTemplate, TrackedSpan
from promptkit.tokenization import Tokenizer, common_prefix

__all__ = ["DriftDetector", "explain_divergence", "explain_unexpected_miss"]

_CONTEXT_TOKENS = 3


def _changed(a: Mapping[str, Any], b: Mapping[str, Any]) -> set[str]:
    return {k for k in set(a) | set(b) if a.get(k, _MISSING) != b.get(k, _MISSING)}


_MISSING = object()


def promised_shared_tokens(template: PromptTemplate, ours: BuiltPrompt, theirs: BuiltPrompt) -> int:
    """Tokens two prompts from ``template`` must share given which variables changed.

    Static and deploy variables are not allowed to change between requests of one process, so
    their change does not lower the promise (it is reported as drift). A changed session or turn
    variable legitimately ends sharing at the first segment that reads it.
    """
    if ours.tokenizer_fingerprint != theirs.tokenizer_fingerprint:
        return 0
    changed = _changed(ours.variables, theirs.variables)
    legit = {v for v in changed if template.variables[v].stability >= Stability.SESSION}
    promised = 0
    for mine, other in zip(ours.segments, theirs.segments, strict=False):
        if not mine.stability.is_stable:
            break
        if template.segment_variables.get(mine.name, frozenset()) & legit:
            break
        promised = min(mine.token_end, other.token_end)
    return min(promised, ours.stable_tokens, theirs.stable_tokens)


class DriftDetector:
    """Remembers the last ``history`` prompts per template and flags drift."""

    def __init__(self, tokenizer: Tokenizer, *, history: int = 32) -> None:
        self.tokenizer = tokenizer
        self.history = history
        self._seen: dict[str, deque[tuple[int, BuiltPrompt]]] = {}

    def check(
        self, *, request_id: int, template: PromptTemplate, prompt: BuiltPrompt
    ) -> MissExplanation | None:
        """Return an explanation if ``prompt`` drifted from its closest earlier sibling."""
        # Keyed by the template's content: every unnamed template is called "<string>".
        seen = self._seen.setdefault(template.fingerprint, deque(maxlen=self.history))
        explanation = None
        if seen:
            shared, best_id, best = max(
                ((common_prefix(p.token_ids, prompt.token_ids), i, p) for i, p in seen),
                key=lambda candidate: candidate[0],
            )
            promised = promised_shared_tokens(template, prompt, best)
            # Only a loss the engine can see matters: compare in whole blocks.
            block = prompt.block_size
            if shared // block < promised // block:
                explanation = explain_divergence(
                    template=template,
                    ours=prompt,
                    theirs=best,
                    theirs_id=best_id,
                    position=shared,
                    tokenizer=self.tokenizer,
                )
        seen.append((request_id, prompt))
        return explanation


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
    template: PromptTemplate,
    ours: BuiltPrompt,
    theirs: BuiltPrompt,
    theirs_id: int | None,
    position: int,
    tokenizer: Tokenizer,
) -> MissExplanation:
    """Explain why ``ours`` stops matching ``theirs`` at token ``position``."""
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
    index = next(i for i, s in enumerate(ours.segments) if s.name == span.name)
    char = len(tokenizer.decode(ours.token_ids[:position]))
    changed = _changed(ours.variables, theirs.variables)
    segment_vars = template.segment_variables.get(span.name, frozenset())
    line: int | None = None
    variable: str | None = None
    expression: str | None = None
    cause = (
        "volatile value in a stable segment"
        if changed & segment_vars
        else "unstable rendering with equal variables"
    )
    try:
        raw_texts, spans = template.render_tracked(ours.variables)
    except Exception:  # explanation must never break a request
        raw_texts, spans = [], []
    if raw_texts:
        # Map the position in the normalized, chat-wrapped text back into the raw segment text.
        within = max(0, char - span.text_start)
        segment_text = ours.text[span.text_start : span.char_end]
        row, col = _line_col(segment_text, min(within, len(segment_text)))
        raw_offset = _offset(raw_texts[index], row, col)
        tracked = _innermost(spans, index, raw_offset)
        if tracked is not None:
            line = tracked.origin.line
            if tracked.origin.kind == "expression":
                expression = tracked.origin.source
                origins = [template.derived_origin(n) for n in tracked.origin.names]
                named = [o for o in origins if o is not None]
                variable = next((o for o in named if o in changed), named[0] if named else None)
    if variable is None:
        variable = next(iter(sorted(changed & segment_vars)), None)
    if line is None and variable is not None:
        lines = template.variable_lines(variable)
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
        cause=cause,
        position=position,
        compared_with=theirs_id,
        segment=span.name,
        template_file=template.filename,
        line=line,
        variable=variable,
        expression=expression,
        ours=ours_text,
        theirs=theirs_text,
        diff=diff or None,
    )


def explain_unexpected_miss(
    *, prompt: BuiltPrompt, expected: int, actual: int, salt: str | None
) -> MissExplanation:
    """Explain an engine serving fewer tokens than the mirror expected."""
    span = prompt.segment_at_token(actual)
    return MissExplanation(
        cause=(
            "engine served fewer cached tokens than this client sent before: eviction (KV cache "
            "too small), an engine restart or cache reset, or another cache salt"
        ),
        position=actual,
        segment=span.name if span else None,
        template_file=prompt.template_file,
        diff=f"expected {expected} cached tokens, engine reported {actual} (salt={salt!r})",
    )
