"""Constrained decoding for forced tool calls and structured output.

The engine gets an :class:`engine_adapter.OutputConstraint`; these functions write it. Nothing
here touches the prompt: constraining what the model may write leaves every cached prefix where
it was.

A forced call is written the way the default model (SmolLM2) writes tool calls unforced,
``<tool_call>[{"name": ..., "arguments": {...}}]</tool_call>``, so that
:func:`promptkit.parse_tool_calls` reads it and the model sees its own format in the history.
:func:`tool_call_text` writes calls in that format (the example in a prompt's tools block, calls
made elsewhere and re-sent in a history), so there is one format, here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from engine_adapter import OutputConstraint
from promptkit._canonical import canonical_json
from promptkit.errors import ConversationError

__all__ = ["json_constraint", "tool_call_constraint", "tool_call_text"]

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"


def tool_call_text(calls: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """``(name, arguments)`` calls as the model writes them, ``name`` first, spaced JSON.

    Contract: a prompt's tools block shows this format, so changing it changes every prefix
    hash of a prompt with tools.
    """
    body = ", ".join(
        f'{{"name": {canonical_json(name)}, "arguments": {canonical_json(args, spaced=True)}}}'
        for name, args in calls
    )
    return f"{TOOL_CALL_OPEN}[{body}]{TOOL_CALL_CLOSE}"


def json_constraint(schema: Mapping[str, Any] | None) -> OutputConstraint:
    """Output that is one JSON value valid against ``schema`` (``None``: any JSON object)."""
    return OutputConstraint(json_schema=_json(schema if schema is not None else {"type": "object"}))


def tool_call_constraint(tools: Sequence[Mapping[str, Any]], choice: str) -> OutputConstraint:
    """Output that is exactly one call of a tool in ``tools`` (OpenAI-style schemas):
    any of them for ``choice="any"``, else the tool named ``choice``."""
    names = [str(tool["function"]["name"]) for tool in tools]
    if choice != "any" and choice not in names:
        raise ConversationError(
            f"tool_choice={choice!r} names no bound tool; the tools are {names}: pass one of "
            "them, 'any' or 'auto'"
        )
    calls = [
        {
            "type": "object",
            # "name" first: properties are generated in the schema's order, and the model
            # should pick the tool before writing its arguments.
            "properties": {
                "name": {"const": tool["function"]["name"]},
                "arguments": tool["function"].get("parameters") or {"type": "object"},
            },
            "required": ["name", "arguments"],
        }
        for tool in tools
        if choice == "any" or tool["function"]["name"] == choice
    ]
    item = calls[0] if len(calls) == 1 else {"anyOf": calls}
    schema = {"type": "array", "items": item, "minItems": 1, "maxItems": 1}
    return OutputConstraint(
        json_schema=_json(schema), prefix=TOOL_CALL_OPEN, suffix=TOOL_CALL_CLOSE
    )


def _json(schema: Mapping[str, Any]) -> str:
    # Not sorted: a JSON schema's property order is the order the output is generated in.
    return json.dumps(schema, ensure_ascii=False, separators=(",", ":"))
