"""Engine adapters: the seam between promptkit and inference engines.

``engine_adapter`` sees only token ids and sampling settings. Backends are imported lazily:
``VLLMEngine`` (embedded vLLM) and ``OpenAIEngine`` (an OpenAI-compatible vLLM server) load their
libraries only when constructed. A new backend subclasses :class:`Engine` (docs/engines.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_adapter._vllm_common import VLLMOptions
from engine_adapter.base import Engine, ErrorMapping, map_exceptions
from engine_adapter.errors import (
    CachedTokensNotReported,
    EngineCapabilityError,
    EngineClosedError,
    EngineDeadError,
    EngineError,
    EngineNotInstalled,
    EngineRequestError,
    EngineStartError,
    EngineWarning,
    PartialBatchError,
    PromptkitError,
    SamplingError,
)
from engine_adapter.fake import FunctionEngine
from engine_adapter.models import (
    EngineDelta,
    EngineRequest,
    EngineResult,
    OutputConstraint,
    PrefixCacheCounters,
    SamplingSettings,
)
from engine_adapter.routed import RoutedEngine

if TYPE_CHECKING:
    from engine_adapter.openai import OpenAIEngine
    from engine_adapter.vllm import VLLMEngine
    from engine_adapter.vllm_async import AsyncVLLMEngine

__all__ = [
    "AsyncVLLMEngine",
    "CachedTokensNotReported",
    "Engine",
    "EngineCapabilityError",
    "EngineClosedError",
    "EngineDeadError",
    "EngineDelta",
    "EngineError",
    "EngineNotInstalled",
    "EngineRequest",
    "EngineRequestError",
    "EngineResult",
    "EngineStartError",
    "EngineWarning",
    "ErrorMapping",
    "FunctionEngine",
    "OpenAIEngine",
    "OutputConstraint",
    "PartialBatchError",
    "PrefixCacheCounters",
    "PromptkitError",
    "RoutedEngine",
    "SamplingError",
    "SamplingSettings",
    "VLLMEngine",
    "VLLMOptions",
    "map_exceptions",
]


_LAZY = {
    "AsyncVLLMEngine": "engine_adapter.vllm_async",
    "OpenAIEngine": "engine_adapter.openai",
    "VLLMEngine": "engine_adapter.vllm",
}


def __getattr__(name: str) -> Any:
    # Backends import vllm/openai, which are heavy or optional: load them on first use.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine_adapter' has no attribute {name!r}")
