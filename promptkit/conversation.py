"""Append-only multi-turn conversations over the model's chat template.

Each turn's prompt ids are the previous prompt's ids, then the assistant's generated ids exactly
as the engine produced them (never re-tokenized from text: the model may emit a token sequence
that tokenizing its text would not reproduce, and vLLM has already cached those blocks), then
the chat template's closing scaffolding and the new message, tokenized on their own.

The chat template is re-rendered every turn and must reproduce the previous turn's text as a
prefix. Templates that rewrite history (e.g. drop reasoning blocks of earlier turns) cannot; the
conversation then warns with the position and re-tokenizes from there. Workaround: give the
conversation a chat template that keeps history verbatim (``chat_template=``), or keep the
content that the template strips out of the assistant messages you pass back.

When the history outgrows ``max_prompt_tokens``, it is compacted in one step down to
``compact_to`` of the budget (whole turns dropped, the system head kept). The prefix after the
head then moves once every several turns instead of every turn, as a sliding window would.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine_adapter import SamplingSettings
from promptkit.canonical import canonical_json, normalize_text
from promptkit.chat import ChatTemplate
from promptkit.errors import ConversationError
from promptkit.prompt import Boundary, BuiltPrompt, SegmentSpan
from promptkit.segments import Stability
from promptkit.tokenization import common_prefix
from promptkit.tools import canonical_tools

if TYPE_CHECKING:
    from promptkit.client import Client, Generation

__all__ = ["Conversation", "ConversationWarning"]

log = logging.getLogger(__name__)
_counter = itertools.count(1)


class ConversationWarning(UserWarning):
    """The chat template re-rendered history differently: prefix caching is lost from there."""


@dataclass
class _Transcript:
    """What has been sent and generated so far, as text and as the exact ids."""

    text: str
    ids: tuple[int, ...]
    ends_with_eos: bool = False


@dataclass
class Conversation:
    """A chat session whose every turn extends the previous turn's token ids.

    Args:
        client: the client (engine, tokenizer, reports) to run on.
        system: the system prompt (static; normalized once).
        tools: tool definitions (dicts, pydantic models or typed functions), canonical and sorted.
            Passed to the chat template when it renders tools, else appended to the system prompt.
        max_prompt_tokens: compact the history when a prompt would exceed this.
        compact_to: fraction of ``max_prompt_tokens`` to compact down to.
        cache_salt: prefix-cache isolation for this conversation's requests.
        chat_template: override the model's chat template (e.g. one that keeps reasoning).
    """

    client: Client
    system: str | None = None
    tools: Sequence[Any] | None = None
    max_prompt_tokens: int | None = None
    compact_to: float = 0.5
    cache_salt: str | None = None
    chat_template: ChatTemplate | None = None
    name: str = ""
    messages: list[dict[str, str]] = field(default_factory=list)
    compactions: int = 0
    _transcript: _Transcript | None = field(default=None, repr=False)
    _head_tokens: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.compact_to < 1:
            raise ConversationError("compact_to must be between 0 and 1")
        self.name = self.name or f"conversation-{next(_counter)}"
        self._chat = self.chat_template or self.client.builder.chat_template
        self._tools = canonical_tools(self.tools) if self.tools else None
        system = normalize_text(self.system) if self.system else None
        if self._tools and "tools" not in self._chat.used_names:
            lines = "\n".join(canonical_json(t) for t in self._tools)
            system = f"{system or ''}\n\nAvailable tools:\n{lines}\n".lstrip("\n")
        self._system_text = system
        if system is not None:
            self.messages.append({"role": "system", "content": system})

    # -- building ---------------------------------------------------------------------------

    def _render(self, messages: Sequence[Mapping[str, str]], *, generation_prompt: bool) -> str:
        return self._chat.render(
            messages, add_generation_prompt=generation_prompt, tools=self._tools
        )

    def _head_length(self) -> int:
        """Tokens of the system head (the conversation's static segment)."""
        if self._head_tokens or self._system_text is None:
            return self._head_tokens
        head = self._render(self.messages[:1], generation_prompt=False)
        self._head_tokens = len(self.client.tokenizer.encode_stable([head]).encoded.ids)
        return self._head_tokens

    def build(self, new_messages: Sequence[Mapping[str, str]] = ()) -> BuiltPrompt:
        """The next prompt: history plus ``new_messages`` and the generation prompt."""
        messages = [*self.messages, *(dict(m) for m in new_messages)]
        text = self._render(messages, generation_prompt=True)
        tokenizer = self.client.tokenizer
        transcript = self._transcript
        if transcript is None:
            ids = tokenizer.encode(text).ids
            stable = self._head_length()
        elif text.startswith(transcript.text):
            tail = text[len(transcript.text) :]
            base = transcript.ids
            eos_text = self._chat.special_tokens.get("eos_token")
            if transcript.ends_with_eos:
                if eos_text and tail.startswith(eos_text):
                    tail = tail[len(eos_text) :]
                else:  # the template closes turns with another token: the text has no EOS
                    base = base[:-1]
            ids = base + tokenizer.encode(tail).ids
            stable = len(base)
        else:
            position = common_prefix(text, transcript.text)
            warnings.warn(
                f"{self.name}: the chat template re-rendered earlier turns differently at "
                f"character {position} ({transcript.text[position : position + 30]!r} became "
                f"{text[position : position + 30]!r}); prefix caching is lost from there. Pass "
                "chat_template= with a template that keeps history verbatim (see "
                "promptkit.conversation)",
                ConversationWarning,
                stacklevel=3,
            )
            ids = tokenizer.encode(text).ids
            stable = min(self._head_length(), len(ids))
        return self._prompt(text, ids, stable, messages)

    def _prompt(
        self, text: str, ids: tuple[int, ...], stable: int, messages: list[dict[str, str]]
    ) -> BuiltPrompt:
        head = min(self._head_length(), stable)
        spans = (
            SegmentSpan("system", Stability.STATIC, "system", 0, 0, 0, head, 0),
            SegmentSpan("history", Stability.TURN, None, 0, 0, head, stable, 0),
            SegmentSpan("message", Stability.REQUEST, None, 0, len(text), stable, len(ids), 0),
        )
        return BuiltPrompt(
            template=self.name,
            template_file=f"<{self.name}>",
            text=text,
            token_ids=ids,
            segments=spans,
            boundaries=(Boundary("system", 0), Boundary("history", 0)),
            stable_tokens=stable,
            block_size=self.client.builder.block_size,
            tokenizer_fingerprint=self.client.tokenizer.fingerprint,
            chat_template_fingerprint=self._chat.fingerprint,
            template_fingerprint=self._chat.fingerprint,
            variables={"messages": messages},
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
            [prompt], sampling=sampling, cache_salt=self.cache_salt, labels=[self.name]
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
            [prompt], sampling=sampling, cache_salt=self.cache_salt, labels=[self.name]
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
        prompt, result = generation.prompt, generation.result
        eos = self.client.tokenizer.eos_token_id
        self._transcript = _Transcript(
            text=prompt.text + result.text,
            ids=prompt.token_ids + result.token_ids,
            ends_with_eos=bool(result.token_ids) and result.token_ids[-1] == eos,
        )
        self.messages.append({"role": "assistant", "content": result.text})
        return generation

    def side_call(
        self, instruction: str, *, sampling: SamplingSettings | None = None
    ) -> Generation:
        """Ask something about the conversation (summarize, judge) without changing it.

        The instruction goes at the end, so the whole conversation prefix is reused.
        """
        prompt = self.build([{"role": "user", "content": instruction}])
        return self.client.send(
            [prompt], sampling=sampling, cache_salt=self.cache_salt, labels=[f"{self.name}:side"]
        )[0]

    def _compact(self) -> None:
        assert self.max_prompt_tokens is not None
        target = int(self.max_prompt_tokens * self.compact_to)
        first = 1 if self._system_text is not None else 0
        # Cut only after an assistant reply (whole exchanges), never the newest message.
        cuts = [
            i + 1
            for i in range(first, len(self.messages) - 1)
            if self.messages[i]["role"] == "assistant"
        ]
        if not cuts:
            cuts = [len(self.messages) - 1]

        def tokens_after(cut: int) -> int:
            kept = self.messages[:first] + self.messages[cut:]
            text = self._render(kept, generation_prompt=True)
            return len(self.client.tokenizer.encode(text).ids)

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
        self._transcript = None
        self.compactions += 1
        log.info("%s: compacted history to %d messages", self.name, len(self.messages))
