"""Where a prompt comes from, as far as the audit needs to know: a template, or chat messages.

Every :class:`~promptkit._built_prompt.BuiltPrompt` carries its source, so nothing after the engine
returns has to find it again by name. The drift audit (:mod:`promptkit._audit`) asks a source:

* ``fingerprint``: which earlier prompts to compare with (one drift history per fingerprint);
* ``variables`` and ``segment_variables``: how stable each input is and which segment reads it,
  so it knows how many tokens two prompts *should* share;
* ``render_tracked``, ``derived_origin``, ``variable_lines``: which template line produced a
  token, for the explanation.

:class:`~promptkit._templating.prompt_template.PromptTemplate` implements :class:`PromptSource` as
it is. :class:`ChatSource` implements it for prompts built from chat messages (conversations,
agents, LangChain sessions). Its segments are the messages; the system prompt is ``static``, the
tools ``deploy``, and every message a ``turn`` variable read by its own segment. A changed message
is a legitimate fork (a compaction, an edited history, another session); sharing fewer tokens than
the unchanged messages promise is drift -- a chat template that re-renders history, or a system
prompt that changes between turns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from promptkit._built_prompt import Boundary, BuiltPrompt, SegmentSpan
from promptkit._chat_template import ChatTemplate, Message
from promptkit._segments import Stability, VariableSpec

if TYPE_CHECKING:
    from promptkit._templating.prompt_template import TrackedSpan

__all__ = ["ChatSource", "PromptSource", "continued"]


class PromptSource(Protocol):
    """What a prompt's origin tells the audit (see the module docstring)."""

    @property
    def name(self) -> str: ...

    @property
    def filename(self) -> str:
        """The path (or ``<name>``) that reports point at."""
        ...

    @property
    def fingerprint(self) -> str:
        """Prompts with the same fingerprint are compared with each other for drift."""
        ...

    @property
    def variables(self) -> Mapping[str, VariableSpec]: ...

    @property
    def segment_variables(self) -> Mapping[str, frozenset[str]]: ...

    def render_tracked(self, variables: Mapping[str, Any]) -> tuple[list[str], list[TrackedSpan]]:
        """One raw text per segment, and which expression produced which part of it."""
        ...

    def derived_origin(self, name: str) -> str | None: ...

    def variable_lines(self, name: str) -> list[int]: ...


@dataclass(frozen=True, eq=False, kw_only=True)
class ChatSource:
    """A chat prompt's origin: messages rendered by a chat template, one segment per message.

    Args:
        name: what reports call it (a conversation's name).
        key: the drift history it joins: one per conversation, or one shared by sessions that
            promise the same system prompt (the LangChain model's sessions with the same tools).
        chat: the chat template that renders the messages.
        messages: the messages, a system prompt first if there is one.
        tools: the canonical tool schemas the chat template renders in its own slot (none when
            they went into the system prompt: see :func:`promptkit._tools.tools_into_messages`).
        history: how many leading messages are history (stable); the rest are the newest turn.
    """

    name: str
    key: str
    chat: ChatTemplate
    messages: tuple[Message, ...]
    tools: tuple[Mapping[str, Any], ...] = ()
    history: int = 0

    @property
    def filename(self) -> str:
        return f"<{self.name}>"

    @property
    def fingerprint(self) -> str:
        return self.key

    def segment_name(self, index: int) -> str:
        """The segment (and variable) name of message ``index``."""
        if index == 0 and self.messages and self.messages[0]["role"] == "system":
            return "system"
        return f"message {index}"

    def stability(self, index: int) -> Stability:
        """Message ``index``'s segment: the system prompt, history, or the newest turn."""
        if self.segment_name(index) == "system":
            return Stability.STATIC
        return Stability.TURN if index < self.history else Stability.REQUEST

    @cached_property
    def variables(self) -> Mapping[str, VariableSpec]:
        specs = {"tools": VariableSpec("tools", Stability.DEPLOY, 0)}
        for index in range(len(self.messages)):
            name = self.segment_name(index)
            stability = Stability.STATIC if name == "system" else Stability.TURN
            specs[name] = VariableSpec(name, stability, 0)
        return specs

    @cached_property
    def segment_variables(self) -> Mapping[str, frozenset[str]]:
        # Tools render into (or before) the first message, whether by the chat template's own
        # slot or appended to the system prompt.
        names = [self.segment_name(i) for i in range(len(self.messages))]
        return {n: frozenset({n, "tools"} if i == 0 else {n}) for i, n in enumerate(names)}

    def values(self) -> dict[str, Any]:
        """The prompt's variables: the system prompt's text, the tools, and each message."""
        values: dict[str, Any] = {"tools": [dict(t) for t in self.tools]}
        for index, message in enumerate(self.messages):
            name = self.segment_name(index)
            values[name] = message["content"] if name == "system" else dict(message)
        return values

    def render_tracked(self, variables: Mapping[str, Any]) -> tuple[list[str], list[TrackedSpan]]:
        """Nothing to track: a message has no template lines (explanations name its segment)."""
        return [], []

    def derived_origin(self, name: str) -> str | None:
        return name if name in self.variables else None

    def variable_lines(self, name: str) -> list[int]:
        return []

    def then(self, messages: Sequence[Message], *, history: int | None = None) -> ChatSource:
        """This source with ``messages`` appended (and, given, a new history length)."""
        return ChatSource(
            name=self.name,
            key=self.key,
            chat=self.chat,
            messages=(*self.messages, *(dict(m) for m in messages)),
            tools=self.tools,
            history=self.history if history is None else history,
        )


def continued(
    prompt: BuiltPrompt, *, generated_ids: Sequence[int], generated_text: str
) -> BuiltPrompt:
    """What the next prompt from ``prompt``'s source starts with, once the model has answered.

    A conversation's next turn repeats the prompt and then the reply, its ids as generated: the
    result is that transcript, the reply one more history segment. A template's output is never
    part of its next prompt, so a template's prompt is returned as it is.
    """
    source = prompt.source
    if not isinstance(source, ChatSource):
        return prompt
    count = len(source.messages)
    after = source.then([{"role": "assistant", "content": generated_text}], history=count + 1)
    ids = prompt.token_ids + tuple(generated_ids)
    text = prompt.text + generated_text
    reply = SegmentSpan(
        after.segment_name(count), Stability.TURN, "assistant", len(prompt.text), len(text),
        len(prompt.token_ids), len(ids), len(prompt.text),
    )  # fmt: skip
    history = tuple(
        s if s.stability.is_stable else replace(s, stability=Stability.TURN)
        for s in prompt.segments
    )
    return replace(
        prompt,
        text=text,
        token_ids=ids,
        segments=(*history, reply),
        boundaries=(*prompt.boundaries, Boundary(prompt.segments[-1].name, 0)),
        stable_tokens=len(ids),
        variables=after.values(),
        source=after,
    )
