import json
import logging
from datetime import datetime

from promptkit import PromptTemplate

log = logging.getLogger(__name__)
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
    log.info("question %s", json.dumps({"q": question, "at": str(datetime.now())}))
    return {"note": "Policy v3.", "question": f"[{datetime.now():%H:%M}] {question}"}
