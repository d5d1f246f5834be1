"""The engine seam: declared capabilities, refused salts, backend errors mapped by name.

Engine-free. vLLM's and openai's exception classes are the real ones; the ``openai`` client talks
to a fake vLLM server at the transport (tests/vllm_wire_fake.py). tests/test_engine_vllm.py
checks the same mapping inside the real engine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
import vllm.exceptions
import vllm.v1.engine.exceptions
from vllm.exceptions import (
    GenerationError,
    QueueOverflowError,
    VLLMError,
    VLLMValidationError,
)
from vllm.v1.engine.exceptions import EngineDeadError as VLLMEngineDeadError
from vllm.v1.engine.exceptions import EngineGenerateError

from engine_adapter import (
    Engine,
    EngineCapabilityError,
    EngineDeadError,
    EngineError,
    EngineRequest,
    EngineRequestError,
    EngineResult,
    EngineStartError,
    FunctionEngine,
    SamplingError,
    SamplingSettings,
    map_exceptions,
)
from engine_adapter._vllm_common import (
    describe_error,
    request_errors,
    sampling_params,
    start_errors,
)
from promptkit import Client, PromptTemplate, Tokenizer
from tests.vllm_wire_fake import Handler, remote, stream

ROOT = Path(__file__).resolve().parents[2]


class Minimal(Engine):
    """The least an engine must write: a block size and ``generate``."""

    def __init__(self) -> None:
        self.requests: list[EngineRequest] = []

    @property
    def block_size(self) -> int:
        return 16

    def generate(self, requests: Sequence[EngineRequest]) -> list[EngineResult]:
        self.requests.extend(requests)
        return [
            EngineResult(
                prompt_token_ids=r.prompt_token_ids,
                num_cached_tokens=None,
                text="",
                token_ids=(),
                finish_reason="stop",
                ttft_s=None,
                latency_s=0.0,
                timing_source="measured",
            )
            for r in requests
        ]


# -- capabilities -------------------------------------------------------------------------------


def test_every_capability_the_client_reads_has_a_declared_default() -> None:
    engine = Minimal()
    assert engine.supports_cache_salt is False
    assert engine.prefix_caching is None
    assert engine.kv_events_endpoint is None
    assert engine.start_seconds is None
    assert engine.prefix_cache_counters() is None
    assert engine.reset_prefix_cache() is False


def test_no_engine_attribute_is_probed_with_getattr() -> None:
    # Regression: the client read kv_events_endpoint and the demo start_seconds through
    # getattr(engine, ..., None), so a misspelt attribute in an engine passed silently.
    probe = re.compile(r"\b(?:getattr|hasattr)\([^,()]*engine\b")
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for folder in ("promptkit", "engine_adapter", "bench")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if probe.search(line)
    ]
    assert found == []


def test_a_salted_request_to_an_engine_without_salts_is_refused_before_sending(
    tokenizer: Tokenizer,
) -> None:
    engine = Minimal()
    template = PromptTemplate.from_string(
        "{% vars q=request %}{% segment s static %}Answer.{% endsegment %}"
        "{% segment r request %}{{ q }}{% endsegment %}",
        name="salted",
    )
    with Client(engine=engine, tokenizer=tokenizer) as client:
        with pytest.raises(EngineCapabilityError, match=r"'engine' engine \(Minimal\).*cache_salt"):
            client.generate(template, {"q": "Who?"}, cache_salt="tenant-a")
        assert engine.requests == [] and not client.records
        client.generate(template, {"q": "Who?"})
    assert len(engine.requests) == 1


def test_engines_that_declare_salts_take_them() -> None:
    salted = [EngineRequest(prompt_token_ids=(1, 2), cache_salt="a")]
    FunctionEngine(lambda r: "ok").check_requests(salted)
    with pytest.raises(EngineCapabilityError):
        Minimal().check_requests(salted)
    Minimal().check_requests([EngineRequest(prompt_token_ids=(1, 2))])


# -- map_exceptions -----------------------------------------------------------------------------


class BackendError(Exception):
    pass


class BackendDead(BackendError):
    pass


MAPPING = {BackendError: EngineRequestError, BackendDead: EngineDeadError}


def _raised(mapping: Any, exc: Exception, **kwargs: Any) -> BaseException:
    with pytest.raises(BaseException) as info, map_exceptions(mapping, "the action", **kwargs):
        raise exc
    return info.value


def test_a_mapped_exception_becomes_its_engine_error_with_the_cause_kept() -> None:
    original = BackendError("nope")
    raised = _raised(MAPPING, original)
    assert type(raised) is EngineRequestError and raised.__cause__ is original
    assert str(raised) == "the action failed: BackendError: nope"


def test_the_most_specific_mapped_class_wins_whatever_the_order() -> None:
    for mapping in (MAPPING, dict(reversed(MAPPING.items()))):
        assert type(_raised(mapping, BackendDead())) is EngineDeadError


@pytest.mark.parametrize("bug", [KeyError("k"), AttributeError("a"), ZeroDivisionError()])
def test_an_unknown_exception_propagates_unchanged(bug: Exception) -> None:
    assert _raised(MAPPING, bug) is bug


def test_our_own_errors_pass_through_unchanged() -> None:
    own = EngineCapabilityError("refused")
    assert _raised({Exception: EngineRequestError}, own) is own


def test_describe_words_the_message() -> None:
    raised = _raised(MAPPING, BackendError("x"), describe=lambda a, e: f"{a}: do this next")
    assert str(raised) == "the action: do this next"


# -- what vLLM raises ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        (VLLMValidationError("The decoder prompt (length 5000) is longer"), EngineRequestError),
        (QueueOverflowError(), EngineRequestError),
        (EngineGenerateError(), EngineRequestError),
        (GenerationError(), EngineRequestError),
        (VLLMEngineDeadError(), EngineDeadError),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else value.__name__,
)
def test_vllm_request_errors_are_mapped(backend: Exception, expected: type[EngineError]) -> None:
    raised = _raised(request_errors(), backend, describe=describe_error)
    assert type(raised) is expected and raised.__cause__ is backend
    assert str(raised).startswith(f"the action failed: {type(backend).__name__}")
    if expected is EngineDeadError:
        assert "start a new one" in str(raised)


def test_every_vllm_exception_class_is_mapped() -> None:
    mapped = tuple(request_errors())
    classes = {
        value
        for module in (vllm.exceptions, vllm.v1.engine.exceptions)
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, VLLMError) and value is not VLLMError
    }
    assert len(classes) >= 10
    assert [c.__name__ for c in classes if not issubclass(c, mapped)] == []


def test_bad_sampling_settings_are_a_request_error_naming_the_field() -> None:
    # SamplingSettings refuses the value itself; vLLM's own check stays mapped behind it.
    unchecked = SamplingSettings()
    object.__setattr__(unchecked, "temperature", -1.0)
    with (
        pytest.raises(EngineRequestError, match="temperature") as info,
        map_exceptions(request_errors(), "vLLM generate", describe=describe_error),
    ):
        sampling_params(unchecked)
    assert isinstance(info.value.__cause__, VLLMValidationError)


def test_bad_sampling_settings_are_refused_when_built_before_any_engine() -> None:
    with pytest.raises(SamplingError, match="temperature") as info:
        SamplingSettings(temperature=-1.0)
    assert isinstance(info.value, EngineRequestError) and info.value.__cause__ is None


@pytest.mark.parametrize(
    "backend",
    [ValueError("max_model_len too long"), RuntimeError("core failed"), OSError("no file")],
    ids=lambda value: type(value).__name__,
)
def test_vllm_start_errors_are_mapped(backend: Exception) -> None:
    raised = _raised(start_errors(), backend)
    assert type(raised) is EngineStartError and raised.__cause__ is backend


def test_a_type_error_at_start_is_not_relabelled() -> None:
    bug = TypeError("EngineArgs.__init__() got an unexpected keyword argument 'bogus'")
    assert _raised(start_errors(), bug) is bug


# -- what openai raises -------------------------------------------------------------------------


def _raise(error: type[httpx2.RequestError]) -> Handler:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise error("simulated", request=request)

    return handler


def _status(code: int) -> Handler:
    return lambda request: httpx2.Response(code, json={"error": {"message": "server says no"}})


ASK = [EngineRequest(prompt_token_ids=(1, 2, 3), sampling=SamplingSettings(max_tokens=2))]


@pytest.mark.parametrize(
    ("handler", "cause", "message"),
    [
        (_raise(httpx2.ConnectTimeout), openai.APITimeoutError, "timed out at http://vllm.test"),
        (_raise(httpx2.ConnectError), openai.APIConnectionError, "cannot reach the vLLM server"),
        (_status(404), openai.NotFoundError, "HTTP 404: .*server says no; is 'm' the served"),
        (_status(400), openai.BadRequestError, "HTTP 400.*--max-model-len"),
        (_status(500), openai.InternalServerError, "HTTP 500.*see the server log"),
        (
            lambda request: stream({"error": {"message": "engine crashed mid-stream"}}),
            openai.APIError,
            "sent an error: engine crashed mid-stream",
        ),
    ],
    ids=["timeout", "connection", "404", "400", "500", "error-in-stream"],
)
def test_openai_errors_are_mapped_with_a_next_step(
    handler: Handler, cause: type[Exception], message: str
) -> None:
    with remote(handler) as engine, pytest.raises(EngineRequestError, match=message) as info:
        engine.generate(ASK)
    assert type(info.value.__cause__) is cause


class _BrokenStream(httpx2.SyncByteStream):
    """The first chunk of an answer, then the connection drops: a server killed mid-answer."""

    def __iter__(self) -> Iterator[bytes]:
        chunk = {"choices": [{"index": 0, "text": "Hel", "finish_reason": None}]}
        yield f"data: {json.dumps(chunk)}\n\n".encode()
        raise httpx2.RemoteProtocolError("peer closed connection without sending complete body")


def test_a_connection_lost_mid_answer_is_a_request_error_a_router_can_fail_over() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        headers = {"content-type": "text/event-stream"}
        return httpx2.Response(200, headers=headers, stream=_BrokenStream())

    with remote(handler) as engine, pytest.raises(EngineRequestError, match="cannot reach") as info:
        engine.generate(ASK)
    assert isinstance(info.value.__cause__, openai.APIConnectionError)


def test_an_unreachable_server_at_construction_is_a_start_error() -> None:
    with pytest.raises(EngineStartError, match="is it running") as info:
        remote(_raise(httpx2.ConnectError), block_size=None)
    assert isinstance(info.value.__cause__, openai.APIConnectionError)


def test_an_unknown_exception_under_the_openai_client_is_not_relabelled() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise KeyError("a bug in the transport")

    with remote(handler) as engine, pytest.raises(KeyError, match="a bug in the transport"):
        engine.generate(ASK)
