"""Template environments: one per template, configured once, and nothing global that grows."""

from __future__ import annotations

import sys
import types
from collections import deque

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from promptkit import PromptTemplate, TemplateError

SOURCE = """{% vars document=session, items=session, question=request %}
{% segment system static %}
You are helpful.
{% endsegment %}
{% segment doc session %}
{{ document }} {{ items | join(', ') }}
{% endsegment %}
{% segment q request %}
Q: {{ question }}
{% endsegment %}
"""
VALUES = {"document": "DOC", "items": ["a", "b"], "question": "why"}
_SKIPPED = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType)


def _module_state() -> dict[str, int]:
    """Sizes of every container promptkit holds at module level, and in module-level objects."""
    sizes: dict[str, int] = {}

    def visit(where: str, value: object) -> None:
        if isinstance(value, list | dict | set | deque | bytearray):
            sizes[where] = len(value)

    for module_name, module in list(sys.modules.items()):
        if module_name.split(".")[0] != "promptkit":
            continue
        for name, value in list(vars(module).items()):
            visit(f"{module_name}.{name}", value)
            if not isinstance(value, _SKIPPED) and hasattr(value, "__dict__"):
                for attr, inner in list(vars(value).items()):
                    visit(f"{module_name}.{name}.{attr}", inner)
    return sizes


def test_each_template_owns_an_immutable_sandbox() -> None:
    a, b = PromptTemplate.from_string(SOURCE), PromptTemplate.from_string(SOURCE)
    env_a, env_b = a._compiled.environment, b._compiled.environment
    assert isinstance(env_a, ImmutableSandboxedEnvironment) and env_a is not env_b
    assert env_a.filters is not env_b.filters and env_a.globals is not env_b.globals
    assert env_a.cache is None  # no template cache: templates compile from source, once
    env_a.filters["join"] = lambda *args, **kwargs: "changed"
    assert b.render(VALUES)[1].text == "DOC a, b\n"  # a change to one is not seen by the other


def test_a_template_cannot_change_the_values_it_is_given() -> None:
    template = PromptTemplate.from_string(SOURCE.replace("{{ document }}", "{{ items.append(1) }}"))
    items = ["a"]
    with pytest.raises(TemplateError, match="sandbox"):
        template.render({**VALUES, "items": items})
    assert items == ["a"]


def test_tracked_renders_grow_no_global_list_regression() -> None:
    # The tracking environment used to be module-global, with a list of what each marker id
    # stands for that every newly compiled template appended to and nothing ever emptied.
    PromptTemplate.from_string(SOURCE).render_tracked(VALUES)  # import and warm everything
    before = _module_state()
    template = PromptTemplate.from_string(SOURCE)
    for _ in range(1_000):
        texts, spans = template.render_tracked(VALUES)
    for _ in range(50):
        fresh = PromptTemplate.from_string(SOURCE)
        assert fresh.render_tracked(VALUES) == (texts, spans)
    assert _module_state() == before
    assert len(template._tracking[1]) == len(fresh._tracking[1])  # one record per template
