"""LangChain messages as chat-template messages, content blocks included.

Content may be a string or a list of blocks: text (``"text"``), LangChain's v1 standard blocks
(``"tool_call"``, ``"reasoning"``) and Anthropic-style blocks (``"tool_use"``,
``"tool_result"``). Tool calls in an assistant message are written in the model's own format
unless its text holds them already (an ``AIMessage`` from :class:`ChatPromptkit` keeps the raw
text, markup included, so that the next prompt repeats exactly what was generated).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from promptkit._constraints import tool_call_text

__all__ = ["to_chat_messages"]

#: Blocks that carry no text for the prompt: tool calls are rendered from ``tool_calls``, and
#: reasoning is not repeated to the model.
_SKIPPED = frozenset({"tool_call", "tool_use", "tool_call_chunk", "reasoning", "thinking"})


def _text(content: str | list[str | dict[Any, Any]]) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind == "tool_result":  # Anthropic-style: a tool's output inside a user message
            parts.append(_text(block.get("content", "")))
        elif kind in _SKIPPED:
            continue
        else:
            raise ValueError(
                f"ChatPromptkit sends text, tool calls and tool results; got a {kind!r} content "
                "block (images, audio and files need a multimodal model)"
            )
    return "".join(parts)


def _assistant_text(message: AIMessage) -> str:
    text = _text(message.content)
    if not message.tool_calls or "<tool_call>" in text:
        return text
    # Calls made elsewhere (another model, a hand-written history): shown the way the default
    # model (SmolLM2) writes them and its tools block shows them, so it sees its own format.
    return text + tool_call_text([(c["name"], c["args"]) for c in message.tool_calls])


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
