"""The remote engine against a misbehaving server: hung, trickling, truncating, refusing.

The server is a real HTTP server in this process (the outermost wire, faked because a vLLM
server cannot be made to misbehave on cue); the ``openai`` client and the adapter are real.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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

REFUSED = 666  # a prompt holding this token id is refused with HTTP 400


def _chunk(text: str, finish: str | None, token: int) -> bytes:
    event = {
        "id": "c",
        "object": "text_completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "text": text, "finish_reason": finish, "token_ids": [token]}],
    }
    return f"data: {json.dumps(event)}\n\n".encode()


class _Handler(BaseHTTPRequestHandler):
    mode = "ok"

    def log_message(self, *args: Any) -> None:  # quiet
        return None

    def do_GET(self) -> None:  # /metrics: this server publishes no counters
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode = self.server.mode  # type: ignore[attr-defined]
        if mode == "hang":
            time.sleep(30)
            return
        if REFUSED in body["prompt"]:
            payload = json.dumps({"error": {"message": "prompt refused", "code": 400}}).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        if mode == "trickle":
            for _ in range(300):  # a keep-alive comment every 0.1 s: never a read timeout
                self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
                time.sleep(0.1)
            return
        self.wfile.write(_chunk(" hel", None, 1))
        if mode == "truncate":
            self.wfile.flush()
            return  # the connection closes without the rest of the answer
        self.wfile.write(_chunk("lo", "stop", 2))
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


@pytest.fixture()
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.mode = "ok"  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


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
    with _engine(server) as engine, pytest.raises(EngineRequestError, match="deadline of 2.0 s"):
        engine.generate([_request()])
    assert time.monotonic() - started < 20


def test_a_stream_that_ends_early_is_an_error(server: ThreadingHTTPServer) -> None:
    server.mode = "truncate"  # type: ignore[attr-defined]
    with _engine(server) as engine, pytest.raises(EngineRequestError, match="ended before"):
        engine.generate([_request()])


def test_a_partly_refused_batch_keeps_the_answers_it_got(server: ThreadingHTTPServer) -> None:
    with _engine(server) as engine:
        with pytest.raises(PartialBatchError, match="1 of 3") as info:
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
