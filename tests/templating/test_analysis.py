"""The template analysis: every finding kind with its rule, line, variable and loader error."""

from __future__ import annotations

import pytest

from promptkit._templating.analysis import TemplateAnalysis, TemplateFinding, analyze_source
from promptkit._templating.environment import template_environment
from promptkit.errors import StabilityError, TemplateError, TemplateSyntaxError, VariableError

QUESTION = "{% segment q request %}{{ q }}{% endsegment %}\n"


def _analyze(source: str) -> TemplateAnalysis:
    return analyze_source(source, environment=template_environment(), filename="t.j2")


def _only(source: str) -> TemplateFinding:
    (finding,) = _analyze(source).findings
    return finding


# (rule, line, variable, error the loader raises) for one problem each; line 2 holds it.
CASES: dict[str, tuple[str, str, int | None, str | None, type[TemplateError] | None]] = {
    "parse error": (
        "{% vars q=request %}\n{% segment s static %}{{ q }\n",
        "PK001",
        2,
        None,
        TemplateSyntaxError,
    ),
    "unknown filter": (
        "{% vars q=request %}\n{% segment q request %}{{ q | nosuch }}{% endsegment %}\n",
        "PK001",
        2,
        None,
        TemplateSyntaxError,
    ),
    "text outside a segment": (
        "{% vars q=request %}\nstray\n" + QUESTION,
        "PK001",
        2,
        None,
        TemplateSyntaxError,
    ),
    "block outside a segment": (
        "{% vars q=request %}\n{% if q %}{% endif %}\n" + QUESTION,
        "PK001",
        2,
        None,
        TemplateSyntaxError,
    ),
    "no segment": ("{# nothing but a comment #}\n", "PK001", 1, None, TemplateSyntaxError),
    "declared twice": (
        "{% vars q=request,\n q=static %}\n" + QUESTION,
        "PK001",
        2,
        "q",
        VariableError,
    ),
    "segment defined twice": (
        "{% vars q=request %}{% segment s static %}a{% endsegment %}\n"
        "{% segment s static %}b{% endsegment %}\n" + QUESTION,
        "PK001",
        2,
        None,
        TemplateSyntaxError,
    ),
    "nested segments": (
        "{% vars q=request %}{% segment s static %}\n"
        "{% segment t static %}b{% endsegment %}{% endsegment %}\n" + QUESTION,
        "PK001",
        2,
        None,
        TemplateSyntaxError,
    ),
    "mixed roles": (
        "{% vars q=request %}{% segment s static role=system %}a{% endsegment %}\n" + QUESTION,
        "PK001",
        2,
        None,
        TemplateSyntaxError,
    ),
    "segment order": (
        "{% vars q=request %}" + QUESTION + "{% segment s static %}a{% endsegment %}\n",
        "PK301",
        2,
        None,
        StabilityError,
    ),
    "volatile variable": (
        "{% vars q=request %}{% segment s static %}\n{{ q }}{% endsegment %}\n" + QUESTION,
        "PK104",
        2,
        "q",
        StabilityError,
    ),
    "volatile variable through set": (
        "{% vars q=request %}{% set q2 = q | upper %}{% segment s static %}\n{{ q2 }}"
        "{% endsegment %}\n" + QUESTION,
        "PK104",
        2,
        "q2",
        StabilityError,
    ),
    "volatile condition": (
        "{% vars q=request %}{% segment s static %}\n{% if q %}a{% endif %}{% endsegment %}\n"
        + QUESTION,
        "PK105",
        2,
        "q",
        StabilityError,
    ),
    "undeclared variable": (
        "{% vars q=request %}{% segment s static %}\n{{ product }}{% endsegment %}\n" + QUESTION,
        "PK501",
        2,
        "product",
        VariableError,
    ),
    "undeclared clock call": (
        "{% vars q=request %}{% segment s static %}\n{{ now() }}{% endsegment %}\n" + QUESTION,
        "PK101",
        2,
        "now",
        VariableError,
    ),
    "clock call on a declared value": (
        "{% vars q=request, clock=static %}{% segment s static %}\n{{ clock.now() }}"
        "{% endsegment %}\n" + QUESTION,
        "PK101",
        2,
        "clock",
        None,
    ),
    "name set from a clock": (
        "{% vars q=request, clock=static %}{% set t = clock.now() %}{% segment s static %}\n"
        "{{ t }}{% endsegment %}\n" + QUESTION,
        "PK101",
        2,
        "t",
        None,
    ),
    "volatile field name": (
        "{% vars q=request, meta=static %}{% segment s static %}\n{{ meta.request_id }}"
        "{% endsegment %}\n" + QUESTION,
        "PK102",
        2,
        "meta",
        None,
    ),
    "repr serialization": (
        "{% vars q=request, tools=static %}{% segment s static %}\n{{ tools | string }}"
        "{% endsegment %}\n" + QUESTION,
        "PK201",
        2,
        None,
        None,
    ),
    "unordered iteration": (
        "{% vars q=request, d=static %}{% segment s static %}\n{{ d.keys() | join }}"
        "{% endsegment %}\n" + QUESTION,
        "PK202",
        2,
        None,
        None,
    ),
    "blank line at a message edge": (
        "{% vars q=request %}{% segment s static role=system %}\n\nHi{% endsegment %}"
        "{% segment q request role=user %}{{ q }}{% endsegment %}\n",
        "PK404",
        2,
        None,
        None,
    ),
    "unused variable": (
        "{% vars q=request,\n spare=static %}\n" + QUESTION,
        "PK502",
        2,
        "spare",
        None,
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_each_finding_kind(case: str) -> None:
    source, rule, line, variable, raises = CASES[case]
    finding = _only(source)
    assert (finding.rule, finding.line, finding.variable, finding.raises) == (
        rule,
        line,
        variable,
        raises,
    )
    assert finding.message


def test_all_findings_in_source_order_and_the_first_blocking_one() -> None:
    source = (
        "{% vars question=request, spare=static %}\n"
        "{% segment q request %}{{ question }}\n{% endsegment %}\n"
        "{% segment s static %}{{ question }} {{ now() }} {{ product }}\n{% endsegment %}\n"
    )
    analysis = _analyze(source)
    assert [(f.rule, f.line) for f in analysis.findings] == [
        ("PK502", 1),
        ("PK301", 4),
        ("PK104", 4),
        ("PK101", 4),
        ("PK501", 4),
    ]
    assert analysis.blocking is analysis.findings[1]


def test_a_clean_template_has_no_findings_and_its_facts() -> None:
    source = (
        "{% vars doc=session, q=request %}{% set title = doc.title %}\n"
        "{% segment system static %}Hi{% endsegment %}\n"
        "{% segment d session %}{{ title }}{% endsegment %}\n" + QUESTION
    )
    analysis = _analyze(source)
    assert analysis.findings == () and analysis.blocking is None
    assert [s.name for s in analysis.segments] == ["system", "d", "q"]
    assert dict(analysis.segment_variables) == {
        "system": frozenset(),
        "d": frozenset({"doc"}),
        "q": frozenset({"q"}),
    }
    assert analysis.derived["title"][1] == "doc"
    assert dict(analysis.literal_texts) == {"system": "Hi", "d": None, "q": None}
    assert ("title", 3) in analysis.reads


def test_identical_findings_are_reported_once() -> None:
    source = "{% vars q=request %}{% segment s static %}{{ q }}{{ q }}{% endsegment %}" + QUESTION
    assert [f.rule for f in _analyze(source).findings] == ["PK104"]
