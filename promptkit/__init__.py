"""promptkit: token-stable prompts for engines with automatic prefix caching.

Templates declare segments from most to least stable; the builder renders them, normalizes and
canonicalizes what must not move, tokenizes the stable prefix once and only the volatile tail per
request, and the client checks every request's prefix hit against what was expected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_adapter import (
    CachedTokensNotReported,
    Engine,
    EngineCapabilityError,
    EngineClosedError,
    EngineDeadError,
    EngineDelta,
    EngineError,
    EngineNotInstalled,
    EngineRequest,
    EngineRequestError,
    EngineResult,
    EngineStartError,
    EngineWarning,
    FunctionEngine,
    OutputConstraint,
    PartialBatchError,
    RoutedEngine,
    SamplingError,
    SamplingSettings,
)
from promptkit._agent import AgentRun, AgentStep, ToolCall, parse_tool_calls, run_agent
from promptkit._batch import BatchPlan, BatchProgress
from promptkit._builder import PromptBuilder
from promptkit._built_prompt import (
    BlockAccounting,
    Boundary,
    BuiltPrompt,
    SegmentSpan,
    cacheable_tokens,
)
from promptkit._canonical import canonical_json, normalize_text
from promptkit._chat_template import ChatTemplate
from promptkit._client import BatchItem, Client, Generation
from promptkit._control_tokens import ControlTokenPolicy
from promptkit._conversation import Conversation, ConversationWarning
from promptkit._expectation import PrefixCacheMirror
from promptkit._fleet import LocalFleet
from promptkit._history import StatelessChat
from promptkit._model_store import default_model_dir, prepare_default_model, resolve_model_dir
from promptkit._output_compare import GreedyComparison, OutputMatch, compare_greedy
from promptkit._rag import BM25Index, Chunk, assemble_context
from promptkit._segments import SegmentSpec, Stability, VariableSpec
from promptkit._source import ChatSource, PromptSource
from promptkit._templating.finder import load_template
from promptkit._templating.prompt_template import PromptTemplate
from promptkit._tenancy import SharedCache, Tenancy
from promptkit._tokenization import Tokenizer
from promptkit._tools import canonical_tools, tool_schema
from promptkit.errors import (
    ArgumentError,
    BoundaryError,
    ConfigError,
    ControlTokenError,
    ConversationError,
    LintConfigError,
    ModelError,
    PromptkitError,
    SerializationError,
    StabilityError,
    TemplateError,
    TemplateSyntaxError,
    TenantError,
    TokenizationError,
    VariableError,
)
from promptkit.reporting import (
    MissExplanation,
    RequestRecord,
    RunSummary,
    Verdict,
    read_records,
    summarize,
)

if TYPE_CHECKING:
    from engine_adapter.openai import OpenAIEngine
    from engine_adapter.vllm import VLLMEngine
    from engine_adapter.vllm_async import AsyncVLLMEngine

__version__ = "0.1.0"

# The engines users construct, re-exported lazily: importing promptkit stays cheap, and their
# backends (vllm, openai) load only when one is used.
_LAZY_ENGINES = frozenset({"AsyncVLLMEngine", "OpenAIEngine", "VLLMEngine"})


def __getattr__(name: str) -> Any:
    if name in _LAZY_ENGINES:
        import engine_adapter

        return getattr(engine_adapter, name)
    raise AttributeError(f"module 'promptkit' has no attribute {name!r}")


__all__ = [
    "AgentRun",
    "AgentStep",
    "ArgumentError",
    "AsyncVLLMEngine",
    "BM25Index",
    "BatchItem",
    "BatchPlan",
    "BatchProgress",
    "BlockAccounting",
    "Boundary",
    "BoundaryError",
    "BuiltPrompt",
    "CachedTokensNotReported",
    "ChatSource",
    "ChatTemplate",
    "Chunk",
    "Client",
    "ConfigError",
    "ControlTokenError",
    "ControlTokenPolicy",
    "Conversation",
    "ConversationError",
    "ConversationWarning",
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
    "FunctionEngine",
    "Generation",
    "GreedyComparison",
    "LintConfigError",
    "LocalFleet",
    "MissExplanation",
    "ModelError",
    "OpenAIEngine",
    "OutputConstraint",
    "OutputMatch",
    "PartialBatchError",
    "PrefixCacheMirror",
    "PromptBuilder",
    "PromptSource",
    "PromptTemplate",
    "PromptkitError",
    "RequestRecord",
    "RoutedEngine",
    "RunSummary",
    "SamplingError",
    "SamplingSettings",
    "SegmentSpan",
    "SegmentSpec",
    "SerializationError",
    "SharedCache",
    "Stability",
    "StabilityError",
    "StatelessChat",
    "TemplateError",
    "TemplateSyntaxError",
    "Tenancy",
    "TenantError",
    "TokenizationError",
    "Tokenizer",
    "ToolCall",
    "VLLMEngine",
    "VariableError",
    "VariableSpec",
    "Verdict",
    "assemble_context",
    "cacheable_tokens",
    "canonical_json",
    "canonical_tools",
    "compare_greedy",
    "default_model_dir",
    "load_template",
    "normalize_text",
    "parse_tool_calls",
    "prepare_default_model",
    "read_records",
    "resolve_model_dir",
    "run_agent",
    "summarize",
    "tool_schema",
]
