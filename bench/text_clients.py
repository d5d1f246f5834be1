"""The two clients promptkit is compared with, written the way public agent code writes them;
both send text to ``vllm.LLM.chat``.

*naive* is written the way tutorials write it: f-strings, ``json.dumps`` without sorting, the
date and a request id in a system prompt rebuilt for every request, tools listed from a registry
dict, history kept as text and re-sent through ``LLM.chat``, retrieved chunks in retriever
(score) order.

*langchain* renders ``langchain_core`` ``ChatPromptTemplate``s (a ``MessagesPlaceholder`` for
history, ``AIMessage`` text for replies, ``ToolMessage`` for tool results, ``format_docs``-style
context) and sends the messages to ``LLM.chat``. Like most public agent code, its system prompt
carries the current date and time right after its instructions (a ``partial`` of the template;
a clock in the system prompt is the most common cache-buster in public bug reports), and its
tools come after it, from a registry dict
(``{name: tool}``), serialized with ``json.dumps(indent=2)``.

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

__all__ = ["LangChainClient", "Messages", "NaiveClient", "chat_once", "run_questions"]

Messages = list[dict[str, Any]]


def chat_once(
    llm: Any, messages: Messages, *, max_tokens: int, watch: Stopwatch, warm_up: bool
) -> Measured:
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, top_p=1.0)
    with watch.engine_call():
        output = llm.chat(messages, params, use_tqdm=False)[0]
    sdk_s, engine_s = watch.stop()
    return measured_from_vllm(output, engine_s=engine_s, sdk_s=sdk_s, warm_up=warm_up)


def run_questions(
    llm: Any, workload: QuestionWorkload, messages: Callable[[Question], Messages]
) -> list[Measured]:
    out = []
    for question in workload.questions:
        watch = Stopwatch()
        out.append(
            chat_once(
                llm,
                messages(question),
                max_tokens=workload.max_tokens,
                watch=watch,
                warm_up=question.warm_up,
            )
        )
    return out


class _Clock:
    """A simulated wall clock that advances a few seconds per request, from the seed, so the
    run repeats while every request still sees a new time (as a real clock would show)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._now = dt.datetime(2025, 3, 14, 9, 0, 0)

    def now(self) -> str:
        self._now += dt.timedelta(seconds=self._rng.randrange(5, 90))
        return self._now.strftime("%Y-%m-%d %H:%M:%S")


class NaiveClient:
    """f-strings, ``json.dumps``, a clock and a request id in the system prompt."""

    name = "naive"

    def __init__(self, llm: Any, *, seed: int) -> None:
        self.llm = llm
        # A simulated clock and request ids, so the run is reproducible from the seed.
        self._rng = random.Random(f"{seed}:naive")
        self._clock = _Clock(self._rng)

    def _system(self, base: str, tools: Sequence[dict[str, Any]] = ()) -> str:
        now = self._clock.now()
        request_id = uuid.UUID(int=self._rng.getrandbits(128), version=4)
        prompt = f"{base}\nCurrent date and time: {now}. Request ID: {request_id}."
        if tools:
            registry = {t["name"]: t for t in tools}  # the app's tool registry
            prompt += f"\nAvailable tools: {json.dumps(list(registry.values()))}"
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
        return run_questions(self.llm, workload, lambda q: self._messages(workload, q))

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
            measured = chat_once(
                self.llm, messages, max_tokens=workload.max_tokens, watch=watch, warm_up=index == 0
            )
            history.append({"role": "assistant", "content": measured.text})
            out.append(measured)
        return out


class LangChainClient:
    """``ChatPromptTemplate`` rendering, the time in the system prompt, messages to ``LLM.chat``."""

    name = "langchain"
    SYSTEM = "{system}\nCurrent date and time: {now}."

    def __init__(self, llm: Any, *, seed: int = 0) -> None:
        self.llm = llm
        self._clock = _Clock(random.Random(f"{seed}:langchain"))

    def questions(self, workload: QuestionWorkload) -> list[Measured]:
        from langchain_core.messages import convert_to_openai_messages
        from langchain_core.prompts import ChatPromptTemplate

        prompt = ChatPromptTemplate.from_messages(
            [("system", self.SYSTEM), ("human", "{context}Question: {question}")]
        ).partial(now=self._clock.now)

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

        return run_questions(self.llm, workload, messages)

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
            [
                ("system", self.SYSTEM + "\n\nAvailable tools:\n{tools}"),
                MessagesPlaceholder("history"),
            ]
        ).partial(now=self._clock.now)
        registry = {t["name"]: t for t in workload.tools}  # the app's tool registry
        tools = json.dumps(list(registry.values()), indent=2)
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
            measured = chat_once(
                self.llm, messages, max_tokens=workload.max_tokens, watch=watch, warm_up=index == 0
            )
            history.append(AIMessage(measured.text))
            out.append(measured)
        return out
