"""The cache-buster corpus: every bad file raises exactly its named rule, every good one is clean.

A bad file's name starts with the rule it must raise (``PK101_now_in_system.j2``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from promptkit import PromptTemplate, TemplateError
from promptkit._tokenization import Tokenizer
from promptkit.lint import RULES, LintConfig, lint_paths

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
BAD = sorted((HERE / "corpus" / "bad").iterdir())
GOOD = sorted((HERE / "corpus" / "good").iterdir())


def _rules(path: Path, tokenizer: Tokenizer) -> list[str]:
    report = lint_paths([path], config=LintConfig(root=ROOT), tokenizer=lambda: tokenizer)
    return sorted({f.rule for f in report.active})


def test_corpus_is_big_enough() -> None:
    assert len(BAD) >= 30 and len(GOOD) >= 15
    static_rules = {r for r in RULES if not r.startswith("PK7")}  # PK7xx need `check`
    assert {p.name.split("_")[0] for p in BAD} == static_rules


@pytest.mark.parametrize("path", BAD, ids=[p.name for p in BAD])
def test_bad_template_raises_its_rule(path: Path, tokenizer: Tokenizer) -> None:
    expected = path.name.split("_")[0]
    assert expected in RULES
    assert _rules(path, tokenizer) == [expected]


@pytest.mark.parametrize("path", GOOD, ids=[p.name for p in GOOD])
def test_good_template_is_clean(path: Path, tokenizer: Tokenizer) -> None:
    assert _rules(path, tokenizer) == []


def test_shipped_templates_lint_clean(tokenizer: Tokenizer) -> None:
    report = lint_paths(
        [ROOT / "templates"], config=LintConfig(root=ROOT), tokenizer=lambda: tokenizer
    )
    assert report.files >= 1
    assert [f"{f.path}:{f.line} {f.rule} {f.message}" for f in report.active] == []


def test_lint_reports_every_template_the_loader_rejects() -> None:
    # Lint must never pass what PromptTemplate refuses to load.
    for path in BAD:
        if path.suffix != ".j2":
            continue
        try:
            PromptTemplate.from_file(path)
        except TemplateError:
            report = lint_paths([path], config=LintConfig(root=ROOT, ignore=("PK601",)))
            assert report.failed, path.name


def test_loader_error_is_a_lint_finding_word_for_word() -> None:
    # One analysis: the loader raises the first blocking finding, lint reports it unchanged.
    refused = 0
    for path in BAD:
        if path.suffix != ".j2":
            continue
        try:
            PromptTemplate.from_file(path)
        except TemplateError as exc:
            refused += 1
            report = lint_paths([path], config=LintConfig(root=ROOT, ignore=("PK601",)))
            assert (exc.line, exc.detail) in {(f.line, f.message) for f in report.active}, path
    assert refused >= 10


def test_unknown_filter_is_pk001_regression() -> None:
    # lint used to crash with jinja2's TemplateAssertionError instead of reporting it.
    path = HERE / "corpus" / "bad" / "PK001_unknown_filter.j2"
    report = lint_paths([path], config=LintConfig(root=ROOT, ignore=("PK601",)))
    assert [(f.rule, f.line) for f in report.active] == [("PK001", 6)]
    assert "No filter named 'shout'" in report.active[0].message


def test_lint_reports_all_findings_not_just_the_first() -> None:
    source = (
        "{% vars question=request, spare=static %}\n"
        "{% segment q request %}{{ question }}\n{% endsegment %}\n"
        "{% segment s static %}{{ question }} {{ now() }}\n{% endsegment %}\n"
    )
    path = HERE / "corpus" / "tmp_many.j2"
    try:
        path.write_text(source)
        report = lint_paths([path], config=LintConfig(root=ROOT, ignore=("PK601",)))
    finally:
        path.unlink()
    assert {f.rule for f in report.active} == {"PK101", "PK104", "PK301", "PK502"}


def test_bare_name_set_is_derived_regression() -> None:
    # `{% set q2 = question %}` (a bare Name) used to escape the stability analysis.
    source = (
        "{% vars question=request %}{% set q2 = question %}"
        "{% segment s static %}{{ q2 }}{% endsegment %}"
        "{% segment q request %}{{ question }}{% endsegment %}"
    )
    with pytest.raises(TemplateError, match="built from 'question'"):
        PromptTemplate.from_string(source)


def test_every_rule_is_documented_with_bad_and_good_examples() -> None:
    docs = (ROOT / "docs" / "lint.md").read_text()
    sections = re.split(r"^## ", docs, flags=re.M)
    by_id = {s.split()[0]: s for s in sections[1:]}
    for rule_id, rule in RULES.items():
        assert rule_id in by_id, rule_id
        body = by_id[rule_id]
        assert rule.name in body and rule.severity.value in body
        assert "Bad:" in body and "Good:" in body, rule_id
