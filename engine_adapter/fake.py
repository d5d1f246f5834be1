"""A function-driven engine for pure unit tests (no vLLM, no model).

The function receives each request and returns the generated text, or a full
:class:`EngineResult`. Cached-token counts are whatever the function says (``None`` by default:
a fake cannot know what a real prefix cache would hold). The last ``max_requests`` requests are
kept in :attr:`FunctionEngine.requests` for tests to inspect; older ones are dropped, so a long
run over the fake (a load test, the reliability probe's ``long_run``) holds bounded memory.
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
    """An engine whose output is computed by ``respond``.

    Args:
        respond: called with each request; returns the generated text or a whole result.
        block_size: the KV block size the client accounts in.
        kv_capacity_blocks: the capacity to declare (``None``: unknown).
        max_requests: how many of the most recent requests :attr:`requests` keeps (0: none).
    """

    name: ClassVar[str] = "function"
    supports_cache_salt: ClassVar[bool] = True

    def __init__(
        self,
        respond: Responder,
        *,
        block_size: int = 32,
        kv_capacity_blocks: int | None = None,
        max_requests: int = 1_000,
    ) -> None:
        self._respond = respond
        self.kv_capacity_blocks = kv_capacity_blocks
        self._block_size = block_size
        self.max_requests = max_requests
        #: The last ``max_requests`` requests, oldest first. A list (not a deque) so that tests
        #: can slice it; each holds its prompt's ids, so keeping all of them grew without bound.
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
            del self.requests[: max(0, len(self.requests) - self.max_requests)]
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
