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

:meth:`ChatTemplate.render_located` also says where each piece of message content landed in the
rendered text, by the marker protocol of :mod:`promptkit._templating.environment`: the pieces are
rendered wrapped in reserved control characters, never searched for in the output.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.ext import Extension, loopcontrols
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from promptkit._templating.environment import SEGMENT_CLOSE, SEGMENT_OPEN, SEGMENT_SEP
from promptkit.errors import TokenizationError

__all__ = ["DEFAULT_PINNED_DATE", "ChatTemplate", "Located", "Message"]

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


@dataclass(frozen=True, slots=True)
class Located:
    """Where one piece of message content landed in the rendered text (``None``: unknown)."""

    start: int | None
    end: int | None


def _marked(pieces: Sequence[str], first: int, rest: str, *, outside: bool) -> str:
    """Message content with each piece between a start and an end marker.

    ``outside`` leaves the content's leading and trailing blanks outside the markers, so that a
    chat template that strips message content (``| trim``) strips the same text as without them.
    """
    texts = list(pieces)
    lead = trail = ""
    if outside and texts:
        core = texts[0].lstrip()
        lead, texts[0] = texts[0][: len(texts[0]) - len(core)], core
        if not rest:
            core = texts[-1].rstrip()
            trail, texts[-1] = texts[-1][len(core) :], core
    body = "".join(
        f"{SEGMENT_OPEN}{first + k}{SEGMENT_SEP}{text}{SEGMENT_CLOSE}{first + k}{SEGMENT_SEP}"
        for k, text in enumerate(texts)
    )
    return lead + body + trail + rest


def _unmarked(marked: str, count: int) -> tuple[str, list[Located]]:
    """The text without markers, and where each piece's start and end markers stood in it.

    A marker the template dropped, or printed twice, leaves that position unknown.
    """
    starts: dict[int, int | None] = {}
    ends: dict[int, int | None] = {}
    out: list[str] = []
    length = 0
    position = 0
    while True:
        found = min(
            (i for i in (marked.find(SEGMENT_OPEN, position), marked.find(SEGMENT_CLOSE, position))
             if i >= 0),
            default=-1,
        )  # fmt: skip
        if found < 0:
            out.append(marked[position:])
            break
        out.append(marked[position:found])
        length += found - position
        sep = marked.find(SEGMENT_SEP, found)
        ident = marked[found + 1 : sep]
        if sep < 0 or not ident.isdigit():  # not one of ours (a message holding the character)
            return "", [Located(None, None)] * count
        table = starts if marked[found] == SEGMENT_OPEN else ends
        table[int(ident)] = None if int(ident) in table else length
        position = sep + 1
    return "".join(out), [Located(starts.get(i), ends.get(i)) for i in range(count)]


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

    def render_located(
        self,
        messages: Sequence[Message],
        pieces: Sequence[Sequence[str]],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> tuple[str, list[Located]]:
        """Render ``messages``, and find where each of ``pieces`` landed in the text.

        ``pieces[m]`` are consecutive pieces that open message ``m``'s content (what follows them
        is rendered but not located); pieces are numbered across messages. The pieces are rendered
        between markers, and the positions are kept only when the marked render, markers removed,
        is the plain render: exactly, or with the content's outer blanks left outside the markers
        (for templates that strip content). Otherwise, or where the template dropped a marker
        (rewrote that content), a position is ``None``.
        """
        text = self.render(messages, add_generation_prompt=add_generation_prompt, tools=tools)
        count = sum(len(p) for p in pieces)
        for outside in (False, True):
            marked: list[dict[str, Any]] = []
            first = 0
            for message, own in zip(messages, pieces, strict=True):
                content = str(message["content"])
                joined = "".join(own)
                if not content.startswith(joined):
                    raise ValueError("pieces must open their message's content")
                rest = content[len(joined) :]
                marked.append({**message, "content": _marked(own, first, rest, outside=outside)})
                first += len(own)
            rendered = self.render(marked, add_generation_prompt=add_generation_prompt, tools=tools)
            clean, located = _unmarked(rendered, count)
            if clean == text:
                return text, located
        return text, [Located(None, None)] * count
