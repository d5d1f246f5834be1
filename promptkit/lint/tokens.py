"""Token-level stability of one template over its fixtures (PK601, PK701-PK703, PK706, PK708).

Everything here builds real prompts with the real tokenizer and chat template, then compares
token ids -- the only thing the engine's prefix cache compares:

* PK701: samples that agree on every variable of class <= C must share the ids of every segment
  of class <= C; and a sample's stable prefix must not change when its objects' keys arrive in
  another order (a caller's dict order is not part of a prompt's meaning).
* PK702: in a conversation, turn N's ids are a prefix of turn N+1's.
* PK703: no tokens merge across a boundary that ends a stable segment.
* PK601: the shortest stable prefix reaches one KV block and the configured minimum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from promptkit._builder import PromptBuilder
from promptkit._built_prompt import BuiltPrompt
from promptkit._canonical import canonical_json
from promptkit._explain import locate_token
from promptkit._segments import Stability
from promptkit._templating.prompt_template import PromptTemplate
from promptkit._tokenization import common_prefix
from promptkit.errors import PromptkitError, SerializationError, TemplateError
from promptkit.lint._metamorphic import metamorphic_findings
from promptkit.lint.prefix import PrefixPolicy, short_prefix_message
from promptkit.lint.rules import Finding
from promptkit.lint.samples import Fixtures

__all__ = ["Divergence", "Measured", "divergence", "measure"]


@dataclass(frozen=True, slots=True)
class Measured:
    """The prompts one template's fixtures built, and what was wrong with them."""

    prompts: tuple[BuiltPrompt, ...]
    findings: tuple[Finding, ...]


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where two id sequences first differ, told in template terms."""

    index: int
    line: int | None
    where: str
    before: str
    after: str

    def describe(self) -> str:
        return f"token #{self.index} {self.where}: {self.before} became {self.after}"


def first_difference(a: Sequence[int], b: Sequence[int]) -> int | None:
    """Index of the first differing id (or the shorter length), ``None`` if equal."""
    shared = common_prefix(a, b)
    return None if shared == len(a) == len(b) else shared


def _token(builder: PromptBuilder, ids: Sequence[int], index: int) -> str:
    if index >= len(ids):
        return "<end>"
    return f"{builder.tokenizer.decode([ids[index]])!r} (id {ids[index]})"


def divergence(
    builder: PromptBuilder,
    template: PromptTemplate,
    old: Sequence[int],
    new: BuiltPrompt,
    index: int,
) -> Divergence:
    """Where ``new`` stops matching the ``old`` ids, told by :func:`promptkit._explain.locate_token`
    (the template line of the expression or text; else the line of the segment's tag)."""
    origin = locate_token(new, index, tokenizer=builder.tokenizer)
    line = origin.tracked.line if origin.tracked is not None else None
    if line is None and origin.segment is not None:
        name = origin.segment.name
        line = next((s.line for s in template.segments if s.name == name), None)
    return Divergence(
        index,
        line,
        origin.describe(),
        _token(builder, old, index),
        _token(builder, new.token_ids, index),
    )


def _build(
    builder: PromptBuilder, template: PromptTemplate, variables: dict[str, Any], label: str
) -> BuiltPrompt | Finding:
    try:
        return builder.build(template, variables)
    except PromptkitError as exc:
        line = exc.line if isinstance(exc, TemplateError) else None
        detail = exc.detail if isinstance(exc, TemplateError) else str(exc)
        return Finding("PK706", template.filename, line, f"{label} does not build: {detail}")


def measure(
    template: PromptTemplate, fixtures: Fixtures, *, builder: PromptBuilder, policy: PrefixPolicy
) -> Measured:
    """Build every fixture and run the token-level checks (see the module docstring)."""
    findings: list[Finding] = []
    prompts: list[BuiltPrompt] = []
    for i, sample in enumerate(fixtures.samples):
        built = _build(builder, template, sample, f"samples[{i}]")
        if isinstance(built, Finding):
            findings.append(built)
            continue
        prompts.append(built)
        findings += _repeatable(builder, template, sample, built, i)
    if findings:
        return Measured(tuple(prompts), tuple(findings))
    findings += metamorphic_findings(template, fixtures.samples, builder=builder)
    findings += _shared_prefixes(builder, template, fixtures.samples, prompts)
    for c, conversation in enumerate(fixtures.conversations):
        turns: list[BuiltPrompt] = []
        for t, variables in enumerate(conversation):
            built = _build(builder, template, variables, f"conversations[{c}][{t}]")
            if isinstance(built, Finding):
                findings.append(built)
                break
            turns.append(built)
        findings += _append_only(builder, template, c, turns)
        prompts += turns
    findings += _boundaries(template, prompts)
    if prompts and min(p.stable_tokens for p in prompts) < policy.threshold:
        shortest = min(p.stable_tokens for p in prompts)
        line = template.segments[0].line
        findings.append(
            Finding("PK601", template.filename, line, short_prefix_message(shortest, policy))
        )
    return Measured(tuple(prompts), tuple(findings))


def _repeatable(
    builder: PromptBuilder,
    template: PromptTemplate,
    sample: dict[str, Any],
    built: BuiltPrompt,
    index: int,
) -> list[Finding]:
    """The same values -- again, then with object keys reversed -- give the same stable ids."""
    stable = built.token_ids[: built.stable_tokens]
    variants = ((sample, "renders differently each time (a clock or random value)", "pass it in"),)
    for variables, problem, fix in variants:
        again = _build(builder, template, variables, f"samples[{index}]")
        if not isinstance(again, BuiltPrompt):
            return [again]
        moved = first_difference(stable, again.token_ids[: again.stable_tokens])
        if moved is not None:
            d = divergence(builder, template, stable, again, moved)
            message = f"samples[{index}]: the stable prefix {problem} ({d.describe()}); {fix}"
            return [Finding("PK701", template.filename, d.line, message)]
    return []


def _shared_prefixes(
    builder: PromptBuilder,
    template: PromptTemplate,
    samples: Sequence[dict[str, Any]],
    prompts: Sequence[BuiltPrompt],
) -> list[Finding]:
    findings: list[Finding] = []
    levels = sorted({s.stability for s in template.segments if s.stability.is_stable})
    for level in levels:
        names = sorted(n for n, v in template.variables.items() if v.stability <= level)
        groups: dict[str, list[int]] = {}
        for i, sample in enumerate(samples):
            try:
                key = canonical_json({n: sample.get(n) for n in names})
            except SerializationError:  # a callable or another value with no JSON form
                key = f"unique sample {i}"
            groups.setdefault(key, []).append(i)
        for members in groups.values():
            first = prompts[members[0]]
            end = _level_end(first, level)
            for other in members[1:]:
                moved = first_difference(
                    first.token_ids[:end],
                    prompts[other].token_ids[: _level_end(prompts[other], level)],
                )
                if moved is None:
                    continue
                d = divergence(builder, template, first.token_ids, prompts[other], moved)
                findings.append(
                    Finding(
                        "PK701",
                        template.filename,
                        d.line,
                        f"samples[{members[0]}] and samples[{other}] have the same {level.label} "
                        f"values but their {level.label} prefix differs ({d.describe()}): "
                        "something in it is more volatile than declared",
                    )
                )
                return findings
    return findings


def _level_end(prompt: BuiltPrompt, level: Stability) -> int:
    ends = [s.token_end for s in prompt.segments if s.stability <= level]
    return min(max(ends, default=0), prompt.stable_tokens)


def _append_only(
    builder: PromptBuilder, template: PromptTemplate, index: int, turns: Sequence[BuiltPrompt]
) -> list[Finding]:
    for t in range(1, len(turns)):
        previous, current = turns[t - 1].token_ids, turns[t]
        moved = first_difference(previous, current.token_ids[: len(previous)])
        if moved is not None:
            d = divergence(builder, template, previous, current, moved)
            return [
                Finding(
                    "PK702",
                    template.filename,
                    d.line,
                    f"conversations[{index}]: turn {t} does not extend turn {t - 1} "
                    f"({d.describe()}), so no turn reuses the previous turn's cache; render "
                    "history exactly as the previous turn ended",
                )
            ]
    return []


def _boundaries(template: PromptTemplate, prompts: Sequence[BuiltPrompt]) -> list[Finding]:
    findings: list[Finding] = []
    seen: set[str] = set()
    specs = {s.name: i for i, s in enumerate(template.segments)}
    for prompt in prompts:
        for boundary in prompt.boundaries:
            position = specs[boundary.after]
            spec = template.segments[position]
            if boundary.safe or not spec.stability.is_stable or spec.name in seen:
                continue
            seen.add(spec.name)
            following = template.segments[position + 1]
            findings.append(
                Finding(
                    "PK703",
                    template.filename,
                    following.line,
                    f"{boundary.moved_tokens} token(s) at the end of segment {spec.name!r} merge "
                    f"with the start of {following.name!r} and are re-tokenized every request; "
                    f"end {spec.name!r} with a newline or start {following.name!r} with one",
                )
            )
    return findings
