"""A plain LangChain tool-calling agent loop on promptkit: cache hits without rewriting it.

Run: ``.venv/bin/python examples/langchain_agent.py`` (``pip install 'promptkit-vllm[langchain]'``).
The loop is ordinary LangChain: ``bind_tools``, ``invoke``, run each ``tool_call``, append the
``ToolMessage``, invoke again. ``ChatPromptkit`` notices that each message list extends the
previous one and continues the same token sequence, so every call after the first reads most of
its prompt from vLLM's cache -- ``usage_metadata["input_token_details"]["cache_read"]``.
"""

from __future__ import annotations

from _report import example_client, print_report
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool, tool

from promptkit import Client
from promptkit.integrations.langchain import ChatPromptkit


@tool
def station_status(station: str) -> str:
    """Free bikes and free docks at a Velora station."""
    return {"central": "4 bikes, 9 free docks", "market": "0 bikes, 12 free docks"}.get(
        station.lower(), "unknown station"
    )


SYSTEM = (
    "You are the Velora bike-sharing assistant. Call a tool when you need live data, then "
    "answer in one sentence."
)
# A one-shot example in the model's own tool-call format: SmolLM2-135M copies it reliably.
EXAMPLE: list[BaseMessage] = [
    HumanMessage("Are there bikes at the park station?"),
    AIMessage(
        '<tool_call>[{"name": "station_status", "arguments": {"station": "park"}}]</tool_call>',
        tool_calls=[{"name": "station_status", "args": {"station": "park"}, "id": "example"}],
    ),
    ToolMessage("2 bikes, 5 free docks", tool_call_id="example"),
    AIMessage("The park station has 2 bikes and 5 free docks."),
]


def run_turn(
    model: Runnable[LanguageModelInput, AIMessage],
    tools: dict[str, BaseTool],
    messages: list[BaseMessage],
) -> None:
    """Call the model, run the tools it asks for, repeat until it answers (at most 3 calls)."""
    for _ in range(3):
        reply = model.invoke(messages)
        messages.append(reply)
        usage = reply.usage_metadata
        assert usage is not None  # ChatPromptkit always reports usage
        cached = usage.get("input_token_details", {}).get("cache_read")
        print(f"  model: {reply.content!r} (prompt {usage['input_tokens']}, cached {cached})")
        if not reply.tool_calls:
            return
        for call in reply.tool_calls:
            if call["name"] in tools:
                result = tools[call["name"]].invoke(call)
            else:  # a small model may invent a tool: say so, as the tool's answer
                known = ", ".join(tools)
                result = ToolMessage(
                    f"unknown tool {call['name']!r}; the tools are: {known}",
                    tool_call_id=call["id"] or call["name"],
                )
            print(f"  tool:  {call['name']}({call['args']}) -> {result.content!r}")
            messages.append(result)


def main(client: Client | None = None) -> None:
    tools: dict[str, BaseTool] = {"station_status": station_status}
    with example_client(client) as client:
        model = ChatPromptkit(client=client, max_tokens=48).bind_tools(list(tools.values()))
        messages: list[BaseMessage] = [SystemMessage(SYSTEM), *EXAMPLE]
        for question in (
            "Are there bikes at the market station?",
            "Are there bikes at the central station?",
        ):
            print(f"user: {question}")
            messages.append(HumanMessage(question))
            run_turn(model, tools, messages)
        print_report(client, title="langchain_agent: bind_tools loop on ChatPromptkit")


if __name__ == "__main__":  # vLLM spawns worker processes
    main()
