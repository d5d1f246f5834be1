"""Which template line produced token i: the one locator behind drift explanations,
``promptkit check`` and the pytest plugin (real tokenizer, no engine)."""

from __future__ import annotations

from promptkit import PromptBuilder, PromptTemplate
from promptkit._explain import locate_token

SOURCE = """{% vars city=static, question=request %}
{% segment system static role=system %}
You are the assistant of the museum.
The museum is in {{ city }} and opens at nine.
{% endsegment %}
{% segment q request role=user %}
{{ question }}
{% endsegment %}
"""


def test_a_token_is_traced_to_its_expression_text_or_scaffolding(builder: PromptBuilder) -> None:
    template = PromptTemplate.from_string(SOURCE)
    prompt = builder.build(template, {"city": "Ghent", "question": "When?"})
    tokenizer = builder.tokenizer
    starts = tokenizer.encode(prompt.text).starts
    assert tokenizer.encode(prompt.text).ids == prompt.token_ids

    def token_at(text: str) -> int:  # the first token that starts inside ``text``
        char = prompt.text.index(text)
        return min(i for i, start in enumerate(starts) if start >= char)

    city = token_at("Ghent")
    origin = locate_token(prompt, city, tokenizer=tokenizer)
    assert origin.tracked is not None
    assert (origin.tracked.kind, origin.tracked.line, origin.tracked.names) == (
        "expression",
        4,
        ("city",),
    )
    assert origin.describe() == "in segment 'system', expression on line 4"
    text = locate_token(prompt, token_at("museum is in"), tokenizer=tokenizer)
    assert text.tracked is not None and (text.tracked.kind, text.tracked.line) == ("text", 3)
    header = locate_token(prompt, 0, tokenizer=tokenizer)  # <|im_start|> of the system message
    assert (
        header.scaffolding
        and header.describe() == "in segment 'system' (chat template scaffolding)"
    )
    end = locate_token(prompt, prompt.total_tokens, tokenizer=tokenizer)
    assert end.segment is not None and end.segment.name == "q"
