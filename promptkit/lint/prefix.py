"""PK601: is the stable prefix long enough to be worth caching?

vLLM caches whole KV blocks only, so a stable prefix shorter than one block is never reused, and
a team may want a larger floor. Statically the prefix is known exactly only when every stable
segment is literal text; then it is measured with the real tokenizer and chat template.
Otherwise ``promptkit check`` measures it on the sample variables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from promptkit._builder import PromptBuilder
from promptkit._templating.prompt_template import PromptTemplate, RenderedSegment
from promptkit._tokenization import Tokenizer
from promptkit.lint.rules import Finding

__all__ = ["PrefixPolicy", "literal_prefix_findings", "short_prefix_message"]


@dataclass(frozen=True, slots=True)
class PrefixPolicy:
    """How PK601 measures: the tokenizer (loaded on first use), block size and floor."""

    tokenizer: Callable[[], Tokenizer]
    block_size: int
    minimum: int = 0

    @property
    def threshold(self) -> int:
        return max(self.block_size, self.minimum)

    def builder(self) -> PromptBuilder:
        return PromptBuilder(self.tokenizer(), block_size=self.block_size)


def short_prefix_message(tokens: int, policy: PrefixPolicy) -> str:
    return (
        f"the stable prefix is {tokens} tokens, under {policy.threshold} (one KV block is "
        f"{policy.block_size}; the configured minimum is {policy.minimum}): it is never or "
        "barely reused; put more shared text (instructions, examples, the document) before the "
        "volatile part, or lower min-prefix-tokens"
    )


def literal_prefix_findings(template: PromptTemplate, *, prefix: PrefixPolicy) -> list[Finding]:
    """PK601 when the stable segments are literal text (exact) or absent (zero tokens)."""
    segments = template.segments
    if not segments:
        return []
    stable = [spec for spec in segments if spec.stability.is_stable]
    line = segments[0].line
    if not stable:
        return [Finding("PK601", template.filename, line, short_prefix_message(0, prefix))]
    texts = template.analysis.literal_texts
    if any(texts[spec.name] is None for spec in stable):
        return []  # depends on variables: `promptkit check` measures it on samples
    # The first volatile segment gets a placeholder (it ends the prefix); later ones do not matter.
    rendered = [RenderedSegment(spec, texts[spec.name] or "") for spec in stable]
    if len(segments) > len(stable):
        rendered.append(RenderedSegment(segments[len(stable)], "?"))
    built = prefix.builder().build_rendered(template, rendered, {})
    if built.stable_tokens >= prefix.threshold:
        return []
    return [
        Finding("PK601", template.filename, line, short_prefix_message(built.stable_tokens, prefix))
    ]
