"""The model's chat template, rendered the way transformers renders it -- minus the clock.

:class:`ChatTemplate` compiles the tokenizer's ``chat_template`` in the same sandbox transformers
uses (``trim_blocks``, ``lstrip_blocks``, ``loopcontrols``), with two deliberate differences that
keep prompts token-stable:

* ``tojson`` sorts keys (transformers' does not), so tool schemas serialize the same way whatever
  order the caller built them in;
* the date is **pinned**. Some templates (Llama 3.x, Qwen variants) print today's date via
  ``strftime_now`` or ``date_string``; rendered live, that moves the system prompt -- and every
  cached prefix -- at midnight. :attr:`ChatTemplate.volatile_names` lists what was found;
  :attr:`ChatTemplate.pinned_date` (default 2025-01-01, set your own) is what they see.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.ext import Extension, loopcontrols
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from promptkit.errors import TokenizationError

__all__ = ["DEFAULT_PINNED_DATE", "ChatTemplate", "Message"]

Message = Mapping[str, Any]
DEFAULT_PINNED_DATE = dt.date(2025, 1, 1)
# The clock hooks chat templates use (transformers provides strftime_now; Llama 3.x templates
# read date_string). Both are given the pinned date.
_VOLATILE_GLOBALS = ("strftime_now", "date_string")


class _GenerationTag(Extension):
    """Accepts ``{% generation %}`` blocks (used for assistant masks) and renders them as is."""

    tags = {"generation"}  # noqa: RUF012 - Jinja declares it a set

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = True,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=True
    )


def _raise(message: str) -> None:
    raise JinjaTemplateError(message)


class ChatTemplate:
    """A compiled chat template with a pinned clock.

    Args:
        source: the Jinja source (``tokenizer.chat_template``).
        special_tokens: values such as ``bos_token``/``eos_token`` the template may print.
        pinned_date: the date ``strftime_now``/``date_string`` return.
    """

    def __init__(
        self,
        source: str,
        *,
        special_tokens: Mapping[str, str] | None = None,
        pinned_date: dt.date = DEFAULT_PINNED_DATE,
        name: str = "chat_template",
    ) -> None:
        self.source = source
        self.name = name
        self.pinned_date = pinned_date
        self.special_tokens = dict(special_tokens or {})
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationTag, loopcontrols]
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = self._strftime
        try:
            ast = env.parse(source)
            self._compiled = env.from_string(source)
        except JinjaTemplateError as exc:
            raise TokenizationError(
                f"{name}: the model's chat template does not parse: {exc}"
            ) from None
        used = {n.name for n in ast.find_all(nodes.Name)}
        #: Every variable name the template reads (e.g. whether it renders ``tools``).
        self.used_names: frozenset[str] = frozenset(used)
        #: Clock-like names the template reads; they are pinned (see module docstring).
        self.volatile_names: tuple[str, ...] = tuple(n for n in _VOLATILE_GLOBALS if n in used)

    @classmethod
    def from_tokenizer(
        cls, hf_tokenizer: Any, *, pinned_date: dt.date = DEFAULT_PINNED_DATE
    ) -> ChatTemplate:
        source = getattr(hf_tokenizer, "chat_template", None)
        if not isinstance(source, str):
            raise TokenizationError(
                "the tokenizer has no chat template; use a template without role= segments, "
                "or a model directory with chat_template.jinja"
            )
        special = {
            key: str(getattr(hf_tokenizer, key))
            for key in ("bos_token", "eos_token", "pad_token", "unk_token")
            if getattr(hf_tokenizer, key, None) is not None
        }
        return cls(source, special_tokens=special, pinned_date=pinned_date)

    def _strftime(self, fmt: str) -> str:
        return dt.datetime.combine(self.pinned_date, dt.time()).strftime(fmt)

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the template source, its special tokens and the pinned date."""
        digest = hashlib.blake2b(self.source.encode(), digest_size=8)
        digest.update(json.dumps(self.special_tokens, sort_keys=True).encode())
        digest.update(self.pinned_date.isoformat().encode())
        return digest.hexdigest()

    def render(
        self,
        messages: Sequence[Message],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **extra: Any,
    ) -> str:
        """Render messages to the prompt text, exactly as the model was trained to see it."""
        context: dict[str, Any] = dict(self.special_tokens)
        if "date_string" in self.volatile_names:
            context["date_string"] = self.pinned_date.strftime("%d %b %Y")
        context.update(extra)
        try:
            return self._compiled.render(
                messages=[dict(m) for m in messages],
                add_generation_prompt=add_generation_prompt,
                tools=list(tools) if tools else None,
                **context,
            )
        except JinjaTemplateError as exc:
            raise TokenizationError(
                f"{self.name}: rendering the chat template failed: {exc}"
            ) from None
