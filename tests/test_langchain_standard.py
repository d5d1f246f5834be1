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
    @pytest.mark.xfail(
        reason="tool_choice='auto': SmolLM2-135M answers in prose instead of calling the tool "
        "it was not forced to call (forced calls pass: test_tool_choice, test_tool_calling)",
        strict=False,
    )
    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)

    # Forced tool calls are schema-valid by construction, but the 135M model still chooses the
    # values: in the run of 2026-11-29 (after tools moved to compact canonical JSON) it wrote
    # {"input": 100} for "magic_function(3)" and ran a string argument to max_tokens. They passed
    # in the run before; until a model that reads its tools reliably is the default, they are
    # expected to fail some of the time (docs/langchain.md).
    _MODEL_CHOOSES_VALUES = pytest.mark.xfail(
        reason="SmolLM2-135M picks wrong argument values or runs a string argument to "
        "max_tokens under the tool-call constraint (the call's shape is constrained, its "
        "values are not)",
        strict=False,
    )

    @_MODEL_CHOOSES_VALUES
    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    def test_tool_calling(self, model: BaseChatModel) -> None:
        super().test_tool_calling(model)

    @_MODEL_CHOOSES_VALUES
    async def test_tool_calling_async(self, model: BaseChatModel) -> None:
        await super().test_tool_calling_async(model)

    @_MODEL_CHOOSES_VALUES
    def test_tool_choice(self, model: BaseChatModel) -> None:
        super().test_tool_choice(model)

    @pytest.fixture(autouse=True)
    def _client(self, client: Client) -> None:
        self.client = client

    @property
    def chat_model_class(self) -> type[ChatPromptkit]:
        return ChatPromptkit

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"client": self.client}
