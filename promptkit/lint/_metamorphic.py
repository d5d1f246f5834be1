"""The metamorphic stability check (PK708): perturb what must not matter, watch the token ids.

Static rules see names and shapes; this check runs the template the way production will. For
each sample it builds the prompt once under a frozen clock and a fixed random seed, then again
under perturbations derived from the stability classes, and compares the token ids of the part
of the prompt the perturbation must not touch:

* every ``session``/``turn``/``request`` variable changed: the segments more stable than it;
* the key order of every mapping reversed, recursively; every set iterated in another order (what
  another ``PYTHONHASHSEED`` does, made deterministic and in-process); tool/plugin/tag lists in
  another order; a per-request field inside a stabler object (``last_seen_at``, ``score``)
  changed: the whole stable prefix;
* the clock advanced by a second, by a day and across midnight -- for the template and for any
  Python callable it is given -- and ``random`` reseeded: the whole stable prefix;
* a ``turn`` history grown by one turn (after padding it so windows slide): the turn N prompt
  must be a prefix of turn N+1's (append-only).

Prompts are built with the real tokenizer and, for role templates, the model's chat template.
The first moved token is told in template terms by :func:`promptkit._explain.locate_token`:
"moves when dict key order changes: `profile` on line 7".
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import time_machine

from promptkit._builder import PromptBuilder
from promptkit._built_prompt import BuiltPrompt
from promptkit._explain import locate_token
from promptkit._segments import Stability
from promptkit._templating.prompt_template import PromptTemplate
from promptkit._tokenization import common_prefix
from promptkit.errors import PromptkitError
from promptkit.lint import _perturb as perturb
from promptkit.lint.rules import Finding

__all__ = ["CLOCK", "Probe", "frozen", "metamorphic_findings", "probes"]

#: The frozen clock every build runs under (a weekday noon, far from midnight).
CLOCK = dt.datetime(2025, 3, 14, 12, 0, 0, tzinfo=dt.UTC)
_MIDNIGHT = dt.datetime(2025, 3, 14, 23, 59, 59, tzinfo=dt.UTC)
_SEED = 0


@contextmanager
def frozen(clock: dt.datetime, seed: int) -> Iterator[None]:
    """Run with the clock stopped at ``clock`` and ``random`` seeded (its state is restored)."""
    state = random.getstate()
    random.seed(seed)
    try:
        with time_machine.travel(clock, tick=False):
            yield
    finally:
        random.setstate(state)


@dataclass(frozen=True, slots=True)
class Probe:
    """One perturbation of one sample, and the part of the prompt it must leave alone.

    ``level``: segments strictly more stable than it must keep their ids (``REQUEST``: the whole
    stable prefix). ``base`` replaces the sample as the reference (a padded history);
    ``append_only`` compares the reference's turn segments as a prefix of the perturbed prompt.
    """

    what: str
    fix: str
    variables: Mapping[str, Any]
    level: Stability = Stability.REQUEST
    culprit: str | None = None
    clock: dt.datetime = CLOCK
    seed: int = _SEED
    base: Mapping[str, Any] | None = None
    base_clock: dt.datetime = CLOCK
    append_only: bool = False
    kind: str = field(default="")


_ORDER_FIX = "serialize with |tojson (canonical) and iterate mappings with |dictsort"
_CLOCK_FIX = (
    "pass the time as a request variable and render it in a request segment (do not call the "
    "clock in the template or in callables it is given)"
)


def _replaced(sample: Mapping[str, Any], name: str, value: Any) -> dict[str, Any]:
    out = dict(sample)
    out[name] = value
    return out


def probes(template: PromptTemplate, sample: Mapping[str, Any]) -> Iterator[Probe]:
    """Every perturbation of ``sample`` that must not move the stable prefix (or its level)."""
    for label, clock, base_clock in (
        ("the clock advances by a second", CLOCK + dt.timedelta(seconds=1), CLOCK),
        ("the clock advances by a day", CLOCK + dt.timedelta(days=1), CLOCK),
        ("the clock crosses midnight", _MIDNIGHT + dt.timedelta(seconds=2), _MIDNIGHT),
    ):
        yield Probe(label, _CLOCK_FIX, sample, clock=clock, base_clock=base_clock, kind="clock")
    yield Probe(
        "random is reseeded",
        "pick deterministically (or pass the choice in as a request variable)",
        sample,
        seed=_SEED + 1,
        kind="random",
    )
    for name, spec in template.variables.items():
        if name not in sample:
            continue
        value = sample[name]
        yield from _order_probes(name, value, sample)
        if spec.stability >= Stability.SESSION:
            varied, changed = perturb.vary(value)
            if changed:
                yield Probe(
                    f"the {spec.stability.label} variable `{name}` changes",
                    f"`{name}` is declared {spec.stability.label}: render what depends on it "
                    f"only in {spec.stability.label} segments (check macro defaults, "
                    "namespace() attributes and set/for that carry it up)",
                    _replaced(sample, name, varied),
                    level=spec.stability,
                    culprit=name,
                    kind="vary",
                )
        if spec.stability < Stability.REQUEST:
            varied, changed = perturb.vary_request_fields(value)
            if changed:
                yield Probe(
                    f"a per-request field inside the {spec.stability.label} value `{name}` "
                    "changes (a last-seen time, a live counter or score)",
                    "leave per-request fields out of stable segments, and never sort stable "
                    "content by a score or counter; sort by a fixed key such as a name or id",
                    _replaced(sample, name, varied),
                    culprit=name,
                    kind="request-field",
                )
        if spec.stability is Stability.TURN:
            grown = perturb.grow(value)
            if grown is not None:
                yield Probe(
                    "the conversation grows by a turn",
                    "render history append-only: no sliding window, no counts or labels "
                    "measured from the newest message, nothing after the history in its segment",
                    _replaced(sample, name, grown[1]),
                    level=Stability.TURN,
                    culprit=name,
                    base=_replaced(sample, name, grown[0]),
                    append_only=True,
                    kind="append-only",
                )


def _order_probes(name: str, value: Any, sample: Mapping[str, Any]) -> Iterator[Probe]:
    reordered, changed = perturb.reorder_keys(value)
    if changed:
        yield Probe(
            "dict key order changes",
            _ORDER_FIX,
            _replaced(sample, name, reordered),
            culprit=name,
            kind="key-order",
        )
    reordered, changed = perturb.reorder_sets(value)
    if changed:
        yield Probe(
            "a set iterates in another order (another PYTHONHASHSEED)",
            "sort a set before printing or joining it (|sort), or pass a sorted list",
            _replaced(sample, name, reordered),
            culprit=name,
            kind="set-order",
        )
    reordered, changed = perturb.reorder_unordered_lists(value, name=name)
    if changed:
        yield Probe(
            "a registry or plugin lists the same items in another order",
            "sort the collection by a fixed key (|sort(attribute='name'), |sort_tools)",
            _replaced(sample, name, reordered),
            culprit=name,
            kind="list-order",
        )


def _level_end(prompt: BuiltPrompt, level: Stability) -> int:
    if level is Stability.REQUEST:
        return prompt.stable_tokens
    ends = [s.token_end for s in prompt.segments if s.stability < level]
    return min(max(ends, default=0), prompt.stable_tokens)


def _append_end(prompt: BuiltPrompt) -> int:
    ends = [s.token_end for s in prompt.segments if s.stability <= Stability.TURN]
    # The last token of the history may merge with what the next turn appends.
    return max(min(max(ends, default=0), prompt.stable_tokens) - 1, 0)


def _build(
    builder: PromptBuilder,
    template: PromptTemplate,
    variables: Mapping[str, Any],
    clock: dt.datetime,
    seed: int,
) -> BuiltPrompt | None:
    try:
        with frozen(clock, seed):
            return builder.build(template, variables)
    except PromptkitError:
        # A perturbation the template cannot render (a flag it branches on into an error) says
        # nothing about stability; the samples themselves are built and reported apart.
        return None


def _moved(base: BuiltPrompt, other: BuiltPrompt, probe: Probe) -> int | None:
    end = _append_end(base) if probe.append_only else _level_end(base, probe.level)
    if end == 0:
        return None
    shared = common_prefix(base.token_ids[:end], other.token_ids[:end])
    return None if shared >= end else shared


def _describe(
    builder: PromptBuilder,
    template: PromptTemplate,
    base: BuiltPrompt,
    other: BuiltPrompt,
    index: int,
    probe: Probe,
) -> tuple[int | None, str]:
    origin = locate_token(other, index, tokenizer=builder.tokenizer)
    line = origin.tracked.line if origin.tracked is not None else None
    if line is None and origin.segment is not None:
        line = next((s.line for s in template.segments if s.name == origin.segment.name), None)
    names = [n for n in (origin.tracked.names if origin.tracked else ()) if n != "loop"]
    culprit = probe.culprit or next((n for n in names if n in template.variables), None)
    if culprit is None:
        culprit = names[0] if names else None
    shown = f"`{culprit}`" if culprit else "the text"
    where = f"on line {line}" if line is not None else "in the prompt"

    def token(ids: Sequence[int]) -> str:
        return repr(builder.tokenizer.decode([ids[index]])) if index < len(ids) else "<end>"

    detail = (
        f"token #{index} {origin.describe()}: {token(base.token_ids)} became "
        f"{token(other.token_ids)}"
    )
    return line, f"moves when {probe.what}: {shown} {where} ({detail}); {probe.fix}"


def metamorphic_findings(
    template: PromptTemplate,
    samples: Sequence[Mapping[str, Any]],
    *,
    builder: PromptBuilder,
    label: Callable[[int], str] = lambda i: f"samples[{i}]",
) -> list[Finding]:
    """PK708 findings: the first moved token per kind of perturbation (see the module doc)."""
    findings: list[Finding] = []
    reported: set[str] = set()
    for i, sample in enumerate(samples):
        bases: dict[dt.datetime, BuiltPrompt | None] = {}
        for probe in probes(template, sample):
            if probe.kind in reported:
                continue
            if probe.base is not None:
                base = _build(builder, template, probe.base, probe.base_clock, _SEED)
            else:
                if probe.base_clock not in bases:
                    bases[probe.base_clock] = _build(
                        builder, template, sample, probe.base_clock, _SEED
                    )
                base = bases[probe.base_clock]
            other = _build(builder, template, probe.variables, probe.clock, probe.seed)
            if base is None or other is None:
                continue
            index = _moved(base, other, probe)
            if index is None:
                continue
            reported.add(probe.kind)
            line, message = _describe(builder, template, base, other, index, probe)
            findings.append(
                Finding(
                    "PK708", template.filename, line, f"{label(i)}: the stable prefix {message}"
                )
            )
    return findings
