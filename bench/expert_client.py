"""The expert: the same content, hand-ordered by someone who knows prefix caching.

The reference the headline is measured against. No SDK, no templates: plain messages to
``vllm.LLM.chat``, written the way an engineer who has read vLLM's prefix-caching docs writes
them by hand:

* static first: the system prompt, then the tools, then the shared context (a document, the
  sources), then the question -- the volatile part last;
* tools canonical and sorted: compact JSON with sorted keys, sorted by name, one per line (the
  leanest form in tokens);
* retrieved chunks in a stable order (document, then position), not in score order;
* append-only history: replies are kept as the engine returned them, tool results are compact
  sorted JSON, and a chat over a token budget drops the oldest half of the history at once
  (not one exchange per turn), so the prefix moves rarely.

No clock, no request id: an expert keeps them out of the prompt (or puts them last).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .measure import Measured, Stopwatch
from .text_clients import Messages, chat_once, run_questions
from .workloads import ConversationWorkload, Question, QuestionWorkload

__all__ = ["ExpertClient"]


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _system(base: str, tools: Sequence[dict[str, Any]]) -> str:
    if not tools:
        return base
    # OpenAI-style schemas (what tool registries produce), sorted by name.
    schemas: list[dict[str, Any]] = [
        t if "function" in t else {"type": "function", "function": t} for t in tools
    ]
    schemas.sort(key=lambda t: str(t["function"]["name"]))
    return base + "\n\nAvailable tools:\n" + "\n".join(_json(t) for t in schemas) + "\n"


class ExpertClient:
    """Hand-ordered messages to ``LLM.chat`` (see the module docstring)."""

    name = "expert"

    def __init__(self, llm: Any) -> None:
        self.llm = llm

    @staticmethod
    def messages(workload: QuestionWorkload, question: Question) -> Messages:
        if question.chunks:
            chunks = sorted(question.chunks, key=lambda c: (c.doc_id, c.position))
            sources = "".join(f"[{i}] {c.title}\n{c.text}\n" for i, c in enumerate(chunks, 1))
            user = f"Sources:\n{sources}\nQuestion: {question.question}"
        elif question.document:
            user = f"Document: {question.title}\n\n{question.document.strip()}\n\n"
            user += f"Question: {question.question}"
        else:
            user = question.question
        return [{"role": "system", "content": workload.system}, {"role": "user", "content": user}]

    def questions(self, workload: QuestionWorkload) -> list[Measured]:
        return run_questions(self.llm, workload, lambda q: self.messages(workload, q))

    def conversation(self, workload: ConversationWorkload) -> list[Measured]:
        system = {"role": "system", "content": _system(workload.system, workload.tools)}
        history: Messages = []
        budget = workload.max_prompt_tokens
        out: list[Measured] = []
        for index, step in enumerate(workload.steps):
            watch = Stopwatch()
            for result in step.tool_results:
                history.append({"role": "tool", "content": _json(result)})
            if step.user is not None:
                history.append({"role": "user", "content": step.user})
            if budget is not None and out and len(out[-1].prompt_ids) + 64 > budget:
                # Over budget: drop the oldest half of the history at once, at a user turn.
                cut = len(history) // 2
                while cut < len(history) - 1 and history[cut]["role"] != "user":
                    cut += 1
                history = history[cut:]
            measured = chat_once(
                self.llm,
                [system, *history],
                max_tokens=workload.max_tokens,
                watch=watch,
                warm_up=index == 0,
            )
            history.append({"role": "assistant", "content": measured.text})
            out.append(measured)
        return out
