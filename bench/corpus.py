"""Synthetic but realistic text for the workloads, generated deterministically from a seed.

Everything here is a pure function of a ``random.Random``: the same seed gives the same
documents, questions, chat messages, tool results and RAG corpus on every machine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from importlib import resources
from typing import Any

from promptkit._rag import Chunk
from promptkit._templating.prompt_template import PromptTemplate

__all__ = [
    "AGENT_TOOLS",
    "CHAT_TOOLS",
    "Fact",
    "agent_observations",
    "chat_messages",
    "handbook",
    "people_table",
    "principal_instruction",
    "principal_questions",
    "rag_corpus",
    "rag_questions",
]

SERVICES = (
    "billing", "search", "ingest", "auth", "reports", "mailer", "scheduler", "gateway",
    "archive", "metrics", "exports", "notifier", "profiles", "catalog", "payments", "ledger",
)  # fmt: skip
TEAMS = ("Atlas", "Borealis", "Cirrus", "Dune", "Ember", "Fjord", "Granite", "Harbor")
REGIONS = ("eu-west", "us-east", "ap-south", "eu-north", "us-west")
TOPICS = (
    "battery storage", "heat pumps", "rainwater harvesting", "solar inverters",
    "wind turbines", "district heating", "green roofs", "geothermal wells",
)  # fmt: skip
ASPECTS = ("cost", "maintenance", "lifetime", "safety", "efficiency", "permits")

CHAT_TOOLS: tuple[dict[str, Any], ...] = (
    {
        "name": "lookup_order",
        "description": "Find an order by its number and return its status and items.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "e.g. A-1042"}},
            "required": ["order_id"],
        },
    },
    {
        "name": "create_ticket",
        "description": "Open a support ticket for the customer.",
        "parameters": {
            "type": "object",
            "properties": {
                "summary": {"type": "string"},
                "priority": {"type": "string", "enum": ["low", "normal", "high"]},
            },
            "required": ["summary"],
        },
    },
)
AGENT_TOOLS: tuple[dict[str, Any], ...] = (
    {
        "name": "search_logs",
        "description": "Search the service logs; returns matching lines, newest first.",
        "parameters": {
            "type": "object",
            "properties": {
                "service": {"type": "string"},
                "query": {"type": "string"},
                "limit": {"type": "integer", "default": 5},
            },
            "required": ["service", "query"],
        },
    },
    {
        "name": "get_metrics",
        "description": "Latest metrics of a service: latency percentiles, error rate, saturation.",
        "parameters": {
            "type": "object",
            "properties": {"service": {"type": "string"}, "window": {"type": "string"}},
            "required": ["service"],
        },
    },
    {
        "name": "read_config",
        "description": "Read a service's deployed configuration.",
        "parameters": {
            "type": "object",
            "properties": {"service": {"type": "string"}},
            "required": ["service"],
        },
    },
)


def _demo_file(name: str) -> str:
    return (resources.files("promptkit") / "data" / "demo" / name).read_text(encoding="utf-8")


def people_table() -> tuple[str, list[str]]:
    """The seed's 30-row markdown table and the names in it."""
    table = _demo_file("people_table.md")
    names = []
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 1 and cells[1]:
            names.append(cells[1])
    return table, names


def principal_instruction() -> str:
    """The seed's shared "school principal" instruction, rendered from its template."""
    template = PromptTemplate.from_string(_demo_file("principal.j2"), name="principal")
    return template.render({"prompt": ""})[0].text.strip()


def principal_questions(rng: random.Random, n: int) -> list[str]:
    subjects = ("classroom management", "parent communication", "assessment", "differentiation",
                "math anxiety", "team teaching", "technology use", "field trips")  # fmt: skip
    forms = (
        "What should I ask about {s}?",
        "Give one question on {s}.",
        "How would you probe {s}?",
        "One follow-up about {s}, please.",
    )
    return [rng.choice(forms).format(s=rng.choice(subjects)) for _ in range(n)]


@dataclass(frozen=True, slots=True)
class Fact:
    """A fact stated in the handbook, and the question that asks for it."""

    question: str
    answer: str


def handbook(rng: random.Random, sections: int) -> tuple[str, list[Fact]]:
    """An operations handbook in markdown (~170 tokens per section) and its facts."""
    parts = ["# Platform operations handbook", ""]
    facts: list[Fact] = []
    for index in range(sections):
        service = SERVICES[index % len(SERVICES)] + ("" if index < len(SERVICES) else "-v2")
        team, region = rng.choice(TEAMS), rng.choice(REGIONS)
        port, replicas = rng.randrange(7000, 9999), rng.randrange(2, 24)
        timeout, retention = rng.choice((5, 10, 15, 30, 60)), rng.choice((7, 14, 30, 90, 365))
        parts += [
            f"## {index + 1}. The {service} service",
            "",
            f"The {service} service is owned by team {team} and runs in {region} with "
            f"{replicas} replicas behind the internal load balancer. It listens on port {port} "
            f"and answers health checks on /healthz within {timeout} seconds.",
            f"Logs are kept for {retention} days. Deploys happen through the weekly release "
            f"train; hotfixes need approval from the {team} on-call engineer.",
            "",
            "| setting | value |",
            "|---|---|",
            f"| port | {port} |",
            f"| replicas | {replicas} |",
            f"| log retention (days) | {retention} |",
            "",
        ]
        facts += [
            Fact(f"Which port does the {service} service listen on?", str(port)),
            Fact(f"Which team owns the {service} service?", team),
            Fact(f"How many days are {service} logs kept?", str(retention)),
        ]
    rng.shuffle(facts)
    return "\n".join(parts), facts


def chat_messages(rng: random.Random, n: int) -> list[str]:
    """A customer's side of a long support chat about orders, deliveries and invoices."""
    openers = (
        "Hi, I have a question about order A-{o}.",
        "Thanks. Next, order A-{o} shows as shipped but nothing arrived yet.",
        "Can you check whether order A-{o} included the {item}?",
        "The {item} from order A-{o} arrived damaged, what are my options?",
        "Could you change the delivery address of order A-{o} to my office?",
        "How long does a refund for the {item} usually take?",
        "Please summarize what we agreed so far about order A-{o}.",
        "Is there a cheaper shipping option for the {item}?",
    )
    items = ("standing desk", "monitor arm", "office chair", "desk lamp", "keyboard", "headset")
    return [
        rng.choice(openers).format(o=rng.randrange(1000, 9999), item=rng.choice(items))
        for _ in range(n)
    ]


def agent_observations(rng: random.Random, steps: int) -> tuple[str, list[dict[str, Any]]]:
    """An incident-investigation task and the tool results an agent collects, one per step."""
    service = rng.choice(SERVICES)
    task = (
        f"The {service} service has had elevated error rates since this morning. Find the "
        "cause using the tools, then explain it in two sentences."
    )
    observations: list[dict[str, Any]] = []
    for step in range(steps):
        kind = step % 3
        if kind == 0:
            lines = [
                {
                    "ts": f"2025-03-{rng.randrange(10, 28)}T{rng.randrange(0, 24):02d}:"
                    f"{rng.randrange(0, 60):02d}:00Z",
                    "level": rng.choice(("ERROR", "WARN")),
                    "msg": f"upstream {rng.choice(SERVICES)} timed out after "
                    f"{rng.randrange(500, 5000)} ms (attempt {rng.randrange(1, 4)})",
                }
                for _ in range(3)
            ]
            observations.append({"tool": "search_logs", "service": service, "lines": lines})
        elif kind == 1:
            observations.append(
                {
                    "tool": "get_metrics",
                    "service": service,
                    "latency_ms": {
                        "p50": rng.randrange(20, 90),
                        "p95": rng.randrange(200, 900),
                        "p99": rng.randrange(900, 4000),
                    },
                    "error_rate": round(rng.uniform(0.01, 0.2), 3),
                    "saturation": round(rng.uniform(0.3, 0.99), 2),
                }
            )
        else:
            observations.append(
                {
                    "tool": "read_config",
                    "service": service,
                    "config": {
                        "pool_size": rng.randrange(4, 64),
                        "timeout_ms": rng.choice((500, 1000, 2000)),
                        "retries": rng.randrange(0, 5),
                        "upstreams": rng.sample(SERVICES, 3),
                    },
                }
            )
    return task, observations


def rag_corpus(rng: random.Random, topics: int, per_topic: int) -> list[Chunk]:
    """Short encyclopedia-style chunks (~90 tokens), several per topic and aspect."""
    chunks = []
    for t in range(topics):
        topic = TOPICS[t % len(TOPICS)]
        for p in range(per_topic):
            aspect = ASPECTS[(p + t) % len(ASPECTS)]
            value = rng.randrange(5, 95)
            text = (
                f"For {topic}, {aspect} depends mostly on the installation size and the local "
                f"climate. A typical household project reports a {aspect} figure around {value} "
                f"percent better than the regional average after {rng.randrange(2, 12)} years. "
                f"Installers recommend an inspection every {rng.randrange(1, 6)} years and "
                f"keeping records for the {aspect} review."
            )
            chunks.append(
                Chunk(f"{topic.replace(' ', '-')}", p, f"{topic.title()}: {aspect}", text)
            )
    return chunks


def rag_questions(rng: random.Random, topics: int, per_topic: int) -> list[str]:
    """Questions that cluster by topic, so retrieved sets overlap without being identical."""
    forms = (
        "What affects the {a} of {t}?",
        "How often should {t} be inspected, and what about {a}?",
        "Is the {a} of {t} better than average?",
        "What do installers say about {t} {a}?",
    )
    questions = []
    for t in range(topics):
        topic = TOPICS[t % len(TOPICS)]
        for _ in range(per_topic):
            questions.append(rng.choice(forms).format(t=topic, a=rng.choice(ASPECTS)))
    return questions
