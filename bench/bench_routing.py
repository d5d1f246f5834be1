"""Routing across replicas: cached tokens, prefill tokens and TTFT per policy, on real servers.

The workload interleaves ``K`` long stable prefixes (tenants, agents, documents: each opens
with a short system header all share, then ~``prefix_blocks`` blocks of its own) with
multi-turn sessions whose history grows by the generated answer and a new user message each
turn. Each replica's KV cache holds ``blocks`` blocks: too few for the whole working set, enough
for half of it. So routing decides the hit ratio: two replicas hold the working set only if
each prefix lives on one of them.

Every policy runs the same requests on the same two servers (their caches reset in between),
then a single server with the two replicas' total KV cache runs them too: the ceiling. A last
pass runs ``precise`` again and kills one replica a third of the way through, counting the
requests lost. Run with ``python -m promptkit_bench.bench_routing`` (about 20 minutes on 2 cores);
numbers go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from rich.console import Console
from rich.table import Table

from engine_adapter import Engine, EngineError, EngineRequest, SamplingSettings
from engine_adapter._routing import POLICIES
from promptkit import LocalFleet, Tokenizer

SAMPLING = SamplingSettings(max_tokens=16)
HEADER = "You are a careful assistant. Answer from the material below, briefly and exactly. "
TOPICS = ("orchard", "harbour", "foundry", "library", "vineyard", "observatory", "bakery", "mill")


@dataclass(frozen=True)
class Step:
    """One request of the workload: a tenant question, or a session's next turn."""

    kind: str  # "prefix" or "session"
    owner: int
    turn: int


@dataclass
class PolicyRun:
    policy: str
    replicas: int
    requests: int = 0
    lost: int = 0
    failovers: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    ttft_s: list[float] = field(default_factory=list)
    by_replica: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def prefill_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens

    def row(self) -> dict[str, object]:
        out = asdict(self)
        ttft = out.pop("ttft_s")
        out["prefill_tokens"] = self.prefill_tokens
        out["ttft_p50_s"] = statistics.median(ttft) if ttft else None
        out["ttft_mean_s"] = statistics.fmean(ttft) if ttft else None
        return out


class Workload:
    """The interleaved requests; sessions continue with the answers they actually got."""

    def __init__(
        self, tokenizer: Tokenizer, *, prefixes: int, sessions: int, turns: int, rounds: int
    ) -> None:
        self.tokenizer = tokenizer
        self.prefixes = [self._document(k) for k in range(prefixes)]
        self.sessions = sessions
        steps = [Step("prefix", k, r) for r in range(rounds) for k in range(prefixes)]
        steps += [Step("session", s, t) for s in range(sessions) for t in range(turns)]
        # Interleave, but keep each session's turns in order.
        rng = random.Random(16)
        rng.shuffle(steps)
        order: dict[int, list[int]] = {}
        for index, step in enumerate(steps):
            if step.kind == "session":
                order.setdefault(step.owner, []).append(index)
        for owner, places in order.items():
            for turn, index in enumerate(places):
                steps[index] = Step("session", owner, turn)
        self.steps = steps

    def _document(self, k: int) -> tuple[int, ...]:
        topic = TOPICS[k % len(TOPICS)]
        facts = " ".join(
            f"In the {topic} ledger, entry {i} records {i * 7 + k} crates moved on day {i}."
            for i in range(44)
        )
        return self.tokenizer.encode(f"{HEADER}Tenant {k}, the {topic}. {facts}").ids

    def question(self, k: int, r: int) -> tuple[int, ...]:
        return (
            self.prefixes[k] + self.tokenizer.encode(f" Question {r}: what moved on day {r}?").ids
        )

    def user(self, s: int, t: int) -> tuple[int, ...]:
        return self.tokenizer.encode(f" User (session {s}, turn {t}): and after entry {t}?").ids


def run(
    engine: Engine,
    workload: Workload,
    *,
    policy: str,
    replicas: int,
    concurrency: int,
    kill: tuple[LocalFleet, str, int] | None = None,
) -> PolicyRun:
    """Send the workload through ``engine``; ``kill`` = (fleet, replica, step) kills a replica
    once that many requests were sent."""
    out = PolicyRun(policy=policy, replicas=replicas)
    histories: dict[int, tuple[int, ...]] = {}
    session_locks = {s: threading.Lock() for s in range(workload.sessions)}
    lock = threading.Lock()
    sent = 0

    def one(step: Step) -> None:
        nonlocal sent
        with lock:
            sent += 1
            if kill is not None and sent == kill[2]:
                kill[0].kill(kill[1])
        guard = session_locks[step.owner] if step.kind == "session" else threading.Lock()
        with guard:
            if step.kind == "prefix":
                ids = workload.question(step.owner, step.turn)
            else:
                base = histories.get(step.owner, workload.prefixes[step.owner])
                ids = base + workload.user(step.owner, step.turn)
            try:
                (result,) = engine.generate(
                    [EngineRequest(prompt_token_ids=ids, sampling=SAMPLING)]
                )
            except EngineError:
                with lock:
                    out.lost += 1
                return
            if step.kind == "session":
                histories[step.owner] = ids + result.token_ids
        with lock:
            out.requests += 1
            out.prompt_tokens += len(ids)
            out.cached_tokens += result.num_cached_tokens or 0
            if result.ttft_s is not None:
                out.ttft_s.append(result.ttft_s)
            name = result.replica or "single"
            out.by_replica[name] = out.by_replica.get(name, 0) + 1
            out.failovers += int((result.routing_note or "").startswith("failover"))

    started = time.perf_counter()
    # Steps start in order; a session's turns also run one at a time (its lock).
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, workload.steps))
    out.seconds = time.perf_counter() - started
    return out


def _table(runs: Sequence[PolicyRun], ceiling: PolicyRun) -> Table:
    table = Table(title="routing across replicas (same requests; ceiling = one replica, 2x KV)")
    for column in ("policy", "replicas", "requests", "lost", "cached", "prefill", "vs ceiling",
                   "TTFT p50 s", "per replica"):  # fmt: skip
        table.add_column(column)
    for r in (*runs, ceiling):
        row = r.row()
        table.add_row(
            r.policy, str(r.replicas), str(r.requests), str(r.lost), str(r.cached_tokens),
            str(r.prefill_tokens), f"{r.cached_tokens / max(1, ceiling.cached_tokens):.1%}",
            f"{row['ttft_p50_s']:.3f}" if row["ttft_p50_s"] is not None else "-",
            ", ".join(f"{k} {v}" for k, v in sorted(r.by_replica.items())),
        )  # fmt: skip
    return table


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prefixes", type=int, default=12)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--blocks", type=int, default=224, help="KV blocks per replica")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    console = Console()
    runs: list[PolicyRun] = []
    with LocalFleet(replicas=2, num_blocks=args.blocks, max_model_len=2048) as fleet:
        tokenizer = Tokenizer.from_dir(fleet.model_dir)
        workload = Workload(
            tokenizer,
            prefixes=args.prefixes,
            sessions=args.sessions,
            turns=args.turns,
            rounds=args.rounds,
        )
        console.print(f"{len(workload.steps)} requests per policy")
        for policy in args.policies.split(","):
            with fleet.routed(policy=policy) as engine:
                assert engine.reset_prefix_cache()
                runs.append(
                    run(
                        engine,
                        workload,
                        policy=policy,
                        replicas=2,
                        concurrency=args.concurrency,
                    )
                )
            console.print(runs[-1].row())
        with fleet.routed(policy="precise") as engine:
            assert engine.reset_prefix_cache()
            third = len(workload.steps) // 3
            failover = run(
                engine,
                workload,
                policy="precise, replica-1 killed",
                replicas=2,
                concurrency=args.concurrency,
                kill=(fleet, "replica-1", third),
            )
        console.print(failover.row())
    single = LocalFleet(replicas=1, num_blocks=2 * args.blocks, max_model_len=2048)
    with single, single.engine("replica-0") as engine:
        ceiling = run(
            engine,
            workload,
            policy="ceiling (1 replica, 2x KV)",
            replicas=1,
            concurrency=args.concurrency,
        )
    console.print(_table([*runs, failover], ceiling))
    results = {
        "args": vars(args),
        "runs": [r.row() for r in (*runs, failover, ceiling)],
    }
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
