"""OpenAIEngine against a real vLLM server on 127.0.0.1, started once for this module's session.

The server runs the default model on the CPU backend with block size 32 and dev mode on (for
``/reset_prefix_cache``). Requests are few and short: the machine is shared. One test starts a
second, short-lived server without ``--enable-prompt-tokens-details``, before the shared one is
up, so that two servers never run at once.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from engine_adapter import (
    CachedTokensNotReported,
    EngineRequest,
    EngineRequestError,
    EngineResult,
    EngineStartError,
    PrefixCacheCounters,
    SamplingSettings,
)
from engine_adapter.openai import OpenAIEngine, _by_token_id
from promptkit import Client, PromptTemplate, Tokenizer, Verdict
from promptkit._output_compare import compare_greedy
from promptkit.cli import EXIT_OK, app
from promptkit.cli._console import print_summary
from tests.sample_templates import QA

BLOCK_SIZE = 32
# A quiet 2-core machine starts the server in ~30 s; with the cores busy (load average 30) one
# restart took 171 s to load and more to answer, so the limit only catches a server that hangs.
SERVER_START_TIMEOUT_S = 600.0
SAMPLING = SamplingSettings(max_tokens=8)
# Top-5 candidates per token: greedy outputs are compared the way vLLM's own tests do.
TOP_K = 5
GREEDY = SamplingSettings(max_tokens=8, logprobs=TOP_K)
DETAILS_FLAG = "--enable-prompt-tokens-details"
PREFIX = " ".join(f"Fact {i}: river {i} flows north into lake {i * 7}." for i in range(24))


@dataclass
class Server:
    base_url: str
    start_s: float
    restart: Callable[[], None]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _log_tail(log_path: Path) -> str:
    """The log's last lines, after its first ERROR line: vLLM prints the root cause (say, too
    little free memory for the KV cache) long before the traceback that ends the log."""
    lines = log_path.read_text(errors="replace").splitlines()
    first_error = next((line for line in lines if " ERROR " in line), None)
    tail = "\n".join(lines[-30:])
    return tail if first_error is None else f"first error: {first_error}\n...\n{tail}"


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"vLLM server exited with {process.returncode}:\n{_log_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1.0)
    pytest.fail(
        f"vLLM server not healthy after {SERVER_START_TIMEOUT_S:.0f} s:\n{_log_tail(log_path)}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def _serving(
    model_dir: Path,
    log_path: Path,
    *,
    prompt_tokens_details: bool = True,
    max_model_len: int = 4096,
) -> Iterator[Server]:
    """A vLLM OpenAI server of the default model on a free port, stopped (with its workers) on
    exit; ``prompt_tokens_details=False`` leaves out the flag that reports cached tokens."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
        "VLLM_SERVER_DEV_MODE": "1",
    }
    # `python -m`: the `vllm` console script is broken under vllm-cpu.
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
        "--enable-prefix-caching", "--block-size", str(BLOCK_SIZE), "--enforce-eager",
        "--max-model-len", str(max_model_len),
    ]  # fmt: skip
    if prompt_tokens_details:
        command.append(DETAILS_FLAG)
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> float:
        started = time.monotonic()
        with log_path.open("ab") as log:
            # A new session, so teardown can kill the server's worker processes with it.
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        processes.append(process)
        _wait_healthy(url, process, log_path)
        return time.monotonic() - started

    def restart() -> None:
        _stop(processes[-1])
        start()

    try:
        yield Server(base_url=url, start_s=start(), restart=restart)
    finally:
        for process in processes:
            _stop(process)


@pytest.fixture(scope="session")
def vllm_server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log_path = tmp_path_factory.mktemp("vllm_server") / "server.log"
    with _serving(model_dir, log_path) as server:
        yield server


@pytest.fixture(scope="session")
def remote(vllm_server: Server, model_dir: Path) -> Iterator[OpenAIEngine]:
    engine = OpenAIEngine.from_url(
        f"{vllm_server.base_url}/v1", model=str(model_dir), max_retries=0
    )
    yield engine
    engine.close()


def _ids(tokenizer: Tokenizer, question: str) -> tuple[int, ...]:
    return tokenizer.encode(f"{PREFIX} Question: {question}").ids


def _common_prefix(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def _send(
    engine: OpenAIEngine, ids: tuple[int, ...], salt: str, sampling: SamplingSettings = SAMPLING
) -> EngineResult:
    (result,) = engine.generate(
        [EngineRequest(prompt_token_ids=ids, sampling=sampling, cache_salt=salt)]
    )
    return result


def _counters_after(
    engine: OpenAIEngine, before: PrefixCacheCounters, queries: int
) -> PrefixCacheCounters:
    # The server publishes stats just after it streams the answer; give it a moment.
    deadline = time.monotonic() + 5.0
    while True:
        counters = engine.prefix_cache_counters()
        assert counters is not None
        if counters.queries - before.queries >= queries or time.monotonic() > deadline:
            return counters
        time.sleep(0.1)


@dataclass(frozen=True)
class Exchange:
    """A cold request, one sharing its prefix, and the second again under another salt."""

    cold: EngineResult
    warm: EngineResult
    other_salt: EngineResult
    expected_cached: int
    before: PrefixCacheCounters
    after: PrefixCacheCounters
    salt: str


@pytest.fixture(scope="module")
def exchange(vllm_server: Server, remote: OpenAIEngine, tokenizer: Tokenizer) -> Exchange:
    first = _ids(tokenizer, "which lake does river 3 feed?")
    second = _ids(tokenizer, "which lake does river 9 feed?")
    salt = uuid.uuid4().hex
    shared_blocks = _common_prefix(first, second) // BLOCK_SIZE
    expected = BLOCK_SIZE * min(shared_blocks, (len(second) - 1) // BLOCK_SIZE)
    before = remote.prefix_cache_counters()
    assert before is not None, "the server publishes no vllm:prefix_cache_* counters"
    cold = _send(remote, first, salt, GREEDY)
    warm = _send(remote, second, salt, GREEDY)
    after = _counters_after(remote, before, len(first) + len(second))
    other_salt = _send(remote, second, uuid.uuid4().hex, GREEDY)
    print(
        f"\nserver up in {vllm_server.start_s:.1f} s; cold TTFT {cold.ttft_s:.3f} s, "
        f"cached TTFT {warm.ttft_s:.3f} s ({warm.num_cached_tokens}/{len(second)} cached), "
        f"other salt TTFT {other_salt.ttft_s:.3f} s; greedy outputs: "
        f"{compare_greedy(other_salt, warm).describe()}"
    )
    return Exchange(cold, warm, other_salt, expected, before, after, salt)


@pytest.mark.engine
def test_server_without_prompt_tokens_details_gives_unknown_never_zero(
    model_dir: Path, tokenizer: Tokenizer, tmp_path: Path
) -> None:
    # Regression: such a server made every report say "0.0% cached" and the counter check
    # MISMATCH, while the server counted thousands of hit tokens.
    log = tmp_path / "run.jsonl"
    template = PromptTemplate.from_string(QA, name="restart_qa")
    questions = ["Where does river 3 flow?", "Which lake?", "And river 5?"]
    started = time.monotonic()
    with (
        _serving(
            model_dir, tmp_path / "server.log", prompt_tokens_details=False, max_model_len=2048
        ) as server,
        OpenAIEngine.from_url(
            f"{server.base_url}/v1", model=str(model_dir), max_retries=0
        ) as engine,
        Client(engine=engine, tokenizer=tokenizer, log_path=log) as client,
    ):
        before = engine.prefix_cache_counters()
        assert before is not None
        with pytest.warns(CachedTokensNotReported, match=DETAILS_FLAG):
            client.generate(
                template, {"document": PREFIX, "question": questions[0]}, sampling=SAMPLING
            )
        with warnings.catch_warnings():
            warnings.simplefilter("error", CachedTokensNotReported)  # once per engine
            for question in questions[1:]:
                client.generate(
                    template, {"document": PREFIX, "question": question}, sampling=SAMPLING
                )
        sent = sum(r.prompt_tokens for r in client.records)
        after = _counters_after(engine, before, sent)
        summary = client.summary()
    assert engine.reports_cached_tokens is False
    for record in client.records:
        assert record.verdict is Verdict.UNKNOWN and record.cached_tokens is None
        assert record.cached_unknown_reason is not None
        assert DETAILS_FLAG in record.cached_unknown_reason
    hits = after.hits - before.hits
    print(
        f"\nno-details server up in {server.start_s:.1f} s, test {time.monotonic() - started:.1f} "
        f"s; engine counted {hits} hit tokens of {after.queries - before.queries} queried; "
        f"records: {summary.unknown_requests} of {summary.requests} unknown, cached_tokens "
        f"{summary.cached_tokens}, hit_ratio {summary.hit_ratio}"
    )
    assert hits > 0, "the shared document should have hit the server's prefix cache"
    assert summary.engine_counters is not None and summary.engine_counters.hits == hits
    assert summary.cached_tokens is None and summary.hit_ratio is None
    assert summary.unknown_requests == len(questions) and summary.counters_match is None

    console = Console(record=True, width=250, file=io.StringIO())
    print_summary(console, summary)
    for text in (console.export_text(), str(summary)):
        assert "hit ratio unknown" in text and DETAILS_FLAG in text
        assert "0.0%" not in text and "MISMATCH" not in text
    report = CliRunner().invoke(app, ["report", str(log), "--engine-hits", str(hits)])
    assert report.exit_code == EXIT_OK, report.output
    text = " ".join(report.output.split())
    assert "hit ratio unknown" in text and "cannot cross-check" in text and DETAILS_FLAG in text
    assert "0.0%" not in text and "MISMATCH" not in text


@pytest.mark.engine
def test_block_size_and_prefix_caching_are_read_from_metrics(remote: OpenAIEngine) -> None:
    assert remote.block_size == BLOCK_SIZE
    assert remote.prefix_caching is True


@pytest.mark.engine
def test_shared_prefix_hits_the_block_aligned_common_prefix(exchange: Exchange) -> None:
    assert exchange.expected_cached >= 10 * BLOCK_SIZE
    assert exchange.cold.num_cached_tokens == 0
    assert exchange.warm.num_cached_tokens == exchange.expected_cached


@pytest.mark.engine
def test_another_cache_salt_shares_nothing(exchange: Exchange) -> None:
    assert exchange.other_salt.num_cached_tokens == 0


@pytest.mark.engine
def test_greedy_output_is_the_same_cold_and_cached(exchange: Exchange) -> None:
    # bf16 greedy on a CPU may flip a near-tie with the batch shape or the cached prefix (a
    # newcomer's machine gave '\nA: 1. Lake ' vs '\n\nA: \nThe answer'): compare as vLLM does.
    cold, cached = exchange.other_salt, exchange.warm
    for result in (cold, cached):
        assert result.token_ids, "the server returned no generated token ids"
        assert result.logprobs is not None and len(result.logprobs) == len(result.token_ids)
        for token, top in zip(result.token_ids, result.logprobs, strict=True):
            assert token in top and len(top) <= TOP_K + 1  # the sampled token may be extra
    comparison = compare_greedy(cold, cached)
    assert comparison.acceptable, (
        f"cold {cold.text!r} vs cached {cached.text!r}: {comparison.describe()}"
    )


def test_logprob_keys_that_are_not_token_ids_give_no_logprobs() -> None:
    # A server that ignores return_tokens_as_token_ids keys candidates by decoded text, which
    # cannot be mapped back to ids: no candidates rather than wrong ones.
    assert _by_token_id([{"token_id:42": -0.1, "token_id:7": -2.5}, None]) == (
        {42: -0.1, 7: -2.5},
        {},
    )
    assert _by_token_id([{"token_id:42": -0.1}, {" Lake": -0.3}]) is None


@pytest.mark.engine
def test_metrics_counters_grow_by_the_cached_tokens(exchange: Exchange) -> None:
    sent = len(exchange.cold.prompt_token_ids) + len(exchange.warm.prompt_token_ids)
    assert exchange.after.queries - exchange.before.queries == sent
    assert exchange.after.hits - exchange.before.hits == exchange.warm.num_cached_tokens


@pytest.mark.engine
def test_ttft_is_measured_from_the_stream(exchange: Exchange) -> None:
    for result in (exchange.cold, exchange.warm, exchange.other_salt):
        assert result.timing_source == "measured"
        assert result.ttft_s is not None
        assert 0 < result.ttft_s <= result.latency_s


@pytest.mark.engine
def test_reset_prefix_cache_drops_cached_blocks(remote: OpenAIEngine, exchange: Exchange) -> None:
    assert remote.reset_prefix_cache()
    again = _send(remote, exchange.warm.prompt_token_ids, exchange.salt)
    assert again.num_cached_tokens == 0


@pytest.mark.engine
def test_concurrent_requests_come_back_in_order(remote: OpenAIEngine, tokenizer: Tokenizer) -> None:
    prompts = [tokenizer.encode(text).ids for text in ("The sky is", "Two plus two is")]
    requests = [
        EngineRequest(prompt_token_ids=ids, sampling=SAMPLING, cache_salt=uuid.uuid4().hex)
        for ids in prompts
    ]
    results = remote.generate(requests)
    assert [r.prompt_token_ids for r in results] == prompts
    assert all(r.token_ids and r.num_cached_tokens == 0 for r in results)


@pytest.mark.engine
def test_unknown_model_name_says_how_to_list_served_models(remote: OpenAIEngine) -> None:
    wrong = OpenAIEngine(remote.client, model="no-such-model", block_size=BLOCK_SIZE)
    with pytest.raises(EngineRequestError, match="v1/models"):
        wrong.generate([EngineRequest(prompt_token_ids=(1, 2, 3), sampling=SAMPLING)])


def test_server_not_running_says_how_to_start_one() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(EngineStartError, match=r"python -m vllm\.entrypoints\.openai\.api_server"):
        OpenAIEngine.from_url(url, model="m", max_retries=0)
    with OpenAIEngine.from_url(url, model="m", block_size=BLOCK_SIZE, max_retries=0) as engine:
        with pytest.raises(EngineRequestError, match="cannot reach the vLLM server"):
            engine.generate([EngineRequest(prompt_token_ids=(1, 2, 3))])
        with pytest.raises(EngineRequestError, match="is it running"):
            engine.prefix_cache_counters()


@pytest.mark.engine
def test_server_restart_makes_the_first_repeat_an_unexpected_miss(
    vllm_server: Server, remote: OpenAIEngine, tokenizer: Tokenizer
) -> None:
    # Last in this module: it restarts the shared server.
    client = Client(engine=remote, tokenizer=tokenizer)
    template = PromptTemplate.from_string(QA, name="restart_qa")
    variables = {"document": PREFIX}
    client.generate(
        template, {**variables, "question": "Where does river 3 flow?"}, sampling=SAMPLING
    )
    hit = client.generate(template, {**variables, "question": "Which lake?"}, sampling=SAMPLING)
    assert hit.record.verdict is Verdict.HIT
    vllm_server.restart()
    after = client.generate(template, {**variables, "question": "And river 5?"}, sampling=SAMPLING)
    assert after.record.verdict is Verdict.UNEXPECTED_MISS
    assert after.record.expected_cached_tokens > 0 and after.record.cached_tokens == 0
    assert after.record.explanation is not None and "restart" in after.record.explanation.cause
    again = client.generate(template, {**variables, "question": "And river 6?"}, sampling=SAMPLING)
    assert again.record.verdict is Verdict.HIT
