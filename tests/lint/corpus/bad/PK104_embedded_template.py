"""A template literal in Python: linted like a .j2 file, lines counted in this file."""

from promptkit import PromptTemplate

TEMPLATE = PromptTemplate.from_string(
    """{% vars question=request %}
{% segment system static %}
You are a careful assistant for the ACME support desk. Answer in two sentences or fewer.
The user asked: {{ question }}
{% endsegment %}
{% segment q request %}
Question: {{ question }}
{% endsegment %}
"""
)
