"""The agent loop: tool calls parsed from model text, tool results appended without drift."""

from __future__ import annotations

from promptkit import Client, SamplingSettings, Verdict
from promptkit._agent import parse_tool_calls, run_agent
from promptkit._conversation import Conversation

REPLY = SamplingSettings(max_tokens=24)


def test_agent_tools_and_results_never_drift(client: Client) -> None:
    def add(a: float, b: float) -> float:
        """Add two numbers."""
        return a + b

    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return {"paris": "sunny, 21 C"}.get(city.lower(), "unknown")

    system = (
        "You are an agent. To use a tool, reply with only a JSON object such as "
        '{"name": "add", "arguments": {"a": 1, "b": 2}}. Otherwise reply in plain text.'
    )
    records = []
    for task in ("What is 2 + 3?", "What is the weather in Paris?"):
        chat = Conversation(client, system=system, tools=[get_weather, add])
        run = run_agent(chat, task, tools=[add, get_weather], max_steps=3, sampling=REPLY)
        records += [s.generation.record for s in run.steps]
        assert run.steps
    assert all(r.verdict is not Verdict.DRIFT for r in records)
    # The second agent shares the system prompt and tool schemas with the first: they hit.
    second_first_step = records[len(records) // 2] if len(records) > 1 else records[0]
    assert (second_first_step.cached_tokens or 0) > 0 or len(records) == 1


def test_parse_tool_calls_formats() -> None:
    smol = '<tool_call>[{"name": "add", "arguments": {"a": 1, "b": 2}}]</tool_call>'
    assert [(c.name, dict(c.arguments)) for c in parse_tool_calls(smol)] == [
        ("add", {"a": 1, "b": 2})
    ]
    bare = 'Sure: {"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"} done'
    assert [(c.name, dict(c.arguments)) for c in parse_tool_calls(bare)] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert parse_tool_calls("The answer is 5.") == []
    assert parse_tool_calls('{"no": "name"}') == []
