"""ChatPromptkit beyond the standard suites, engine-free: forced tools and structured output by
constrained decoding (the prompt unmoved), content blocks, streaming chunks, the model override,
and one template identity however many conversations (issue 12)."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from pydantic import BaseModel

from engine_adapter import EngineRequest, FunctionEngine, OutputConstraint
from engine_adapter._vllm_common import sampling_params
from engine_adapter._wire import structured_outputs
from promptkit import Client, ConversationError, Tokenizer
from promptkit._constraints import json_constraint, tool_call_constraint
from promptkit.integrations.langchain import ChatPromptkit, to_chat_messages
from tests.prefix_cache_fake import SimulatedPrefixCache

SYSTEM = "You are a careful assistant. Use the tools when a question needs them."


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return "sunny"


class Person(BaseModel):
    """A person."""

    name: str
    age: int


def recording_client(tokenizer: Tokenizer, answer: str) -> tuple[Client, list[EngineRequest]]:
    engine = FunctionEngine(lambda request: answer)
    return Client(engine=engine, tokenizer=tokenizer), engine.requests


def test_constraints_translate_to_vllm_structured_outputs() -> None:
    bare = structured_outputs(json_constraint({"type": "object"}))
    assert bare == {"json": {"type": "object"}, "disable_any_whitespace": True}
    tagged = tool_call_constraint(
        [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}],
        "any",
    )
    fields = structured_outputs(tagged)
    elements = json.loads(fields["structural_tag"])["format"]["elements"]
    assert [e["type"] for e in elements] == ["const_string", "json_schema", "const_string"]
    assert (elements[0]["value"], elements[2]["value"]) == ("<tool_call>", "</tool_call>")
    # Regression: the tag was serialized with sorted keys, so the model wrote "arguments" before
    # "name" and ran out of tokens before closing the call.
    items = elements[1]["json_schema"]["items"]
    assert list(items["properties"]) == ["name", "arguments"]
    # vLLM itself accepts both (xgrammar compiles them when the request runs).
    from engine_adapter import SamplingSettings

    params = sampling_params(SamplingSettings(constraint=tagged))
    assert params.structured_outputs is not None
    assert params.structured_outputs.structural_tag == fields["structural_tag"]


def test_tool_call_constraint_names_a_bound_tool_or_any() -> None:
    tools = [
        {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
        for n in ("add", "get_weather")
    ]
    schema = json.loads(tool_call_constraint(tools, "any").json_schema)
    assert [c["properties"]["name"]["const"] for c in schema["items"]["anyOf"]] == [
        "add",
        "get_weather",
    ]
    named = json.loads(tool_call_constraint(tools, "add").json_schema)
    assert list(named["items"]["properties"]) == ["name", "arguments"]  # the name comes first
    with pytest.raises(ConversationError, match="names no bound tool"):
        tool_call_constraint(tools, "multiply")


def test_forced_tool_choice_constrains_decoding_and_keeps_the_prompt(tokenizer: Tokenizer) -> None:
    client, requests = recording_client(
        tokenizer, '<tool_call>[{"name": "add", "arguments": {"a": 1, "b": 2}}]</tool_call>'
    )
    model = ChatPromptkit(client=client)
    messages = [SystemMessage(SYSTEM), HumanMessage("What is 1 + 2?")]
    free = model.bind_tools([add, get_weather]).invoke(messages)
    for choice in ("any", "required", "add", {"type": "function", "function": {"name": "add"}}):
        forced = model.bind_tools([add, get_weather], tool_choice=choice).invoke(messages)
        assert forced.tool_calls[0]["name"] == "add"  # type: ignore[attr-defined]
    assert free.tool_calls and requests[0].sampling.constraint is None  # type: ignore[attr-defined]
    constrained = [r.sampling.constraint for r in requests[1:]]
    assert all(isinstance(c, OutputConstraint) for c in constrained)
    assert constrained[0] == constrained[1]  # "any" and "required" are the same constraint
    # Same prompt, token for token, with or without the constraint: the cache is untouched.
    assert {r.prompt_token_ids for r in requests} == {requests[0].prompt_token_ids}
    with pytest.raises(ConversationError, match="names no bound tool"):
        model.bind_tools([add], tool_choice="multiply")


@pytest.mark.parametrize("method", ["json_schema", "json_mode", "function_calling"])
def test_structured_output_parses_constrained_answers(tokenizer: Tokenizer, method: str) -> None:
    answer = (
        '<tool_call>[{"name": "Person", "arguments": {"name": "Ada", "age": 36}}]</tool_call>'
        if method == "function_calling"
        else '{"name":"Ada","age":36}'
    )
    client, requests = recording_client(tokenizer, answer)
    model = ChatPromptkit(client=client)
    person = model.with_structured_output(Person, method=method).invoke("Ada, 36.")  # type: ignore[arg-type]
    assert person == Person(name="Ada", age=36)
    constraint = requests[0].sampling.constraint
    assert constraint is not None
    if method == "json_schema":
        assert json.loads(constraint.json_schema)["required"] == ["name", "age"]
    if method == "json_mode":
        assert json.loads(constraint.json_schema) == {"type": "object"}
    raw = model.with_structured_output(Person, method=method, include_raw=True).invoke("Ada.")  # type: ignore[arg-type]
    assert isinstance(raw, dict) and isinstance(raw["raw"], AIMessage)
    assert raw["parsed"] == Person(name="Ada", age=36) and raw["parsing_error"] is None


def test_content_blocks_in_history_become_text_and_calls() -> None:
    call = {"name": "add", "args": {"b": 2, "a": 1}, "id": "c1"}
    markup = '<tool_call>[{"name": "add", "arguments": {"a": 1, "b": 2}}]</tool_call>'
    chat = to_chat_messages(
        [
            HumanMessage([{"type": "text", "text": "1 + 2?"}]),
            # Anthropic style: text and a tool_use block.
            AIMessage(
                [{"type": "text", "text": "Adding."}, {"type": "tool_use", **call, "input": {}}],
                tool_calls=[call],
            ),
            HumanMessage([{"type": "tool_result", "tool_use_id": "c1", "content": "3"}]),
            # LangChain v1 standard blocks: our own raw text, then the parsed call.
            AIMessage(
                [{"type": "text", "text": markup}, {"type": "tool_call", **call}],
                tool_calls=[call],
            ),
            ToolMessage([{"type": "text", "text": "3"}], tool_call_id="c1"),
        ]
    )
    assert chat == [
        {"role": "user", "content": "1 + 2?"},
        {"role": "assistant", "content": "Adding." + markup},
        {"role": "user", "content": "3"},
        {"role": "assistant", "content": markup},  # the calls are not written twice
        {"role": "tool", "content": "3"},
    ]
    with pytest.raises(ValueError, match="'image' content block"):
        to_chat_messages([HumanMessage([{"type": "image", "url": "https://x/y.png"}])])


def test_model_override_accepts_this_model_and_refuses_another(tokenizer: Tokenizer) -> None:
    client, _ = recording_client(tokenizer, "Hi.")
    model = ChatPromptkit(client=client)
    assert model.invoke("Hello", model=model.model_name).content == "Hi."
    with pytest.raises(ValueError, match="cannot switch"):
        model.invoke("Hello", model="gpt-4o")


def test_stream_yields_chunks_then_usage_on_the_last(tokenizer: Tokenizer) -> None:
    client, _ = recording_client(tokenizer, "Hi there.")
    model = ChatPromptkit(client=client)
    chunks = list(model.stream("Hello"))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole = whole + chunk
    assert whole.content == "Hi there."
    assert chunks[-1].usage_metadata is not None and chunks[-1].chunk_position == "last"
    assert all(c.usage_metadata is None for c in chunks[:-1])  # counted once


def test_a_thousand_conversations_are_one_template(tokenizer: Tokenizer) -> None:
    cache = SimulatedPrefixCache(answer=" Sure.", answer_ids=tuple(tokenizer.encode(" Sure.").ids))
    client = Client(engine=cache.engine(), tokenizer=tokenizer)
    model = ChatPromptkit(client=client, max_turns=64)
    tooled = model.bind_tools([add])
    for i in range(1000):
        runnable = tooled if i % 2 else model
        history = [SystemMessage(SYSTEM), HumanMessage(f"Question number {i}?")]
        reply = runnable.invoke(history)
        if i % 100 == 0:  # some conversations go on: they continue their own turn
            runnable.invoke([*history, reply, HumanMessage("And then?")])
    assert {r.template for r in client.records} == {"langchain", f"langchain-{_tools_hash()}"}
    assert {r.label for r in client.records} == {r.template for r in client.records}
    assert all(len(chat) <= 64 for chat in model._chats.values())
    assert len(client.records) == 1010
    assert sum(r.note is not None and r.note.startswith("continues") for r in client.records) == 10


def _tools_hash() -> str:
    import hashlib

    from langchain_core.utils.function_calling import convert_to_openai_tool

    from promptkit import canonical_json, canonical_tools

    key = canonical_json(canonical_tools([convert_to_openai_tool(add)]))
    return hashlib.blake2b(key.encode(), digest_size=4).hexdigest()
