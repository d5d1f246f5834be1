"""Append-only multi-turn conversations over the model's chat template.

Each turn's prompt is the previous prompt's ids, then the assistant's generated ids exactly as the
engine produced them, then the chat template's closing scaffolding and the new message, tokenized
on their own: :meth:`promptkit.PromptBuilder.extend` builds it. Its segments are the system prompt
(static), every earlier message (history, append-only) and the newest turn; the client's audit
reports ``DRIFT`` when a turn shares fewer tokens with the previous turn and its reply than that
history promises.

The chat template is re-rendered every turn and must reproduce the previous turn's text as a
prefix. Templates that rewrite history (e.g. drop reasoning blocks of earlier turns) cannot; the
builder then warns (:class:`ConversationWarning`) with the position and re-tokenizes from there.
Workaround: give the conversation a chat template that keeps history verbatim
(``chat_template=``), or keep the content that the template strips out of the assistant messages
you pass back.

When the history outgrows ``max_prompt_tokens``, it is compacted in one step down to
``compact_to`` of the budget (whole turns dropped, the system head kept). The prefix after the
head then moves once every several turns instead of every turn, as a sliding window would.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine_adapter import SamplingSettings
from promptkit._builder import ConversationWarning
from promptkit._built_prompt import BuiltPrompt
from promptkit._canonical import normalize_text
from promptkit._chat_template import ChatTemplate
from promptkit._tenancy import TenantArg
from promptkit._tools import canonical_tools
from promptkit.errors import ConversationError

if TYPE_CHECKING:
    from promptkit._client import Client, Generation

__all__ = ["Conversation", "ConversationWarning"]

log = logging.getLogger(__name__)
_counter = itertools.count(1)


@dataclass
class Conversation:
    """A chat session whose every turn extends the previous turn's token ids.

    Args:
        client: the client (engine, tokenizer, reports) to run on.
        system: the system prompt (static; normalized once).
        tools: tool definitions (dicts, pydantic models or typed functions), canonical and sorted.
            Passed to the chat template when it renders tools, else appended to the system prompt
            (see :func:`promptkit._tools.tools_into_messages`).
        max_prompt_tokens: compact the history when a prompt would exceed this.
        compact_to: fraction of ``max_prompt_tokens`` to compact down to.
        cache_salt: prefix-cache isolation for this conversation's requests (a raw salt).
        tenant: the tenant every request of this conversation is salted for (docs/tenants.md);
            ``None`` uses the client's default tenant.
        chat_template: override the model's chat template (e.g. one that keeps reasoning).
        drift_key: conversations with the same key are compared with each other for drift, so
            they promise one system prompt and tools (default: a key of its own).
    """

    client: Client
    system: str | None = None
    tools: Sequence[Any] | None = None
    max_prompt_tokens: int | None = None
    compact_to: float = 0.5
    cache_salt: str | None = None
    chat_template: ChatTemplate | None = None
    name: str = ""
    drift_key: str = ""
    messages: list[dict[str, str]] = field(default_factory=list)
    compactions: int = 0
    #: The last turn sent with :meth:`say`: the messages it rendered, and its generation.
    _last: tuple[list[dict[str, str]], Generation] | None = field(default=None, repr=False)
    tenant: TenantArg = None

    def __post_init__(self) -> None:
        if not 0 < self.compact_to < 1:
            raise ConversationError("compact_to must be between 0 and 1")
        self.name = self.name or f"conversation-{next(_counter)}"
        self.drift_key = self.drift_key or f"{self.name}-{uuid.uuid4().hex}"
        self._chat = self.chat_template or self.client.builder.chat_template
        self._tools = canonical_tools(self.tools) if self.tools else None  # bad tools fail here
        if self.system:
            self.messages.append({"role": "system", "content": normalize_text(self.system)})

    # -- building ---------------------------------------------------------------------------

    def build(self, new_messages: Sequence[Mapping[str, str]] = ()) -> BuiltPrompt:
        """The next prompt: history plus ``new_messages`` and the generation prompt."""
        messages = [*self.messages, *(dict(m) for m in new_messages)]
        if self._last is not None:
            sent, generation = self._last
            done = [*sent, {"role": "assistant", "content": generation.text}]
            if messages[: len(done)] == done:
                return self.client.builder.extend(
                    generation.prompt,
                    generated_ids=generation.token_ids,
                    generated_text=generation.text,
                    messages=messages[len(done) :],
                )
        return self._whole(messages)

    def _whole(self, messages: list[dict[str, str]]) -> BuiltPrompt:
        """The prompt built from text: history is everything up to the last reply."""
        replies = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        head = 1 if messages and messages[0]["role"] == "system" else 0
        return self.client.builder.build_chat(
            messages,
            name=self.name,
            key=self.drift_key,
            history=replies[-1] + 1 if replies else head,
            tools=self._tools,
            chat_template=self._chat,
        )

    # -- turns ------------------------------------------------------------------------------

    def add(self, role: str, content: str) -> None:
        """Append a message without generating (a tool result, an injected assistant turn)."""
        self.messages.append({"role": role, "content": content})

    def say(
        self,
        content: str | None = None,
        *,
        role: str = "user",
        sampling: SamplingSettings | None = None,
    ) -> Generation:
        """Send a message (or just continue after added messages) and append the reply."""
        prompt = self._next(content, role)
        generation = self.client.send(
            [prompt],
            sampling=sampling,
            cache_salt=self.cache_salt,
            tenant=self.tenant,
            labels=[self.name],
        )[0]
        return self._append(generation)

    async def asay(
        self,
        content: str | None = None,
        *,
        role: str = "user",
        sampling: SamplingSettings | None = None,
    ) -> Generation:
        """:meth:`say` for async code (many conversations at once on one engine)."""
        prompt = self._next(content, role)
        generations = await self.client.asend(
            [prompt],
            sampling=sampling,
            cache_salt=self.cache_salt,
            tenant=self.tenant,
            labels=[self.name],
        )
        return self._append(generations[0])

    def _next(self, content: str | None, role: str) -> BuiltPrompt:
        if content is not None:
            self.add(role, content)
        prompt = self.build()
        if self.max_prompt_tokens is not None and prompt.total_tokens > self.max_prompt_tokens:
            self._compact()
            prompt = self.build()
        return prompt

    def _append(self, generation: Generation) -> Generation:
        # Copies: a message edited in place later must not look like what was sent.
        self._last = ([dict(m) for m in self.messages], generation)
        self.messages.append({"role": "assistant", "content": generation.text})
        return generation

    def side_call(
        self, instruction: str, *, sampling: SamplingSettings | None = None
    ) -> Generation:
        """Ask something about the conversation (summarize, judge) without changing it.

        The instruction goes at the end, so the whole conversation prefix is reused.
        """
        prompt = self.build([{"role": "user", "content": instruction}])
        return self.client.send(
            [prompt],
            sampling=sampling,
            cache_salt=self.cache_salt,
            tenant=self.tenant,
            labels=[f"{self.name}:side"],
        )[0]

    def _compact(self) -> None:
        assert self.max_prompt_tokens is not None
        target = int(self.max_prompt_tokens * self.compact_to)
        first = 1 if self.messages and self.messages[0]["role"] == "system" else 0
        # Cut only after an assistant reply (whole exchanges), never the newest message.
        cuts = [
            i + 1
            for i in range(first, len(self.messages) - 1)
            if self.messages[i]["role"] == "assistant"
        ]
        if not cuts:
            cuts = [len(self.messages) - 1]

        def tokens_after(cut: int) -> int:
            return self._whole(self.messages[:first] + self.messages[cut:]).total_tokens

        # Prompt length falls as the cut moves later: binary-search the earliest cut that fits,
        # rendering O(log n) candidate histories instead of one per dropped exchange.
        lo, hi = 0, len(cuts) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if tokens_after(cuts[mid]) <= target:
                hi = mid
            else:
                lo = mid + 1
        del self.messages[first : cuts[lo]]
        self._last = None
        self.compactions += 1
        log.info("%s: compacted history to %d messages", self.name, len(self.messages))
