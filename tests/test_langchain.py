"""The LangChain chat model: invoke, batch and a bind_tools agent loop on the real engine; drift
across sessions on FunctionEngine with the prefix-cache simulator."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool, tool

from engine_adapter import EngineRequest, EngineResult, FunctionEngine
from promptkit import Client, Tokenizer, Verdict, canonical_tools
from promptkit.integrations import langchain as integration
from promptkit.integrations.langchain import ChatPromptkit, to_chat_messages
from tests.prefix_cache_fake import SimulatedPrefixCache

SYSTEM = (
    "You are a weather assistant for travellers planning a trip in Europe. Always answer "
    "weather questions by calling the get_weather tool first, then answer in one sentence."
)


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return {"paris": "sunny, 21 C", "berlin": "cloudy, 15 C"}.get(city.lower(), "unknown")


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


# A one-shot example in SmolLM2's own tool-call format: the 135M model copies it reliably,
# where a description of the format in the system prompt alone does not make it call tools.
EXAMPLE: list[BaseMessage] = [
    HumanMessage("What is the weather in Rome?"),
    AIMessage(
        '<tool_call>[{"name": "get_weather", "arguments": {"city": "Rome"}}]</tool_call>',
        tool_calls=[{"name": "get_weather", "args": {"city": "Rome"}, "id": "example"}],
    ),
    ToolMessage("rainy, 12 C", tool_call_id="example"),
    AIMessage("It is rainy and 12 C in Rome."),
]


def cache_read(message: BaseMessage) -> int:
    assert isinstance(message, AIMessage) and message.usage_metadata is not None
    return message.usage_metadata.get("input_token_details", {}).get("cache_read", -1)


def test_integrations_package_imports_no_framework() -> None:
    code = "import sys, promptkit.integrations; print('langchain_core' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert integration.__all__ == sorted(integration.__all__)
    assert all(hasattr(integration, name) for name in integration.__all__)


def test_messages_map_to_chat_roles() -> None:
    calls = [{"name": "add", "args": {"b": 2, "a": 1}, "id": "c1"}]
    chat = to_chat_messages(
        [
            SystemMessage("sys"),
            HumanMessage([{"type": "text", "text": "hi "}, "there"]),
            AIMessage("", tool_calls=calls),
            ToolMessage("3", tool_call_id="c1"),
        ]
    )
    assert chat == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi there"},
        {
            "role": "assistant",
            "content": '<tool_call>[{"name": "add", "arguments": {"a": 1, "b": 2}}]</tool_call>',
        },
        {"role": "tool", "content": "3"},
    ]


@pytest.mark.engine
def test_bind_tools_binds_canonical_sorted_schemas(client: Client) -> None:
    model = ChatPromptkit(client=client)
    one = model.bind_tools([get_weather, add])
    other = model.bind_tools([add, get_weather])
    assert one.kwargs["tools"] == other.kwargs["tools"]  # type: ignore[attr-defined]
    assert [t["function"]["name"] for t in one.kwargs["tools"]] == ["add", "get_weather"]  # type: ignore[attr-defined]
    assert one.kwargs["tools"] == canonical_tools(one.kwargs["tools"])  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="tool_choice"):
        model.bind_tools([add], tool_choice=3)  # type: ignore[arg-type]


@pytest.mark.engine
def test_invoke_and_batch_report_usage_and_verdicts(client: Client) -> None:
    model = ChatPromptkit(client=client, max_tokens=8)
    first = model.invoke([SystemMessage(SYSTEM), HumanMessage("Name a city in France.")])
    assert isinstance(first, AIMessage) and isinstance(first.content, str)
    usage = first.usage_metadata
    assert usage is not None
    record = client.records[-1]
    assert usage["input_tokens"] == record.prompt_tokens
    assert usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert cache_read(first) == record.cached_tokens == 0
    meta = first.response_metadata["promptkit"]
    assert meta["verdict"] == Verdict.MISS.value
    assert meta["expected_cached_tokens"] == 0

    # Both share the system prompt with the first request: its full blocks hit.
    outs = model.batch(
        [
            [SystemMessage(SYSTEM), HumanMessage("Name a city in France.")],
            [SystemMessage(SYSTEM), HumanMessage("Name a city in Spain.")],
        ]
    )
    assert all(isinstance(o, AIMessage) for o in outs)
    assert all(cache_read(o) >= 32 for o in outs)
    assert all(o.response_metadata["promptkit"]["verdict"] == "HIT" for o in outs)
    assert len(client.records) == 3
    assert client.summary().counters_match is True


@pytest.mark.engine
def test_tool_calling_loop_round_trips_tool_messages_and_hits(client: Client) -> None:
    tools: dict[str, BaseTool] = {"get_weather": get_weather, "add": add}
    model = ChatPromptkit(client=client, max_tokens=40).bind_tools(list(tools.values()))
    messages: list[BaseMessage] = [
        SystemMessage(SYSTEM),
        *EXAMPLE,
        HumanMessage("What is the weather in Paris?"),
    ]
    replies: list[AIMessage] = []
    for _ in range(3):  # a minimal agent: call the model, run the tools it asks for, repeat
        reply = model.invoke(messages)
        assert isinstance(reply, AIMessage)
        replies.append(reply)
        messages.append(reply)
        if not reply.tool_calls:
            if len(replies) == 1:  # no tool call: the loop still needs a second turn
                messages.append(HumanMessage("Please go on."))
                continue
            break
        for call in reply.tool_calls:
            messages.append(tools[call["name"]].invoke(call))

    assert replies[0].tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1_0", "type": "tool_call"}
    ]
    result = messages[len(EXAMPLE) + 3]
    assert isinstance(result, ToolMessage)
    assert (result.content, result.tool_call_id) == ("sunny, 21 C", "call_1_0")

    # The second call continues the first one's session: the whole first turn is cached.
    second = replies[1].response_metadata["promptkit"]
    first_record, second_record = client.records[0], client.records[1]
    assert second["template"] == replies[0].response_metadata["promptkit"]["template"]
    assert second["note"].startswith("continues request 1 ")
    assert cache_read(replies[1]) == second["expected_cached_tokens"] > 0
    assert cache_read(replies[1]) >= first_record.prompt_tokens // 32 * 32
    assert second_record.verdict is Verdict.HIT
    assert all(r.verdict is not Verdict.DRIFT for r in client.records)


@pytest.mark.engine
def test_an_edited_reply_still_reuses_the_prompt_before_it(client: Client) -> None:
    model = ChatPromptkit(client=client, max_tokens=4)
    messages: list[BaseMessage] = [SystemMessage(SYSTEM), HumanMessage("Hi!")]
    reply = model.invoke(messages)
    kept = model.invoke([*messages, reply, HumanMessage("Thanks.")])
    edited = model.invoke([*messages, AIMessage("Hello."), HumanMessage("Thanks.")])
    assert kept.response_metadata["promptkit"]["note"].startswith("continues request 1 ")
    note = edited.response_metadata["promptkit"]["note"]
    assert "edited by the app" in note and "request 1 " in note
    # The first request's prompt is reused whole: its full blocks hit.
    assert cache_read(edited) >= client.records[0].prompt_tokens // 32 * 32 >= 32


# -- engine-free: FunctionEngine and the prefix-cache simulator --------------------------------


def test_a_system_prompt_that_changes_between_calls_is_drift(tokenizer: Tokenizer) -> None:
    cache = SimulatedPrefixCache(
        answer=" Paris.", answer_ids=tuple(tokenizer.encode(" Paris.").ids)
    )
    client = Client(engine=cache.engine(), tokenizer=tokenizer)
    model = ChatPromptkit(client=client, max_tokens=8)
    rules = " ".join(f"Rule {i}: answer in one short, polite sentence." for i in range(12))
    question = HumanMessage("Name a city in France.")
    first = model.invoke([SystemMessage(f"Now: 2026-11-20 10:00:00. {SYSTEM} {rules}"), question])
    again = model.invoke([SystemMessage(f"Now: 2026-11-20 10:00:00. {SYSTEM} {rules}"), question])
    later = model.invoke([SystemMessage(f"Now: 2026-11-20 10:00:07. {SYSTEM} {rules}"), question])
    verdicts = [m.response_metadata["promptkit"]["verdict"] for m in (first, again, later)]
    assert verdicts == ["MISS", "HIT", "DRIFT"]
    explanation = client.records[-1].explanation
    assert explanation is not None
    assert explanation.cause == "volatile value in a stable segment"
    assert (explanation.segment, explanation.variable) == ("system", "system")
    assert explanation.template_file is not None and explanation.template_file.startswith(
        "<langchain"
    )
    # A session of another model (or with other tools) promises nothing to this one.
    other = ChatPromptkit(client=client, max_tokens=8)
    fresh = other.invoke([SystemMessage(f"Now: 2026-11-20 10:00:09. {SYSTEM} {rules}"), question])
    assert fresh.response_metadata["promptkit"]["verdict"] != "DRIFT"


def _function_model(
    tokenizer: Tokenizer, answer: EngineResult | str
) -> tuple[Client, FunctionEngine]:
    def respond(request: EngineRequest) -> EngineResult | str:
        if isinstance(answer, str):
            return answer
        return replace(answer, prompt_token_ids=request.prompt_token_ids)

    engine = FunctionEngine(respond)
    return Client(engine=engine, tokenizer=tokenizer), engine


def test_tools_block_shows_the_call_format_a_forced_call_is_constrained_to(
    tokenizer: Tokenizer,
) -> None:
    # Regression: with only compact schemas in the prompt, SmolLM2-135M forced to call
    # magic_function for "magic_function(3)" wrote {"input":100}, and ran a string argument to
    # max_tokens; shown the call format once, it writes {"input": 3}.
    client, engine = _function_model(tokenizer, '<tool_call>[{"name": "add"}]</tool_call>')
    with client:
        ChatPromptkit(client=client).bind_tools([add], tool_choice="any").invoke("1 + 2?")
    prompt = tokenizer.decode(engine.requests[0].prompt_token_ids)
    example = '<tool_call>[{"name": "tool_name", "arguments": {"argument": "value"}}]</tool_call>'
    assert f"\n\nTo call a tool, write {example}\n<|im_end|>" in prompt
    constraint = engine.requests[0].sampling.constraint
    assert constraint is not None and (constraint.prefix, constraint.suffix) == (
        "<tool_call>",
        "</tool_call>",
    )


def test_a_tool_call_cut_off_at_max_tokens_is_an_invalid_call_saying_so(
    tokenizer: Tokenizer,
) -> None:
    # A forced call whose string argument ran on ("us_us_us...") used to come back as an
    # AIMessage with no tool call and no word why.
    text = '<tool_call>[{"name": "get_weather", "arguments": {"city": "us_us_us'
    cut = EngineResult(
        prompt_token_ids=(),
        num_cached_tokens=None,
        text=text,
        token_ids=tuple(range(16)),
        finish_reason="length",
        ttft_s=None,
        latency_s=0.0,
        timing_source="measured",
    )
    client, _ = _function_model(tokenizer, cut)
    with client:
        model = ChatPromptkit(client=client).bind_tools([get_weather], tool_choice="any")
        message = model.invoke("Weather?")
        streamed = None
        for chunk in model.stream("Weather?"):
            streamed = chunk if streamed is None else streamed + chunk
    assert isinstance(message, AIMessage) and message.tool_calls == []
    [invalid] = message.invalid_tool_calls
    assert invalid["args"] == text and invalid["name"] is None
    assert "cut off at max_tokens (16 tokens)" in (invalid["error"] or "")
    assert message.response_metadata["finish_reason"] == "length"
    assert isinstance(streamed, AIMessage) and streamed.tool_calls == []
    assert [c["args"] for c in streamed.invalid_tool_calls] == [text]
