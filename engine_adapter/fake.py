"""A function-driven engine for pure unit tests (no vLLM, no model).

The function receives each request and returns the generated text, or a full
:class:`EngineResult`. Cached-token counts are whatever the function says (``None`` by default:
a fake cannot know what a real prefix cache would hold).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from engine_adapter.base import Engine
from engine_adapter.errors import EngineClosedError
from engine_adapter.models import EngineRequest, EngineResult

__all__ = ["FunctionEngine"]

Responder = Callable[[EngineRequest], "str | EngineResult"]


class FunctionEngine(Engine):
    """An engine whose output is computed by ``respond``."""

    name: ClassVar[str] = "function"
    supports_cache_salt: ClassVar[bool] = True

    def __init__(
        self,
        respond: Responder,
        *,
        block_size: int = 32,
        kv_capacity_blocks: int | None = None,
    ) -> None:
        self._respond = respond
        self.kv_capacity_blocks = kv_capacity_blocks
        self._block_size = block_size
        self.requests: list[EngineRequest] = []
        self.closed = False

    @property
    def block_size(self) -> int:
        return self._block_size

    def generate(self, requests: Sequence[EngineRequest]) -> list[EngineResult]:
        if self.closed:
            raise EngineClosedError("the engine was closed")
        results: list[EngineResult] = []
        for request in requests:
            self.requests.append(request)
            answer = self._respond(request)
            if isinstance(answer, EngineResult):
                results.append(answer)
                continue
            results.append(
                EngineResult(
                    prompt_token_ids=request.prompt_token_ids,
                    num_cached_tokens=None,
                    text=answer,
                    token_ids=(),
                    finish_reason="stop",
                    ttft_s=None,
                    latency_s=0.0,
                    timing_source="measured",
                )
            )
        return results

    def close(self) -> None:
        self.closed = True
