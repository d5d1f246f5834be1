"""LangChain's own conformance suites (``langchain-tests``) for ``ChatPromptkit``.

The unit suite runs on :class:`engine_adapter.FunctionEngine`; the integration suite on the
session's real embedded engine (so it is in the ``engine`` tier). xfails are listed, with their
reasons, in docs/langchain.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from engine_adapter import FunctionEngine
from promptkit import Client, Tokenizer
from promptkit.integrations.langchain import ChatPromptkit


class TestChatPromptkitUnit(ChatModelUnitTests):
    @pytest.fixture(autouse=True)
    def _client(self, tokenizer: Tokenizer) -> Iterator[None]:
        client = Client(engine=FunctionEngine(lambda request: "Hello."), tokenizer=tokenizer)
        self.client = client
        yield
        client.close()

    @property
    def chat_model_class(self) -> type[ChatPromptkit]:
        return ChatPromptkit

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"client": self.client}


class TestChatPromptkitIntegration(ChatModelIntegrationTests):
    # Greedy, the 135M model writes the same prose every run here (3 of 3 on 2026-11-29, with
    # the tools block's call format in the prompt). No constraint applies: with
    # tool_choice='auto' the model may answer in prose, so nothing may force a call. Not strict:
    # bf16 on another CPU may tip a near-tie into a call, and that must not fail CI.
    @pytest.mark.xfail(
        reason="tool_choice='auto': SmolLM2-135M answers 'What is the weather in San "
        "Francisco, CA?' in prose ('The weather in San Francisco, CA, is typically ...') "
        "instead of calling get_weather; forced calls pass (test_tool_choice, test_tool_calling)",
        strict=False,
    )
    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)

    @pytest.fixture(autouse=True)
    def _client(self, client: Client) -> None:
        self.client = client

    @property
    def chat_model_class(self) -> type[ChatPromptkit]:
        return ChatPromptkit

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"client": self.client}
