"""The remote engine against a misbehaving server: hung, trickling, truncating, refusing.

The server is a real HTTP server in this process (the outermost wire, faked because a vLLM
server cannot be made to misbehave on cue); the ``openai`` client and the adapter are real.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from engine_adapter import (
    EngineRequest,
    EngineRequestError,
    OpenAIEngine,
    PartialBatchError,
    SamplingSettings,
)
from promptkit import Client, PromptTemplate, Tokenizer
from promptkit_bench.fault_server import REFUSED, fault_server


@pytest.fixture()
def server() -> Iterator[ThreadingHTTPServer]:
    with fault_server() as httpd:
        yield httpd


def _engine(server: ThreadingHTTPServer, **kwargs: Any) -> OpenAIEngine:
    host, port = server.server_address[:2]
    options: dict[str, Any] = {"timeout": 1.0, "max_retries": 0, "deadline_s": 2.0, **kwargs}
    return OpenAIEngine.from_url(f"http://{host}:{port}/v1", model="m", block_size=32, **options)


def _request(*ids: int) -> EngineRequest:
    return EngineRequest(prompt_token_ids=ids or (1, 2, 3), sampling=SamplingSettings())


def test_a_well_behaved_server_answers(server: ThreadingHTTPServer) -> None:
    with _engine(server) as engine:
        (result,) = engine.generate([_request()])
    assert result.text == " hello" and result.finish_reason == "stop"


def test_a_hung_server_is_a_timeout_error_not_a_hang(server: ThreadingHTTPServer) -> None:
    server.mode = "hang"  # type: ignore[attr-defined]
    started = time.monotonic()
    with _engine(server) as engine, pytest.raises(EngineRequestError, match="timed out"):
        engine.generate([_request()])
    assert time.monotonic() - started < 20


def test_a_trickling_server_cannot_defeat_the_deadline(server: ThreadingHTTPServer) -> None:
    server.mode = "trickle"  # type: ignore[attr-defined]
    started = time.monotonic()
    with _engine(server) as engine, pytest.raises(EngineRequestError, match=r"deadline of 2\.0 s"):
        engine.generate([_request()])
    assert time.monotonic() - started < 20


def test_a_stream_that_ends_early_is_an_error(server: ThreadingHTTPServer) -> None:
    server.mode = "truncate"  # type: ignore[attr-defined]
    with _engine(server) as engine, pytest.raises(EngineRequestError, match="ended before"):
        engine.generate([_request()])


def test_a_partly_refused_batch_keeps_the_answers_it_got(server: ThreadingHTTPServer) -> None:
    with _engine(server) as engine, pytest.raises(PartialBatchError, match="1 of 3") as info:
        engine.generate([_request(1), _request(REFUSED), _request(3)])
    error = info.value
    assert [r is not None for r in error.results] == [True, False, True]
    assert set(error.errors) == {1}
    assert error.results[0].text == " hello"  # type: ignore[union-attr]


def test_the_client_records_the_answers_of_a_partly_refused_batch(
    server: ThreadingHTTPServer, tokenizer: Tokenizer
) -> None:
    template = PromptTemplate.from_string(
        "{% vars q=request %}{% segment r request %}{{ q }}{% endsegment %}", name="q"
    )
    with _engine(server) as engine:
        client = Client(engine=engine, tokenizer=tokenizer)
        prompts = [client.build(template, {"q": q}) for q in ("one", "two")]
        bad = prompts[1].__class__(**{**_fields(prompts[1]), "token_ids": (1, REFUSED)})
        with pytest.raises(PartialBatchError) as info:
            client.send([prompts[0], bad])
    generations = info.value.generations
    assert generations is not None and generations[1] is None
    assert generations[0] is not None and generations[0].text == " hello"
    assert [r.request_id for r in client.records] == [generations[0].record.request_id]


def _fields(prompt: Any) -> dict[str, Any]:
    return {name: getattr(prompt, name) for name in prompt.__dataclass_fields__}
