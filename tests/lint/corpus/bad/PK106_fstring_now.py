from datetime import datetime

from promptkit import PromptTemplate

TEMPLATE = PromptTemplate("""{% vars note=deploy, question=request %}
{% segment system static %}
You are the support assistant of ACME Networks.
{% endsegment %}
{% segment note deploy %}
{{ note }}
{% endsegment %}
{% segment question request %}
{{ question }}
{% endsegment %}
""")


def variables(question: str) -> dict[str, str]:
    return {"note": f"Today is {datetime.now():%Y-%m-%d}", "question": question}
