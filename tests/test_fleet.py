"""RoutedEngine over a real local fleet: two vLLM OpenAI servers, started once for this module.

Few requests, short answers: the machine has two cores. The failover test kills a server, so it
runs last; the fleet is stopped (with its worker processes) when the module ends.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine_adapter import EngineRequest, PrefixCacheCounters, SamplingSettings
from engine_adapter.routed import RoutedEngine
from promptkit import Client, LocalFleet, PromptTemplate, Tokenizer, Verdict
from tests.sample_templates import QA

pytestmark = pytest.mark.engine

SAMPLING = SamplingSettings(max_tokens=4)


def _document(topic: str) -> str:
    return " ".join(f"{topic} fact {i}: item {i} weighs {i * 3} kilograms." for i in range(20))


@pytest.fixture(scope="module")
def fleet(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    logs = tmp_path_factory.mktemp("fleet")
    with LocalFleet(replicas=2, model=model_dir, max_model_len=2048, log_dir=logs) as fleet:
        yield fleet


@pytest.fixture(scope="module")
def routed(fleet: LocalFleet) -> Iterator[RoutedEngine]:
    engine = fleet.routed(policy="precise", timeout=60.0)
    yield engine
    engine.close()


def _hits(counters: PrefixCacheCounters | None) -> int:
    assert counters is not None
    return counters.hits


def _settled(
    routed: RoutedEngine, before: dict[str, PrefixCacheCounters | None]
) -> dict[str, PrefixCacheCounters | None]:
    # A server publishes its counters just after it streams the answer: wait until they move.
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        now = routed.replica_counters()
        if any(
            c is not None and b is not None and c.queries > b.queries
            for c, b in zip(now.values(), before.values(), strict=True)
        ):
            return now
        time.sleep(0.2)
    return routed.replica_counters()


def test_precise_sends_a_repeat_to_the_replica_that_holds_it(
    routed: RoutedEngine, tokenizer: Tokenizer
) -> None:
    client = Client(engine=routed, tokenizer=tokenizer)
    template = PromptTemplate.from_string(QA, name="fleet_qa")
    documents = [_document(topic) for topic in ("Apple", "Brick", "Cloud", "Delta")]
    first = {
        doc: client.generate(
            template, {"document": doc, "question": "Which item?"}, sampling=SAMPLING
        )
        for doc in documents
    }
    assert {g.record.replica for g in first.values()} == set(routed.replicas)
    for doc, earlier in first.items():
        home = earlier.record.replica
        assert home is not None
        before = routed.replica_counters()
        # The router knows from the server's own KV events that it holds this document.
        prompt_ids = earlier.prompt.token_ids
        deadline = time.monotonic() + 10.0
        while routed.held_blocks(home, prompt_ids) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert routed.held_blocks(home, prompt_ids) * routed.block_size >= len(prompt_ids) - 32
        again = client.generate(
            template, {"document": doc, "question": "How heavy?"}, sampling=SAMPLING
        )
        assert again.record.replica == home
        assert again.record.verdict is Verdict.HIT
        # ... and that server counted the hit itself; the other counted nothing.
        after = _settled(routed, before)
        others = [name for name in routed.replicas if name != home]
        assert _hits(after[home]) - _hits(before[home]) == again.record.cached_tokens
        assert all(_hits(after[name]) == _hits(before[name]) for name in others)
    summary = client.summary()
    assert {r.replica for r in summary.replicas} == set(routed.replicas)
    assert all(r.requests == 4 for r in summary.replicas)


def _running(url: str) -> float:
    """``vllm:num_requests_running`` on a server's ``/metrics`` (0 when it cannot be read)."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=2.0) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vllm:num_requests_running")
    )


def _kill_while_running(fleet: LocalFleet, name: str, stop: threading.Event) -> threading.Thread:
    """Kill ``name`` as soon as it is generating: a timer could fire after every answer is back
    (on a fast machine it did), and then there is no failover to test."""

    def watch() -> None:
        url = fleet.servers[name].url
        while not stop.is_set():
            if _running(url) > 0:
                fleet.kill(name)
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, name="kill-while-running", daemon=True)
    watcher.start()
    return watcher


def test_a_killed_replica_is_dropped_and_no_request_is_lost(
    fleet: LocalFleet, routed: RoutedEngine, tokenizer: Tokenizer
) -> None:
    ids = [tokenizer.encode(_document(f"Echo{k}") + " Question: which?").ids for k in range(6)]
    requests = [
        EngineRequest(prompt_token_ids=i, sampling=SamplingSettings(max_tokens=160)) for i in ids
    ]
    victim = "replica-1"
    done = threading.Event()
    watcher = _kill_while_running(fleet, victim, done)
    try:
        results = routed.generate(requests)
    finally:
        done.set()
        watcher.join()
    assert not fleet.servers[victim].running, f"{victim} was never seen generating"
    assert [r.prompt_token_ids for r in results] == [r.prompt_token_ids for r in requests]
    assert all(r.token_ids for r in results)
    assert {r.replica for r in results} <= {"replica-0", victim}
    assert routed.up() == ["replica-0"]
    assert routed.held_blocks(victim, ids[0]) == 0
    (later,) = routed.generate(requests[:1])
    assert later.replica == "replica-0"
