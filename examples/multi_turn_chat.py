"""A multi-turn chat that stays append-only: every turn hits the whole previous turn.

Run: ``.venv/bin/python examples/multi_turn_chat.py``. Each prompt is the previous prompt's ids,
the reply's ids exactly as generated, then the new message. A side call (a summary) reuses the
whole conversation without changing it. ``max_prompt_tokens`` makes the history compact once in
one step (whole turns dropped, system prompt kept) instead of sliding every turn.
"""

from __future__ import annotations

from _report import example_client, print_report

from promptkit import Client, Conversation, SamplingSettings

SYSTEM = (
    "You are the help desk of Velora, a city bike-sharing service. Plans: day pass 6 euros, "
    "monthly 15 euros, yearly 120 euros (students 60). E-bikes cost 10 cents a minute extra. "
    "Rides over 45 minutes cost 1 euro per extra 15 minutes. Answer in one short sentence."
)
TURNS = [
    "Hi! Which plan is cheapest for a week of riding?",
    "And if I stay for two months?",
    "Do e-bikes cost extra?",
    "What if my ride takes an hour?",
    "I am a student. Does that change anything?",
    "Great, thanks. Can I cancel later?",
]


def main(client: Client | None = None) -> None:
    reply = SamplingSettings(max_tokens=32)
    with example_client(client) as client:
        chat = Conversation(
            client, system=SYSTEM, max_prompt_tokens=256, compact_to=0.6, name="help-desk"
        )
        for message in TURNS[:3]:
            print(f"user: {message}\nbot:  {chat.say(message, sampling=reply).text.strip()}")
        summary = chat.side_call("Summarize the user's needs in one sentence.", sampling=reply)
        print(f"(side call, history unchanged) summary: {summary.text.strip()}")
        for message in TURNS[3:]:
            print(f"user: {message}\nbot:  {chat.say(message, sampling=reply).text.strip()}")
        print(f"compactions: {chat.compactions}, messages kept: {len(chat.messages)}")
        print_report(client, title="multi_turn_chat: six turns and a side call")


if __name__ == "__main__":  # vLLM spawns worker processes
    main()
