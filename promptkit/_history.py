"""Stateless chat: callers that send the whole message history with every request.

A web handler (or LangChain, or an OpenAI-style ``messages`` API) keeps no
:class:`~promptkit.Conversation`: each request arrives with every message so far, the assistant
replies being the text the app showed. :class:`StatelessChat` finds the earlier prompt this
history extends and builds the new one from that prompt's exact token ids, so it hits like a
``Conversation`` turn does:

* the reply in the history is the text that was generated: the prompt is the earlier prompt's
  ids, the generated ids, then only the new messages tokenized;
* the app changed the reply (trimmed it, post-processed it): the earlier prompt's ids are still
  reused, the edited reply is tokenized anew, and the record's ``note`` says so;
* nothing matches: the prompt is built whole from the messages (the engine still reuses any
  token prefix it has cached, the system prompt at least).

The index maps a chained hash of each history that was sent (``H(H(...), message)``) to that
request's :class:`~promptkit.Generation`. It holds at most ``max_turns`` entries, least recently
used dropped first; a dropped entry costs hits, never correctness.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from engine_adapter import EngineDelta, SamplingSettings
from promptkit._built_prompt import BuiltPrompt
from promptkit._canonical import canonical_json, normalize_text
from promptkit._chat_template import ChatTemplate
from promptkit._tenancy import SharedCache, TenantArg
from promptkit._tools import canonical_tools
from promptkit.errors import ConversationError

if TYPE_CHECKING:
    from promptkit._client import Client, Generation

__all__ = ["StatelessChat"]

Message = Mapping[str, str]


class StatelessChat:
    """Answers full message histories, reusing the token ids of the prompts they extend.

    Args:
        client: the client (engine, tokenizer, records) to run on.
        name: the template name in records and metrics: one per chat, however many
            conversations it serves (so report rows and metric labels stay bounded).
        tools: tool definitions, canonical and sorted, rendered as :class:`Conversation` does.
        cache_salt: prefix-cache isolation for every request of this chat (a raw salt).
        tenant: the tenant every request of this chat is salted for (docs/tenants.md); ``None``
            uses the client's default tenant.
        chat_template: override the model's chat template.
        max_turns: earlier requests remembered for continuation (LRU).

    Requests with this chat are compared with each other for drift: a system prompt that
    changes from request to request is reported as ``DRIFT``.
    """

    def __init__(
        self,
        client: Client,
        *,
        name: str = "chat",
        tools: Sequence[Any] | None = None,
        cache_salt: str | None = None,
        tenant: TenantArg = None,
        chat_template: ChatTemplate | None = None,
        max_turns: int = 1024,
    ) -> None:
        if max_turns < 1:
            raise ConversationError("max_turns must be at least 1")
        self.client = client
        self.name = name
        self.cache_salt = cache_salt
        self.tenant = tenant
        self.max_turns = max_turns
        self._tools = canonical_tools(tools) if tools else None  # bad tools fail here
        self._chat = chat_template or client.builder.chat_template
        # Another tenant's histories are never continued: the tenant is part of every key.
        tenant_key = tenant.value if isinstance(tenant, SharedCache) else tenant
        self._seed = canonical_json(
            {"name": name, "tools": self._tools, "salt": cache_salt, "tenant": tenant_key}
        )
        self._turns: OrderedDict[str, Generation] = OrderedDict()
        # Requests may come from many threads at once (a web server, LangChain's batch): the
        # index is read and updated under this lock; building and sending run outside it.
        self._turns_lock = threading.Lock()
        # Drift is compared within this chat only: another chat promises nothing to this one.
        self._drift_key = f"{name}-{uuid.uuid4().hex}"

    def __len__(self) -> int:
        return len(self._turns)

    # -- prompts ----------------------------------------------------------------------------

    def prompt(self, messages: Sequence[Message]) -> BuiltPrompt:
        """The prompt for ``messages`` (and the generation prompt), without sending it."""
        chat = _normalized(messages)
        keys = self._keys(chat)
        for j in range(len(chat) - 1, -1, -1):
            if chat[j]["role"] != "assistant":
                continue
            with self._turns_lock:
                earlier = self._turns.get(keys[j])
                if earlier is None:
                    continue
                self._turns.move_to_end(keys[j])
            reply = chat[j]["content"]
            if reply == earlier.text:
                ids: Sequence[int] = earlier.token_ids
                note = f"continues request {earlier.record.request_id} and its reply as generated"
            else:
                ids = self.client.tokenizer.encode(reply).ids
                note = (
                    f"message {j} (assistant) is not the text request "
                    f"{earlier.record.request_id} generated (edited by the app): its prompt is "
                    "reused, the edited reply and what follows are tokenized anew"
                )
            prompt = self.client.builder.extend(
                earlier.prompt, generated_ids=ids, generated_text=reply, messages=chat[j + 1 :]
            )
            return replace(prompt, note=note)
        replies = [i for i, m in enumerate(chat) if m["role"] == "assistant"]
        head = 1 if chat and chat[0]["role"] == "system" else 0
        prompt = self.client.builder.build_chat(
            chat,
            name=self.name,
            key=self._drift_key,
            history=replies[-1] + 1 if replies else head,
            tools=self._tools,
            chat_template=self._chat,
        )
        new = "no earlier request of this chat is a prefix of this history" if replies else None
        return replace(prompt, note=new)

    def remember(self, messages: Sequence[Message], generation: Generation) -> None:
        """Index ``generation`` as the answer to ``messages``, for the requests that follow."""
        key = self._keys(_normalized(messages))[-1]
        with self._turns_lock:
            self._turns[key] = generation
            self._turns.move_to_end(key)
            while len(self._turns) > self.max_turns:
                self._turns.popitem(last=False)

    def _keys(self, chat: Sequence[Message]) -> list[str]:
        """``keys[i]`` identifies ``chat[:i]`` (with this chat's name, tools and salt)."""
        digest = hashlib.blake2b(self._seed.encode(), digest_size=16)
        keys = [digest.hexdigest()]
        for message in chat:
            digest.update(canonical_json([message["role"], message["content"]]).encode())
            keys.append(digest.copy().hexdigest())
        return keys

    # -- requests ---------------------------------------------------------------------------

    def reply(
        self, messages: Sequence[Message], *, sampling: SamplingSettings | None = None
    ) -> Generation:
        """Answer ``messages``; the answer is remembered for the request that extends them."""
        generation = self.client.send(
            [self.prompt(messages)],
            sampling=sampling,
            cache_salt=self.cache_salt,
            tenant=self.tenant,
            labels=[self.name],
        )[0]
        self.remember(messages, generation)
        return generation

    async def areply(
        self, messages: Sequence[Message], *, sampling: SamplingSettings | None = None
    ) -> Generation:
        """:meth:`reply` for async code (concurrent requests share one engine batch)."""
        generations = await self.client.asend(
            [self.prompt(messages)],
            sampling=sampling,
            cache_salt=self.cache_salt,
            tenant=self.tenant,
            labels=[self.name],
        )
        self.remember(messages, generations[0])
        return generations[0]

    def stream(
        self, messages: Sequence[Message], *, sampling: SamplingSettings | None = None
    ) -> Iterator[EngineDelta | Generation]:
        """Answer ``messages`` as tokens arrive; the last item is the :class:`Generation`."""
        prompt = self.prompt(messages)
        for item in self.client.stream(
            prompt,
            sampling=sampling,
            cache_salt=self.cache_salt,
            tenant=self.tenant,
            label=self.name,
        ):
            if not isinstance(item, EngineDelta):
                self.remember(messages, item)
            yield item

    async def astream(
        self, messages: Sequence[Message], *, sampling: SamplingSettings | None = None
    ) -> AsyncIterator[EngineDelta | Generation]:
        """:meth:`stream` for async code."""
        prompt = self.prompt(messages)
        async for item in self.client.astream(
            prompt,
            sampling=sampling,
            cache_salt=self.cache_salt,
            tenant=self.tenant,
            label=self.name,
        ):
            if not isinstance(item, EngineDelta):
                self.remember(messages, item)
            yield item


def _normalized(messages: Sequence[Message]) -> list[dict[str, str]]:
    """Plain ``{"role", "content"}`` dicts; the system prompt normalized as a
    :class:`~promptkit.Conversation` normalizes it, so both build the same prompt."""
    chat: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise ConversationError(
                f"message {i} must have a string 'role' and a string 'content', got "
                f"{dict(message)!r}"
            )
        if i == 0 and role == "system":
            content = normalize_text(content)
        chat.append({"role": role, "content": content})
    return chat
