"""Where each segment lies in a prompt: its piece of the text, then its tokens.

Both builder modes cut the prompt text into one piece per segment, tokenize the pieces one after
another through one boundary-checked chain (:func:`tokenize`), and turn the chain's piece ends
into :class:`~promptkit._built_prompt.SegmentSpan`\\ s (:func:`spans`). They differ only in where
chat scaffolding goes:

* a template's role segments (:func:`role_pieces`) take the scaffolding after them, the next
  message's header included: roles are declared, so it is as stable as the segment before it;
* a conversation's messages (:func:`message_pieces`) are cut where each one's content ends, so
  the next message's header opens the next segment: its role is not known before it is sent.

Chat positions come from the marker protocol (:meth:`promptkit.ChatTemplate.render_located`),
never from searching the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from promptkit._built_prompt import Boundary, SegmentSpan
from promptkit._chat_template import Located
from promptkit._segments import SegmentSpec, Stability
from promptkit._source import ChatSource
from promptkit._tokenization import Encoded, StablePrefix, Tokenizer

__all__ = [
    "GENERATION",
    "Piece",
    "boundaries",
    "dedupe_bos",
    "locate_messages",
    "message_bounds",
    "message_pieces",
    "plain_pieces",
    "role_pieces",
    "spans",
    "tokenize",
]

#: The segment of a chat prompt whose newest turn holds no message: the generation prompt alone.
GENERATION = "generation"


@dataclass(frozen=True, slots=True)
class Piece:
    """A segment's text in the prompt, from where its span starts (chat scaffolding included)."""

    name: str
    stability: Stability
    role: str | None
    text: str
    char_start: int
    text_start: int


def plain_pieces(specs: Sequence[SegmentSpec], texts: Sequence[str]) -> list[Piece]:
    """A plain template's segments: their texts, one after another."""
    pieces: list[Piece] = []
    position = 0
    for spec, text in zip(specs, texts, strict=True):
        pieces.append(Piece(spec.name, spec.stability, spec.role, text, position, position))
        position += len(text)
    return pieces


def role_pieces(specs: Sequence[SegmentSpec], text: str, starts: Sequence[int]) -> list[Piece]:
    """A role template's segments, given where each one's text starts in the chat text.

    The scaffolding before the first message (BOS, role header) belongs to segment 0, and each
    message's closing and the next one's header to the segment before them.
    """
    bounds = [0, *starts[1:], len(text)]
    return [
        Piece(spec.name, spec.stability, spec.role, text[bounds[i] : bounds[i + 1]], bounds[i],
              starts[i])
        for i, spec in enumerate(specs)
    ]  # fmt: skip


def locate_messages(source: ChatSource) -> tuple[str, list[Located]]:
    """A chat source's text, and where each message's content landed in it."""
    return source.chat.render_located(
        source.messages, [[str(m["content"])] for m in source.messages], tools=source.tools or None
    )


def message_bounds(located: Sequence[Located], first: int, start: int) -> list[int]:
    """Where messages ``first..`` begin: ``start``, then each previous message's content end.

    An end the chat template hid (it rewrote that content) leaves the message empty: its text
    goes to the next one. The last entry is where the last message's content ends.
    """
    bounds = [0] * first + [start]
    for loc in located[first:]:
        bounds.append(loc.end if loc.end is not None and loc.end >= bounds[-1] else bounds[-1])
    return bounds


def message_pieces(
    source: ChatSource, text: str, located: Sequence[Located], bounds: Sequence[int], first: int
) -> list[Piece]:
    """Messages ``first..`` as pieces. The generation prompt ends the newest turn, or, when the
    newest turn holds no message, is a segment of its own (:data:`GENERATION`)."""
    count = len(source.messages)
    pieces: list[Piece] = []
    for index in range(first, count):
        start = bounds[index]
        end = len(text) if index == count - 1 and source.history < count else bounds[index + 1]
        opens = located[index].start
        pieces.append(
            Piece(
                source.segment_name(index),
                source.stability(index),
                str(source.messages[index]["role"]),
                text[start:end],
                start,
                opens if opens is not None and start <= opens <= end else start,
            )
        )
    if source.history >= count:
        end = bounds[count]
        pieces.append(Piece(GENERATION, Stability.REQUEST, None, text[end:], end, end))
    return pieces


def tokenize(
    tokenizer: Tokenizer,
    pieces: Sequence[Piece],
    *,
    start: StablePrefix | None = None,
    leading_special: bool = False,
) -> StablePrefix:
    """Tokenize pieces one after another, each boundary checked, after ``start`` (a cached stable
    prefix) or from nothing. The ids are the whole text's; the chain says where pieces end.
    ``leading_special`` puts e.g. a BOS before the first text (plain templates)."""
    chain = start or StablePrefix(Encoded("", (), ()), (), ())
    for piece in pieces:
        lead = leading_special and not chain.encoded.text  # nothing before it: it opens
        chain = chain.extended(tokenizer, piece.text, leading_special=lead)
    return chain


def dedupe_bos(encoded: Encoded, bos: int | None) -> tuple[int, ...]:
    """The ids without a doubled BOS (the tokenizer's and the chat template's own)."""
    ids = encoded.ids
    if bos is not None and len(ids) >= 2 and ids[0] == bos and ids[1] == bos:
        return ids[1:]
    return ids


def boundaries(pieces: Sequence[Piece], moved: Sequence[int]) -> tuple[Boundary, ...]:
    """Each boundary between pieces, with the tokens that merged across it."""
    return tuple(Boundary(pieces[i - 1].name, moved[i]) for i in range(1, len(pieces)))


def spans(
    pieces: Sequence[Piece], ends: Sequence[int], text_length: int, *, shift: int
) -> tuple[SegmentSpan, ...]:
    """Spans of consecutive pieces; ``shift`` moves the chain's token positions into the prompt
    (minus a deduplicated BOS, plus the ids an extended prompt starts with)."""
    out: list[SegmentSpan] = []
    token_start = max(0, shift)
    for index, piece in enumerate(pieces):
        char_end = pieces[index + 1].char_start if index + 1 < len(pieces) else text_length
        token_end = max(token_start, ends[index] + shift)
        out.append(
            SegmentSpan(
                name=piece.name,
                stability=piece.stability,
                role=piece.role,
                char_start=piece.char_start,
                char_end=char_end,
                token_start=token_start,
                token_end=token_end,
                text_start=piece.text_start,
            )
        )
        token_start = token_end
    return tuple(out)
