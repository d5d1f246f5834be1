"""Python that builds prompts the stable way: canonical JSON and a clean template literal."""

import json

from promptkit import PromptTemplate, canonical_json

TEMPLATE = PromptTemplate.from_string(
    """{% vars question=request %}
{% segment system static %}
You are a careful assistant for the ACME support desk. Answer in two sentences or fewer, cite
the manual section you used, and say so plainly when the manual does not cover the question.
{% endsegment %}
{% segment q request %}
Question: {{ question }}
{% endsegment %}
"""
)


def tools_text(tools: list[dict[str, object]]) -> str:
    return canonical_json(tools) + json.dumps(tools, sort_keys=True)
