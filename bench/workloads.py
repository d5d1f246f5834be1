"""The benchmark's workloads, built deterministically from a seed.

Two shapes. A :class:`QuestionWorkload` is independent requests over shared context (long
documents, one instruction, retrieved sources); a :class:`ConversationWorkload` is one session
whose every request extends the last (chat, an agent's tool loop, a chat over a token budget).
Requests run one at a time, as they would arrive at a service, so TTFT is per request and the
oracle's "earlier request" is unambiguous.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from promptkit._rag import BM25Index, Chunk

from . import corpus

__all__ = [
    "CLIENTS",
    "ConversationWorkload",
    "Question",
    "QuestionWorkload",
    "Step",
    "Workload",
    "build_workloads",
]

#: Every client, in the order they run on a workload (the APC-off replay needs promptkit's ids).
CLIENTS = ("promptkit", "promptkit-window", "apc-off", "naive", "langchain")
_COMPARED = ("promptkit", "apc-off", "naive", "langchain")


@dataclass(frozen=True, slots=True)
class Question:
    """One request: a question over a document or retrieved chunks (retriever order)."""

    question: str
    title: str = ""
    document: str = ""
    chunks: tuple[Chunk, ...] = ()
    warm_up: bool = False  # the first request over its context: it pays the prefill


@dataclass(frozen=True, slots=True)
class QuestionWorkload:
    name: str
    description: str
    system: str
    template: str  # a file in bench/templates/, without ".j2"
    questions: tuple[Question, ...]
    max_tokens: int
    clients: tuple[str, ...] = _COMPARED


@dataclass(frozen=True, slots=True)
class Step:
    """One model call of a session: tool results to append, then a user message (or none)."""

    user: str | None
    tool_results: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class ConversationWorkload:
    name: str
    description: str
    system: str
    tools: tuple[dict[str, Any], ...]
    steps: tuple[Step, ...]
    max_tokens: int
    max_prompt_tokens: int | None = None
    clients: tuple[str, ...] = _COMPARED


Workload = QuestionWorkload | ConversationWorkload


@dataclass(frozen=True, slots=True)
class _Sizes:
    table_questions: int
    handbook_sections: int
    handbook_questions: int
    principal_questions: int
    chat_turns: int
    agent_steps: int
    rag_topics: int
    rag_questions_per_topic: int
    truncation_turns: int


QUICK = _Sizes(3, 14, 3, 12, 20, 10, 3, 3, 24)
FULL = _Sizes(8, 24, 8, 40, 30, 14, 6, 4, 50)

_QA_SYSTEM = (
    "You are a careful assistant. Answer questions using only the document the user provides. "
    "If the document does not contain the answer, say that you do not know. Answer in one "
    "sentence."
)
_RAG_SYSTEM = (
    "You answer questions from the numbered sources the user gives you. Cite the sources you "
    "use as [1], [2], ... after the sentence that uses them. If the sources do not answer the "
    "question, say so."
)
_CHAT_SYSTEM = (
    "You are the customer-support assistant of Deskwell, an online office-furniture shop. Be "
    "friendly and brief. Use the tools to look up orders and to open tickets; never invent "
    "order details. Refunds take 5-7 business days after the return arrives."
)
_AGENT_SYSTEM = (
    "You are an on-call assistant that investigates production incidents by calling tools. "
    'To call a tool, answer with one JSON object: {"name": ..., "arguments": {...}}. When you '
    "know the cause, answer in plain text."
)


def _long_doc(rng: random.Random, sizes: _Sizes) -> QuestionWorkload:
    table, names = corpus.people_table()
    manual, facts = corpus.handbook(rng, sizes.handbook_sections)
    questions = [
        Question(f"What is the age of {name}?", "People", table, warm_up=i == 0)
        for i, name in enumerate(rng.sample(names, sizes.table_questions))
    ]
    questions += [
        Question(fact.question, "Operations handbook", manual, warm_up=i == 0)
        for i, fact in enumerate(facts[: sizes.handbook_questions])
    ]
    return QuestionWorkload(
        "long_doc",
        "the seed's 30-row table and a longer handbook, several questions each",
        _QA_SYSTEM,
        "document_qa",
        tuple(questions),
        max_tokens=8,
    )


def _shared_prompt(rng: random.Random, sizes: _Sizes) -> QuestionWorkload:
    questions = corpus.principal_questions(rng, sizes.principal_questions)
    return QuestionWorkload(
        "shared_prompt",
        "the seed's principal instruction as a system prompt, many short questions",
        corpus.principal_instruction(),
        "instruction",
        tuple(Question(q, warm_up=i == 0) for i, q in enumerate(questions)),
        max_tokens=8,
    )


def _rag(rng: random.Random, sizes: _Sizes) -> QuestionWorkload:
    chunks = corpus.rag_corpus(rng, sizes.rag_topics + 2, per_topic=6)
    index = BM25Index(chunks)
    questions = []
    seen: set[frozenset[tuple[str, int]]] = set()
    for text in corpus.rag_questions(rng, sizes.rag_topics, sizes.rag_questions_per_topic):
        hits = index.search(text, k=4)
        key = frozenset((c.doc_id, c.position) for c in hits)
        questions.append(Question(text, chunks=tuple(hits), warm_up=key not in seen))
        seen.add(key)
    return QuestionWorkload(
        "rag",
        "questions clustered by topic over BM25-retrieved sets that overlap",
        _RAG_SYSTEM,
        "rag",
        tuple(questions),
        max_tokens=12,
    )


def _chat(rng: random.Random, turns: int, *, name: str, budget: int | None) -> Workload:
    steps = tuple(Step(m) for m in corpus.chat_messages(rng, turns))
    if budget is None:
        description = f"a {turns}-turn support chat with tools in the system prompt"
        clients: tuple[str, ...] = _COMPARED
    else:
        description = (
            f"a {turns}-turn chat over a {budget}-token budget: compaction (promptkit) vs a "
            "sliding window (promptkit-window)"
        )
        clients = ("promptkit", "promptkit-window")
    return ConversationWorkload(
        name, description, _CHAT_SYSTEM, corpus.CHAT_TOOLS, steps, 12, budget, clients
    )


def _agent(rng: random.Random, sizes: _Sizes) -> ConversationWorkload:
    task, observations = corpus.agent_observations(rng, sizes.agent_steps - 1)
    steps = (Step(task), *(Step(None, (o,)) for o in observations))
    return ConversationWorkload(
        "agent",
        f"an incident investigation: {sizes.agent_steps} model calls, a JSON tool result each",
        _AGENT_SYSTEM,
        corpus.AGENT_TOOLS,
        steps,
        max_tokens=12,
    )


def build_workloads(
    *, seed: int = 0, quick: bool = False, only: frozenset[str] | None = None
) -> list[Workload]:
    """All workloads (or those named in ``only``); each draws from its own seeded generator."""
    sizes = QUICK if quick else FULL
    makers: dict[str, Callable[[random.Random], Workload]] = {
        "long_doc": lambda r: _long_doc(r, sizes),
        "shared_prompt": lambda r: _shared_prompt(r, sizes),
        "chat": lambda r: _chat(r, sizes.chat_turns, name="chat", budget=None),
        "agent": lambda r: _agent(r, sizes),
        "rag": lambda r: _rag(r, sizes),
        "chat_truncation": lambda r: _chat(
            r, sizes.truncation_turns, name="chat_truncation", budget=768
        ),
    }
    unknown = (only or frozenset()) - makers.keys()
    if unknown:
        raise ValueError(f"unknown workload(s) {sorted(unknown)}; choose from {sorted(makers)}")
    return [
        make(random.Random(f"{seed}:{name}"))
        for name, make in makers.items()
        if only is None or name in only
    ]
