"""Builds a prompt variable with json.dumps: key order follows the caller's dict."""

import json

from promptkit import PromptBuilder, PromptTemplate


def tools_text(tools: list[dict[str, object]]) -> str:
    return json.dumps(tools)


__all__ = ["PromptBuilder", "PromptTemplate", "tools_text"]
