"""A misbehaving OpenAI-compatible server, in this process: hung, trickling, truncating, refusing.

The outermost wire of :class:`engine_adapter.OpenAIEngine`, faked because a vLLM server cannot be
made to misbehave on cue. Used by tests/test_engine_remote_faults.py and the reliability probe.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["REFUSED", "fault_server"]

REFUSED = 666  # a prompt holding this token id is refused with HTTP 400


# The last event of a vLLM answer started with --enable-prompt-tokens-details.
_USAGE = (
    "data: "
    + json.dumps(
        {
            "id": "c",
            "object": "text_completion",
            "created": 0,
            "model": "m",
            "choices": [],
            "usage": {
                "prompt_tokens": 3,
                "completion_tokens": 2,
                "total_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
        }
    )
    + "\n\n"
).encode()


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
        self.wfile.write(_USAGE)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


@contextmanager
def fault_server(mode: str = "ok") -> Iterator[ThreadingHTTPServer]:
    """A server answering in ``mode``: ok, hang, trickle or truncate (set ``.mode`` to change);
    a prompt holding token id :data:`REFUSED` is refused with HTTP 400 in every mode."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.mode = mode  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
