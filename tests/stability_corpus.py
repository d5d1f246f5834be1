"""A corpus of disguised cache-busters and tricky-but-stable prompts, written for issue 13.

Every case carries its own *witness*: a production variation written by hand (another request,
the same dict built in another order, another day, the next turn) under which a buster's stable
prefix moves and a stable case's does not. tests/lint/test_stability_corpus.py proves each
witness with promptkit's own builder and the real tokenizer, then measures how many cases
``promptkit lint`` + ``promptkit check`` catch (recall) and wrongly flag (precision), per kind;
docs/lint.md's table is generated from that measurement.

The detector is given only ``sample`` -- never the witness: the check has to find the variation
by itself.

Formats: ``j2`` is a promptkit template; ``jinja`` a model chat template (its witness is turn N
against turn N+1); ``py`` a Python module that defines ``TEMPLATE`` (a promptkit template
source) and ``variables(question)`` (its witness: two calls a day apart).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CASES", "KINDS", "Case"]

#: Kind -> what it means (the rows of docs/lint.md's table).
KINDS = {
    "caller-order": "values printed in the caller's order (dict/list bare, |string, |format, "
    "~, %, set to list, loop over a mapping, schema parameter names)",
    "volatile-order": "order from a volatile source (registry order, sort by a live counter "
    "or score)",
    "laundering": "volatile values laundered through macro defaults, namespace(), callables",
    "session-per-request": "a session value that changes every request",
    "history": "history that is not append-only (window, 'N messages ago')",
    "chat-template": "model chat templates printing turn count or the newest message early",
    "python-splice": "Python splicing datetime.now()/time.time()/uuid into a variable",
}


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    busts: bool
    source: str
    fmt: str = "j2"
    sample: dict[str, Any] = field(default_factory=dict)
    #: The witness: other variables (and/or another clock) production will render with.
    alt: dict[str, Any] | None = None
    alt_clock: dt.datetime | None = None
    #: Compare the segments strictly more stable than this class ("request": the stable prefix).
    level: str = "request"
    #: The witness is the next turn: the sample's turn segments must be a prefix of it.
    append: bool = False
    #: The witness renders sets in another hash order (a subprocess with another PYTHONHASHSEED).
    hashseed: bool = False


SYS = """{% segment system static %}
You are the support assistant of ACME Networks. Answer in at most three sentences, cite the
manual section you used, and say plainly when the manual does not cover the question.
{% endsegment %}
"""
Q = """{% segment question request %}
Question: {{ question }}
{% endsegment %}
"""


def _t(vars_: str, body: str, tail: str = Q) -> str:
    return "{% vars " + vars_ + " %}\n" + SYS + body + tail


PROFILE = {"name": "Ann", "plan": "pro", "language": "de", "region": "eu"}
PROFILE_R = {"region": "eu", "language": "de", "plan": "pro", "name": "Ann"}
LIMITS = {"max_tokens": 512, "temperature": 0, "top_p": 1}
LIMITS_R = {"top_p": 1, "temperature": 0, "max_tokens": 512}
TOOLS = [
    {
        "name": "lookup_order",
        "description": "Find an order by id.",
        "parameters": {
            "properties": {"order_id": {"type": "string"}, "verbose": {"type": "boolean"}}
        },
        "usage_count": 40,
        "last_used": "2025-03-01",
        "rank": 2,
    },
    {
        "name": "cancel_order",
        "description": "Cancel an order.",
        "parameters": {
            "properties": {"reason": {"type": "string"}, "order_id": {"type": "string"}}
        },
        "usage_count": 12,
        "last_used": "2025-03-09",
        "rank": 1,
    },
    {
        "name": "refund",
        "description": "Refund a payment.",
        "parameters": {
            "properties": {"amount": {"type": "number"}, "currency": {"type": "string"}}
        },
        "usage_count": 7,
        "last_used": "2025-02-11",
        "rank": 3,
    },
]


def _reorder(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reorder(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reorder(v) for v in value]
    return value


def _with(items: list[dict[str, Any]], **changes: list[Any]) -> list[dict[str, Any]]:
    return [dict(item, **{k: v[i] for k, v in changes.items()}) for i, item in enumerate(items)]


CHUNKS = [
    {
        "id": "m-12",
        "text": "Hold reset for ten seconds to restore factory settings.",
        "score": 0.82,
    },
    {"id": "m-07", "text": "The blue light blinks while the firmware updates.", "score": 0.61},
    {"id": "m-31", "text": "Routers reboot nightly at 03:00 unless disabled.", "score": 0.44},
]
HISTORY = [
    {"role": "user", "content": "My router keeps rebooting."},
    {"role": "assistant", "content": "Does the blue light blink before it reboots?"},
    {"role": "user", "content": "Yes, every time."},
    {"role": "assistant", "content": "That is a firmware update; let it finish."},
]
HISTORY_LONG = HISTORY * 3
NEXT = [
    *HISTORY_LONG,
    {"role": "user", "content": "It finished. Now what?"},
    {"role": "assistant", "content": "Reboot once more."},
]
T0 = dt.datetime(2025, 3, 14, 12, 0, 0, tzinfo=dt.UTC)
NEXT_DAY = T0 + dt.timedelta(days=1)


def _clock_str() -> str:
    return dt.datetime.now().strftime("%A %d %B %Y")


def _clock_minute() -> str:
    return dt.datetime.now().strftime("%H:%M")


def _new_id() -> str:
    return uuid.uuid4().hex[:8]


def _pick_tip() -> str:
    return random.choice(["Be brief.", "Be friendly.", "Cite sources."])


def _constant_style() -> str:
    return "Answer in plain English."


def _upper(text: str) -> str:
    return text.upper()


class _Clock:
    """A LangChain-style partial: a callable the caller passes in that returns the time."""

    def __call__(self) -> str:
        return dt.datetime.now().isoformat(timespec="seconds")


def _callable_case(name: str, fn: Callable[[], str], line: str, cls: str = "deploy") -> Case:
    return Case(
        name,
        "laundering",
        True,
        _t(
            f"{name.split('_')[0]}={cls}, question=request",
            f"{{% segment ctx {cls} %}}\n{line}\n{{% endsegment %}}\n",
        ),
        sample={name.split("_")[0]: fn, "question": "Why?"},
        alt_clock=NEXT_DAY,
    )


_Q = {"question": "Why does it reboot?"}
_Q2 = {"question": "What does the blue light mean?"}

CASES: list[Case] = [
    # ---------------------------------------------------------------- caller-order busters
    Case(
        "dict_bare",
        "caller-order",
        True,
        _t(
            "profile=session, question=request",
            "{% segment p session %}\nProfile: {{ profile }}\n{% endsegment %}\n",
        ),
        sample={"profile": PROFILE, **_Q},
        alt={"profile": PROFILE_R, **_Q},
    ),
    Case(
        "dict_tilde",
        "caller-order",
        True,
        _t(
            "prefs=session, question=request",
            "{% segment p session %}\n{{ 'Preferences: ' ~ prefs }}\n{% endsegment %}\n",
        ),
        sample={"prefs": PROFILE, **_Q},
        alt={"prefs": PROFILE_R, **_Q},
    ),
    Case(
        "dict_format_filter",
        "caller-order",
        True,
        _t(
            "limits=deploy, question=request",
            "{% segment l deploy %}\n{{ 'Limits: %s' | format(limits) }}\n{% endsegment %}\n",
        ),
        sample={"limits": LIMITS, **_Q},
        alt={"limits": LIMITS_R, **_Q},
    ),
    Case(
        "dict_percent",
        "caller-order",
        True,
        _t(
            "limits=deploy, question=request",
            "{% segment l deploy %}\n{{ 'Generation settings: %s' % (limits,) }}\n{% endsegment %}\n",
        ),
        sample={"limits": LIMITS, **_Q},
        alt={"limits": LIMITS_R, **_Q},
    ),
    Case(
        "dict_string_concat",
        "caller-order",
        True,
        _t(
            "user=session, question=request",
            "{% segment u session %}\n{% set text = user | string %}User record: {{ text }}\n{% endsegment %}\n",
        ),
        sample={"user": PROFILE, **_Q},
        alt={"user": PROFILE_R, **_Q},
    ),
    Case(
        "list_of_dicts_bare",
        "caller-order",
        True,
        _t(
            "examples=deploy, question=request",
            "{% segment ex deploy %}\nExamples: {{ examples }}\n{% endsegment %}\n",
        ),
        sample={
            "examples": [
                {"q": "Reset?", "a": "Hold ten seconds."},
                {"q": "Light?", "a": "Firmware."},
            ],
            **_Q,
        },
        alt={
            "examples": [
                {"a": "Hold ten seconds.", "q": "Reset?"},
                {"a": "Firmware.", "q": "Light?"},
            ],
            **_Q,
        },
    ),
    Case(
        "set_to_list",
        "caller-order",
        True,
        _t(
            "tags=session, question=request",
            "{% segment t session %}\nCustomer tags: {{ tags | list | join(', ') }}\n{% endsegment %}\n",
        ),
        sample={"tags": {"vip", "beta", "eu", "reseller", "churn-risk"}, **_Q},
        hashseed=True,
    ),
    Case(
        "set_printed_bare",
        "caller-order",
        True,
        _t(
            "regions=deploy, question=request",
            "{% segment r deploy %}\nWe ship to: {{ regions }}\n{% endsegment %}\n",
        ),
        sample={"regions": frozenset({"de", "fr", "it", "es", "nl", "pl"}), **_Q},
        hashseed=True,
    ),
    Case(
        "set_first_item",
        "caller-order",
        True,
        _t(
            "channels=session, question=request",
            "{% segment c session %}\nPreferred channel: {{ channels | first }}\n{% endsegment %}\n",
        ),
        sample={"channels": {"email", "phone", "chat", "sms", "letter"}, **_Q},
        hashseed=True,
    ),
    Case(
        "loop_over_mapping",
        "caller-order",
        True,
        _t(
            "glossary=deploy, question=request",
            "{% segment g deploy %}\nGlossary:\n{% for term in glossary %}\n- {{ term }}: {{ glossary[term] }}\n{% endfor %}\n{% endsegment %}\n",
        ),
        sample={
            "glossary": {
                "WAN": "the outside link",
                "LAN": "the home network",
                "SSID": "the Wi-Fi name",
            },
            **_Q,
        },
        alt={
            "glossary": {
                "SSID": "the Wi-Fi name",
                "LAN": "the home network",
                "WAN": "the outside link",
            },
            **_Q,
        },
    ),
    Case(
        "items_in_macro",
        "caller-order",
        True,
        "{% vars policy=deploy, question=request %}\n{% macro rows(d) %}{% for k in d %}{{ k }} = {{ d[k] }}\n{% endfor %}{% endmacro %}\n"
        + SYS
        + "{% segment pol deploy %}\nPolicy:\n{{ rows(policy) }}\n{% endsegment %}\n"
        + Q,
        sample={"policy": {"refunds": "30 days", "warranty": "2 years", "shipping": "free"}, **_Q},
        alt={"policy": {"shipping": "free", "warranty": "2 years", "refunds": "30 days"}, **_Q},
    ),
    Case(
        "schema_params_joined_in_sorted_tools",
        "caller-order",
        True,
        _t(
            "tools=deploy, question=request",
            "{% segment tools deploy %}\nTools:\n{% for t in tools | sort(attribute='name') %}\n- {{ t.name }}({{ t.parameters.properties | join(', ') }})\n{% endfor %}\n{% endsegment %}\n",
        ),
        sample={"tools": TOOLS, **_Q},
        alt={"tools": _reorder(TOOLS), **_Q},
    ),
    Case(
        "dict_keys_list",
        "caller-order",
        True,
        _t(
            "features=deploy, question=request",
            "{% segment f deploy %}\nEnabled features: {{ features | list }}\n{% endsegment %}\n",
        ),
        sample={"features": {"vpn": True, "guest_wifi": True, "parental": False}, **_Q},
        alt={"features": {"parental": False, "guest_wifi": True, "vpn": True}, **_Q},
    ),
    Case(
        "nested_dict_attr",
        "caller-order",
        True,
        _t(
            "account=session, question=request",
            "{% segment a session %}\nAccount {{ account.name }}, settings {{ account.settings }}\n{% endsegment %}\n",
        ),
        sample={
            "account": {"name": "Ann", "settings": {"units": "metric", "tone": "formal"}},
            **_Q,
        },
        alt={"account": {"settings": {"tone": "formal", "units": "metric"}, "name": "Ann"}, **_Q},
    ),
    # ---------------------------------------------------------------- caller-order stable
    Case(
        "dict_tojson",
        "caller-order",
        False,
        _t(
            "profile=session, question=request",
            "{% segment p session %}\nProfile: {{ profile | tojson }}\n{% endsegment %}\n",
        ),
        sample={"profile": PROFILE, **_Q},
        alt={"profile": PROFILE_R, **_Q2},
    ),
    Case(
        "dictsort_loop",
        "caller-order",
        False,
        _t(
            "glossary=deploy, question=request",
            "{% segment g deploy %}\n{% for term, text in glossary | dictsort %}\n- {{ term }}: {{ text }}\n{% endfor %}\n{% endsegment %}\n",
        ),
        sample={"glossary": {"WAN": "outside", "LAN": "home", "SSID": "Wi-Fi"}, **_Q},
        alt={"glossary": {"SSID": "Wi-Fi", "LAN": "home", "WAN": "outside"}, **_Q2},
    ),
    Case(
        "set_sorted_join",
        "caller-order",
        False,
        _t(
            "tags=session, question=request",
            "{% segment t session %}\nTags: {{ tags | sort | join(', ') }}\n{% endsegment %}\n",
        ),
        sample={"tags": {"vip", "beta", "eu", "reseller"}, **_Q},
        hashseed=True,
    ),
    Case(
        "list_of_strings_bare",
        "caller-order",
        False,
        _t(
            "steps=deploy, question=request",
            "{% segment s deploy %}\nTroubleshooting steps: {{ steps }}\n{% endsegment %}\n",
        ),
        sample={"steps": ["unplug", "wait ten seconds", "plug in"], **_Q},
        alt={"steps": ["unplug", "wait ten seconds", "plug in"], **_Q2},
    ),
    Case(
        "pprint_sorts_keys",
        "caller-order",
        False,
        _t(
            "limits=deploy, question=request",
            "{% segment l deploy %}\nLimits: {{ limits | pprint }}\n{% endsegment %}\n",
        ),
        sample={"limits": LIMITS, **_Q},
        alt={"limits": LIMITS_R, **_Q2},
    ),
    Case(
        "schema_params_sorted",
        "caller-order",
        False,
        _t(
            "tools=deploy, question=request",
            "{% segment tools deploy %}\n{% for t in tools | sort(attribute='name') %}\n- {{ t.name }}({{ t.parameters.properties | sort | join(', ') }})\n{% endfor %}\n{% endsegment %}\n",
        ),
        sample={"tools": TOOLS, **_Q},
        alt={"tools": _reorder(TOOLS), **_Q2},
    ),
    Case(
        "dict_values_by_known_keys",
        "caller-order",
        False,
        _t(
            "profile=session, question=request",
            "{% segment p session %}\nName: {{ profile.name }}; plan: {{ profile['plan'] }}; language: {{ profile.language }}\n{% endsegment %}\n",
        ),
        sample={"profile": PROFILE, **_Q},
        alt={"profile": PROFILE_R, **_Q2},
    ),
    Case(
        "dict_in_request_segment",
        "caller-order",
        False,
        "{% vars filters=request, question=request %}\n"
        + SYS
        + "{% segment question request %}\nFilters: {{ filters }}\nQuestion: {{ question }}\n{% endsegment %}\n",
        sample={"filters": {"model": "X200", "year": 2024}, **_Q},
        alt={"filters": {"year": 2024, "model": "X200"}, **_Q2},
    ),
    # ---------------------------------------------------------------- volatile-order busters
    Case(
        "tools_registry_order",
        "volatile-order",
        True,
        _t(
            "tools=deploy, question=request",
            "{% segment tools deploy %}\nTools:\n{% for t in tools %}\n- {{ t.name }}: {{ t.description }}\n{% endfor %}\n{% endsegment %}\n",
        ),
        sample={"tools": TOOLS, **_Q},
        alt={"tools": list(reversed(TOOLS)), **_Q},
    ),
    Case(
        "plugins_joined",
        "volatile-order",
        True,
        _t(
            "plugins=deploy, question=request",
            "{% segment p deploy %}\nLoaded plugins: {{ plugins | join(', ') }}\n{% endsegment %}\n",
        ),
        sample={"plugins": ["search", "calculator", "calendar"], **_Q},
        alt={"plugins": ["calendar", "search", "calculator"], **_Q},
    ),
    Case(
        "tools_by_usage_count",
        "volatile-order",
        True,
        _t(
            "tools=deploy, question=request",
            "{% segment tools deploy %}\n{% for t in tools | sort(attribute='usage_count', reverse=true) %}\n- {{ t.name }}\n{% endfor %}\n{% endsegment %}\n",
        ),
        sample={"tools": TOOLS, **_Q},
        alt={"tools": _with(TOOLS, usage_count=[40, 41, 90]), **_Q},
    ),
    Case(
        "chunks_by_score",
        "volatile-order",
        True,
        _t(
            "chunks=session, question=request",
            "{% segment docs session %}\nManual excerpts:\n{% for c in chunks | sort(attribute='score', reverse=true) %}\n[{{ c.id }}] {{ c.text }}\n{% endfor %}\n{% endsegment %}\n",
        ),
        sample={"chunks": CHUNKS, **_Q},
        alt={"chunks": _with(CHUNKS, score=[0.2, 0.9, 0.5]), **_Q2},
    ),
    Case(
        "tools_by_last_used",
        "volatile-order",
        True,
        _t(
            "tools=deploy, question=request",
            "{% segment tools deploy %}\n{% for t in tools | sort(attribute='last_used') %}\n- {{ t.name }}: {{ t.description }}\n{% endfor %}\n{% endsegment %}\n",
        ),
        sample={"tools": TOOLS, **_Q},
        alt={"tools": _with(TOOLS, last_used=["2025-03-14", "2025-03-01", "2025-03-02"]), **_Q},
    ),
    Case(
        "skills_in_given_order",
        "volatile-order",
        True,
        _t(
            "agent=deploy, question=request",
            "{% segment a deploy %}\nSkills:\n{% for s in agent.skills %}\n* {{ s }}\n{% endfor %}\n{% endsegment %}\n",
        ),
        sample={"agent": {"skills": ["billing", "networking", "hardware"]}, **_Q},
        alt={"agent": {"skills": ["hardware", "billing", "networking"]}, **_Q},
    ),
    Case(
        "best_tool_by_rank",
        "volatile-order",
        True,
        _t(
            "tools=deploy, question=request",
            "{% segment tools deploy %}\nTry first: {{ (tools | sort(attribute='rank') | first).name }}\n{% endsegment %}\n",
        ),
        sample={"tools": TOOLS, **_Q},
        alt={"tools": _with(TOOLS, rank=[1, 3, 2]), **_Q},
    ),
    Case(
        "chunks_by_similarity_max",
        "volatile-order",
        True,
        _t(
            "chunks=session, question=request",
            "{% segment docs session %}\nMost relevant: {{ (chunks | max(attribute='relevance')).text }}\n{% endsegment %}\n",
        ),
        sample={"chunks": _with(CHUNKS, relevance=[0.9, 0.3, 0.1]), **_Q},
        alt={"chunks": _with(CHUNKS, relevance=[0.1, 0.8, 0.2]), **_Q2},
    ),
    # ---------------------------------------------------------------- volatile-order stable
    Case(
        "tools_sorted_by_name",
        "volatile-order",
        False,
        _t(
            "tools=deploy, question=request",
            "{% segment tools deploy %}\n{% for t in tools | sort(attribute='name') %}\n- {{ t.name }}: {{ t.description }}\n{% endfor %}\n{% endsegment %}\n",
        ),
        sample={"tools": TOOLS, **_Q},
        alt={"tools": list(reversed(TOOLS)), **_Q2},
    ),
    Case(
        "tools_sort_tools_tojson",
        "volatile-order",
        False,
        _t(
            "tools=deploy, question=request",
            "{% segment tools deploy %}\n{% for t in tools | sort_tools %}\n{{ t | tojson }}\n{% endfor %}\n{% endsegment %}\n",
        ),
        sample={
            "tools": [
                {"name": t["name"], "description": t["description"], "parameters": t["parameters"]}
                for t in TOOLS
            ],
            **_Q,
        },
        alt={
            "tools": [
                {"parameters": t["parameters"], "description": t["description"], "name": t["name"]}
                for t in reversed(TOOLS)
            ],
            **_Q2,
        },
    ),
    Case(
        "chunks_by_score_in_request",
        "volatile-order",
        False,
        "{% vars chunks=request, question=request %}\n"
        + SYS
        + "{% segment question request %}\n{% for c in chunks | sort(attribute='score', reverse=true) %}\n[{{ c.id }}] {{ c.text }}\n{% endfor %}\nQuestion: {{ question }}\n{% endsegment %}\n",
        sample={"chunks": CHUNKS, **_Q},
        alt={"chunks": _with(CHUNKS, score=[0.2, 0.9, 0.5]), **_Q2},
    ),
    Case(
        "chunks_by_id",
        "volatile-order",
        False,
        _t(
            "chunks=session, question=request",
            "{% segment docs session %}\n{% for c in chunks | sort(attribute='id') %}\n[{{ c.id }}] {{ c.text }}\n{% endfor %}\n{% endsegment %}\n",
        ),
        sample={"chunks": CHUNKS, **_Q},
        alt={"chunks": _with(CHUNKS, score=[0.2, 0.9, 0.5]), **_Q2},
    ),
    # ---------------------------------------------------------------- laundering busters
    Case(
        "macro_default_arg",
        "laundering",
        True,
        "{% vars customer=request, question=request %}\n{% macro greet(who=customer) %}You are helping {{ who }}.{% endmacro %}\n"
        "{% segment system static %}\nYou are the support assistant of ACME Networks. {{ greet() }}\nAnswer in at most three sentences.\n{% endsegment %}\n"
        + Q,
        sample={"customer": "Ann", **_Q},
        alt={"customer": "Bob", **_Q},
    ),
    Case(
        "macro_default_from_set",
        "laundering",
        True,
        "{% vars question=request %}\n{% set topic = question | truncate(12) %}\n{% macro header(t=topic) %}Topic hint: {{ t }}{% endmacro %}\n"
        "{% segment system static %}\nYou are the support assistant of ACME Networks.\n{{ header() }}\n{% endsegment %}\n"
        + Q,
        sample=dict(_Q),
        alt=dict(_Q2),
    ),
    Case(
        "namespace_attribute",
        "laundering",
        True,
        "{% vars question=request %}\n{% set ns = namespace(mode='general') %}\n{% set ns.mode = question.split()[0] %}\n"
        "{% segment system static %}\nYou are the support assistant of ACME Networks. Mode: {{ ns.mode }}.\n{% endsegment %}\n"
        + Q,
        sample=dict(_Q),
        alt={"question": "How do I reset it?"},
    ),
    Case(
        "namespace_list_accumulated",
        "laundering",
        True,
        "{% vars keywords=request, question=request %}\n{% set ns = namespace(seen=[]) %}\n"
        "{% segment system static %}\n{% for k in keywords %}{% set ns.seen = ns.seen + [k] %}{% endfor %}\nYou are the support assistant of ACME Networks. Focus: {{ ns.seen | join(', ') }}\n{% endsegment %}\n"
        + Q,
        sample={"keywords": ["reboot", "light"], **_Q},
        alt={"keywords": ["reset"], **_Q},
    ),
    _callable_case("today_fn", _clock_str, "Today is {{ today() }}."),
    _callable_case("stamp_fn", _Clock(), "Context built at {{ stamp() }}."),
    Case(
        "partial_in_dict",
        "laundering",
        True,
        _t(
            "ctx=deploy, question=request",
            "{% segment c deploy %}\nLocal time: {{ ctx.local_time() }}\n{% endsegment %}\n",
        ),
        sample={"ctx": {"local_time": _clock_minute}, **_Q},
        alt_clock=T0 + dt.timedelta(minutes=3),
    ),
    _callable_case("trace_fn", _new_id, "Trace {{ trace() }}"),
    _callable_case("tip_fn", _pick_tip, "Style tip: {{ tip() }}", cls="static"),
    # ---------------------------------------------------------------- laundering stable
    Case(
        "macro_default_constant",
        "laundering",
        False,
        "{% vars question=request %}\n{% macro greet(who='our customer') %}You are helping {{ who }}.{% endmacro %}\n"
        "{% segment system static %}\nYou are the support assistant of ACME Networks. {{ greet() }}\n{% endsegment %}\n"
        + Q,
        sample=dict(_Q),
        alt=dict(_Q2),
    ),
    Case(
        "macro_called_in_request",
        "laundering",
        False,
        "{% vars customer=request, question=request %}\n{% macro greet(who=customer) %}Customer: {{ who }}.{% endmacro %}\n"
        + SYS
        + "{% segment question request %}\n{{ greet() }}\nQuestion: {{ question }}\n{% endsegment %}\n",
        sample={"customer": "Ann", **_Q},
        alt={"customer": "Bob", **_Q2},
    ),
    Case(
        "namespace_counter_static",
        "laundering",
        False,
        "{% vars rules=deploy, question=request %}\n"
        + SYS
        + "{% segment r deploy %}\n{% set ns = namespace(n=0) %}\n{% for r in rules %}{% set ns.n = ns.n + 1 %}{{ ns.n }}. {{ r }}\n{% endfor %}\n{% endsegment %}\n"
        + Q,
        sample={"rules": ["Be polite.", "Cite the manual.", "Never guess."], **_Q},
        alt={"rules": ["Be polite.", "Cite the manual.", "Never guess."], **_Q2},
    ),
    Case(
        "callable_constant",
        "laundering",
        False,
        _t(
            "style=deploy, question=request",
            "{% segment c deploy %}\nStyle: {{ style() }}\n{% endsegment %}\n",
        ),
        sample={"style": _constant_style, **_Q},
        alt={"style": _constant_style, **_Q2},
        alt_clock=NEXT_DAY,
    ),
    Case(
        "callable_pure_transform",
        "laundering",
        False,
        _t(
            "shout=deploy, question=request",
            "{% segment c deploy %}\n{{ shout('important: cite the manual section.') }}\n{% endsegment %}\n",
        ),
        sample={"shout": _upper, **_Q},
        alt={"shout": _upper, **_Q2},
        alt_clock=NEXT_DAY,
    ),
    Case(
        "clock_callable_in_request",
        "laundering",
        False,
        "{% vars today=request, question=request %}\n"
        + SYS
        + "{% segment question request %}\nToday is {{ today() }}.\nQuestion: {{ question }}\n{% endsegment %}\n",
        sample={"today": _clock_str, **_Q},
        alt={"today": _clock_str, **_Q2},
        alt_clock=NEXT_DAY,
    ),
    # ---------------------------------------------------------------- session-per-request busters
    Case(
        "last_seen_at",
        "session-per-request",
        True,
        _t(
            "user=session, question=request",
            "{% segment u session %}\nUser: {{ user.name }} (last seen {{ user.last_seen_at }})\n{% endsegment %}\n",
        ),
        sample={"user": {"name": "Ann", "last_seen_at": "2025-03-14T11:59:31"}, **_Q},
        alt={"user": {"name": "Ann", "last_seen_at": "2025-03-14T12:03:02"}, **_Q2},
    ),
    Case(
        "account_balance",
        "session-per-request",
        True,
        _t(
            "account=session, question=request",
            "{% segment a session %}\nAccount {{ account.id_label }}: balance {{ account['balance'] }} EUR\n{% endsegment %}\n",
        ),
        sample={"account": {"id_label": "A-17", "balance": 120.5}, **_Q},
        alt={"account": {"id_label": "A-17", "balance": 99.0}, **_Q2},
    ),
    Case(
        "unread_count",
        "session-per-request",
        True,
        _t(
            "inbox=session, question=request",
            "{% segment i session %}\nThe customer has {{ inbox.unread_count }} unread messages from us.\n{% endsegment %}\n",
        ),
        sample={"inbox": {"unread_count": 3}, **_Q},
        alt={"inbox": {"unread_count": 4}, **_Q2},
    ),
    Case(
        "last_login_nested",
        "session-per-request",
        True,
        _t(
            "customer=session, question=request",
            "{% segment c session %}\nCustomer since {{ customer.profile.since }}, last login {{ customer.profile.last_login }}\n{% endsegment %}\n",
        ),
        sample={"customer": {"profile": {"since": "2019", "last_login": "09:12"}}, **_Q},
        alt={"customer": {"profile": {"since": "2019", "last_login": "09:40"}}, **_Q2},
    ),
    Case(
        "online_flag",
        "session-per-request",
        True,
        _t(
            "agent=session, question=request",
            "{% segment a session %}\n{% if agent.online %}A human agent is available.{% else %}No human agent is available.{% endif %}\n{% endsegment %}\n",
        ),
        sample={"agent": {"online": True}, **_Q},
        alt={"agent": {"online": False}, **_Q2},
    ),
    # ---------------------------------------------------------------- session stable
    Case(
        "created_at_is_stable",
        "session-per-request",
        False,
        _t(
            "user=session, question=request",
            "{% segment u session %}\nUser: {{ user.name }}, customer since {{ user.created_at }}\n{% endsegment %}\n",
        ),
        sample={"user": {"name": "Ann", "created_at": "2019-05-02"}, **_Q},
        alt={"user": {"name": "Ann", "created_at": "2019-05-02"}, **_Q2},
    ),
    Case(
        "plan_and_language",
        "session-per-request",
        False,
        _t(
            "user=session, question=request",
            "{% segment u session %}\nPlan: {{ user.plan }}. Reply in {{ user.language }}.\n{% endsegment %}\n",
        ),
        sample={"user": {"plan": "pro", "language": "German", "last_seen_at": "11:59"}, **_Q},
        alt={"user": {"plan": "pro", "language": "German", "last_seen_at": "12:04"}, **_Q2},
    ),
    Case(
        "balance_in_request",
        "session-per-request",
        False,
        "{% vars user=session, account=request, question=request %}\n"
        + SYS
        + "{% segment u session %}\nCustomer: {{ user.name }}\n{% endsegment %}\n{% segment question request %}\nBalance: {{ account.balance }}\nQuestion: {{ question }}\n{% endsegment %}\n",
        sample={"user": {"name": "Ann"}, "account": {"balance": 120.5}, **_Q},
        alt={"user": {"name": "Ann"}, "account": {"balance": 80.0}, **_Q2},
    ),
    # ---------------------------------------------------------------- history busters
    Case(
        "sliding_window",
        "history",
        True,
        _t(
            "history=turn, question=request",
            "{% segment h turn %}\n{% for m in history[-6:] %}\n{{ m.role }}: {{ m.content }}\n{% endfor %}\n{% endsegment %}\n",
        ),
        sample={"history": HISTORY_LONG, **_Q},
        alt={"history": NEXT, **_Q2},
        append=True,
    ),
    Case(
        "messages_ago",
        "history",
        True,
        _t(
            "history=turn, question=request",
            "{% segment h turn %}\n{% for m in history %}\n({{ loop.revindex }} messages ago) {{ m.role }}: {{ m.content }}\n{% endfor %}\n{% endsegment %}\n",
        ),
        sample={"history": HISTORY, **_Q},
        alt={"history": NEXT, **_Q2},
        append=True,
    ),
    Case(
        "history_count_header",
        "history",
        True,
        _t(
            "history=turn, question=request",
            "{% segment h turn %}\nConversation so far ({{ history | length }} messages):\n{% for m in history %}\n{{ m.role }}: {{ m.content }}\n{% endfor %}\n{% endsegment %}\n",
        ),
        sample={"history": HISTORY, **_Q},
        alt={"history": NEXT, **_Q2},
        append=True,
    ),
    Case(
        "newest_first",
        "history",
        True,
        _t(
            "history=turn, question=request",
            "{% segment h turn %}\n{% for m in history | reverse %}\n{{ m.role }}: {{ m.content }}\n{% endfor %}\n{% endsegment %}\n",
        ),
        sample={"history": HISTORY, **_Q},
        alt={"history": NEXT, **_Q2},
        append=True,
    ),
    Case(
        "last_topic_first",
        "history",
        True,
        _t(
            "history=turn, question=request",
            "{% segment h turn %}\nLast thing said: {{ history[-1].content }}\n{% for m in history %}\n{{ m.role }}: {{ m.content }}\n{% endfor %}\n{% endsegment %}\n",
        ),
        sample={"history": HISTORY, **_Q},
        alt={"history": NEXT, **_Q2},
        append=True,
    ),
    Case(
        "text_tail_window",
        "history",
        True,
        _t(
            "transcript=turn, question=request",
            "{% segment h turn %}\nTranscript (tail):\n{{ transcript[-300:] }}\n{% endsegment %}\n",
        ),
        sample={
            "transcript": "User: my router reboots.\nAssistant: does the light blink?\n" * 6,
            **_Q,
        },
        alt={
            "transcript": "User: my router reboots.\nAssistant: does the light blink?\n" * 6
            + "User: yes.\nAssistant: firmware.\n",
            **_Q2,
        },
        append=True,
    ),
    Case(
        "latest_marked",
        "history",
        True,
        _t(
            "history=turn, question=request",
            "{% segment h turn %}\n{% for m in history %}\n{{ m.role }}{% if loop.last %} (latest){% endif %}: {{ m.content }}\n{% endfor %}\n{% endsegment %}\n",
        ),
        sample={"history": HISTORY, **_Q},
        alt={"history": NEXT, **_Q2},
        append=True,
    ),
    # ---------------------------------------------------------------- history stable
    Case(
        "numbered_from_start",
        "history",
        False,
        _t(
            "history=turn, question=request",
            "{% segment h turn %}\n{% for m in history %}\n{{ loop.index }}. {{ m.role }}: {{ m.content }}\n{% endfor %}\n{% endsegment %}\n",
        ),
        sample={"history": HISTORY, **_Q},
        alt={"history": NEXT, **_Q2},
        append=True,
    ),
    Case(
        "plain_history",
        "history",
        False,
        _t(
            "history=turn, question=request",
            "{% segment h turn %}\nConversation so far:\n{% for m in history %}\n{{ m.role }}: {{ m.content }}\n{% endfor %}\n{% endsegment %}\n",
        ),
        sample={"history": HISTORY, **_Q},
        alt={"history": NEXT, **_Q2},
        append=True,
    ),
    Case(
        "transcript_text",
        "history",
        False,
        _t(
            "transcript=turn, question=request",
            "{% segment h turn %}\nTranscript:\n{{ transcript }}\n{% endsegment %}\n",
        ),
        sample={"transcript": "User: my router reboots.\nAssistant: does the light blink?", **_Q},
        alt={
            "transcript": "User: my router reboots.\nAssistant: does the light blink?\nUser: yes.\nAssistant: firmware.",
            **_Q2,
        },
        append=True,
    ),
    Case(
        "count_in_request",
        "history",
        False,
        "{% vars history=turn, question=request %}\n"
        + SYS
        + "{% segment h turn %}\n{% for m in history %}\n{{ m.role }}: {{ m.content }}\n{% endfor %}\n{% endsegment %}\n{% segment question request %}\n({{ history | length }} messages so far) Question: {{ question }}\n{% endsegment %}\n",
        sample={"history": HISTORY, **_Q},
        alt={"history": NEXT, **_Q2},
        append=True,
    ),
]

# ---------------------------------------------------------------- model chat templates
_CHAT_HEAD = "{% for message in messages %}"
_CHAT_MSG = "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
_CHAT_TAIL = "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"


def _chat(name: str, busts: bool, source: str) -> Case:
    return Case(name, "chat-template", busts, source, fmt="jinja")


CASES += [
    _chat(
        "turn_count_in_system",
        True,
        "<|im_start|>system\nYou are helpful. This is turn {{ (messages | length + 1) // 2 }}.<|im_end|>\n"
        + _CHAT_HEAD
        + "{% if message['role'] != 'system' %}"
        + _CHAT_MSG
        + "{% endif %}"
        + _CHAT_TAIL,
    ),
    _chat(
        "latest_user_in_system",
        True,
        "{% set last = (messages | selectattr('role', 'equalto', 'user') | list | last) %}"
        "<|im_start|>system\nYou are helpful. The user now asks about: {{ last['content'] }}<|im_end|>\n"
        + _CHAT_HEAD
        + "{% if message['role'] != 'system' %}"
        + _CHAT_MSG
        + "{% endif %}"
        + _CHAT_TAIL,
    ),
    _chat(
        "revindex_labels",
        True,
        _CHAT_HEAD
        + "<|im_start|>{{ message['role'] }} [{{ loop.revindex }}]\n{{ message['content'] }}<|im_end|>\n"
        + _CHAT_TAIL,
    ),
    _chat(
        "message_count_header",
        True,
        "<|im_start|>system\n{{ messages | length }} messages in this chat.<|im_end|>\n"
        + _CHAT_HEAD
        + _CHAT_MSG
        + _CHAT_TAIL,
    ),
    _chat(
        "last_message_tagged",
        True,
        _CHAT_HEAD
        + "<|im_start|>{{ message['role'] }}{% if loop.last %} (current){% endif %}\n{{ message['content'] }}<|im_end|>\n"
        + _CHAT_TAIL,
    ),
    _chat("chatml_plain", False, _CHAT_HEAD + _CHAT_MSG + _CHAT_TAIL),
    _chat(
        "numbered_from_first",
        False,
        _CHAT_HEAD
        + "<|im_start|>{{ message['role'] }} #{{ loop.index }}\n{{ message['content'] }}<|im_end|>\n"
        + _CHAT_TAIL,
    ),
    _chat(
        "default_system_when_missing",
        False,
        "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are helpful.<|im_end|>\n{% endif %}"
        + _CHAT_HEAD
        + _CHAT_MSG
        + "{% if loop.last and add_generation_prompt %}<|im_start|>assistant\n{% endif %}{% endfor %}",
    ),
]

# ---------------------------------------------------------------- Python that builds variables
_PY_HEAD = '''import datetime
import json
import logging
import time
import uuid
from datetime import datetime as dtime

from promptkit import PromptTemplate

log = logging.getLogger(__name__)
TEMPLATE = PromptTemplate("""{% vars note=deploy, question=request %}
{% segment system static %}
You are the support assistant of ACME Networks.
{% endsegment %}
{% segment note deploy %}
{{ note }}
{% endsegment %}
{% segment question request %}
{{ question }}
{% endsegment %}
""")


'''


def _py(name: str, busts: bool, body: str) -> Case:
    return Case(name, "python-splice", busts, _PY_HEAD + body, fmt="py")


CASES += [
    _py(
        "fstring_now",
        True,
        'def variables(question):\n    return {"note": f"Current date: {dtime.now():%Y-%m-%d}", "question": question}\n',
    ),
    _py(
        "time_in_name",
        True,
        'def variables(question):\n    built = f"build {int(time.time()) // 60}"\n    return {"note": built, "question": question}\n',
    ),
    _py(
        "uuid_kwarg",
        True,
        'def variables(question):\n    return dict(note="Session " + str(uuid.uuid4()), question=question)\n',
    ),
    _py(
        "utcnow_format",
        True,
        'def variables(question):\n    v = {"question": question}\n    v["note"] = "Generated {}".format(datetime.datetime.now().date())\n    return v\n',
    ),
    _py(
        "isoformat_chain",
        True,
        'def variables(question):\n    stamp = datetime.datetime.now().isoformat()\n    header = "As of " + stamp\n    return {"note": header, "question": question}\n',
    ),
    _py(
        "now_into_request",
        False,
        'def variables(question):\n    return {"note": "Policy v3.", "question": f"[{dtime.now():%H:%M}] {question}"}\n',
    ),
    _py(
        "dumps_only_logged",
        False,
        'def variables(question):\n    payload = {"question": question, "b": 1}\n    log.info("building %s", json.dumps(payload))\n    return {"note": "Policy v3.", "question": question}\n',
    ),
    _py(
        "uuid_in_log_line",
        False,
        'def variables(question):\n    rid = uuid.uuid4().hex\n    log.info("request %s", rid)\n    return {"note": "Policy v3.", "question": question}\n',
    ),
]
