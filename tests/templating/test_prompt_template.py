from __future__ import annotations

from pathlib import Path

import pytest

from promptkit import PromptTemplate, StabilityError, TemplateSyntaxError, VariableError

GOOD = """{% vars document=session, question=request %}
{% segment system static %}
You are helpful.
{% endsegment %}
{% segment doc session %}
{{ document }}
{% endsegment %}
{% segment q request %}
Q: {{ question }}
{% endsegment %}
"""


def _write(tmp_path: Path, text: str, name: str = "t.j2") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_segments_and_variables_are_declared() -> None:
    template = PromptTemplate.from_string(GOOD, name="good")
    assert [(s.name, s.stability.label) for s in template.segments] == [
        ("system", "static"),
        ("doc", "session"),
        ("q", "request"),
    ]
    assert {n: v.stability.label for n, v in template.variables.items()} == {
        "document": "session",
        "question": "request",
    }
    rendered = template.render({"document": "D", "question": "why"})
    assert [r.text for r in rendered] == ["You are helpful.\n", "D\n", "Q: why\n"]


def test_request_variable_in_static_segment_names_file_line_and_variable(tmp_path: Path) -> None:
    bad = GOOD.replace(
        "{% vars document=session, question=request %}",
        "{% vars document=session, question=request, now=request %}",
    )
    bad = bad.replace("You are helpful.", "You are helpful. Today is {{ now }}.")
    path = _write(tmp_path, bad, "dated.j2")
    with pytest.raises(StabilityError) as info:
        PromptTemplate.from_file(path)
    err = info.value
    assert (err.template, err.line, err.variable) == (str(path), 3, "now")
    assert f"{path}:3" in str(err) and "'now'" in str(err)


def test_volatility_through_set_and_for_is_tracked(tmp_path: Path) -> None:
    # A top-level `set` derives q2 from question; using q2 in the static segment is caught.
    bad = GOOD.replace(
        "{% segment system static %}",
        "{% set q2 = question | upper %}\n{% segment system static %}",
    )
    bad = bad.replace("You are helpful.", "{{ q2 }}")
    with pytest.raises(StabilityError) as info:
        PromptTemplate.from_file(_write(tmp_path, bad))
    assert info.value.variable == "q2" and "built from 'question'" in str(info.value)
    looped = GOOD.replace("You are helpful.", "{% for w in question.split() %}{{ w }}{% endfor %}")
    with pytest.raises(StabilityError):
        PromptTemplate.from_string(looped)


def test_condition_on_volatile_variable_in_stable_segment() -> None:
    bad = GOOD.replace("You are helpful.", "{% if question %}Be brief.{% endif %}")
    with pytest.raises(StabilityError, match="question"):
        PromptTemplate.from_string(bad)


def test_segments_must_not_get_more_stable() -> None:
    bad = GOOD.replace("{% segment doc session %}", "{% segment doc static %}").replace(
        "{% segment system static %}", "{% segment system session %}"
    )
    with pytest.raises(StabilityError, match="comes after the less stable segment") as info:
        PromptTemplate.from_string(bad.replace("{{ document }}", "fixed"), name="order")
    assert info.value.line == 5


def test_undeclared_variable_is_reported_with_line() -> None:
    with pytest.raises(VariableError) as info:
        PromptTemplate.from_string(GOOD.replace("{{ question }}", "{{ questoin }}"))
    assert (info.value.variable, info.value.line) == ("questoin", 9)


def test_missing_and_unknown_variables_at_render() -> None:
    template = PromptTemplate.from_string(GOOD)
    with pytest.raises(VariableError, match="declared here but not given") as info:
        template.render({"document": "D"})
    assert info.value.variable == "question" and info.value.line == 1
    with pytest.raises(VariableError, match="given but not declared"):
        template.render({"document": "D", "question": "q", "extra": 1})


def test_runtime_error_points_at_template_line(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("Q: {{ question }}", "Q: {{ question.text.upper() }}"))
    with pytest.raises(VariableError) as info:
        PromptTemplate.from_file(path).render({"document": "D", "question": "plain string"})
    assert info.value.line == 9 and info.value.template == str(path)


def test_jinja_syntax_error_is_typed() -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        PromptTemplate.from_string(
            GOOD.replace("{% endsegment %}\n{% segment q", "{% endsegmen %}\n{% segment q")
        )
    assert info.value.line is not None


def test_text_outside_segments_is_rejected() -> None:
    with pytest.raises(TemplateSyntaxError, match="outside a segment"):
        PromptTemplate.from_string("{% vars q=request %}\nstray text\n" + GOOD.split("\n", 1)[1])


def test_unknown_stability_class() -> None:
    with pytest.raises(TemplateSyntaxError, match="unknown stability class"):
        PromptTemplate.from_string(
            GOOD.replace("{% segment system static %}", "{% segment system forever %}")
        )


def test_sandbox_blocks_unsafe_access() -> None:
    template = PromptTemplate.from_string(
        GOOD.replace("Q: {{ question }}", "{{ question.__class__.__mro__ }}")
    )
    with pytest.raises(Exception) as info:
        template.render({"document": "D", "question": "x"})
    assert type(info.value).__module__.startswith("promptkit")


def test_tojson_is_canonical() -> None:
    src = """{% vars tools=deploy, q=request %}
{% segment tools deploy %}
{{ tools | tojson }}
{% endsegment %}
{% segment q request %}{{ q }}{% endsegment %}
"""
    template = PromptTemplate.from_string(src)
    a = template.render({"tools": {"b": 1, "a": {"d": 2, "c": 3}}, "q": ""})[0].text
    b = template.render({"tools": {"a": {"c": 3, "d": 2}, "b": 1}, "q": ""})[0].text
    assert a == b == '{"a": {"c": 3, "d": 2}, "b": 1}\n'


def test_tracked_render_maps_text_to_lines() -> None:
    template = PromptTemplate.from_string(GOOD)
    texts, spans = template.render_tracked({"document": "DOC", "question": "why"})
    assert texts == ["You are helpful.\n", "DOC\n", "Q: why\n"]
    expression = next(s for s in spans if s.origin.kind == "expression" and s.segment == 1)
    assert (expression.start, expression.end, expression.origin.line) == (0, 3, 6)
    assert expression.origin.names == ("document",)


def test_loader_raises_the_first_blocking_finding_in_source_order() -> None:
    source = (
        "{% vars q=request %}\n"
        "{% segment s static %}{{ zz }}{% endsegment %}\n"
        "{% segment q request %}{{ q }}{% endsegment %}\n"
        "{% segment t static %}x{% endsegment %}\n"
    )
    with pytest.raises(VariableError) as info:
        PromptTemplate.from_string(source, name="first")
    assert (info.value.line, info.value.variable) == (2, "zz")
    assert "add it to {% vars zz=CLASS %}" in str(info.value)


def test_clock_call_on_undeclared_name_is_refused_with_the_clock_message() -> None:
    with pytest.raises(VariableError, match=r"now\(\) differs on every render") as info:
        PromptTemplate.from_string(GOOD.replace("You are helpful.", "{{ now() }}"))
    assert (info.value.line, info.value.variable) == (3, "now")


def test_unknown_filter_is_a_typed_error_regression() -> None:
    # It used to escape as jinja2's own TemplateAssertionError.
    with pytest.raises(TemplateSyntaxError, match="No filter named 'nosuch'") as info:
        PromptTemplate.from_string(GOOD.replace("{{ document }}", "{{ document | nosuch }}"))
    assert info.value.line == 6


def test_warnings_stay_on_a_loaded_template() -> None:
    template = PromptTemplate.from_string(
        GOOD.replace("document=session,", "document=session, spare=static,")
    )
    assert [(f.rule, f.variable) for f in template.analysis.findings] == [("PK502", "spare")]
    assert template.analysis.blocking is None


def test_variable_lines_follow_derived_names() -> None:
    template = PromptTemplate.from_string(
        GOOD.replace(
            "{% segment q request %}", "{% set q2 = question %}{% segment q request %}"
        ).replace("Q: {{ question }}", "Q: {{ question }} {{ q2 }}")
    )
    assert template.variable_lines("question") == [8, 9]
    assert template.derived_origin("q2") == "question"
