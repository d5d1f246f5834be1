"""Agents with tools: canonical, sorted tool schemas and canonical JSON results never drift.

Run: ``.venv/bin/python examples/agent_with_tools.py``. Two agents answer two tasks. They share
the system prompt, the tool schemas (sorted, canonical JSON, whatever order they are passed in)
and an example exchange per tool, so the second agent's first step hits all of that. Within an
agent, each step after a tool result hits the whole previous step.
"""

from __future__ import annotations

from collections.abc import Callable

from _report import example_client, print_report

from promptkit import Client, Conversation, SamplingSettings, canonical_json, run_agent

SYSTEM = (
    "You are the Velora bike-sharing assistant. Call a tool when you need live data, then "
    "answer in one sentence."
)
EXAMPLES = [
    (
        "Are there bikes at the park station?",
        '{"name": "station_status", "arguments": {"station": "park"}}',
        "2 bikes, 5 free docks",
        "The park station has 2 bikes and 5 free docks.",
    ),
    (
        "What does a 50 minute e-bike ride cost?",
        '{"name": "ride_price", "arguments": {"ebike": true, "minutes": 50}}',
        "6.00 euros",
        "A 50 minute e-bike ride costs 6.00 euros.",
    ),
]


def station_status(station: str) -> str:
    """Free bikes and free docks at a station."""
    return {"central": "4 bikes, 9 free docks", "market": "0 bikes, 12 free docks"}.get(
        station.lower(), "unknown station"
    )


def ride_price(minutes: int, ebike: bool) -> str:
    """Price of a ride on a monthly plan."""
    extra = max(0, -(-(minutes - 45) // 15))
    cents = extra * 100 + (minutes * 10 if ebike else 0)
    return f"{cents / 100:.2f} euros"


def start_agent(client: Client) -> Conversation:
    """A conversation with the tools and one example exchange per tool.

    The examples are written as SmolLM2 writes tool calls ("name" first): with one per tool the
    135M model calls the right tool; with fewer it invents tool names. They are static, so they
    are part of the cached prefix and cost nothing after the first request.
    """
    chat = Conversation(client, system=SYSTEM, tools=[station_status, ride_price])
    for question, call, result, answer in EXAMPLES:
        chat.add("user", question)
        chat.add("assistant", f"<tool_call>[{call}]</tool_call>")
        chat.add("tool", canonical_json({"result": result}))
        chat.add("assistant", answer)
    return chat


def main(client: Client | None = None) -> None:
    step = SamplingSettings(max_tokens=48)
    tools: list[Callable[..., str]] = [ride_price, station_status]
    with example_client(client) as client:
        for task in (
            "Are there bikes at the market station?",
            "Are there bikes at the central station?",
        ):
            run = run_agent(start_agent(client), task, tools=tools, max_steps=3, sampling=step)
            for number, s in enumerate(run.steps, 1):
                calls = ", ".join(f"{c.name}({dict(c.arguments)})" for c in s.calls) or "-"
                print(f"{task} step {number}: calls {calls} -> {list(s.results)}")
            print(f"answer: {(run.answer or '(no final answer)').strip()}\n")
        print_report(client, title="agent_with_tools: two agents, shared tools")


if __name__ == "__main__":  # vLLM spawns worker processes
    main()
