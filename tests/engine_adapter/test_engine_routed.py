"""RoutedEngine without vLLM: policies, precise routing by KV events, failover, rejoin, records."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine_adapter import (
    EngineDeadError,
    EngineRequest,
    EngineRequestError,
    EngineStartError,
    FunctionEngine,
)
from engine_adapter._routing import Candidate, decide, rendezvous_order
from engine_adapter.routed import RoutedEngine
from promptkit import Client, PromptTemplate, Tokenizer, Verdict
from promptkit.cli import EXIT_FINDINGS, EXIT_OK, app
from tests.routed_fake import FakeReplica
from tests.sample_templates import DOCUMENT, QA

B = 32


def _prefix(seed: int, blocks: int) -> tuple[int, ...]:
    return tuple(1000 * seed + i for i in range(blocks * B))


def _request(ids: tuple[int, ...]) -> EngineRequest:
    return EngineRequest(prompt_token_ids=ids)


def _fleet(n: int = 2, **kwargs: object) -> tuple[RoutedEngine, dict[str, FakeReplica]]:
    replicas = {f"r{i}": FakeReplica(f"r{i}") for i in range(n)}
    routed = RoutedEngine(replicas, kv_events=replicas, **kwargs)  # type: ignore[arg-type]
    return routed, replicas


def _decide(policy: str, candidates: list[Candidate], hashes: tuple[str, ...], turn: int = 0):
    return decide(
        policy,  # type: ignore[arg-type]
        candidates,
        hashes=hashes,
        turn=turn,
        affinity_blocks=2,
        load_factor=1.25,
        balance_blocks=2,
        fallback_key="seed",
    )


def test_round_robin_takes_turns_and_least_loaded_picks_the_idle_replica() -> None:
    idle = [Candidate("a", 0), Candidate("b", 0)]
    assert [_decide("round_robin", idle, (), turn).name for turn in range(4)] == list("abab")
    busy = [Candidate("a", 3), Candidate("b", 1)]
    assert _decide("least_loaded", busy, ()).name == "b"


def test_affinity_keeps_a_prefix_home_and_spreads_prefixes() -> None:
    idle = [Candidate("a", 0), Candidate("b", 0)]
    homes = {_decide("affinity", idle, (f"h{k}", f"x{k}", "tail")).name for k in range(40)}
    assert homes == {"a", "b"}
    # Only the leading affinity_blocks hashes matter: the tail does not move the prefix.
    one = _decide("affinity", idle, ("h1", "x1", "tail-1")).name
    assert _decide("affinity", idle, ("h1", "x1", "tail-2")).name == one


def test_bounded_load_diverts_a_hot_prefix_and_says_so() -> None:
    hashes = ("h", "x")
    home = rendezvous_order("x", ["a", "b"])[0]
    other = "b" if home == "a" else "a"
    loaded = [Candidate(home, 4), Candidate(other, 0)]
    decision = _decide("affinity", loaded, hashes)
    assert decision.name == other
    assert decision.note is not None and "load" in decision.note and home in decision.note


def test_precise_falls_back_to_affinity_while_events_are_unknown() -> None:
    hashes = ("h", "x", "y")
    unknown = [Candidate("a", 0, None), Candidate("b", 0, 3)]
    assert _decide("precise", unknown, hashes).name == _decide("affinity", unknown, hashes).name


def test_precise_sends_a_repeat_to_the_replica_whose_events_show_the_prefix() -> None:
    routed, _replicas = _fleet(2)
    prefixes = [_prefix(k, 6) for k in range(1, 9)]
    first = {k: routed.generate([_request((*p, 7))])[0].replica for k, p in enumerate(prefixes)}
    assert set(first.values()) == {"r0", "r1"}  # new prefixes spread
    for k, prefix in enumerate(prefixes):
        (result,) = routed.generate([_request((*prefix, 8, 9))])
        assert result.replica == first[k]
        assert result.num_cached_tokens == 6 * B
        assert routed.held_blocks(first[k], prefix) == 6


def test_precise_spreads_new_prefixes_behind_a_header_every_replica_holds() -> None:
    routed, _ = _fleet(2)
    header = _prefix(99, 3)
    for replica in ("r0", "r1"):  # warm the header on both replicas
        routed._replicas[replica].engine.generate([_request((*header, 1))])
    placed = {
        routed.generate([_request(header + _prefix(k, 4) + (5,))])[0].replica for k in range(8)
    }
    assert placed == {"r0", "r1"}


def test_failover_serves_in_flight_requests_elsewhere_and_drops_the_index() -> None:
    routed, replicas = _fleet(2, recheck_s=3600)
    prefix = _prefix(1, 4)
    (first,) = routed.generate([_request((*prefix, 1))])
    holder = replicas[first.replica or ""]
    other = next(r for r in replicas.values() if r is not holder)
    holder.die()
    results = routed.generate([_request((*prefix, i)) for i in range(2, 8)])
    assert {r.replica for r in results} == {other.label}
    assert routed.up() == [other.label]
    assert routed.held_blocks(holder.label, prefix) == 0
    noted = [r.routing_note for r in results if r.routing_note]
    assert noted and noted[0].startswith("failover:") and holder.label in noted[0]
    # Each request reached the live replica exactly once.
    assert sorted(r.prompt_token_ids[-1] for r in other.requests) == list(range(2, 8))


def test_a_request_a_live_replica_refuses_is_raised_not_resent() -> None:
    routed, replicas = _fleet(2)
    bad = (*_prefix(3, 2), 1)
    for replica in replicas.values():
        replica.refuse.add(bad)
    with pytest.raises(EngineRequestError, match="prompt too long"):
        routed.generate([_request(bad)])
    assert sum(len(r.requests) for r in replicas.values()) == 1
    assert routed.up() == ["r0", "r1"]


def test_a_dead_replica_rejoins_with_an_empty_index_once_healthy() -> None:
    routed, replicas = _fleet(2, recheck_s=0.0, policy="round_robin")
    replicas["r1"].die()
    routed.generate([_request((*_prefix(1, 2), i)) for i in range(3)])
    assert routed.up() == ["r0"]
    replicas["r1"].revive()
    served = {routed.generate([_request((*_prefix(2, 2), i))])[0].replica for i in range(4)}
    assert served == {"r0", "r1"}


def test_no_replica_up_raises_engine_dead_error_naming_the_failures() -> None:
    routed, replicas = _fleet(2, recheck_s=3600)
    for replica in replicas.values():
        replica.die()
    with pytest.raises(EngineDeadError, match="no replica of 2 is up"):
        routed.generate([_request(_prefix(1, 2))])


def test_agenerate_routes_like_generate() -> None:
    routed, _ = _fleet(2)
    requests = [_request((*_prefix(k, 3), 1)) for k in range(4)]
    results = asyncio.run(routed.agenerate(requests))
    assert [r.prompt_token_ids for r in results] == [q.prompt_token_ids for q in requests]
    assert all(r.replica in {"r0", "r1"} for r in results)


def test_replicas_with_different_block_sizes_are_refused() -> None:
    engines = [FunctionEngine(lambda r: "", block_size=16), FunctionEngine(lambda r: "")]
    with pytest.raises(EngineStartError, match="--block-size"):
        RoutedEngine(engines)


def test_round_robin_names_the_replica_that_held_the_prefix_when_it_misses() -> None:
    routed, _ = _fleet(2, policy="round_robin")
    prefix = _prefix(4, 4)
    routed.generate([_request((*prefix, 1))])
    (second,) = routed.generate([_request((*prefix, 2))])
    assert second.num_cached_tokens == 0
    assert second.routing_note is not None and "round_robin" in second.routing_note


def test_records_name_the_replica_and_each_replica_is_cross_checked(
    tokenizer: Tokenizer, tmp_path: Path
) -> None:
    routed, replicas = _fleet(2, recheck_s=3600)
    log = tmp_path / "requests.jsonl"
    client = Client(engine=routed, tokenizer=tokenizer, log_path=log)
    template = PromptTemplate.from_string(QA, name="qa")
    documents = [DOCUMENT, DOCUMENT.replace("museum", "garden"), DOCUMENT.replace("nine", "ten")]
    for document in documents:
        for question in ("When?", "How much?"):
            client.generate(template, {"document": document, "question": question})
    summary = client.summary()
    assert {r.replica for r in summary.replicas} == {"r0", "r1"}
    assert all(r.counters_match for r in summary.replicas)
    assert sum(r.requests for r in summary.replicas) == 6
    # A replica dies: the failover miss is explained as a failover, not left without a cause.
    holder = client.records[-1].replica or ""
    replicas[holder].die()
    moved = client.generate(template, {"document": documents[-1], "question": "Where?"})
    assert moved.record.replica != holder
    assert moved.record.verdict is Verdict.UNEXPECTED_MISS
    assert moved.record.explanation is not None
    assert "failover" in moved.record.explanation.cause and holder in moved.record.explanation.cause
    client.close()
    hits = {name: replica.hits for name, replica in replicas.items()}
    html = tmp_path / "report.html"
    args = ["report", str(log), "--html", str(html)]
    args += [f"--replica-hits={name}={value}" for name, value in hits.items()]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == EXIT_OK, result.output
    assert "per replica" in result.output
    page = html.read_text()
    assert 'id="replicas"' in page and "r0" in page and "r1" in page
    wrong = CliRunner().invoke(app, ["report", str(log), f"--replica-hits={holder}=1"])
    assert wrong.exit_code == EXIT_FINDINGS


def test_the_scale_out_page_runs_and_prints_what_it_says(
    capsys: pytest.CaptureFixture[str],
) -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "scale-out.md"
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), re.DOTALL | re.MULTILINE)
    assert blocks
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"scale-out.md, python block {number}", "exec"), {})
    printed = capsys.readouterr().out
    for block in blocks:
        for line in re.findall(r"^# -> (.*)$", block, re.MULTILINE):
            assert line in printed
