"""Stateless callers (the whole history with every request) hit like a Conversation: on the real
engine, and engine-free with the prefix-cache simulator (issue 12)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage

from engine_adapter import SamplingSettings
from promptkit import Client, ConversationError, StatelessChat, Tokenizer, Verdict
from promptkit.integrations.langchain import ChatPromptkit
from tests.prefix_cache_fake import SimulatedPrefixCache

SYSTEM = (
    "You are the help desk of a bicycle rental shop in Lyon. Answer in one short sentence. "
    "Opening hours are 9:00 to 19:00, every day. A day costs 15 euros, a week 60 euros."
)
EDITED = 4  # the app post-processes the reply of this turn before showing it


def stateless_loop(chat: StatelessChat, turns: int = 10) -> list[Any]:
    """A web handler's view: each request rebuilds the history from plain JSON."""
    stored = json.dumps([{"role": "system", "content": SYSTEM}])
    generations = []
    for turn in range(turns):
        history = json.loads(stored)
        history.append({"role": "user", "content": f"Question {turn}: can I rent a bike today?"})
        generation = chat.reply(history, sampling=SamplingSettings(max_tokens=12))
        shown = generation.text if turn != EDITED else generation.text.strip().upper() + " :)"
        history.append({"role": "assistant", "content": shown})
        stored = json.dumps(history)
        generations.append(generation)
    return generations


def check_every_prefix_hit(generations: list[Any], block_size: int = 32) -> None:
    records = [g.record for g in generations]
    for turn in range(1, len(records)):
        before = records[turn - 1]
        record = records[turn]
        assert record.cached_tokens is not None
        # Each prompt extends the previous one token for token: all its full blocks hit, and,
        # unless the app edited the reply in between, the reply's too.
        assert record.cached_tokens >= before.prompt_tokens // block_size * block_size
        if turn != EDITED + 1:
            whole = before.prompt_tokens + len(generations[turn - 1].token_ids) - 1
            assert record.cached_tokens >= min(whole, record.prompt_tokens - 1) // 32 * 32
            # PARTIAL only when the reply's last token (never fed back, so never cached) closes
            # a block: the count is still what the client expected.
            assert record.verdict in (Verdict.HIT, Verdict.PARTIAL), (turn, record.verdict)
            assert record.cached_tokens >= record.expected_cached_tokens
            assert record.note is not None and record.note.startswith("continues request")
    note = records[EDITED + 1].note
    assert note is not None and "edited by the app" in note
    assert records[0].note is None


@pytest.mark.engine
def test_ten_stateless_turns_with_an_edited_reply_hit_like_a_conversation(client: Client) -> None:
    generations = stateless_loop(StatelessChat(client, name="help-desk"))
    check_every_prefix_hit(generations)
    assert {g.record.template for g in generations} == {"help-desk"}
    assert client.summary().counters_match is True


def test_stateless_turns_hit_on_the_simulated_cache(tokenizer: Tokenizer) -> None:
    answer = " Yes, we are open from 9:00 to 19:00 every day."
    cache = SimulatedPrefixCache(answer=answer, answer_ids=tuple(tokenizer.encode(answer).ids))
    client = Client(engine=cache.engine(), tokenizer=tokenizer)
    check_every_prefix_hit(stateless_loop(StatelessChat(client)))


def test_the_session_index_is_bounded_and_forgets_the_oldest(tokenizer: Tokenizer) -> None:
    cache = SimulatedPrefixCache(answer=" Yes.", answer_ids=tuple(tokenizer.encode(" Yes.").ids))
    chat = StatelessChat(Client(engine=cache.engine(), tokenizer=tokenizer), max_turns=3)
    histories = [[{"role": "user", "content": f"Hi {i}"}] for i in range(5)]
    for history in histories:
        chat.reply(history)
    assert len(chat) == 3
    # The oldest conversation was forgotten: its next turn is built whole, and says so.
    old = chat.prompt([*histories[0], {"role": "assistant", "content": " Yes."}])
    assert old.note == "no earlier request of this chat is a prefix of this history"
    new = chat.prompt([*histories[4], {"role": "assistant", "content": " Yes."}])
    assert new.note is not None and new.note.startswith("continues request 5 ")
    with pytest.raises(ConversationError, match="string 'role'"):
        chat.prompt([{"role": "user"}])


@pytest.mark.engine
def test_langchain_streams_tokens_as_they_arrive(client: Client) -> None:
    model = ChatPromptkit(client=client, max_tokens=16)
    messages = [SystemMessage(SYSTEM), HumanMessage("Can I rent a bike for a week?")]
    chunks = list(model.stream(messages))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    texts = [c.content for c in chunks[:-1]]
    assert len([t for t in texts if t]) > 1  # more than one piece: really streamed
    last = chunks[-1]
    assert last.usage_metadata is not None
    assert last.usage_metadata["input_tokens"] == client.records[-1].prompt_tokens
    details = last.usage_metadata.get("input_token_details", {})
    assert details.get("cache_read") == client.records[-1].cached_tokens
    assert "".join(map(str, texts)) == client.records[-1].text
    assert len(client.records) == 1


@pytest.mark.engine
def test_forced_tool_call_is_valid_and_leaves_the_prefix_cached(client: Client) -> None:
    from langchain_core.tools import tool

    @tool
    def book_bike(days: int, city: str) -> str:
        """Book a rental bike."""
        return "booked"

    model = ChatPromptkit(client=client, max_tokens=48)
    messages = [SystemMessage(SYSTEM), HumanMessage("I want a bike for 3 days in Lyon.")]
    free = model.bind_tools([book_bike]).invoke(messages)
    forced = model.bind_tools([book_bike], tool_choice="book_bike").invoke(messages)
    assert forced.tool_calls and forced.tool_calls[0]["name"] == "book_bike"  # type: ignore[attr-defined]
    assert set(forced.tool_calls[0]["args"]) == {"days", "city"}  # type: ignore[attr-defined]
    first, second = client.records
    assert free is not None and first.prompt_tokens == second.prompt_tokens
    assert second.cached_tokens == second.expected_cached_tokens > 0
    assert second.verdict is Verdict.HIT
