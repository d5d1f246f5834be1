"""Agents with tools: parse tool calls from the model's output, run them, append the results.

Tool schemas are canonical and sorted (:func:`promptkit.canonical_tools`) and results are
appended as canonical JSON, so neither ever reorders the cached prefix.

The default model (SmolLM2-Instruct) was trained to call tools as
``<tool_call>[{"name": ..., "arguments": {...}}]</tool_call>``; :func:`parse_tool_calls` reads
that, and also a bare JSON object (or list of them) with ``name`` and ``arguments`` keys, which is
what many small models produce when asked for JSON.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine_adapter import SamplingSettings
from promptkit._canonical import canonical_json

if TYPE_CHECKING:
    from promptkit._client import Generation
    from promptkit._conversation import Conversation

__all__ = ["AgentRun", "AgentStep", "ToolCall", "parse_tool_calls", "run_agent"]

_TOOL_CALL_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model asked for."""

    name: str
    arguments: Mapping[str, Any]


def _calls_from_json(value: Any) -> list[ToolCall]:
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            arguments = item.get("arguments", item.get("parameters", {}))
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except (ValueError, RecursionError):
                    arguments = {"input": arguments}
            calls.append(
                ToolCall(item["name"], arguments if isinstance(arguments, Mapping) else {})
            )
    return calls


def _json_values(text: str) -> list[Any]:
    """Every top-level JSON object or array embedded in ``text``, in order."""
    decoder = json.JSONDecoder()
    values = []
    index = 0
    while index < len(text):
        start = min(
            (i for i in (text.find("{", index), text.find("[", index)) if i >= 0), default=-1
        )
        if start < 0:
            break
        try:
            value, end = decoder.raw_decode(text, start)
        except RecursionError:  # deeply nested brackets are not a tool call: skip the whole run
            index = start + 1
            while index < len(text) and text[index] in "[{ \n\t":
                index += 1
            continue
        except ValueError:
            index = start + 1
            continue
        values.append(value)
        index = end
    return values


def parse_tool_calls(text: str) -> list[ToolCall]:
    """Tool calls in a model's output (see the module docstring); ``[]`` for a plain answer."""
    blocks = _TOOL_CALL_BLOCK.findall(text)
    sources = blocks if blocks else [text]
    calls: list[ToolCall] = []
    for source in sources:
        for value in _json_values(source):
            calls.extend(_calls_from_json(value))
    return calls


@dataclass(frozen=True, slots=True)
class AgentStep:
    """One model call of an agent run, the tool calls it made and their results."""

    generation: Generation
    calls: tuple[ToolCall, ...]
    results: tuple[str, ...]


@dataclass
class AgentRun:
    """The steps of an agent run; ``answer`` is the last plain-text reply, if any."""

    steps: list[AgentStep] = field(default_factory=list)
    answer: str | None = None


def _call(tool: Callable[..., Any], call: ToolCall) -> str:
    try:
        signature = inspect.signature(tool)
        accepted = {k: v for k, v in call.arguments.items() if k in signature.parameters}
        result = tool(**accepted)
    except Exception as exc:  # a tool failure is an observation for the model, not a crash
        return canonical_json({"error": f"{type(exc).__name__}: {exc}"})
    return canonical_json({"result": result})


def run_agent(
    conversation: Conversation,
    task: str,
    *,
    tools: Mapping[str, Callable[..., Any]] | Sequence[Callable[..., Any]],
    max_steps: int = 4,
    sampling: SamplingSettings | None = None,
) -> AgentRun:
    """Run the model on ``task`` for up to ``max_steps`` calls, executing the tools it asks for.

    Tool results are appended as ``tool`` messages (canonical JSON); every step's generation
    carries its prefix-cache record.
    """
    table = dict(tools) if isinstance(tools, Mapping) else {t.__name__: t for t in tools}
    run = AgentRun()
    generation = conversation.say(task, sampling=sampling)
    for step in range(max_steps):
        calls = tuple(parse_tool_calls(generation.text))
        results = tuple(
            _call(table[c.name], c)
            if c.name in table
            else canonical_json({"error": f"unknown tool {c.name!r}"})
            for c in calls
        )
        run.steps.append(AgentStep(generation, calls, results))
        if not calls:
            run.answer = generation.text
            break
        for result in results:
            conversation.add("tool", result)
        if step + 1 == max_steps:
            break
        generation = conversation.say(sampling=sampling)
    return run
