"""``promptkit check`` for a model chat template (``*.jinja``): is a conversation append-only?

A chat template that prints the turn count, the newest user message or a per-message index
counted from the end in the system header rewrites the start of every prompt on every turn, so a
multi-turn conversation never reuses its own cache. Statically that is a guess; here the
template renders a conversation at turn N and at turn N+1 and the token ids of the first must
be a prefix of the second's (PK702). The date is pinned twice, a day apart, to catch the clock
however the template reaches it (PK103).
"""

from __future__ import annotations

import datetime as dt

from jinja2 import Environment, nodes
from jinja2.exceptions import TemplateSyntaxError as JinjaSyntaxError
from jinja2.ext import loopcontrols

from promptkit._chat_template import ChatTemplate
from promptkit._templating.history_hints import from_the_end, iter_root
from promptkit._tokenization import Tokenizer, common_prefix
from promptkit.errors import TokenizationError
from promptkit.lint.rules import Finding

__all__ = ["chat_history_findings", "chat_template_findings"]

_TURN_N = (
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
)
_TURN_N1 = (
    *_TURN_N,
    {"role": "assistant", "content": "Rome."},
    {"role": "user", "content": "Thanks, and Spain?"},
)


def _ids(
    template: ChatTemplate, messages: tuple[dict[str, str], ...], tokenizer: Tokenizer
) -> list[int]:
    text = template.render(messages, add_generation_prompt=False)
    return list(tokenizer.encode(text).ids)


def chat_template_findings(source: str, *, path: str, tokenizer: Tokenizer) -> list[Finding]:
    """PK702 when turn N+1 does not extend turn N; PK103 when the date reaches the text."""
    try:
        template = ChatTemplate(source, name=path)
        before = _ids(template, _TURN_N, tokenizer)
        after = _ids(template, _TURN_N1, tokenizer)
        next_day = ChatTemplate(
            source, name=path, pinned_date=template.pinned_date + dt.timedelta(days=1)
        )
        dated = _ids(next_day, _TURN_N, tokenizer)
    except TokenizationError as exc:
        return [Finding("PK706", path, None, f"the chat template does not render: {exc}")]
    findings: list[Finding] = []
    # The last token of turn N may merge with what turn N+1 appends.
    shared = common_prefix(before[:-1], after)
    if shared < len(before) - 1:
        findings.append(
            Finding(
                "PK702",
                path,
                None,
                f"turn N+1 does not extend turn N: token #{shared} "
                f"{tokenizer.decode([before[shared]])!r} became "
                f"{tokenizer.decode([after[shared]])!r}; the template rewrites earlier text as "
                "the conversation grows (a turn count, the newest message or a position counted "
                "from the end printed before the history); print only what each message is",
            )
        )
    if dated != before:
        findings.append(
            Finding(
                "PK103",
                path,
                None,
                "the rendered conversation changes when the date changes: every cached prefix "
                "is lost at midnight; remove the date or pin it",
            )
        )
    return findings


_LOOP_FROM_END = frozenset({"revindex", "revindex0", "length"})


def _how(expr: nodes.Node, moving: set[str]) -> str | None:
    """How a printed expression depends on the conversation's length, if it does."""
    for sub in [expr, *expr.find_all((nodes.Filter, nodes.Getitem))]:
        root = iter_root(sub)
        how = from_the_end(sub)
        if isinstance(root, nodes.Name) and root.name == "messages" and how is not None:
            return f"{how} of messages"
    for attr in [expr, *expr.find_all(nodes.Getattr)]:
        if (
            isinstance(attr, nodes.Getattr)
            and isinstance(attr.node, nodes.Name)
            and attr.node.name == "loop"
            and attr.attr in _LOOP_FROM_END
        ):
            return f"loop.{attr.attr}"
    names = [expr] if isinstance(expr, nodes.Name) else list(expr.find_all(nodes.Name))
    return next(
        (f"{n.name!r} (set from the newest message or count)" for n in names if n.name in moving),
        None,
    )


def chat_history_findings(source: str, *, path: str) -> list[Finding]:
    """PK302: a chat template that prints the message count, the newest message or a position
    counted from the end -- text that every new turn rewrites."""
    env = Environment(extensions=[loopcontrols])
    env.add_extension("jinja2.ext.do")
    try:
        ast = env.parse(source)
    except JinjaSyntaxError:
        return []  # {% generation %} and the like: the rendering check still runs
    moving: set[str] = set()
    for _ in range(3):
        for assign in ast.find_all(nodes.Assign):
            if isinstance(assign.target, nodes.Name) and _how(assign.node, moving):
                moving.add(assign.target.name)
    findings: list[Finding] = []
    for output in ast.find_all(nodes.Output):
        for expr in output.nodes:
            if isinstance(expr, nodes.TemplateData):
                continue
            how = _how(expr, moving)
            if how is not None:
                findings.append(
                    Finding(
                        "PK302",
                        path,
                        expr.lineno,
                        f"the chat template prints {how}: it changes as the conversation grows, "
                        "so turn N+1 rewrites what turn N rendered and reuses none of its cache; "
                        "print only what each message is (loop.index from the start is fine)",
                    )
                )
    return findings
