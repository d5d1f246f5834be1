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
from collections.abc import Callable, Iterator

import pytest

from engine_adapter import EngineRequest, EngineResult, FunctionEngine
from promptkit import Client, Generation, PromptTemplate, StatelessChat, Tokenizer
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


def _in_threads(work: Callable[[int], None], count: int = THREADS) -> list[BaseException]:
    """Run ``work(k)`` in ``count`` threads at once; what they raised, for the test to assert."""
    errors: list[BaseException] = []

    def guarded(k: int) -> None:
        try:
            work(k)
        except BaseException as exc:  # handed to the test thread, with its own traceback
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


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
    lock = threading.Lock()

    def worker(thread: int) -> None:
        for n in range(REQUESTS):
            question = f"Question {thread}-{n}?"
            out = client.generate(qa, {"document": DOCUMENT, "question": question})
            with lock:
                answers.append((question, out))

    assert _in_threads(worker) == []
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


def test_stateless_histories_from_many_threads(
    tokenizer: Tokenizer, tiny_switch_interval: None
) -> None:
    # A web server's handlers: each thread carries its own history, the chat's index is shared
    # and small enough that threads evict each other's entries while they look them up.
    client = Client(engine=FunctionEngine(_respond), tokenizer=tokenizer)
    chat = StatelessChat(client, name="web", max_turns=4)
    notes: list[str | None] = []

    def session(k: int) -> None:
        history: list[dict[str, str]] = [{"role": "system", "content": "Be brief."}]
        for turn in range(10):
            history.append({"role": "user", "content": f"user {k} turn {turn}"})
            answer = chat.reply(history)
            assert answer.text == _answer(answer.prompt.token_ids)
            assert f"user {k} turn {turn}" in answer.prompt.text
            notes.append(answer.record.note)
            history.append({"role": "assistant", "content": answer.text})

    errors = _in_threads(session)
    assert not errors, errors
    assert len(notes) == THREADS * 10 and len(chat) <= 4


def test_langchain_sync_batch_reaches_the_engine_at_once(tokenizer: Tokenizer) -> None:
    from promptkit.integrations.langchain import ChatPromptkit

    # Called one after another, the first call would wait here until the barrier breaks.
    barrier = threading.Barrier(4, timeout=20)

    def respond(request: EngineRequest) -> str:
        barrier.wait()
        return "ok"

    client = Client(engine=FunctionEngine(respond), tokenizer=tokenizer)
    model = ChatPromptkit(client=client, max_tokens=4)
    answers = model.batch([f"Question {i}" for i in range(4)], config={"max_concurrency": 4})
    assert [a.content for a in answers] == ["ok"] * 4
