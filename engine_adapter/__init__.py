"""Engine adapters: the seam between promptkit and inference engines.

``engine_adapter`` sees only token ids and sampling settings. Backends are imported lazily:
``VLLMEngine`` (embedded vLLM) and ``OpenAIEngine`` (an OpenAI-compatible vLLM server) load their
libraries only when constructed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_adapter.base import Engine, mapped_errors
from engine_adapter.errors import (
    EngineClosedError,
    EngineError,
    EngineNotInstalled,
    EngineRequestError,
    EngineStartError,
)
from engine_adapter.fake import FunctionEngine
from engine_adapter.models import (
    EngineRequest,
    EngineResult,
    PrefixCacheCounters,
    SamplingSettings,
)

if TYPE_CHECKING:
    from engine_adapter.openai import OpenAIEngine
    from engine_adapter.vllm import VLLMEngine

__all__ = [
    "Engine",
    "EngineClosedError",
    "EngineError",
    "EngineNotInstalled",
    "EngineRequest",
    "EngineRequestError",
    "EngineResult",
    "EngineStartError",
    "FunctionEngine",
    "OpenAIEngine",
    "PrefixCacheCounters",
    "SamplingSettings",
    "VLLMEngine",
    "mapped_errors",
]


def __getattr__(name: str) -> Any:
    if name == "VLLMEngine":
        from engine_adapter.vllm import VLLMEngine

        return VLLMEngine
    if name == "OpenAIEngine":
        from engine_adapter.openai import OpenAIEngine

        return OpenAIEngine
    raise AttributeError(f"module 'engine_adapter' has no attribute {name!r}")
