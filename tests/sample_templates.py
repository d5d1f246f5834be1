"""Template sources and documents shared by the client tests (fast tier and real engine)."""

QA = """{% vars document=session, question=request %}
{% segment system static %}
You answer questions about the document below in one short sentence.
Quote the document where you can, never guess, and say "not in the document" when it is not.
{% endsegment %}
{% segment doc session %}
{{ document }}
{% endsegment %}
{% segment q request %}
Question: {{ question }}
Answer:{% endsegment %}
"""

DOCUMENT = "The museum opens at nine and closes at five. Tickets cost twelve euros. " * 12

# A volatile value declared as if it were static: the template passes static analysis, but the
# value changes per request -- the classic cache-buster promptkit must catch at run time.
DATED = """{% vars today=static, question=request %}
{% segment system static %}
You are a helpful assistant for the city museum.
Answer visitors' questions politely and briefly, and mention opening hours when relevant.
Today's date is {{ today }}.
Opening hours are nine to five, every day except Monday, and tickets cost twelve euros.
{% endsegment %}
{% segment q request %}
Visitor: {{ question }}
Assistant:{% endsegment %}
"""
