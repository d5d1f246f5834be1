"""promptkit: token-stable prompts for engines with automatic prefix caching.

Templates declare segments from most to least stable; the builder renders them, normalizes and
canonicalizes what must not move, tokenizes the stable prefix once and only the volatile tail per
request, and the client checks every request's prefix hit against what was expected.
"""

from __future__ import annotations

from engine_adapter import (
    Engine,
    EngineError,
    EngineRequest,
    EngineResult,
    FunctionEngine,
    SamplingSettings,
)
from promptkit.agent import AgentRun, AgentStep, ToolCall, parse_tool_calls, run_agent
from promptkit.builder import PromptBuilder
from promptkit.canonical import canonical_json, normalize_text, to_canonical
from promptkit.chat import ChatTemplate
from promptkit.client import Client, Generation
from promptkit.conversation import Conversation, ConversationWarning
from promptkit.errors import (
    BoundaryError,
    ConfigError,
    ConversationError,
    ModelError,
    PromptkitError,
    SerializationError,
    StabilityError,
    TemplateError,
    TemplateSyntaxError,
    TokenizationError,
    VariableError,
)
from promptkit.expectation import PrefixCacheMirror
from promptkit.model_store import default_model_dir, prepare_default_model, resolve_model_dir
from promptkit.prompt import (
    BlockAccounting,
    Boundary,
    BuiltPrompt,
    SegmentSpan,
    block_hashes,
    cacheable_tokens,
)
from promptkit.rag import BM25Index, Chunk, assemble_context
from promptkit.report import (
    MissExplanation,
    RequestRecord,
    RunSummary,
    Verdict,
    read_records,
    summarize,
)
from promptkit.segments import SegmentSpec, Stability, VariableSpec
from promptkit.source import ChatSource, PromptSource
from promptkit.template import PromptTemplate
from promptkit.templates import load_template
from promptkit.tokenization import Tokenizer
from promptkit.tools import canonical_tools, tool_schema

__version__ = "0.1.0"

__all__ = [
    "AgentRun",
    "AgentStep",
    "BM25Index",
    "BlockAccounting",
    "Boundary",
    "BoundaryError",
    "BuiltPrompt",
    "ChatSource",
    "ChatTemplate",
    "Chunk",
    "Client",
    "ConfigError",
    "Conversation",
    "ConversationError",
    "ConversationWarning",
    "Engine",
    "EngineError",
    "EngineRequest",
    "EngineResult",
    "FunctionEngine",
    "Generation",
    "MissExplanation",
    "ModelError",
    "PrefixCacheMirror",
    "PromptBuilder",
    "PromptSource",
    "PromptTemplate",
    "PromptkitError",
    "RequestRecord",
    "RunSummary",
    "SamplingSettings",
    "SegmentSpan",
    "SegmentSpec",
    "SerializationError",
    "Stability",
    "StabilityError",
    "TemplateError",
    "TemplateSyntaxError",
    "TokenizationError",
    "Tokenizer",
    "ToolCall",
    "VariableError",
    "VariableSpec",
    "Verdict",
    "assemble_context",
    "block_hashes",
    "cacheable_tokens",
    "canonical_json",
    "canonical_tools",
    "default_model_dir",
    "load_template",
    "normalize_text",
    "parse_tool_calls",
    "prepare_default_model",
    "read_records",
    "resolve_model_dir",
    "run_agent",
    "summarize",
    "to_canonical",
    "tool_schema",
]
