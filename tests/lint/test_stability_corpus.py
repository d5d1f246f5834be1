"""Issue 13's corpus: every witness proven with the real builder, then recall and precision.

Each case of :mod:`tests.stability_corpus` carries a production variation written by hand. The
witness tests build the sample and the variation with promptkit's builder and the real tokenizer
(and, for role templates, the model's chat template) and prove that a buster's stable prefix
moves and a stable case's does not. The detection test gives ``promptkit lint``'s rules and
``promptkit check``'s token checks only the sample, counts what they catch per kind, holds the
totals to the acceptance bar (recall >= 0.95, precision >= 0.97) and checks that docs/lint.md
shows exactly these numbers.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from promptkit._builder import PromptBuilder
from promptkit._built_prompt import BuiltPrompt
from promptkit._chat_template import ChatTemplate
from promptkit._segments import Stability
from promptkit._templating.analysis import TemplateAnalysis, analyze_source
from promptkit._templating.prompt_template import PromptTemplate, RenderedSegment
from promptkit._tokenization import Tokenizer
from promptkit.lint._chat_check import chat_template_findings
from promptkit.lint._metamorphic import frozen
from promptkit.lint.prefix import PrefixPolicy
from promptkit.lint.rules import Finding
from promptkit.lint.samples import Fixtures
from promptkit.lint.sources import lint_chat_template, lint_python
from promptkit.lint.template_rules import lint_template
from promptkit.lint.tokens import measure
from tests.stability_corpus import CASES, KINDS, T0, Case

ROOT = Path(__file__).resolve().parent.parent.parent
BLOCK = 32
#: Findings that are not about cache-busting (the corpus templates are short on purpose).
_NOT_BUSTERS = frozenset({"PK601", "PK705", "PK707"})
J2 = [c for c in CASES if c.fmt == "j2" and not c.hashseed]
SETS = [c for c in CASES if c.hashseed]
CHATS = [c for c in CASES if c.fmt == "jinja"]
PYS = [c for c in CASES if c.fmt == "py"]


def test_corpus_size_and_kinds() -> None:
    busters = [c for c in CASES if c.busts]
    assert len(busters) >= 40 and len(CASES) - len(busters) >= 25
    assert {c.kind for c in CASES} == set(KINDS)
    assert len({c.name for c in CASES}) == len(CASES)


# -- witnesses ------------------------------------------------------------------------------


def _unchecked(source: str, *, name: str) -> PromptTemplate:
    """The template as a renderer without promptkit's load-time stability check would run it.

    Some busters are now refused by the loader (the refusal is how they are caught); their
    witness still has to show that the text, rendered, moves the prefix.
    """

    def lenient(*args: Any, **kwargs: Any) -> TemplateAnalysis:
        found = analyze_source(*args, **kwargs)
        kept = tuple(f for f in found.findings if f.rule not in ("PK104", "PK105"))
        return TemplateAnalysis(
            kept,
            found.variables,
            found.segments,
            found.derived,
            found.segment_variables,
            found.reads,
            found.literal_texts,
        )

    with mock.patch("promptkit._templating.prompt_template.analyze_source", lenient):
        return PromptTemplate(source, name=name)


def _end(prompt: BuiltPrompt, case: Case) -> int:
    if case.append:
        ends = [s.token_end for s in prompt.segments if s.stability <= Stability.TURN]
        return min(max(ends), prompt.stable_tokens) - 1
    level = Stability.parse(case.level)
    if level is Stability.REQUEST:
        return prompt.stable_tokens
    return max(s.token_end for s in prompt.segments if s.stability < level)


def _moves(a: BuiltPrompt, b: BuiltPrompt, case: Case) -> bool:
    end = _end(a, case)
    assert end > 0
    return a.token_ids[:end] != b.token_ids[:end]


@pytest.mark.parametrize("case", J2, ids=[c.name for c in J2])
def test_template_witness(case: Case, builder: PromptBuilder) -> None:
    template = _unchecked(case.source, name=case.name)
    with frozen(T0, 0):
        a = builder.build(template, case.sample)
    with frozen(case.alt_clock or T0, 1):
        b = builder.build(template, case.alt if case.alt is not None else case.sample)
    assert _moves(a, b, case) is case.busts


_HASHSEED_SCRIPT = """
import pickle, sys, json
from promptkit._templating.prompt_template import PromptTemplate, RenderedSegment
cases = pickle.loads(sys.stdin.buffer.read())
print(json.dumps({n: [s.text for s in PromptTemplate(src, name=n).render(v)] for n, src, v in cases}))
"""


def test_set_witnesses_under_other_hash_seeds(builder: PromptBuilder) -> None:
    """Sets are rebuilt in fresh interpreters with other PYTHONHASHSEEDs, as production does;
    the segments they render there are tokenized here by the builder."""
    payload = pickle.dumps([(c.name, c.source, c.sample) for c in SETS])
    runs = []
    for seed in range(4):
        env = dict(os.environ, PYTHONHASHSEED=str(seed), PYTHONPATH=str(ROOT))
        done = subprocess.run(
            [sys.executable, "-c", _HASHSEED_SCRIPT],
            input=payload,
            capture_output=True,
            env=env,
            check=True,
            timeout=300,
        )
        runs.append(json.loads(done.stdout))
    for case in SETS:
        template = PromptTemplate(case.source, name=case.name)
        prefixes = set()
        for run in runs:
            texts = run[case.name]
            rendered = [
                RenderedSegment(s, t) for s, t in zip(template.segments, texts, strict=True)
            ]
            prompt = builder.build_rendered(template, rendered, case.sample)
            prefixes.add(prompt.token_ids[: prompt.stable_tokens])
        assert (len(prefixes) > 1) is case.busts, case.name


_TURN_N = [
    {"role": "system", "content": "You answer questions about routers."},
    {"role": "user", "content": "It reboots at night."},
    {"role": "assistant", "content": "That is the nightly maintenance window."},
    {"role": "user", "content": "Can I turn it off?"},
]
_TURN_N1 = [
    *_TURN_N,
    {"role": "assistant", "content": "Yes, under Settings."},
    {"role": "user", "content": "Where exactly?"},
]


@pytest.mark.parametrize("case", CHATS, ids=[c.name for c in CHATS])
def test_chat_template_witness(case: Case, tokenizer: Tokenizer) -> None:
    chat = ChatTemplate(case.source)
    before = tokenizer.encode(chat.render(_TURN_N, add_generation_prompt=False)).ids
    after = tokenizer.encode(chat.render(_TURN_N1, add_generation_prompt=False)).ids
    end = len(before) - 1
    assert (list(after[:end]) != list(before[:end])) is case.busts


@pytest.mark.parametrize("case", PYS, ids=[c.name for c in PYS])
def test_python_witness(case: Case, builder: PromptBuilder) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(case.source, case.name, "exec"), namespace)  # the corpus's own module
    template = namespace["TEMPLATE"]
    with frozen(T0, 0):
        a = builder.build(template, namespace["variables"]("Why?"))
    with frozen(T0 + dt.timedelta(days=1), 1):
        b = builder.build(template, namespace["variables"]("Why?"))
    assert _moves(a, b, case) is case.busts


# -- detection ------------------------------------------------------------------------------


def detect(case: Case, *, builder: PromptBuilder) -> tuple[list[Finding], list[Finding]]:
    """What `promptkit lint` and `promptkit check` report for a case, given only its sample."""
    path = f"{case.name}.{case.fmt}"
    checked: list[Finding] = []
    if case.fmt == "py":
        linted = lint_python(case.source, path=path)
    elif case.fmt == "jinja":
        linted = lint_chat_template(case.source, path=path)
        checked = chat_template_findings(case.source, path=path, tokenizer=builder.tokenizer)
    else:
        linted = lint_template(case.source, path=path)
        if not any(f.rule in ("PK001", "PK104", "PK105", "PK301") for f in linted):
            policy = PrefixPolicy(tokenizer=lambda: builder.tokenizer, block_size=BLOCK)
            template = PromptTemplate(case.source, name=path)
            fixtures = Fixtures((case.sample,))
            checked = list(measure(template, fixtures, builder=builder, policy=policy).findings)
    return (
        [f for f in linted if f.rule not in _NOT_BUSTERS],
        [f for f in checked if f.rule not in _NOT_BUSTERS],
    )


def score(builder: PromptBuilder) -> dict[str, dict[str, int]]:
    """Per kind: busters caught (tp) and missed (fn), stable cases flagged (fp) and clean (tn)."""
    table = {kind: dict.fromkeys(("tp", "fn", "fp", "tn", "lint", "check"), 0) for kind in KINDS}
    for case in CASES:
        linted, checked = detect(case, builder=builder)
        flagged = bool(linted or checked)
        key = ("tp" if flagged else "fn") if case.busts else ("fp" if flagged else "tn")
        table[case.kind][key] += 1
        if case.busts:
            table[case.kind]["lint"] += bool(linted)
            table[case.kind]["check"] += bool(checked)
    return table


def _ratio(num: int, den: int) -> str:
    return f"{num / den:.2f}" if den else "n/a"


def table_markdown(table: dict[str, dict[str, int]]) -> str:
    rows = [
        "| kind | busters | caught | by lint | by check | stable | flagged | recall | precision |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    total = dict.fromkeys(("tp", "fn", "fp", "tn", "lint", "check"), 0)
    for kind, n in [*table.items(), ("**all**", total)]:
        if kind != "**all**":
            for k in total:
                total[k] += n[k]
        rows.append(
            f"| {kind} | {n['tp'] + n['fn']} | {n['tp']} | {n['lint']} | {n['check']} | "
            f"{n['fp'] + n['tn']} | {n['fp']} | {_ratio(n['tp'], n['tp'] + n['fn'])} | "
            f"{_ratio(n['tp'], n['tp'] + n['fp'])} |"
        )
    return "\n".join(rows) + "\n"


_BEGIN = "<!-- stability-corpus-table:begin -->\n"
_END = "<!-- stability-corpus-table:end -->"


def test_recall_precision_and_docs_table(builder: PromptBuilder) -> None:
    table = score(builder)
    tp = sum(n["tp"] for n in table.values())
    fn = sum(n["fn"] for n in table.values())
    fp = sum(n["fp"] for n in table.values())
    assert tp / (tp + fn) >= 0.95, table
    assert tp / (tp + fp) >= 0.97, table
    docs = (ROOT / "docs" / "lint.md").read_text(encoding="utf-8")
    shown = docs.split(_BEGIN, 1)[1].split(_END, 1)[0] if _BEGIN in docs else ""
    expected = table_markdown(table)
    if os.environ.get("PROMPTKIT_UPDATE_DOCS"):
        start, rest = docs.split(_BEGIN, 1)
        (ROOT / "docs" / "lint.md").write_text(
            start + _BEGIN + expected + _END + rest.split(_END, 1)[1], encoding="utf-8"
        )
        return
    assert shown == expected, (
        "docs/lint.md's corpus table is stale; run PROMPTKIT_UPDATE_DOCS=1 pytest "
        "tests/lint/test_stability_corpus.py"
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_detection(case: Case, builder: PromptBuilder) -> None:
    """Per case, so a regression names the case (the totals above allow a miss or two)."""
    linted, checked = detect(case, builder=builder)
    found = linted + checked
    shown = [f"{f.rule} {f.line} {f.message}" for f in found]
    if case.busts:
        assert found, f"{case.name}: not caught"
    else:
        assert not found, shown


def test_python_corpus_cases_parse() -> None:
    for case in PYS:
        ast.parse(textwrap.dedent(case.source))
