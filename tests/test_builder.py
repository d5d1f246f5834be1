from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptkit import (
    BoundaryError,
    ChatTemplate,
    PromptBuilder,
    PromptTemplate,
    Tokenizer,
    VariableError,
    cacheable_tokens,
    load_template,
)

RAW = """{% vars document=session, question=request %}
{% segment system static %}
You are a helpful assistant.
{% endsegment %}
{% segment doc session %}
{{ document }}
{% endsegment %}
{% segment q request %}
Question: {{ question }}{% endsegment %}
"""
CHAT = (
    RAW.replace("system static %}", "system static role=system %}")
    .replace("doc session %}", "doc session role=user %}")
    .replace("q request %}", "q request role=user %}")
)

questions = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=60
)


@pytest.mark.parametrize("source", [RAW, CHAT], ids=["raw", "chat"])
@settings(
    max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(question=questions)
def test_stable_prefix_ids_identical_for_random_tails(
    builder: PromptBuilder, tokenizer: Tokenizer, source: str, question: str
) -> None:
    template = PromptTemplate.from_string(source)
    reference = builder.build(
        template, {"document": "A long document. " * 20, "question": "first?"}
    )
    prompt = builder.build(template, {"document": "A long document. " * 20, "question": question})
    assert prompt.token_ids == tokenizer.encode(prompt.text, leading_special=source is RAW).ids
    stable = min(prompt.stable_tokens, reference.stable_tokens)
    assert prompt.token_ids[:stable] == reference.token_ids[:stable]
    assert prompt.cacheable_tokens == reference.cacheable_tokens


def test_accounting_and_spans(builder: PromptBuilder) -> None:
    prompt = builder.build(
        PromptTemplate.from_string(CHAT), {"document": "word " * 300, "question": "why?"}
    )
    acc = prompt.accounting
    assert acc.cacheable_tokens == cacheable_tokens(prompt.stable_tokens, prompt.total_tokens, 32)
    assert acc.cacheable_tokens % 32 == 0 and acc.partial_block_tokens < 32
    spans = prompt.segments
    assert [s.name for s in spans] == ["system", "doc", "q"]
    assert spans[0].token_start == 0 and spans[-1].token_end == prompt.total_tokens
    assert all(a.token_end == b.token_start for a, b in itertools.pairwise(spans))
    assert spans[1].token_end == prompt.stable_tokens
    assert len(prompt.block_hashes()) == prompt.total_tokens // 32


def test_chat_prompt_has_one_bos_and_uses_the_models_template(
    builder: PromptBuilder, tokenizer: Tokenizer
) -> None:
    prompt = builder.build(
        PromptTemplate.from_string(CHAT), {"document": "Doc.", "question": "Why?"}
    )
    messages = [
        {"role": "system", "content": "You are a helpful assistant.\n"},
        {"role": "user", "content": "Doc.\nQuestion: Why?"},
    ]
    expected = tokenizer.hf.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    assert prompt.text == expected
    assert prompt.token_ids.count(tokenizer.bos_token_id) == prompt.text.count("<|im_start|>")
    assert prompt.chat_template_fingerprint is not None


def test_block_size_changes_cacheable_tokens(tokenizer: Tokenizer) -> None:
    template = PromptTemplate.from_string(RAW)
    variables = {"document": "word " * 200, "question": "q"}
    small = PromptBuilder(tokenizer, block_size=32).build(template, variables)
    large = PromptBuilder(tokenizer, block_size=128).build(template, variables)
    assert small.stable_tokens == large.stable_tokens
    assert small.cacheable_tokens == small.stable_tokens // 32 * 32
    assert large.cacheable_tokens == large.stable_tokens // 128 * 128


def test_boundary_merge_is_reported_not_hidden(
    builder: PromptBuilder, tokenizer: Tokenizer
) -> None:
    template = PromptTemplate.from_string(
        "{% vars q=request %}\n{% segment a static %}\nSay: {% endsegment %}\n"
        "{% segment b request %}{{ q }}{% endsegment %}\n"
    )
    prompt = builder.build(template, {"q": "Hello"})
    assert prompt.boundaries[0].moved_tokens == 1 and not prompt.boundaries[0].safe
    assert prompt.token_ids == tokenizer.encode("Say: Hello", leading_special=True).ids
    assert prompt.stable_tokens == prompt.segments[0].token_end


def test_strict_boundaries_raise_instead_of_moving(tokenizer: Tokenizer) -> None:
    template = PromptTemplate.from_string(
        "{% vars q=request %}\n{% segment a static %}\nSay: {% endsegment %}\n"
        "{% segment b request %}{{ q }}{% endsegment %}\n",
        name="merge.j2",
    )
    strict = PromptBuilder(tokenizer, block_size=32, strict_boundaries=True)
    with pytest.raises(BoundaryError, match=r"merge\.j2.*segment 'a'"):
        strict.build(template, {"q": "Hello"})


def test_pinned_date_in_chat_template() -> None:
    source = (
        "{{ bos_token }}Today is {{ strftime_now('%Y-%m-%d') }}."
        "{% for m in messages %}{{ m.content }}{% endfor %}"
    )
    chat = ChatTemplate(
        source, special_tokens={"bos_token": "<s>"}, pinned_date=dt.date(2024, 7, 26)
    )
    assert chat.volatile_names == ("strftime_now",)
    assert chat.render([{"role": "user", "content": "hi"}]) == "<s>Today is 2024-07-26.hi"


def test_shipped_templates_build(builder: PromptBuilder, tokenizer: Tokenizer) -> None:
    import json

    from promptkit._templating.finder import shipped_templates

    names = [p.stem for p in shipped_templates()]
    assert {"long_doc_qa", "rag_answer", "agent_tools", "chat"} <= set(names)
    for path in shipped_templates():
        template = load_template(path.stem)
        samples = json.loads(path.with_name(f"{path.stem}.samples.json").read_text())
        prompts = [builder.build(template, s) for s in samples]
        for prompt in prompts:
            assert prompt.token_ids == tokenizer.encode(prompt.text).ids, path.stem
            assert all(b.safe for b in prompt.boundaries), (path.stem, prompt.boundaries)
        first = prompts[0]
        assert all(
            p.token_ids[: first.stable_tokens] == first.token_ids[: first.stable_tokens]
            for p in prompts
        )


def test_tools_are_sorted_and_canonical(builder: PromptBuilder) -> None:
    template = load_template("agent_tools")
    tools = [{"name": "b_tool", "parameters": {"z": 1, "a": 2}}, {"name": "a_tool"}]
    one = builder.build(template, {"tools": tools, "task": "t"})
    two = builder.build(template, {"tools": list(reversed(tools)), "task": "t"})
    assert one.token_ids == two.token_ids
    assert one.text.index("a_tool") < one.text.index("b_tool")
    with pytest.raises(VariableError, match="unique") as info:
        builder.build(template, {"tools": [{"name": "x"}, {"name": "x"}], "task": "t"})
    assert info.value.line == 13


def test_demo_templates_have_safe_boundaries(tokenizer: Tokenizer) -> None:
    # Regression: the principal template ended its static segment in ": " and every prompt
    # starts with a word, so the demo warned about a moved boundary in its own template.
    from promptkit.cli._demo_run import PRINCIPAL_PROMPTS, TABLE_NAMES, _data_dir

    strict = PromptBuilder(tokenizer, block_size=32, strict_boundaries=True)
    data = _data_dir()
    principal = PromptTemplate.from_file(data / "principal.j2")
    table_qa = PromptTemplate.from_file(data / "table_qa.j2")
    table = (data / "people_table.md").read_text(encoding="utf-8")
    prompts = [strict.build(principal, {"prompt": p}) for p in PRINCIPAL_PROMPTS]
    prompts += [strict.build(table_qa, {"table": table, "name": n}) for n in TABLE_NAMES]
    assert all(b.safe for p in prompts for b in p.boundaries)
    # The text sent is still the seed's, character for character.
    assert prompts[0].text.endswith("fulfill the following paragraph: Hello, my name is")


def test_chat_boundaries_are_placed_by_markers_not_by_searching_the_text(
    builder: PromptBuilder,
) -> None:
    # Regression: boundaries were found with text.find(content), which matched this system
    # segment's text inside the role header "<|im_start|>system\n" that precedes it.
    template = PromptTemplate.from_string(
        "{% vars q=request %}\n{% segment head static role=system %}system\n{% endsegment %}\n"
        "{% segment q request role=user %}{{ q }}{% endsegment %}\n"
    )
    prompt = builder.build(template, {"q": "Why?"})
    head, question = prompt.segments
    assert prompt.text.startswith("<|im_start|>system\nsystem\n")
    assert head.text_start == len("<|im_start|>system\n")
    assert prompt.text[question.text_start :].startswith("Why?")


def test_tools_reach_a_chat_template_without_a_tools_slot(
    builder: PromptBuilder, tokenizer: Tokenizer
) -> None:
    # Regression: tools= on a role template was handed to a chat template that never reads
    # `tools` and silently dropped. Templates and conversations now share one policy.
    from promptkit import Client, Conversation, FunctionEngine

    tools = [{"name": "b_tool", "parameters": {"z": 1}}, {"name": "a_tool"}]
    assert "tools" not in builder.chat_template.used_names
    prompt = builder.build(
        PromptTemplate.from_string(CHAT), {"document": "Doc.", "question": "Why?"}, tools=tools
    )
    system = prompt.text[prompt.segments[0].text_start : prompt.segments[1].char_start]
    assert "\n\nAvailable tools:\n" in system and system.index("a_tool") < system.index("b_tool")
    assert prompt.segments[0].token_end <= prompt.stable_tokens
    client = Client(engine=FunctionEngine(lambda request: "ok"), tokenizer=tokenizer)
    chat = Conversation(client, system="You are a helpful assistant.\n", tools=tools)
    turn = chat.build([{"role": "user", "content": "Why?"}])
    assert turn.text[turn.segments[0].text_start :].startswith(system)
