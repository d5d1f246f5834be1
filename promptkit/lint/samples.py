"""Sample variables (fixtures) for ``promptkit check``: ``NAME.samples.json`` next to ``NAME.j2``.

Two shapes are accepted. A list is single requests::

    [{"document": "...", "question": "Who?"}, {"document": "...", "question": "When?"}]

An object adds multi-turn conversations: each is a list of turns, each turn the template's
variables at that turn. Turn N+1's token ids must start with turn N's (append-only), so a
conversation template renders its history in a ``turn`` segment and only the newest message in
the ``request`` segment::

    {"samples": [{...}, {...}],
     "conversations": [[{"history": "", "message": "Hi"},
                        {"history": "User: Hi\\nAssistant: Hello!\\n", "message": "Bye"}]]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptkit._segments import Stability
from promptkit._templating.prompt_template import PromptTemplate
from promptkit.errors import LintConfigError

__all__ = ["Fixtures", "load_fixtures", "samples_path", "synthesized_fixtures"]

SAMPLES_SUFFIX = ".samples.json"


@dataclass(frozen=True, slots=True)
class Fixtures:
    """Single-request samples and multi-turn conversations for one template."""

    samples: tuple[dict[str, Any], ...]
    conversations: tuple[tuple[dict[str, Any], ...], ...] = ()


def samples_path(template: Path) -> Path:
    """Where the fixtures of ``template`` live."""
    return template.with_name(template.stem + SAMPLES_SUFFIX)


def _variables(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LintConfigError(f"{where}: expected an object of template variables")
    return value


def load_fixtures(path: Path) -> Fixtures:
    """Read a samples file; raise :class:`LintConfigError` naming the bad entry."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise LintConfigError(f"{path}: cannot read the samples: {exc}") from None
    if isinstance(data, list):
        data = {"samples": data}
    if not isinstance(data, dict) or set(data) - {"samples", "conversations"}:
        raise LintConfigError(
            f"{path}: expected a list of variable objects, or an object with 'samples' and "
            "'conversations' (see docs/lint.md, promptkit check)"
        )
    samples = data.get("samples", [])
    conversations = data.get("conversations", [])
    if not isinstance(samples, list) or not isinstance(conversations, list):
        raise LintConfigError(f"{path}: 'samples' and 'conversations' must be lists")
    if not samples and not conversations:
        raise LintConfigError(f"{path}: no samples; add at least one object of variables")
    convs: list[tuple[dict[str, Any], ...]] = []
    for c, conversation in enumerate(conversations):
        if not isinstance(conversation, list) or len(conversation) < 2:
            raise LintConfigError(f"{path}: conversations[{c}] must be a list of 2+ turns")
        convs.append(
            tuple(
                _variables(t, f"{path}: conversations[{c}][{i}]")
                for i, t in enumerate(conversation)
            )
        )
    return Fixtures(
        tuple(_variables(s, f"{path}: samples[{i}]") for i, s in enumerate(samples)),
        tuple(convs),
    )


def synthesized_fixtures(template: PromptTemplate) -> Fixtures:
    """Two samples made from the declared variables, for a template without a samples file.

    Every variable gets a short text; the two samples differ only in ``request`` variables, so
    the shared-prefix and metamorphic checks still have something to compare. A template that
    needs structured values (objects, lists) does not render from these: it needs real samples.
    """
    first = {name: f"example {name}" for name in template.variables}
    second = {
        name: f"another {name}" if spec.stability is Stability.REQUEST else first[name]
        for name, spec in template.variables.items()
    }
    return Fixtures((first, second))
