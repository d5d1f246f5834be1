"""Build prompts: one builder for templates and for conversations.

Template mode (:meth:`PromptBuilder.build`) renders a template (Jinja, microseconds), normalizes
stable segments, renders the chat template when segments carry roles, looks the stable prefix up
in the tokenizer's cache (one hash of its text) and tokenizes only the volatile tail, checking
every boundary.

Chat mode builds a conversation's prompts from messages, one segment per message.
:meth:`PromptBuilder.build_chat` builds one whole; :meth:`PromptBuilder.extend` continues a built
prompt: its ids, then the ids the model generated exactly as it generated them (never re-tokenized
from text: the model may emit a token sequence that tokenizing its text would not reproduce, and
the engine has cached those blocks), then the chat template's closing scaffolding and the new
messages, tokenized on their own. The chat template must reproduce the previous prompt and the
reply as a prefix; one that re-renders history differently (e.g. drops the reasoning of earlier
turns) gets a :class:`ConversationWarning` with the position, and the prompt is built whole.

Both modes place chat segment boundaries by markers (:meth:`ChatTemplate.render_located`),
tokenize pieces through one boundary-checked chain (:class:`~promptkit._tokenization.StablePrefix`)
and put tools where :func:`promptkit._tools.tools_into_messages` says.
"""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from promptkit import _placement as placement
from promptkit._built_prompt import Boundary, BuiltPrompt, SegmentSpan
from promptkit._chat_template import DEFAULT_PINNED_DATE, ChatTemplate, Located, Message
from promptkit._control_tokens import ControlTokenPolicy, ControlTokens
from promptkit._normalized import NormalizedTexts
from promptkit._placement import Piece
from promptkit._segments import SegmentSpec
from promptkit._source import ChatSource, PromptSource, continued
from promptkit._templating.prompt_template import PromptTemplate, RenderedSegment
from promptkit._tokenization import StablePrefix, Tokenizer, common_prefix
from promptkit._tools import tools_into_messages
from promptkit.errors import ArgumentError, BoundaryError, ConversationError, TokenizationError

__all__ = ["ConversationWarning", "PromptBuilder"]

log = logging.getLogger(__name__)


class ConversationWarning(UserWarning):
    """The chat template re-rendered history differently: prefix caching is lost from there."""


class PromptBuilder:
    """Turns templates and variables, or chat messages, into :class:`BuiltPrompt`s.

    Args:
        tokenizer: the model's tokenizer.
        block_size: the engine's KV block size (read it from the engine: ``engine.block_size``).
        normalize: normalize stable segments' text (LF, no trailing blanks, NFC).
        pinned_date: the date chat templates with a clock see.
        strict_boundaries: raise :class:`BoundaryError` when tokens merge across a segment
            boundary, instead of moving the boundary and logging a warning (use it in tests/CI).
        control_tokens: what values holding the model's control-token text become:
            ``"escape"`` (default), ``"reject"`` or ``"allow"`` (:mod:`promptkit._control_tokens`).
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        block_size: int,
        normalize: bool = True,
        pinned_date: dt.date = DEFAULT_PINNED_DATE,
        strict_boundaries: bool = False,
        control_tokens: ControlTokenPolicy = "escape",
    ) -> None:
        if block_size <= 0:
            raise ValueError("block_size must be positive")
        self.controls = ControlTokens(tokenizer.control_texts, policy=control_tokens)
        self.tokenizer = tokenizer
        self.block_size = block_size
        self.normalize = normalize
        self.pinned_date = pinned_date
        self.strict_boundaries = strict_boundaries
        self._chat: ChatTemplate | None = None
        self._warned: set[tuple[str, str]] = set()
        self._normalize_text = NormalizedTexts()

    @property
    def chat_template(self) -> ChatTemplate:
        """The model's chat template (compiled on first use)."""
        if self._chat is None:
            self._chat = ChatTemplate.from_tokenizer(
                self.tokenizer.hf, pinned_date=self.pinned_date
            )
        return self._chat

    # -- template mode --------------------------------------------------------------------

    def build(
        self,
        template: PromptTemplate,
        variables: Mapping[str, Any],
        *,
        tools: Sequence[Any] | None = None,
    ) -> BuiltPrompt:
        """Render, tokenize and account for one prompt."""
        if not isinstance(template, PromptTemplate):
            hint = f"client.template({template!r})" if isinstance(template, str) else "a template"
            raise ArgumentError(
                f"expected a PromptTemplate, got {type(template).__name__}: load it first with "
                f"{hint} (or PromptTemplate.from_string)"
            )
        if not isinstance(variables, Mapping):
            raise ArgumentError(
                f"{template.filename}: variables must be a mapping (a dict of the template's "
                f"variables), got {type(variables).__name__}; pass {{}} when it takes none"
            )
        variables, flagged = self.controls.apply(variables, template=template.filename)
        rendered = template.render(variables)
        prompt = self.build_rendered(template, rendered, variables, tools=tools)
        return self._flagged(prompt, flagged)

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
            text, pieces = self._role_pieces(specs, texts, tools)
            leading_special = False
        else:
            if tools:
                raise TokenizationError(
                    f"{template.filename}: tools= needs a chat template (segments with role=); "
                    "for plain templates render tools with {{ tools | tojson }}"
                )
            text = "".join(texts)
            pieces = placement.plain_pieces(specs, texts)
            leading_special = True
        stable = [p.text for p in pieces if p.stability.is_stable]
        prefix = self.tokenizer.encode_stable(stable, leading_special=leading_special)
        chain = placement.tokenize(
            self.tokenizer, pieces[len(stable) :], start=prefix, leading_special=leading_special
        )
        # Tokens that merged into the first volatile piece leave the stable prefix.
        merged = chain.moved[len(stable)] if len(pieces) > len(stable) else 0
        prompt = self._prompt(
            template,
            text=text,
            pieces=pieces,
            chain=chain,
            stable_tokens=len(prefix.encoded.ids) - merged,
            chat=self.chat_template if template.is_chat else None,
            variables=variables,
        )
        self._report_moves(template, prompt.boundaries)
        return prompt

    def _role_pieces(
        self, specs: list[SegmentSpec], texts: list[str], tools: Sequence[Any] | None
    ) -> tuple[str, list[Piece]]:
        """A role template's segments as chat messages (consecutive roles merged), placed."""
        messages: list[dict[str, str]] = []
        members: list[list[int]] = []
        for index, spec in enumerate(specs):
            if messages and messages[-1]["role"] == spec.role:
                messages[-1]["content"] += texts[index]
                members[-1].append(index)
            else:
                messages.append({"role": str(spec.role), "content": texts[index]})
                members.append([index])
        listed, slot = self._tools_into(self.chat_template, messages, tools)
        opening: list[list[str]] = [[]] * (len(listed) - len(messages))  # the tools' own message
        pieces_of = [*opening, *([texts[i] for i in m] for m in members)]
        text, located = self.chat_template.render_located(listed, pieces_of, tools=slot)
        starts = [loc.start for loc in located]
        if None in starts:
            raise TokenizationError(
                "the chat template changes message content beyond stripping it, so segment "
                f"boundaries cannot be placed (role {specs[starts.index(None)].role!r})"
            )
        return text, placement.role_pieces(specs, text, [int(s or 0) for s in starts])

    # -- chat mode --------------------------------------------------------------------------

    def build_chat(
        self,
        messages: Sequence[Message],
        *,
        name: str,
        key: str,
        history: int,
        tools: Sequence[Any] | None = None,
        chat_template: ChatTemplate | None = None,
    ) -> BuiltPrompt:
        """A conversation's prompt, built whole: ``messages[:history]`` are its history.

        ``key`` names the drift history the prompt joins (see :class:`ChatSource`).
        """
        chat = chat_template or self.chat_template
        messages, flagged = self.controls.messages(messages)
        listed, slot = self._tools_into(chat, messages, tools)
        inserted = len(listed) - len(messages)  # a system message that holds only the tools
        source = ChatSource(
            name=name,
            key=key,
            chat=chat,
            messages=tuple(listed),
            tools=tuple(slot or ()),
            history=history + inserted,
        )
        prompt = self._whole_chat(source, *placement.locate_messages(source))
        return self._flagged(prompt, flagged)

    def extend(
        self,
        prompt: BuiltPrompt,
        *,
        generated_ids: Sequence[int],
        generated_text: str,
        messages: Sequence[Message] = (),
    ) -> BuiltPrompt:
        """The next turn of a conversation prompt: its ids, the reply's ids, the new messages."""
        before = continued(prompt, generated_ids=generated_ids, generated_text=generated_text)
        if not isinstance(before.source, ChatSource):
            raise ConversationError(
                f"{prompt.template_file}: only a conversation's prompt can be extended; build "
                "the next prompt from the template instead"
            )
        checked, flagged = self.controls.messages(messages)
        source = before.source.then(checked)
        text, located = placement.locate_messages(source)
        if not text.startswith(before.text):
            position = common_prefix(text, before.text)
            warnings.warn(
                f"{source.name}: the chat template re-rendered earlier turns differently at "
                f"character {position} ({before.text[position : position + 30]!r} became "
                f"{text[position : position + 30]!r}); prefix caching is lost from there. Pass "
                "chat_template= with a template that keeps history verbatim (see "
                "promptkit._conversation)",
                ConversationWarning,
                stacklevel=3,
            )
            whole = self._whole_chat(source, text, located)
            return self._flagged(whole, flagged)
        base, start = before.token_ids, len(before.text)
        if generated_ids and generated_ids[-1] == self.tokenizer.eos_token_id:
            eos = source.chat.special_tokens.get("eos_token")
            if eos and text.startswith(eos, start):  # the ids hold it already
                start += len(eos)
            else:  # the template closes turns with another token: the text has no EOS
                base = base[:-1]
        first = len(before.source.messages)
        bounds = placement.message_bounds(located, first, start)
        pieces = placement.message_pieces(source, text, located, bounds, first)
        chain = placement.tokenize(self.tokenizer, pieces)
        *history, reply = before.segments
        prompt = self._prompt(
            source,
            text=text,
            pieces=pieces,
            chain=chain,
            stable_tokens=len(base),
            chat=source.chat,
            variables=source.values(),
            base=base,
            history=(*history, replace(reply, char_end=start, token_end=len(base))),
            history_boundaries=before.boundaries,
        )
        return self._flagged(prompt, flagged)

    def _whole_chat(self, source: ChatSource, text: str, located: list[Located]) -> BuiltPrompt:
        bounds = placement.message_bounds(located, 0, 0)
        history = source.history
        if history > 0:
            # History ends where the chat template closes its last message, before the next
            # one's header (whose role is not known in advance), when rendering it alone says so.
            head = source.chat.render(
                source.messages[:history], add_generation_prompt=False, tools=source.tools or None
            )
            opens = located[history].start if history < len(located) else None
            if (
                text.startswith(head)
                and bounds[history] <= len(head)
                and (opens is None or len(head) <= opens)
            ):
                bounds[history] = len(head)
        pieces = placement.message_pieces(source, text, located, bounds, 0)
        chain = placement.tokenize(self.tokenizer, pieces)
        stable = [p for p in pieces if p.stability.is_stable]
        return self._prompt(
            source,
            text=text,
            pieces=pieces,
            chain=chain,
            stable_tokens=chain.ends[len(stable) - 1] if stable else 0,
            chat=source.chat,
            variables=source.values(),
        )

    # -- shared -----------------------------------------------------------------------------

    def _prompt(
        self,
        source: PromptSource,
        *,
        text: str,
        pieces: Sequence[Piece],
        chain: StablePrefix,
        stable_tokens: int,
        chat: ChatTemplate | None,
        variables: Mapping[str, Any],
        base: tuple[int, ...] = (),
        history: tuple[SegmentSpan, ...] = (),
        history_boundaries: tuple[Boundary, ...] = (),
    ) -> BuiltPrompt:
        """Assemble the prompt; an extended one starts with ``base`` ids and ``history`` spans."""
        if history:
            ids = base + chain.encoded.ids
            shift = len(base)
            joints = (*history_boundaries, Boundary(history[-1].name, 0))
        else:
            ids = placement.dedupe_bos(chain.encoded, self.tokenizer.bos_token_id)
            shift = len(ids) - len(chain.encoded.ids)
            joints = ()
        return BuiltPrompt(
            template=source.name,
            template_file=source.filename,
            text=text,
            token_ids=ids,
            segments=(*history, *placement.spans(pieces, chain.ends, len(text), shift=shift)),
            boundaries=(*joints, *placement.boundaries(pieces, chain.moved)),
            stable_tokens=min(stable_tokens, len(ids)),
            block_size=self.block_size,
            tokenizer_fingerprint=self.tokenizer.fingerprint,
            chat_template_fingerprint=chat.fingerprint if chat is not None else None,
            template_fingerprint=(
                source.chat.fingerprint if isinstance(source, ChatSource) else source.fingerprint
            ),
            source=source,
            variables=variables,
        )

    def _tools_into(
        self, chat: ChatTemplate, messages: Sequence[Message], tools: Sequence[Any] | None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
        slot = "tools" in chat.used_names
        if tools and not slot and ("tools", chat.fingerprint) not in self._warned:
            self._warned.add(("tools", chat.fingerprint))
            log.info(
                "%s has no place for tools: they are appended to the system prompt, one "
                "canonical JSON schema per line",
                chat.name,
            )
        return tools_into_messages(messages, tools, slot=slot)

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
            return self._normalize_text(segment.text)
        return segment.text

    def _flagged(self, prompt: BuiltPrompt, flagged: tuple[str, ...]) -> BuiltPrompt:
        """``prompt`` naming the values that held control-token text, and what became of them."""
        if not flagged:
            return prompt
        return replace(
            prompt, control_token_values=flagged, control_token_policy=self.controls.policy
        )
