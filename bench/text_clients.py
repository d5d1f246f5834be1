"""The two clients promptkit is compared with; both send text to ``vllm.LLM.chat``.

*naive* is written the way tutorials write it: f-strings, ``json.dumps`` without sorting, the
date and a request id in a system prompt rebuilt for every request, history kept as text and
re-sent through ``LLM.chat``, retrieved chunks in retriever (score) order.

*langchain* renders ``langchain_core`` ``ChatPromptTemplate``s (a ``MessagesPlaceholder`` for
history, ``AIMessage`` text for replies, ``ToolMessage`` for tool results, ``format_docs``-style
context) and sends the messages to ``LLM.chat``. No clock in the prompt.

For both, vLLM renders the chat template and tokenizes inside ``LLM.chat``: that counts as
engine time, and the ids measured are the ones vLLM tokenized (``RequestOutput``).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from .measure import Measured, Stopwatch, measured_from_vllm
from .workloads import ConversationWorkload, Question, QuestionWorkload

__all__ = ["LangChainClient", "NaiveClient"]

Messages = list[dict[str, Any]]


def _chat(
    llm: Any, messages: Messages, *, max_tokens: int, watch: Stopwatch, warm_up: bool
) -> Measured:
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, top_p=1.0)
    with watch.engine_call():
        output = llm.chat(messages, params, use_tqdm=False)[0]
    sdk_s, engine_s = watch.stop()
    return measured_from_vllm(output, engine_s=engine_s, sdk_s=sdk_s, warm_up=warm_up)


def _run_questions(
    llm: Any, workload: QuestionWorkload, messages: Callable[[Question], Messages]
) -> list[Measured]:
    out = []
    for question in workload.questions:
        watch = Stopwatch()
        out.append(
            _chat(
                llm,
                messages(question),
                max_tokens=workload.max_tokens,
                watch=watch,
                warm_up=question.warm_up,
            )
        )
    return out


class NaiveClient:
    """f-strings, ``json.dumps``, a clock and a request id in the system prompt."""

    name = "naive"

    def __init__(self, llm: Any, *, seed: int) -> None:
        self.llm = llm
        # A simulated clock and request ids, so the run is reproducible from the seed.
        self._rng = random.Random(f"{seed}:naive")
        self._now = dt.datetime(2025, 3, 14, 9, 0, 0)

    def _system(self, base: str, tools: Sequence[dict[str, Any]] = ()) -> str:
        self._now += dt.timedelta(seconds=self._rng.randrange(5, 90))
        request_id = uuid.UUID(int=self._rng.getrandbits(128), version=4)
        now = self._now.strftime("%Y-%m-%d %H:%M:%S")
        prompt = f"{base}\nCurrent date and time: {now}. Request ID: {request_id}."
        if tools:
            prompt += f"\nAvailable tools: {json.dumps(list(tools))}"
        return prompt

    def _messages(self, workload: QuestionWorkload, question: Question) -> Messages:
        if question.chunks:
            sources = "\n".join(
                f"[{i}] {c.title}\n{c.text}" for i, c in enumerate(question.chunks, 1)
            )
            user = f"Sources:\n{sources}\n\nQuestion: {question.question}"
        elif question.document:
            document = f"Document: {question.title}\n\n{question.document}"
            user = f"{document}\n\nQuestion: {question.question}"
        else:
            user = question.question
        return [
            {"role": "system", "content": self._system(workload.system)},
            {"role": "user", "content": user},
        ]

    def questions(self, workload: QuestionWorkload) -> list[Measured]:
        return _run_questions(self.llm, workload, lambda q: self._messages(workload, q))

    def conversation(self, workload: ConversationWorkload) -> list[Measured]:
        history: Messages = []
        out = []
        for index, step in enumerate(workload.steps):
            watch = Stopwatch()
            for result in step.tool_results:
                history.append({"role": "tool", "content": json.dumps(result)})
            if step.user is not None:
                history.append({"role": "user", "content": step.user})
            system = self._system(workload.system, workload.tools)
            messages = [{"role": "system", "content": system}, *history]
            measured = _chat(
                self.llm, messages, max_tokens=workload.max_tokens, watch=watch, warm_up=index == 0
            )
            history.append({"role": "assistant", "content": measured.text})
            out.append(measured)
        return out


class LangChainClient:
    """``ChatPromptTemplate`` rendering, messages to ``LLM.chat``."""

    name = "langchain"

    def __init__(self, llm: Any) -> None:
        self.llm = llm

    def questions(self, workload: QuestionWorkload) -> list[Measured]:
        from langchain_core.messages import convert_to_openai_messages
        from langchain_core.prompts import ChatPromptTemplate

        prompt = ChatPromptTemplate.from_messages(
            [("system", "{system}"), ("human", "{context}Question: {question}")]
        )

        def messages(question: Question) -> Messages:
            if question.chunks:  # format_docs, in the retriever's order
                context = "\n\n".join(f"{c.title}\n{c.text}" for c in question.chunks) + "\n\n"
            elif question.document:
                context = f"Document: {question.title}\n\n{question.document}\n\n"
            else:
                context = ""
            rendered = prompt.format_messages(
                system=workload.system, context=context, question=question.question
            )
            return list(convert_to_openai_messages(rendered))

        return _run_questions(self.llm, workload, messages)

    def conversation(self, workload: ConversationWorkload) -> list[Measured]:
        from langchain_core.messages import (
            AIMessage,
            BaseMessage,
            HumanMessage,
            ToolMessage,
            convert_to_openai_messages,
        )
        from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

        prompt = ChatPromptTemplate.from_messages(
            [("system", "{system}\n\nAvailable tools:\n{tools}"), MessagesPlaceholder("history")]
        )
        tools = json.dumps(list(workload.tools), indent=2)
        history: list[BaseMessage] = []
        out = []
        for index, step in enumerate(workload.steps):
            watch = Stopwatch()
            for number, result in enumerate(step.tool_results):
                history.append(
                    ToolMessage(json.dumps(result), tool_call_id=f"call_{index}_{number}")
                )
            if step.user is not None:
                history.append(HumanMessage(step.user))
            rendered = prompt.format_messages(system=workload.system, tools=tools, history=history)
            messages = list(convert_to_openai_messages(rendered))
            measured = _chat(
                self.llm, messages, max_tokens=workload.max_tokens, watch=watch, warm_up=index == 0
            )
            history.append(AIMessage(measured.text))
            out.append(measured)
        return out
