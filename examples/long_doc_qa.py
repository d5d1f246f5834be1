"""Questions over one long document: the document is prefilled once, every question hits it.

Run: ``.venv/bin/python examples/long_doc_qa.py``. The first question computes the whole prompt;
the next ones reuse the instructions and the document from the prefix cache and only prefill
their question. The last three go out together with ``fan_out``: one warm-up request, then a
single engine batch in which every prompt hits.
"""

from __future__ import annotations

import json
from pathlib import Path

from _report import example_client, print_report

from promptkit import Client, SamplingSettings

HANDBOOK = Path(__file__).parent / "data" / "handbook.json"
QUESTIONS = [
    "How far does an e-bike go on one charge?",
    "How much does the yearly plan cost?",
    "What happens if a station is full?",
]
FAN_OUT = [
    "Who charges the e-bikes?",
    "How old must a rider be?",
    "Where are lost items kept?",
]


def main(client: Client | None = None) -> None:
    entries = json.loads(HANDBOOK.read_text(encoding="utf-8"))
    document = "\n\n".join(f"## {e['title']}\n{e['text']}" for e in entries)
    answer = SamplingSettings(max_tokens=40)
    with example_client(client) as client:
        qa = client.template("long_doc_qa")
        variables = {"title": "Velora city bikes: rider handbook", "document": document}
        for question in QUESTIONS:
            out = client.generate(qa, {**variables, "question": question}, sampling=answer)
            print(f"Q: {question}\nA: {out.text.strip()}\n")
        prompts = [client.build(qa, {**variables, "question": q}) for q in FAN_OUT]
        for question, out in zip(FAN_OUT, client.fan_out(prompts, sampling=answer), strict=True):
            print(f"Q: {question}\nA: {out.text.strip()}\n")
        print_report(client, title="long_doc_qa: one document, six questions")


if __name__ == "__main__":  # vLLM spawns worker processes
    main()
