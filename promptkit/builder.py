"""Build prompts: render a template, normalize, apply the chat template, tokenize the tail only.

Per request the builder renders the template (Jinja, microseconds), normalizes stable segments,
renders the chat template when segments carry roles, looks the stable prefix up in the tokenizer's
cache (one hash of its text) and tokenizes only the volatile tail, checking the boundary.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from promptkit.canonical import normalize_text
from promptkit.chat import DEFAULT_PINNED_DATE, ChatTemplate
from promptkit.errors import BoundaryError, TokenizationError
from promptkit.prompt import Boundary, BuiltPrompt, SegmentSpan
from promptkit.segments import SegmentSpec
from promptkit.template import PromptTemplate, RenderedSegment
from promptkit.tokenization import Encoded, Tokenizer
from promptkit.tools import canonical_tools

__all__ = ["PromptBuilder"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Piece:
    spec: SegmentSpec
    text: str
    char_start: int
    text_start: int


class PromptBuilder:
    """Turns templates and variables into :class:`BuiltPrompt`s for one tokenizer and block size.

    Args:
        tokenizer: the model's tokenizer.
        block_size: the engine's KV block size (read it from the engine: ``engine.block_size``).
        normalize: normalize stable segments' text (LF, no trailing blanks, NFC).
        pinned_date: the date chat templates with a clock see.
        strict_boundaries: raise :class:`BoundaryError` when tokens merge across a segment
            boundary, instead of moving the boundary and logging a warning (use it in tests/CI).
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        block_size: int,
        normalize: bool = True,
        pinned_date: dt.date = DEFAULT_PINNED_DATE,
        strict_boundaries: bool = False,
    ) -> None:
        if block_size <= 0:
            raise ValueError("block_size must be positive")
        self.tokenizer = tokenizer
        self.block_size = block_size
        self.normalize = normalize
        self.pinned_date = pinned_date
        self.strict_boundaries = strict_boundaries
        self._chat: ChatTemplate | None = None
        self._warned: set[tuple[str, str]] = set()

    @property
    def chat_template(self) -> ChatTemplate:
        """The model's chat template (compiled on first use)."""
        if self._chat is None:
            self._chat = ChatTemplate.from_tokenizer(
                self.tokenizer.hf, pinned_date=self.pinned_date
            )
        return self._chat

    def build(
        self,
        template: PromptTemplate,
        variables: Mapping[str, Any],
        *,
        tools: Sequence[Any] | None = None,
    ) -> BuiltPrompt:
        """Render, tokenize and account for one prompt."""
        rendered = template.render(variables)
        return self.build_rendered(template, rendered, variables, tools=tools)

    def build_rendered(
        self,
        template: PromptTemplate,
        rendered: Sequence[RenderedSegment],
        variables: Mapping[str, Any],
        *,
        tools: Sequence[Any] | None = None,
    ) -> BuiltPrompt:
        texts = [self._normalized(seg) for seg in rendered]
        specs = [seg.spec for seg in rendered]
        if template.is_chat:
            text, pieces = self._chat_pieces(specs, texts, tools)
            leading_special = False
        else:
            if tools:
                raise TokenizationError(
                    f"{template.filename}: tools= needs a chat template (segments with role=); "
                    "for plain templates render tools with {{ tools | tojson }}"
                )
            text = "".join(texts)
            pieces = _plain_pieces(specs, texts)
            leading_special = True
        stable = [p for p in pieces if p.spec.stability.is_stable]
        tail = pieces[len(stable) :]
        prefix = self.tokenizer.encode_stable(
            [p.text for p in stable], leading_special=leading_special
        )
        encoded = prefix.encoded
        ends = list(prefix.ends)
        moved = list(prefix.moved)
        stable_tokens = len(encoded.ids)
        for index, piece in enumerate(tail):
            ext = self.tokenizer.extend(
                encoded, piece.text, leading_special=leading_special and not encoded.text
            )
            if ext.moved_tokens:
                cut = len(encoded.ids) - ext.moved_tokens
                ends = [min(e, cut) for e in ends]
                if index == 0:
                    stable_tokens = cut
            encoded = ext.encoded
            ends.append(len(encoded.ids))
            moved.append(ext.moved_tokens)
        ids = _dedupe_bos(encoded, self.tokenizer.bos_token_id)
        spans = _spans(pieces, ends, len(text), offset=len(encoded.ids) - len(ids))
        boundaries = tuple(
            Boundary(pieces[i - 1].spec.name, moved[i]) for i in range(1, len(pieces))
        )
        self._report_moves(template, boundaries)
        return BuiltPrompt(
            template=template.name,
            template_file=template.filename,
            text=text,
            token_ids=ids,
            segments=spans,
            boundaries=boundaries,
            stable_tokens=min(stable_tokens, len(ids)),
            block_size=self.block_size,
            tokenizer_fingerprint=self.tokenizer.fingerprint,
            chat_template_fingerprint=self.chat_template.fingerprint if template.is_chat else None,
            template_fingerprint=template.fingerprint,
            source=template,
            variables=variables,
        )

    def _report_moves(self, template: PromptTemplate, boundaries: tuple[Boundary, ...]) -> None:
        for boundary in boundaries:
            if boundary.safe:
                continue
            message = (
                f"{template.filename}: the last {boundary.moved_tokens} token(s) of segment "
                f"{boundary.after!r} merge with the next segment's text, so they are re-tokenized "
                "with it; end the segment with a newline (or start the next with one) to fix it"
            )
            if self.strict_boundaries:
                raise BoundaryError(message)
            key = (template.filename, boundary.after)
            if key not in self._warned:
                self._warned.add(key)
                log.warning(message)

    def _normalized(self, segment: RenderedSegment) -> str:
        if self.normalize and segment.spec.stability.is_stable:
            return normalize_text(segment.text)
        return segment.text

    def _chat_pieces(
        self, specs: list[SegmentSpec], texts: list[str], tools: Sequence[Any] | None
    ) -> tuple[str, list[_Piece]]:
        messages: list[dict[str, str]] = []
        members: list[list[int]] = []
        for index, spec in enumerate(specs):
            if messages and messages[-1]["role"] == spec.role:
                messages[-1]["content"] += texts[index]
                members[-1].append(index)
            else:
                messages.append({"role": str(spec.role), "content": texts[index]})
                members.append([index])
        chat_tools = canonical_tools(tools) if tools else None
        text = self.chat_template.render(messages, add_generation_prompt=True, tools=chat_tools)
        located = _locate(text, messages, members, texts)
        # The scaffolding before the first message (BOS, role header) belongs to segment 0.
        starts = [0, *located[1:]]
        pieces = [
            _Piece(
                spec,
                text[starts[i] : starts[i + 1] if i + 1 < len(specs) else len(text)],
                starts[i],
                located[i],
            )
            for i, spec in enumerate(specs)
        ]
        return text, pieces


def _plain_pieces(specs: list[SegmentSpec], texts: list[str]) -> list[_Piece]:
    pieces: list[_Piece] = []
    position = 0
    for spec, text in zip(specs, texts, strict=True):
        pieces.append(_Piece(spec, text, position, position))
        position += len(text)
    return pieces


def _locate(
    text: str, messages: list[dict[str, str]], members: list[list[int]], texts: list[str]
) -> list[int]:
    """Where each segment starts in the chat text; scaffolding goes to the segment before."""
    starts = [0] * len(texts)
    cursor = 0
    for message, indices in zip(messages, members, strict=True):
        content = message["content"]
        position = text.find(content, cursor)
        skipped = 0
        if position < 0:
            stripped = content.strip()
            position = text.find(stripped, cursor)
            skipped = len(content) - len(content.lstrip())
            if position < 0:
                raise TokenizationError(
                    "the chat template changes message content beyond stripping it, so segment "
                    f"boundaries cannot be placed (role {message['role']!r})"
                )
        offset = position - skipped
        for index in indices:
            starts[index] = max(position, offset)
            offset += len(texts[index])
        cursor = position + len(content.strip() if skipped else content)
    return starts


def _dedupe_bos(encoded: Encoded, bos: int | None) -> tuple[int, ...]:
    ids = encoded.ids
    if bos is not None and len(ids) >= 2 and ids[0] == bos and ids[1] == bos:
        return ids[1:]
    return ids


def _spans(
    pieces: list[_Piece], ends: list[int], text_length: int, *, offset: int
) -> tuple[SegmentSpan, ...]:
    spans: list[SegmentSpan] = []
    token_start = 0
    for index, piece in enumerate(pieces):
        char_end = pieces[index + 1].char_start if index + 1 < len(pieces) else text_length
        token_end = max(token_start, ends[index] - offset)
        spans.append(
            SegmentSpan(
                name=piece.spec.name,
                stability=piece.spec.stability,
                role=piece.spec.role,
                char_start=piece.char_start,
                char_end=char_end,
                token_start=token_start,
                token_end=token_end,
                text_start=piece.text_start,
            )
        )
        token_start = token_end
    return tuple(spans)
