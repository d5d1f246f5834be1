"""Shared fixtures: the real tokenizer, and ONE real embedded vLLM engine per test session.

The engine is the default model on the CPU backend with block size 32. Tests that need a clean
cache call ``fresh_engine`` (which resets the prefix cache) rather than starting another engine.
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from promptkit import Client, PromptBuilder, Tokenizer
from promptkit._model_store import resolve_model_dir

ROOT = Path(__file__).resolve().parent.parent
BLOCK_SIZE = 32


# Tests that use these fixtures run on the real engine, whatever their module says: they belong to
# the slow tier (``-m engine``), which `make test` runs after the fast one.
ENGINE_FIXTURES = frozenset({"engine", "fresh_engine", "client"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.engine)


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
def client(engine: object, tokenizer: Tokenizer) -> Iterator[Client]:
    """A client over the session engine, with an empty cache and a fresh mirror.

    The reset goes through the client, as users are told to do: resetting the engine behind a
    client that follows KV-cache events races with vLLM's AllBlocksCleared, which is published
    with the engine's next step and then wipes blocks the mirror had just learned (regression:
    a LangChain session expected 256 cached tokens where the engine served 288).
    """
    client = Client(engine=engine, tokenizer=tokenizer)  # type: ignore[arg-type]
    assert client.reset_prefix_cache()
    yield client
    client.close()


# -- a browser, found without root ----------------------------------------------------------

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_NO_BROWSER: list[str] = []


def find_chromium() -> str | None:
    """A Chromium to render HTML reports with: ``$PROMPTKIT_CHROMIUM``, the PATH, or one that
    Playwright installed for this user (``npx playwright install chromium``, no root needed)."""
    explicit = os.environ.get("PROMPTKIT_CHROMIUM")
    if explicit:
        return explicit
    for name in _BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    cache = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH", "~/.cache/ms-playwright")).expanduser()
    builds = sorted(glob.glob(str(cache / "chromium-*" / "chrome-linux*" / "chrome")))
    return builds[-1] if builds else None


@pytest.fixture(scope="session")
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        reason = (
            "no Chromium found: the HTML report was not rendered in a browser. Install one "
            "(`apt-get install chromium` as root, or `npx playwright install chromium` as a user) "
            "or point PROMPTKIT_CHROMIUM at a Chrome/Chromium binary"
        )
        _NO_BROWSER.append(reason)
        pytest.skip(reason)
    return binary


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # A skipped browser test must not pass unnoticed: say so plainly, last.
    for reason in dict.fromkeys(_NO_BROWSER):
        terminalreporter.write_sep("!", "NOT TESTED", yellow=True, bold=True)
        terminalreporter.write_line(reason, yellow=True, bold=True)
