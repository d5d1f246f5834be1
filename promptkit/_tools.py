"""Tool (function) schemas from dicts, pydantic models or typed Python callables, and where a
chat prompt puts them (:func:`tools_into_messages`, the one policy for every chat prompt)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, get_type_hints

from promptkit._canonical import canonical_json, to_canonical
from promptkit._constraints import tool_call_text
from promptkit.errors import SerializationError

__all__ = ["canonical_tools", "tool_schema", "tools_into_messages"]

#: What follows the schemas in a tools block: the call format, shown once. Without it the default
#: model (SmolLM2-135M), forced to call a tool, wrote compact JSON like the schemas' and wrong
#: values: {"input":100} for "What is the value of magic_function(3)?", and a string argument
#: that ran to max_tokens ("us_us_us..."); with it, {"input": 3} and "New York". Constant
#: text, so the block stays byte-stable.
TOOL_CALL_HINT = "To call a tool, write " + tool_call_text([("tool_name", {"argument": "value"})])


def tool_schema(tool: Any) -> dict[str, Any]:
    """An OpenAI-style ``{"type": "function", "function": {...}}`` schema for ``tool``.

    ``tool`` may be such a dict already, a bare ``{"name", "description", "parameters"}`` dict, a
    pydantic model class (its docstring is the description), or a typed function.
    """
    if isinstance(tool, Mapping):
        if "function" in tool:
            return dict(tool)
        if "name" in tool:
            return {"type": "function", "function": dict(tool)}
        raise SerializationError(f"tool dict needs 'name' or 'function': {sorted(tool)}")
    schema_fn = getattr(tool, "model_json_schema", None)
    if isinstance(tool, type) and callable(schema_fn):
        parameters = schema_fn()
        parameters.pop("title", None)
        description = parameters.pop("description", None) or inspect.getdoc(tool) or ""
        return _function(tool.__name__, description, parameters)
    if callable(tool):
        return _from_callable(tool)
    raise SerializationError(f"cannot make a tool schema from {type(tool).__name__}")


def _function(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


_JSON_TYPES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
}


def _from_callable(fn: Callable[..., Any]) -> dict[str, Any]:
    hints = get_type_hints(fn)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, param in inspect.signature(fn).parameters.items():
        hint = hints.get(name, str)
        json_type = _JSON_TYPES.get(getattr(hint, "__origin__", hint), "string")
        properties[name] = {"type": json_type}
        if param.default is inspect.Parameter.empty:
            required.append(name)
    parameters = {"type": "object", "properties": properties, "required": required}
    return _function(fn.__name__, inspect.getdoc(fn) or "", parameters)


def canonical_tools(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """Tool schemas in one canonical form: canonical JSON values, sorted by function name.

    Accepts dicts (OpenAI style ``{"type": "function", "function": {...}}`` or bare
    ``{"name": ...}``) and pydantic models / typed callables via :mod:`promptkit._tools`.
    """
    schemas = [to_canonical(tool_schema(t)) for t in tools]

    def name(schema: dict[str, Any]) -> str:
        inner = schema.get("function", schema)
        return str(inner.get("name", ""))

    names = [name(s) for s in schemas]
    if len(set(names)) != len(names):
        raise SerializationError(f"tool names must be unique, got {sorted(names)}")
    return sorted(schemas, key=name)


def tools_into_messages(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Any] | None, *, slot: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """Where a chat prompt's tools go: the messages to render, and the chat template's ``tools``.

    A chat template with a ``tools`` slot (``slot``) gets them, canonical and sorted. One without
    would drop them without a word; instead a canonical block, one schema per line and then the
    call format (:data:`TOOL_CALL_HINT`, the format forced calls are constrained to), is appended
    to the system prompt (a system message holding only the block opens the chat when there is
    none), so the tools always reach the model, in the same bytes every time. Template prompts
    with ``role=`` segments, conversations, agents and LangChain sessions all go through here.
    """
    listed = [dict(m) for m in messages]
    if not tools:
        return listed, None
    schemas = canonical_tools(tools)
    if slot:
        return listed, schemas
    listing = "\n".join(canonical_json(t) for t in schemas)
    block = f"Available tools:\n{listing}\n\n{TOOL_CALL_HINT}\n"
    if listed and listed[0]["role"] == "system":
        listed[0]["content"] = f"{listed[0]['content']}\n\n{block}".lstrip("\n")
    else:
        listed.insert(0, {"role": "system", "content": block})
    return listed, None
