"""One client shared by threads and coroutines: every answer reaches its caller, and the
client's records, mirror and drift history stay consistent (stress with a tiny switch interval).

The same shape runs on the real engine in tests/test_concurrency_engine.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from engine_adapter import EngineRequest, EngineResult, FunctionEngine
from promptkit import Client, Generation, PromptTemplate, Tokenizer
from tests.sample_templates import DOCUMENT, QA

THREADS, REQUESTS = 8, 50


def _answer(ids: tuple[int, ...]) -> str:
    return hashlib.blake2b(repr(ids).encode(), digest_size=8).hexdigest()


def _respond(request: EngineRequest) -> EngineResult:
    time.sleep(0)  # let another thread in mid-call
    return EngineResult(
        prompt_token_ids=request.prompt_token_ids,
        num_cached_tokens=0,
        text=_answer(request.prompt_token_ids),
        token_ids=(),
        finish_reason="stop",
        ttft_s=None,
        latency_s=0.0,
        timing_source="measured",
    )


@pytest.fixture()
def tiny_switch_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def _check(client: Client, answers: list[tuple[str, Generation]], total: int) -> None:
    assert len(answers) == total
    for question, generation in answers:
        assert question in generation.prompt.text
        assert generation.text == _answer(generation.prompt.token_ids)
    ids = sorted(record.request_id for record in client.records)
    assert ids == list(range(1, total + 1))
    assert not [
        r for r in client.records if r.explanation and "audit failed" in r.explanation.cause
    ]
    assert client.summary().requests == total


@pytest.mark.usefixtures("tiny_switch_interval")
def test_eight_threads_share_one_client(tokenizer: Tokenizer) -> None:
    client = Client(engine=FunctionEngine(_respond), tokenizer=tokenizer)
    qa = PromptTemplate.from_string(QA, name="qa")
    answers: list[tuple[str, Generation]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(thread: int) -> None:
        try:
            for n in range(REQUESTS):
                question = f"Question {thread}-{n}?"
                out = client.generate(qa, {"document": DOCUMENT, "question": question})
                with lock:
                    answers.append((question, out))
        except BaseException as exc:  # reported below, with the thread's own traceback
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    _check(client, answers, THREADS * REQUESTS)


@pytest.mark.usefixtures("tiny_switch_interval")
def test_asend_from_many_coroutines_on_a_sync_engine(tokenizer: Tokenizer) -> None:
    client = Client(engine=FunctionEngine(_respond), tokenizer=tokenizer)
    qa = PromptTemplate.from_string(QA, name="qa")

    async def session(n: int) -> tuple[str, Generation]:
        question = f"Session {n}?"
        prompt = client.build(qa, {"document": DOCUMENT, "question": question})
        return question, (await client.asend([prompt]))[0]

    async def main() -> list[tuple[str, Generation]]:
        return list(await asyncio.gather(*(session(n) for n in range(64))))

    _check(client, asyncio.run(main()), 64)
