"""A vLLM server's OpenAI-compatible wire, for engine-free tests of :class:`OpenAIEngine`.

Only the outermost layer is fake: the real ``openai`` client sends real HTTP requests to an
``httpx2.MockTransport``, whose handler answers as a vLLM server would (JSON, or an SSE stream).
tests/engine_adapter/test_engine_openai.py runs the same engine against a real server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import openai

from engine_adapter.openai import OpenAIEngine

Handler = Callable[[httpx2.Request], httpx2.Response]

#: The fields every streamed completion chunk carries.
COMPLETION = {"id": "c", "object": "text_completion", "created": 0, "model": "m"}


def remote(handler: Handler, *, block_size: int | None = 32) -> OpenAIEngine:
    """An :class:`OpenAIEngine` whose server is ``handler``."""
    client = openai.OpenAI(
        base_url="http://vllm.test/v1",
        api_key="EMPTY",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    return OpenAIEngine(client, model="m", block_size=block_size)


def stream(*events: dict[str, Any]) -> httpx2.Response:
    """A streamed answer: each event as an SSE ``data:`` line, then ``[DONE]``."""
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return httpx2.Response(200, headers={"content-type": "text/event-stream"}, text=body)
