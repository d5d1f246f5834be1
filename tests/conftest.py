"""Shared fixtures: the real tokenizer, and ONE real embedded vLLM engine per test session.

The engine is the default model on the CPU backend with block size 32. Tests that need a clean
cache call ``fresh_engine`` (which resets the prefix cache) rather than starting another engine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from promptkit import Client, PromptBuilder, Tokenizer
from promptkit.model_store import resolve_model_dir

ROOT = Path(__file__).resolve().parent.parent
BLOCK_SIZE = 32


@pytest.fixture(scope="session")
def model_dir() -> Path:
    return resolve_model_dir()


@pytest.fixture(scope="session")
def tokenizer(model_dir: Path) -> Tokenizer:
    return Tokenizer.from_dir(model_dir)


@pytest.fixture()
def builder(tokenizer: Tokenizer) -> PromptBuilder:
    return PromptBuilder(tokenizer, block_size=BLOCK_SIZE)


@pytest.fixture(scope="session")
def engine(model_dir: Path) -> Iterator[object]:
    from engine_adapter.vllm import VLLMEngine

    engine = VLLMEngine(model_dir, block_size=BLOCK_SIZE, kv_cache_gib=2, kv_events=True)
    yield engine
    engine.close()


@pytest.fixture()
def fresh_engine(engine: object) -> object:
    """The session engine with an empty prefix cache."""
    assert engine.reset_prefix_cache()  # type: ignore[attr-defined]
    return engine


@pytest.fixture()
def client(fresh_engine: object, tokenizer: Tokenizer) -> Iterator[Client]:
    """A client over the session engine, with an empty cache and a fresh mirror."""
    client = Client(engine=fresh_engine, tokenizer=tokenizer)  # type: ignore[arg-type]
    yield client
    client.close()
