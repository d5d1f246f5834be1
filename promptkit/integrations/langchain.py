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

LangChain sends the whole message list on every call. The model answers it with a
:class:`promptkit.StatelessChat` per tool set: when the list extends one it has answered -- the
same messages, then the returned ``AIMessage`` -- the prompt is the earlier prompt's ids, the ids
the model generated, then only the new messages tokenized, so the whole earlier turn hits. When
the app edited a reply, the prompt before it is still reused and the record's ``note`` says why
the rest was tokenized anew.

One model is one template identity in records and metrics (``langchain``, plus a hash of the
tools when tools are bound), however many conversations it serves. Its requests are checked for
drift against each other: a system message that changes from call to call (a clock, a request
id) moves every cached prefix, and is reported as ``DRIFT`` naming the ``system`` segment.

An ``AIMessage`` keeps the model's raw text as its content (tool-call markup included), because
that text is what the next prompt must repeat for the prefix to stay put. Tool schemas go through
:func:`promptkit.canonical_tools`, so binding tools in another order does not move the prefix.
Forced tool calls (``tool_choice``) and :meth:`ChatPromptkit.with_structured_output` use
constrained decoding; the prompt stays the same.

``invoke``/``stream``/``batch`` on a sync engine run one at a time; ``ainvoke``/``astream``/
``abatch`` on :class:`engine_adapter.AsyncVLLMEngine` run concurrently in one engine batch.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForLLMRun,
        CallbackManagerForLLMRun,
    )
    from langchain_core.language_models import BaseChatModel, LanguageModelInput
    from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, InvalidToolCall
    from langchain_core.messages.ai import InputTokenDetails, UsageMetadata
    from langchain_core.messages.tool import (
        invalid_tool_call,
        tool_call,
        tool_call_chunk,
    )
    from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
    from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
    from langchain_core.tools import BaseTool
    from langchain_core.utils.function_calling import (
        convert_to_json_schema,
        convert_to_openai_tool,
    )
    from langchain_core.utils.pydantic import is_basemodel_subclass
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "promptkit.integrations.langchain needs langchain-core: "
        "pip install 'promptkit-vllm[langchain]'"
    ) from exc

from engine_adapter import EngineDelta, OutputConstraint, SamplingSettings
from promptkit._agent import parse_tool_calls
from promptkit._canonical import canonical_json
from promptkit._client import Client, Generation
from promptkit._constraints import (
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    json_constraint,
    tool_call_constraint,
)
from promptkit._history import StatelessChat
from promptkit._tenancy import SharedCache
from promptkit._tools import canonical_tools
from promptkit.integrations._langchain_messages import to_chat_messages

__all__ = ["ChatPromptkit", "to_chat_messages"]

_SAMPLING_KWARGS = ("max_tokens", "temperature", "top_p", "seed")
#: Keyword arguments LangChain itself passes along (tracing) and that change nothing here.
_IGNORED_KWARGS = ("ls_structured_output_format",)
#: How many tool sets one model keeps a chat (and its index) for.
_MAX_TOOL_SETS = 32


def _untitled(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _untitled(v) for k, v in value.items() if k != "title"}
    if isinstance(value, list):
        return [_untitled(v) for v in value]
    return value


def _distinct(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One tool given twice (a pydantic model and its JSON schema, which adds titles) is
    one tool, the first given; two different tools with one name still fail in
    :func:`promptkit.canonical_tools`."""
    kept: dict[str, dict[str, Any]] = {}
    distinct = []
    for tool in tools:
        name = tool["function"]["name"]
        if name in kept and _untitled(kept[name]) == _untitled(tool):
            continue
        kept.setdefault(name, tool)
        distinct.append(tool)
    return distinct


def _cut_off_call(generation: Generation, call_id: str) -> list[InvalidToolCall]:
    """A tool call the engine cut off (``finish_reason="length"`` inside ``<tool_call>``), as
    LangChain's invalid call saying what to do: never dropped unnoticed, never half-parsed
    (a forced call whose string argument runs on ends this way)."""
    text = generation.text
    start = text.rfind(TOOL_CALL_OPEN)
    if generation.result.finish_reason != "length" or start < 0 or TOOL_CALL_CLOSE in text[start:]:
        return []
    error = (
        f"the tool call was cut off at max_tokens ({len(generation.token_ids)} tokens) before "
        "its JSON closed: raise max_tokens (ChatPromptkit(max_tokens=...) or "
        "invoke(..., max_tokens=...))"
    )
    return [invalid_tool_call(name=None, args=text[start:], id=call_id, error=error)]


def _tool_choice(choice: Any, tools: Sequence[Mapping[str, Any]]) -> str | None:
    """LangChain's ``tool_choice`` spellings as ``None`` (the model decides), ``"any"`` or a
    tool name."""
    if choice in (None, "auto", "none", False):
        return None
    if choice in ("any", "required", True):
        return "any"
    if isinstance(choice, dict):
        choice = (choice.get("function") or {}).get("name") or choice.get("name")
    if isinstance(choice, str):
        tool_call_constraint(tools, choice)  # an unknown name fails here, at bind time
        return choice
    raise ValueError(
        f"ChatPromptkit cannot read tool_choice={choice!r}: pass 'auto', 'any', 'required', "
        "a tool name or {'type': 'function', 'function': {'name': ...}}"
    )


class ChatPromptkit(BaseChatModel):
    """A LangChain chat model that builds token-stable prompts and reports every prefix hit.

    Args:
        client: the promptkit client (engine, tokenizer, records); the caller closes it.
        max_tokens, temperature, top_p, seed: sampling defaults (greedy); per call too, e.g.
            ``model.invoke(messages, max_tokens=32)``.
        cache_salt: prefix-cache isolation for every request of this model.
        max_turns: earlier requests remembered per tool set, for continuation (LRU).
        name: the template name in records and metrics (default ``"langchain"``); requests with
            tools bound add a short hash of the tools.
        tenant: the tenant every request of this model is salted for (docs/tenants.md);
            ``None`` uses the client's default tenant; ``tenant=`` on a call overrides it.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: Client
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] | None = None
    cache_salt: str | None = None
    max_turns: int = Field(default=1024, ge=1)
    tenant: str | SharedCache | None = None

    _chats: OrderedDict[str, StatelessChat] = PrivateAttr(default_factory=OrderedDict)
    _chats_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

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

    # -- binding ----------------------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (LangChain tools, functions, pydantic models or OpenAI-style dicts).

        ``tool_choice``: ``None``/``"auto"`` lets the model decide; ``"any"``/``"required"``
        or a tool's name forces one call, through constrained decoding (vLLM structured
        outputs), so even a small model writes a valid call. The prompt is the same either way.
        """
        schemas = canonical_tools(_distinct([convert_to_openai_tool(t) for t in tools]))
        choice = _tool_choice(tool_choice, schemas)
        if choice is not None:
            kwargs["tool_choice"] = choice
        return self.bind(tools=schemas, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        method: Literal["json_schema", "function_calling", "json_mode"] = "json_schema",
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Answers parsed into ``schema`` (a pydantic model, TypedDict or JSON schema).

        ``json_schema`` (default) constrains decoding to JSON valid against the schema;
        ``json_mode`` to any JSON object (say in the prompt what to put in it);
        ``function_calling`` forces a call of a tool named after the schema.
        """
        if method == "function_calling":
            return super().with_structured_output(schema, include_raw=include_raw, **kwargs)
        if method not in ("json_schema", "json_mode"):
            raise ValueError(
                f"ChatPromptkit has no structured-output method {method!r}: use 'json_schema', "
                "'function_calling' or 'json_mode'"
            )
        pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        json_schema = convert_to_json_schema(schema) if method == "json_schema" else None
        constraint = json_constraint(json_schema)
        llm = self.bind(
            constraint=constraint,
            ls_structured_output_format={"kwargs": {"method": method}, "schema": json_schema},
        )
        parser: Runnable[Any, Any] = (
            PydanticOutputParser(pydantic_object=schema)  # type: ignore[arg-type]
            if pydantic
            else JsonOutputParser()
        )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        failed = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([failed], exception_key="parsing_error")

    # -- requests ---------------------------------------------------------------------------

    def _sampling(self, stop: list[str] | None, kwargs: Mapping[str, Any]) -> SamplingSettings:
        known = (
            *_SAMPLING_KWARGS,
            *_IGNORED_KWARGS,
            "tools",
            "tool_choice",
            "constraint",
            "tenant",
        )
        unknown = sorted(k for k in kwargs if k not in (*known, "model"))
        if unknown:
            raise TypeError(
                f"ChatPromptkit got unsupported arguments {unknown}; it takes "
                f"{', '.join(_SAMPLING_KWARGS)}, stop, model and tools (via bind_tools)"
            )
        model = kwargs.get("model")
        if model is not None and model not in (self.model_name, self.client.tokenizer.name):
            raise ValueError(
                f"ChatPromptkit runs {self.model_name!r} (its client's model) and cannot switch "
                f"to model={model!r}: build a ChatPromptkit on a client for that model"
            )
        constraint: OutputConstraint | None = kwargs.get("constraint")
        if kwargs.get("tool_choice") is not None:
            constraint = tool_call_constraint(kwargs["tools"], kwargs["tool_choice"])
        values = {name: kwargs.get(name, getattr(self, name)) for name in _SAMPLING_KWARGS}
        stops = stop if stop is not None else self.stop
        return SamplingSettings(**values, stop=tuple(stops or ()), constraint=constraint)

    def _chat_for(self, kwargs: Mapping[str, Any]) -> StatelessChat:
        return self._chat(kwargs.get("tools"), kwargs.get("tenant", self.tenant))

    def _chat(
        self, tools: Sequence[Mapping[str, Any]] | None, tenant: str | SharedCache | None
    ) -> StatelessChat:
        """The chat of this tool set: one template identity, however many conversations."""
        key = canonical_json(tools) if tools else ""
        # One chat (and index) per tool set and tenant: no history is continued across tenants.
        tenant_key = tenant.value if isinstance(tenant, SharedCache) else tenant
        with self._chats_lock:
            chat = self._chats.get(f"{key}|{tenant_key}")
            if chat is None:
                name = self.name or "langchain"
                if key:
                    name += "-" + hashlib.blake2b(key.encode(), digest_size=4).hexdigest()
                chat = StatelessChat(
                    self.client,
                    name=name,
                    tools=tools,
                    cache_salt=self.cache_salt,
                    tenant=tenant,
                    max_turns=self.max_turns,
                )
                self._chats[f"{key}|{tenant_key}"] = chat
            self._chats.move_to_end(f"{key}|{tenant_key}")
            while len(self._chats) > _MAX_TOOL_SETS:
                self._chats.popitem(last=False)
        return chat

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        sampling = self._sampling(stop, kwargs)
        chat = to_chat_messages(messages)
        # No lock here: LangChain's sync batch calls this from a thread pool, and the engine
        # decides what runs at once (VLLMEngine serves one call at a time, AsyncVLLMEngine and
        # OpenAIEngine batch concurrent calls).
        generation = self._chat_for(kwargs).reply(chat, sampling=sampling)
        return ChatResult(generations=[ChatGeneration(message=self._message(generation))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # No lock: concurrent callers are batched by the engine (AsyncVLLMEngine); engines
        # without a native async path serialize their own calls.
        sampling = self._sampling(stop, kwargs)
        chat = to_chat_messages(messages)
        generation = await self._chat(
            kwargs.get("tools"), kwargs.get("tenant", self.tenant)
        ).areply(chat, sampling=sampling)
        return ChatResult(generations=[ChatGeneration(message=self._message(generation))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        sampling = self._sampling(stop, kwargs)
        chat = to_chat_messages(messages)
        for item in self._chat_for(kwargs).stream(chat, sampling=sampling):
            chunk = self._chunk(item)
            if run_manager is not None and isinstance(item, EngineDelta):
                run_manager.on_llm_new_token(item.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        sampling = self._sampling(stop, kwargs)
        chat = to_chat_messages(messages)
        async for item in self._chat(
            kwargs.get("tools"), kwargs.get("tenant", self.tenant)
        ).astream(chat, sampling=sampling):
            chunk = self._chunk(item)
            if run_manager is not None and isinstance(item, EngineDelta):
                await run_manager.on_llm_new_token(item.text, chunk=chunk)
            yield chunk

    # -- answers ----------------------------------------------------------------------------

    def _chunk(self, item: EngineDelta | Generation) -> ChatGenerationChunk:
        """A delta as a text chunk; the finished generation as the last chunk, with the usage,
        the metadata and the parsed tool calls (its text came in the deltas already)."""
        if isinstance(item, EngineDelta):
            return ChatGenerationChunk(message=AIMessageChunk(content=item.text))
        whole = self._message(item)
        calls = [
            tool_call_chunk(name=c["name"], args=canonical_json(c["args"]), id=c["id"], index=i)
            for i, c in enumerate(whole.tool_calls)
        ]
        # A cut-off call's args start with the tag, so LangChain cannot parse them into a call
        # when it merges the chunks: it stays invalid (its reason is in the finish_reason).
        calls += [
            tool_call_chunk(name=c["name"], args=c["args"], id=c["id"], index=len(calls) + i)
            for i, c in enumerate(whole.invalid_tool_calls)
        ]
        last = AIMessageChunk(
            content="",
            tool_call_chunks=calls,
            usage_metadata=whole.usage_metadata,
            response_metadata=whole.response_metadata,
            chunk_position="last",
        )
        return ChatGenerationChunk(message=last)

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
            invalid_tool_calls=_cut_off_call(generation, f"call_{record.request_id}_{len(calls)}"),
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
                    "template": record.template,
                    "note": record.note,
                },
            },
        )
