"""A pytest plugin (auto-loaded through the ``pytest11`` entry point) for cache-stability tests.

Users assert, in their own test suites, that their prompts keep a shared stable prefix::

    def test_my_prompt_is_cache_stable(assert_cache_stable):
        assert_cache_stable("prompts/answer.j2", [
            {"document": DOC, "question": "Who?"},
            {"document": DOC, "question": "When?"},
        ])

The fixture uses the model from ``$PROMPTKIT_MODEL`` (or the bundled default) through the
session-scoped ``promptkit_tokenizer`` fixture; override that fixture to use another model.
:func:`assert_cache_stable` runs the same token-level checks as ``promptkit check``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest

from promptkit._builder import PromptBuilder
from promptkit._built_prompt import BuiltPrompt
from promptkit._templating.prompt_template import PromptTemplate
from promptkit._tokenization import Tokenizer
from promptkit.lint.config import DEFAULT_BLOCK_SIZE
from promptkit.lint.prefix import PrefixPolicy
from promptkit.lint.samples import Fixtures
from promptkit.lint.tokens import measure

__all__ = ["AssertCacheStable", "assert_cache_stable"]


def assert_cache_stable(
    template: PromptTemplate | str | Path,
    samples: Sequence[Mapping[str, Any]],
    *,
    tokenizer: Tokenizer,
    conversations: Sequence[Sequence[Mapping[str, Any]]] = (),
    block_size: int = DEFAULT_BLOCK_SIZE,
    min_prefix_tokens: int = 0,
) -> tuple[BuiltPrompt, ...]:
    """Fail (``AssertionError``) unless the samples share their stable prefixes token for token.

    Checks what ``promptkit check`` checks: equal stable values give equal stable ids (and key
    order does not matter), conversations are append-only, no boundary merges tokens, and the
    stable prefix reaches a KV block and ``min_prefix_tokens``. Returns the built prompts.
    """
    if not isinstance(template, PromptTemplate):
        template = PromptTemplate.from_file(template)
    fixtures = Fixtures(
        tuple(dict(s) for s in samples), tuple(tuple(dict(t) for t in c) for c in conversations)
    )
    policy = PrefixPolicy(
        tokenizer=lambda: tokenizer, block_size=block_size, minimum=min_prefix_tokens
    )
    builder = PromptBuilder(tokenizer, block_size=block_size)
    measured = measure(template, fixtures, builder=builder, policy=policy)
    if measured.findings:
        lines = [f"{f.path}:{f.line or '?'}: {f.rule} {f.message}" for f in measured.findings]
        raise AssertionError("prompt is not cache-stable:\n" + "\n".join(lines))
    return measured.prompts


class AssertCacheStable(Protocol):
    """:func:`assert_cache_stable` with the tokenizer already bound."""

    def __call__(
        self,
        template: PromptTemplate | str | Path,
        samples: Sequence[Mapping[str, Any]],
        *,
        conversations: Sequence[Sequence[Mapping[str, Any]]] = (),
        block_size: int = DEFAULT_BLOCK_SIZE,
        min_prefix_tokens: int = 0,
    ) -> tuple[BuiltPrompt, ...]: ...


@pytest.fixture(scope="session")
def promptkit_tokenizer() -> Tokenizer:
    """The model's tokenizer: ``$PROMPTKIT_MODEL`` or the bundled default (prepared once)."""
    from promptkit._model_store import resolve_model_dir

    return Tokenizer.from_dir(resolve_model_dir())


@pytest.fixture(name="assert_cache_stable")
def assert_cache_stable_fixture(promptkit_tokenizer: Tokenizer) -> AssertCacheStable:
    """:func:`assert_cache_stable` bound to ``promptkit_tokenizer``."""

    def check(
        template: PromptTemplate | str | Path,
        samples: Sequence[Mapping[str, Any]],
        **options: Any,
    ) -> tuple[BuiltPrompt, ...]:
        return assert_cache_stable(template, samples, tokenizer=promptkit_tokenizer, **options)

    bound: Callable[..., tuple[BuiltPrompt, ...]] = check
    return bound
