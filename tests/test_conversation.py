"""Multi-turn conversations, agents, RAG and fan-out (issue: workflows).

The engine-free tests run a conversation on :class:`FunctionEngine` driven by the prefix-cache
simulator (``tests/prefix_cache_fake.py``) with the real tokenizer: spans, drift, tools. Those
that take the ``client`` fixture run on the real engine (``-m engine``).
"""

from __future__ import annotations

import itertools

import pytest

from engine_adapter import SamplingSettings
from promptkit import ChatTemplate, Client, Stability, Tokenizer, Verdict, load_template
from promptkit._conversation import Conversation, ConversationWarning
from promptkit._source import ChatSource
from tests.prefix_cache_fake import SimulatedPrefixCache

REPLY = SamplingSettings(max_tokens=24)
SYSTEM = (
    "You are a friendly assistant for a small bakery. You know the menu: sourdough, rye, "
    "croissants, cinnamon rolls and seasonal fruit tarts. Keep answers to one sentence."
)


def test_ten_turns_each_hit_the_whole_previous_turn(client: Client) -> None:
    chat = Conversation(client, system=SYSTEM)
    questions = [
        "Hi! What bread do you have?",
        "Is the rye bread sour?",
        "Do you bake croissants daily?",
        "What is in a cinnamon roll?",
        "Which tarts are in season?",
        "Can I order a cake?",
        "Do you open on Sundays?",
        "Is there anything vegan?",
        "How much is a sourdough loaf?",
        "Thanks, see you tomorrow!",
    ]
    previous = None
    for turn, question in enumerate(questions):
        out = chat.say(question, sampling=REPLY)
        record = out.record
        if previous is None:
            assert record.verdict is Verdict.MISS
        else:
            # The previous prompt, its reply and the new message: all ids extend the last turn.
            prompt_before, reply_ids = previous
            assert (
                out.prompt.token_ids[: len(prompt_before) + len(reply_ids)]
                == prompt_before + reply_ids
            )
            floor = len(prompt_before) // 32 * 32
            assert record.cached_tokens == record.expected_cached_tokens >= floor, turn
            assert record.verdict is Verdict.HIT, (turn, record)
        previous = (out.prompt.token_ids, out.token_ids)
    assert client.summary().counters_match is True


def test_side_call_reuses_the_conversation_prefix(client: Client) -> None:
    chat = Conversation(client, system=SYSTEM)
    chat.say("What bread do you have?", sampling=REPLY)
    chat.say("And pastries?", sampling=REPLY)
    before = list(chat.messages)
    side = chat.side_call("Summarize this conversation in five words.", sampling=REPLY)
    assert chat.messages == before
    assert side.record.cached_tokens == side.record.expected_cached_tokens > 0
    nxt = chat.say("Do you have rye?", sampling=REPLY)
    assert nxt.record.verdict is Verdict.HIT


def test_compaction_moves_the_prefix_rarely(client: Client) -> None:
    chat = Conversation(client, system=SYSTEM, max_prompt_tokens=320, compact_to=0.5)
    verdicts = [
        chat.say(f"Tell me fact number {i} about bread.", sampling=REPLY).record for i in range(12)
    ]
    assert chat.compactions >= 1
    # Real spans: the system prompt, each message of the history, the newest turn.
    assert all(r.segments[0].name == "system" for r in verdicts)
    assert all(r.segments[-1].stability == "request" for r in verdicts)
    assert max(len(r.segments) for r in verdicts) > 3
    assert all(r.prompt_tokens <= 320 for r in verdicts)
    # After each compaction the static head still hits; between compactions whole turns hit.
    assert all((r.cached_tokens or 0) > 0 for r in verdicts[1:])
    assert (
        sum(r.verdict is Verdict.HIT for r in verdicts) >= len(verdicts) - 1 - 2 * chat.compactions
    )


def test_fan_out_prefills_once_then_every_variant_hits(client: Client) -> None:
    template = load_template("long_doc_qa")
    doc = "The bakery opens at seven. Sourdough is baked at five every morning. " * 10
    prompts = [
        client.build(template, {"title": "Bakery", "document": doc, "question": q})
        for q in ("When does it open?", "When is sourdough baked?", "Is it open on Monday?")
    ]
    outs = client.fan_out(prompts, sampling=SamplingSettings(max_tokens=8))
    assert [o.record.verdict for o in outs] == [Verdict.HIT] * 3
    # Prompt 0 is the warm-up's own prompt: it hits beyond the stable prefix, as expected.
    assert all(o.record.cached_tokens == o.record.expected_cached_tokens for o in outs)
    assert all((o.record.cached_tokens or 0) >= o.prompt.cacheable_tokens for o in outs)


# -- engine-free: FunctionEngine and the prefix-cache simulator --------------------------------

REPLY_TEXT = " The bakery opens at seven, bakes sourdough at five and closes at six every day."
LONG_SYSTEM = (
    SYSTEM
    + " "
    + " ".join(
        f"Rule {i}: answer politely, never invent prices, and mention the daily specials."
        for i in range(6)
    )
)


@pytest.fixture()
def chat_client(tokenizer: Tokenizer) -> Client:
    """A client whose engine answers REPLY_TEXT with its ids (and EOS), caching as vLLM does."""
    ids = (*tokenizer.encode(REPLY_TEXT).ids, tokenizer.eos_token_id)
    cache = SimulatedPrefixCache(answer=REPLY_TEXT, answer_ids=ids)
    return Client(engine=cache.engine(), tokenizer=tokenizer)


def test_every_turn_extends_the_last_and_hits_without_an_engine(chat_client: Client) -> None:
    chat = Conversation(chat_client, system=LONG_SYSTEM)
    outs = [chat.say(q) for q in ("Hi!", "When do you open?", "And on Sundays?", "Thanks!")]
    for before, after in itertools.pairwise(outs):
        sent = before.prompt.token_ids + before.token_ids
        assert after.prompt.token_ids[: len(sent)] == sent
        assert after.prompt.stable_tokens == len(sent)
    verdicts = [o.record.verdict for o in outs]
    assert verdicts[0] is Verdict.MISS and Verdict.DRIFT not in verdicts
    assert all(v in (Verdict.HIT, Verdict.PARTIAL) for v in verdicts[1:])
    assert all(o.record.cached_tokens == o.record.expected_cached_tokens for o in outs)


def test_a_conversation_prompt_has_real_spans(chat_client: Client, tokenizer: Tokenizer) -> None:
    chat = Conversation(chat_client, system=SYSTEM)
    chat.say("Hi! What bread do you have?")
    prompt = chat.build([{"role": "user", "content": "Is the rye sour?"}])
    names = [s.name for s in prompt.segments]
    assert names == ["system", "message 1", "message 2", "message 3"]
    assert [s.stability for s in prompt.segments] == [
        Stability.STATIC,
        Stability.TURN,
        Stability.TURN,
        Stability.REQUEST,
    ]
    assert [s.role for s in prompt.segments] == ["system", "user", "assistant", "user"]
    spans = prompt.segments
    assert spans[0].token_start == 0 and spans[-1].token_end == prompt.total_tokens
    assert all(a.token_end == b.token_start for a, b in itertools.pairwise(spans))
    assert all(a.char_end == b.char_start for a, b in itertools.pairwise(spans))
    # Each segment's own text starts with its message, found by markers, not by searching.
    for span, content in zip(
        spans, [SYSTEM, "Hi! What bread do you have?", REPLY_TEXT, "Is the rye sour?"], strict=True
    ):
        assert prompt.text[span.text_start :].startswith(content)
        decoded = tokenizer.decode(prompt.token_ids[span.token_start : span.token_end])
        assert content.strip() in decoded
    # History is stable up to the reply's last id; the new turn starts after it.
    assert prompt.stable_tokens == spans[2].token_end == spans[3].token_start
    assert isinstance(prompt.source, ChatSource) and prompt.source.history == 3


def test_a_system_prompt_edited_between_turns_is_drift_naming_it(chat_client: Client) -> None:
    chat = Conversation(chat_client, system="Today is 2026-11-20. " + LONG_SYSTEM)
    chat.say("Hi!")
    chat.messages[0]["content"] = "Today is 2026-11-21. " + LONG_SYSTEM
    out = chat.say("When do you open?")
    assert out.record.verdict is Verdict.DRIFT
    explanation = out.record.explanation
    assert explanation is not None
    assert explanation.cause == "volatile value in a stable segment"
    assert (explanation.segment, explanation.variable) == ("system", "system")
    assert explanation.template_file == f"<{chat.name}>" and explanation.compared_with == 1
    assert "2026-11-21" in (explanation.diff or "")


# The model's template, except that the newest user message is marked: every turn re-renders the
# previous user message without the mark, so history moves under the reply that follows it.
MARKS_LATEST = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}"
    "{% if loop.last and message['role'] == 'user' %} (latest){% endif %}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_a_chat_template_that_re_renders_history_is_drift(
    chat_client: Client, tokenizer: Tokenizer
) -> None:
    special = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}
    chat = Conversation(
        chat_client,
        system=LONG_SYSTEM,
        chat_template=ChatTemplate(MARKS_LATEST, special_tokens=special),
    )
    chat.say("Hi! Please tell me everything about the sourdough, the rye and the croissants.")
    with pytest.warns(ConversationWarning, match="re-rendered earlier turns differently"):
        out = chat.say("When do you open?")
    assert out.record.verdict is Verdict.DRIFT
    explanation = out.record.explanation
    assert explanation is not None
    assert explanation.cause == "unstable rendering with equal variables"
    assert explanation.segment == "message 1" and explanation.compared_with == 1
    assert "latest" in (explanation.theirs or "") and "latest" not in (explanation.ours or "")


def test_tools_without_a_slot_reach_the_system_prompt_in_one_format(
    chat_client: Client, tokenizer: Tokenizer
) -> None:
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return city

    chat = Conversation(chat_client, system=SYSTEM, tools=[get_weather])
    prompt = chat.build([{"role": "user", "content": "Weather in Paris?"}])
    system = prompt.text[prompt.segments[0].text_start : prompt.segments[0].char_end]
    assert system.startswith(SYSTEM + "\n\nAvailable tools:\n{")
    assert '"name": "get_weather"' in system
    assert prompt.segments[0].stability is Stability.STATIC
    # Without a system prompt the tools open the chat in a system message of their own.
    bare = Conversation(chat_client, tools=[get_weather]).build([{"role": "user", "content": "?"}])
    assert bare.text.startswith("<|im_start|>system\nAvailable tools:\n{")
    assert bare.segments[0].name == "system" and bare.stable_tokens > 0
