"""promptkit on the benchmark's workloads, and the APC-off replay of its requests.

*promptkit* builds every prompt with the bench templates (``bench/templates``) or a
:class:`promptkit.Conversation`, sends ids through the adapter and records each request.
*promptkit-window* is the same conversation with a sliding window instead of compaction: with
``compact_to`` just under 1, compaction drops the fewest whole exchanges that fit the budget, so
once over budget the oldest exchange goes every turn. *apc-off* replays promptkit's exact prompt
ids with a unique ``cache_salt`` per request: prefix caching is off for them, same engine.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from engine_adapter import Engine, EngineRequest, EngineResult, SamplingSettings
from promptkit._canonical import canonical_json
from promptkit._client import Client
from promptkit._conversation import Conversation
from promptkit._rag import assemble_context
from promptkit._templating.prompt_template import PromptTemplate
from promptkit._tokenization import Tokenizer

from .measure import Measured, Stopwatch, TimedEngine, measured_from_result
from .workloads import ConversationWorkload, QuestionWorkload

__all__ = ["PromptkitClient", "replay_apc_off"]

TEMPLATES = Path(__file__).resolve().parent / "templates"


class PromptkitClient:
    """promptkit's client; ``window=True`` trades compaction for a sliding window."""

    def __init__(self, engine: Engine, tokenizer: Tokenizer, *, window: bool = False) -> None:
        self.engine = engine
        self.tokenizer = tokenizer
        self.window = window
        self.name = "promptkit-window" if window else "promptkit"
        self.notes = ""

    def _client(self) -> tuple[Client, TimedEngine]:
        timed = TimedEngine(self.engine)
        return Client(engine=timed, tokenizer=self.tokenizer), timed

    def _note(self, client: Client, extra: str = "") -> None:
        verdicts = Counter(r.verdict.value for r in client.records)
        self.notes = ", ".join(f"{v} {n}" for v, n in sorted(verdicts.items())) + extra

    def questions(self, workload: QuestionWorkload) -> list[Measured]:
        client, timed = self._client()
        template = PromptTemplate.from_file(TEMPLATES / f"{workload.template}.j2")
        sampling = SamplingSettings(max_tokens=workload.max_tokens)
        out = []
        for question in workload.questions:
            watch = Stopwatch(timed)
            variables: dict[str, Any] = {"system": workload.system, "question": question.question}
            if question.document:
                variables |= {"title": question.title, "document": question.document}
            if question.chunks:
                variables["chunks"] = assemble_context(question.chunks)
            generation = client.generate(template, variables, sampling=sampling)
            out.append(_measured(generation.result, watch, warm_up=question.warm_up))
        self._note(client)
        return out

    def conversation(self, workload: ConversationWorkload) -> list[Measured]:
        client, timed = self._client()
        budget = workload.max_prompt_tokens
        compact_to = (budget - 1) / budget if self.window and budget else 0.5
        conversation = Conversation(
            client,
            system=workload.system,
            tools=list(workload.tools),
            max_prompt_tokens=budget,
            compact_to=compact_to,
        )
        sampling = SamplingSettings(max_tokens=workload.max_tokens)
        out = []
        for index, step in enumerate(workload.steps):
            watch = Stopwatch(timed)
            for result in step.tool_results:
                conversation.add("tool", canonical_json(result))
            generation = conversation.say(step.user, sampling=sampling)
            out.append(_measured(generation.result, watch, warm_up=index == 0))
        self._note(client, f"; {conversation.compactions} compactions" if budget else "")
        return out


def _measured(result: EngineResult, watch: Stopwatch, *, warm_up: bool) -> Measured:
    sdk_s, engine_s = watch.stop()
    return measured_from_result(result, engine_s=engine_s, sdk_s=sdk_s, warm_up=warm_up, salt=None)


def replay_apc_off(engine: Engine, requests: list[Measured], *, max_tokens: int) -> list[Measured]:
    """Send the same prompt ids again, each with a fresh salt: nothing can hit."""
    sampling = SamplingSettings(max_tokens=max_tokens)
    out = []
    for request in requests:
        salt = f"bench-apc-off-{uuid.uuid4().hex}"
        started = time.perf_counter()
        result = engine.generate(
            [EngineRequest(prompt_token_ids=request.prompt_ids, sampling=sampling, cache_salt=salt)]
        )[0]
        out.append(
            measured_from_result(
                result,
                engine_s=time.perf_counter() - started,
                sdk_s=None,
                warm_up=request.warm_up,
                salt=salt,
            )
        )
    return out
