"""A LangChain chat model on promptkit, so existing LangChain code gets prefix-cache hits.

::

    from langchain_core.messages import HumanMessage, SystemMessage
    from promptkit import Client
    from promptkit.integrations.langchain import ChatPromptkit

    client = Client.embedded()                        # built by you, closed by you
    model = ChatPromptkit(client=client).bind_tools([get_weather])
    ai = model.invoke([SystemMessage("..."), HumanMessage("Weather in Paris?")])
    ai.tool_calls                                     # parsed by promptkit.parse_tool_calls
    ai.usage_metadata["input_token_details"]["cache_read"]  # tokens vLLM served from cache
    ai.response_metadata["promptkit"]["verdict"]      # HIT, PARTIAL, MISS, ...

LangChain sends the whole message list on every call. When that list extends one this model has
already answered -- the same messages, then the returned ``AIMessage`` unchanged, then new ones --
the call continues that session's :class:`promptkit.Conversation`: the prompt is the previous
prompt's ids, the ids the model generated, then only the new messages tokenized, so the whole
previous turn hits. A list that extends no session starts a new one (the engine still reuses
whatever token prefix it has cached). Sessions are kept per set of bound tools, most recent
first, up to ``max_sessions``.

Drift is checked across sessions: the sessions of one model with the same tools are compared
with each other, so they promise the same system prompt. A system message that changes from call
to call (a clock, a request id) moves every cached prefix, and is reported as ``DRIFT`` naming the
``system`` segment. Give each assistant persona its own ``ChatPromptkit``.

An ``AIMessage`` keeps the model's raw text as its content (tool-call markup included), because
that text is what the next prompt must repeat for the prefix to stay put. Tool schemas go through
:func:`promptkit.canonical_tools`, so binding tools in another order does not move the prefix.

Engine calls are serialized by a lock: ``batch`` runs its inputs one after another. For one
engine batch over many prompts, use :meth:`promptkit.Client.fan_out`.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, PrivateAttr

try:
    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.language_models import BaseChatModel, LanguageModelInput
    from langchain_core.messages import (
        AIMessage,
        BaseMessage,
        ChatMessage,
        HumanMessage,
        SystemMessage,
        ToolMessage,
    )
    from langchain_core.messages.ai import InputTokenDetails, UsageMetadata
    from langchain_core.messages.tool import tool_call
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.runnables import Runnable
    from langchain_core.tools import BaseTool
    from langchain_core.utils.function_calling import convert_to_openai_tool
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "promptkit.integrations.langchain needs langchain-core: "
        "pip install 'promptkit-vllm[langchain]'"
    ) from exc

from engine_adapter import SamplingSettings
from promptkit._agent import parse_tool_calls
from promptkit._canonical import canonical_json
from promptkit._client import Client, Generation
from promptkit._conversation import Conversation
from promptkit._tenancy import SharedCache
from promptkit._tools import canonical_tools

__all__ = ["ChatPromptkit", "to_chat_messages"]

_SAMPLING_KWARGS = ("max_tokens", "temperature", "top_p", "seed")


def _text(content: str | list[str | dict[Any, Any]]) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        else:
            raise ValueError(
                f"ChatPromptkit sends text only, got a {block.get('type')!r} content block"
            )
    return "".join(parts)


def _assistant_text(message: AIMessage) -> str:
    text = _text(message.content)
    if text or not message.tool_calls:
        return text
    # An AIMessage built elsewhere with tool calls and no text: show the calls the way the
    # default model (SmolLM2) writes them, "name" first, so it sees its own format in the
    # history; the arguments are canonical, so the same calls always render the same.
    calls = ", ".join(
        f'{{"name": {canonical_json(c["name"])}, "arguments": {canonical_json(c["args"])}}}'
        for c in message.tool_calls
    )
    return f"<tool_call>[{calls}]</tool_call>"


def to_chat_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages as chat-template messages: system, user, assistant and tool roles."""
    chat = []
    for message in messages:
        if isinstance(message, SystemMessage):
            role, content = "system", _text(message.content)
        elif isinstance(message, HumanMessage):
            role, content = "user", _text(message.content)
        elif isinstance(message, AIMessage):
            role, content = "assistant", _assistant_text(message)
        elif isinstance(message, ToolMessage):
            role, content = "tool", _text(message.content)
        elif isinstance(message, ChatMessage):
            role, content = message.role, _text(message.content)
        else:
            raise ValueError(
                f"ChatPromptkit cannot send a {type(message).__name__}; use System, Human, AI, "
                "Tool or Chat messages"
            )
        chat.append({"role": role, "content": content})
    return chat


@dataclass
class _Session:
    """One conversation, and the chat messages LangChain has sent and received in it."""

    tools_key: str
    history: list[dict[str, str]]
    conversation: Conversation


class ChatPromptkit(BaseChatModel):
    """A LangChain chat model that builds token-stable prompts and reports every prefix hit.

    Args:
        client: the promptkit client (engine, tokenizer, records); the caller closes it.
        max_tokens, temperature, top_p, seed: sampling defaults (greedy); per call too, e.g.
            ``model.invoke(messages, max_tokens=32)``.
        max_prompt_tokens: compact a session's history past this many prompt tokens (see
            :class:`promptkit.Conversation`).
        cache_salt: prefix-cache isolation for every request of this model (a raw salt).
        tenant: the tenant every request of this model is salted for (docs/tenants.md);
            ``None`` uses the client's default tenant.
        max_sessions: conversations kept for continuation.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: Client
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    max_prompt_tokens: int | None = None
    cache_salt: str | None = None
    tenant: str | SharedCache | None = None
    max_sessions: int = Field(default=16, ge=1)

    _sessions: list[_Session] = PrivateAttr(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _names: Iterator[int] = PrivateAttr(default_factory=lambda: itertools.count(1))
    _drift_key: str = PrivateAttr(default_factory=lambda: f"langchain-{uuid.uuid4().hex}")

    @property
    def _llm_type(self) -> str:
        return "promptkit"

    @property
    def model_name(self) -> str:
        return Path(self.client.tokenizer.name).name

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "cache_salt": self.cache_salt,
        }

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (LangChain tools, functions, pydantic models or OpenAI-style dicts).

        The model decides whether to call a tool: ``tool_choice`` may only be ``None`` or
        ``"auto"`` (nothing constrains decoding here).
        """
        if tool_choice not in (None, "auto"):
            raise ValueError(
                f"ChatPromptkit cannot force tool_choice={tool_choice!r}; pass None or 'auto' "
                "and say in the system prompt when to call which tool"
            )
        schemas = canonical_tools([convert_to_openai_tool(tool) for tool in tools])
        return self.bind(tools=schemas, **kwargs)

    def _sampling(self, stop: list[str] | None, kwargs: Mapping[str, Any]) -> SamplingSettings:
        unknown = sorted(
            k for k in kwargs if k not in _SAMPLING_KWARGS and k not in ("tools", "tenant")
        )
        if unknown:
            raise TypeError(
                f"ChatPromptkit got unsupported arguments {unknown}; it takes "
                f"{', '.join(_SAMPLING_KWARGS)}, stop and tools (via bind_tools)"
            )
        values = {name: kwargs.get(name, getattr(self, name)) for name in _SAMPLING_KWARGS}
        return SamplingSettings(**values, stop=tuple(stop or ()))

    def _session(
        self,
        chat: list[dict[str, str]],
        tools: list[Any] | None,
        tenant: str | SharedCache | None = None,
    ) -> _Session:
        """The session with the longest history that ``chat`` extends, else a new one."""
        key = canonical_json(tools) if tools else ""
        if tenant is not None:  # a tenant's sessions are never continued for another tenant
            key += f"|tenant:{tenant.value if isinstance(tenant, SharedCache) else tenant}"
        extended = [
            s
            for s in reversed(self._sessions)
            if s.tools_key == key and chat[: len(s.history)] == s.history
        ]
        if extended:
            session = max(extended, key=lambda s: len(s.history))
            self._sessions.remove(session)
        else:
            system = chat[0]["content"] if chat and chat[0]["role"] == "system" else None
            conversation = Conversation(
                self.client,
                system=system,
                tools=tools,
                max_prompt_tokens=self.max_prompt_tokens,
                cache_salt=self.cache_salt,
                tenant=tenant,
                name=f"langchain-{next(self._names)}",
                drift_key=f"{self._drift_key}-{hashlib.blake2b(key.encode()).hexdigest()[:16]}",
            )
            session = _Session(key, chat[:1] if system is not None else [], conversation)
        self._sessions = [*self._sessions, session][-self.max_sessions :]
        return session

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        sampling = self._sampling(stop, kwargs)
        chat = to_chat_messages(messages)
        with self._lock:
            session = self._session(chat, kwargs.get("tools"), kwargs.get("tenant", self.tenant))
            try:
                for message in chat[len(session.history) :]:
                    session.conversation.add(message["role"], message["content"])
                generation = session.conversation.say(sampling=sampling)
            except BaseException:
                # The conversation may hold messages its history does not: never continue it.
                self._sessions.remove(session)
                raise
            session.history = [*chat, {"role": "assistant", "content": generation.text}]
        return ChatResult(generations=[ChatGeneration(message=self._message(generation))])

    def _message(self, generation: Generation) -> AIMessage:
        record = generation.record
        calls = [
            tool_call(name=c.name, args=dict(c.arguments), id=f"call_{record.request_id}_{i}")
            for i, c in enumerate(parse_tool_calls(generation.text))
        ]
        output_tokens = len(generation.token_ids)
        usage = UsageMetadata(
            input_tokens=record.prompt_tokens,
            output_tokens=output_tokens,
            total_tokens=record.prompt_tokens + output_tokens,
        )
        if record.cached_tokens is not None:  # unknown stays absent, never a made-up 0
            usage["input_token_details"] = InputTokenDetails(cache_read=record.cached_tokens)
        return AIMessage(
            content=generation.text,
            tool_calls=calls,
            usage_metadata=usage,
            response_metadata={
                "model_name": self.model_name,
                "finish_reason": generation.result.finish_reason,
                "promptkit": {
                    "request_id": record.request_id,
                    "verdict": record.verdict.value,
                    "prompt_tokens": record.prompt_tokens,
                    "cached_tokens": record.cached_tokens,
                    "expected_cached_tokens": record.expected_cached_tokens,
                    "cacheable_tokens": record.cacheable_tokens,
                    "conversation": record.label,
                },
            },
        )
