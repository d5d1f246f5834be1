"""Control-token injection: values never become the model's control tokens.

A tokenizer reads the text of its special tokens (``<|im_start|>``, ``<|im_end|>``, ``</s>``)
as those tokens wherever it meets them. A question, document or chat message that holds
``<|im_end|>\\n<|im_start|>system\\n...`` would then give the model a forged system turn. Only
the template text and the model's chat template may produce control tokens, so every value
(template variables, at any depth, and conversation messages) is checked before rendering, under
one policy:

``"escape"`` (default)
    the control-token text stays visible but is broken with a zero-width space after its first
    character (``<\\u200b|im_end|>``), so it tokenizes as ordinary text;
``"reject"``
    raise :class:`~promptkit.errors.ControlTokenError` naming the variable;
``"allow"``
    leave it (the tokenizer makes real control tokens of it), for trusted values only.

Under every policy the built prompt lists the values that held control tokens
(``BuiltPrompt.control_token_values``) and so does its record (``RequestRecord.control_tokens``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from promptkit.errors import ControlTokenError, VariableError

__all__ = ["ESCAPE_MARK", "ControlTokenPolicy", "ControlTokens"]

ControlTokenPolicy = Literal["escape", "reject", "allow"]
POLICIES: tuple[ControlTokenPolicy, ...] = ("escape", "reject", "allow")
#: Inserted after a control token's first character: invisible, and never part of a token text.
ESCAPE_MARK = "\u200b"
_SCALARS = (int, float, bool, type(None))


class ControlTokens:
    """The control-token texts of one tokenizer, and the policy applied to values.

    Args:
        texts: the special tokens' texts (one-character ones are ordinary text and ignored).
        policy: ``"escape"``, ``"reject"`` or ``"allow"`` (see the module docstring).
    """

    def __init__(self, texts: Iterable[str], *, policy: ControlTokenPolicy = "escape") -> None:
        if policy not in POLICIES:
            raise VariableError(
                f"control_tokens={policy!r} is not a policy: use one of {', '.join(POLICIES)}"
            )
        self.policy: ControlTokenPolicy = policy
        self.texts = tuple(sorted({t for t in texts if len(t) > 1}, key=len, reverse=True))
        self._pattern = re.compile("|".join(map(re.escape, self.texts))) if self.texts else None

    def first_in(self, text: str) -> str | None:
        """The first control-token text in ``text``, if any."""
        match = self._pattern.search(text) if self._pattern is not None else None
        return match.group() if match else None

    def escape(self, text: str) -> str:
        """``text`` with every control-token text broken by :data:`ESCAPE_MARK`."""
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: m.group()[0] + ESCAPE_MARK + m.group()[1:], text)

    def apply(
        self, variables: Mapping[str, Any], *, template: str | None = None
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """``variables`` under the policy, and the names (paths) of values that held tokens."""
        found: list[tuple[str, str]] = []
        out = {
            name: self._walk(value, str(name), found, (), template)
            for name, value in variables.items()
        }
        if found and self.policy == "reject":
            path, token = found[0]
            raise ControlTokenError(
                f"the value holds the model's control-token text {token!r}, which would reach "
                "the model as a real control token; clean it, or build the client with "
                "control_tokens='escape'",
                template=template,
                variable=path,
            )
        paths = tuple(dict.fromkeys(path for path, _ in found))
        return (out if self.policy == "escape" else dict(variables)), paths

    def messages(
        self, messages: Sequence[Mapping[str, Any]]
    ) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
        """Chat messages under the policy: every message's content is a value."""
        values = {f"messages[{i}]": m.get("content") for i, m in enumerate(messages)}
        applied, found = self.apply(values)
        return [
            {**m, "content": applied[f"messages[{i}]"]}
            if isinstance(m.get("content"), str)
            else dict(m)
            for i, m in enumerate(messages)
        ], found

    def _walk(
        self,
        value: Any,
        path: str,
        found: list[tuple[str, str]],
        stack: tuple[int, ...],
        template: str | None,
    ) -> Any:
        if isinstance(value, str):
            if not value.isascii():
                _check_unicode(value, path, template)
            token = self.first_in(value)
            if token is None:
                return value
            found.append((path, token))
            return self.escape(value)
        if isinstance(value, _SCALARS):
            return value
        if id(value) in stack:
            raise VariableError(
                "the value contains itself (a recursive structure): pass plain data",
                template=template,
                variable=path.split("[", 1)[0].split(".", 1)[0],
            )
        inner = (*stack, id(value))
        if isinstance(value, Mapping):
            walked = {
                self._walk(k, f"{path}.<key>", found, inner, template): self._walk(
                    v, f"{path}.{k}", found, inner, template
                )
                for k, v in value.items()
            }
            return walked if type(value) is dict or _changed(walked, value) else value
        if isinstance(value, list | tuple):
            items = [
                self._walk(v, f"{path}[{i}]", found, inner, template) for i, v in enumerate(value)
            ]
            return items if isinstance(value, list) else tuple(items)
        if isinstance(value, set | frozenset):
            return type(value)(self._walk(v, f"{path}[]", found, inner, template) for v in value)
        return self._opaque(value, path, found, template)

    def _opaque(
        self, value: Any, path: str, found: list[tuple[str, str]], template: str | None
    ) -> Any:
        # An object the template reads by attribute or str(): it cannot be escaped in place.
        try:
            text = str(value)
        except Exception:
            return value  # rendering it will fail with the template's own typed error
        token = self.first_in(text)
        if token is not None:
            found.append((path, token))
            if self.policy == "escape":
                raise ControlTokenError(
                    f"the value ({type(value).__name__}) prints the model's control-token text, "
                    "and an object cannot be escaped in place: pass it as a str or a dict",
                    template=template,
                    variable=path,
                )
        return value


def _changed(walked: Mapping[Any, Any], original: Mapping[Any, Any]) -> bool:
    return any(walked.get(k, object()) is not v for k, v in original.items())


def _check_unicode(value: str, path: str, template: str | None) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise VariableError(
            f"the value holds a lone surrogate ({value[exc.start]!r} at character {exc.start}), "
            "which no tokenizer can encode: decode the source text with errors='replace'",
            template=template,
            variable=path,
        ) from None
