"""The chat template: where message content lands, found by markers (no engine, no model)."""

from __future__ import annotations

from promptkit import ChatTemplate

PLAIN = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def test_render_located_finds_every_piece_exactly() -> None:
    chat = ChatTemplate(PLAIN)
    messages = [{"role": "system", "content": "system"}, {"role": "user", "content": "ab\ncd"}]
    text, located = chat.render_located(messages, [["system"], ["ab\n", "cd"]])
    assert text == chat.render(messages)
    assert [(loc.start, loc.end) for loc in located] == [(8, 14), (29, 32), (32, 34)]
    assert text[8:14] == "system" and text[29:34] == "ab\ncd"


def test_a_template_that_trims_content_keeps_the_positions() -> None:
    chat = ChatTemplate(PLAIN.replace("m['content']", "m['content'] | trim"))
    messages = [{"role": "user", "content": "\n  hello\n"}]
    text, [loc] = chat.render_located(messages, [["\n  hello\n"]])
    assert text == "<user>hello</user><assistant>"
    assert (loc.start, loc.end) == (6, 11)


def test_content_the_template_rewrites_or_that_holds_a_marker_is_not_located() -> None:
    split = ChatTemplate(PLAIN.replace("m['content']", "m['content'].split('</think>')[-1]"))
    messages = [{"role": "assistant", "content": "<think>hm</think>Yes."}]
    text, [loc] = split.render_located(messages, [[messages[0]["content"]]])
    assert text == "<assistant>Yes.</assistant><assistant>"
    assert loc.start is None and loc.end == text.index("</assistant>")
    odd = [{"role": "user", "content": "a\x02b"}]
    text, [loc] = ChatTemplate(PLAIN).render_located(odd, [["a\x02b"]])
    assert text == "<user>a\x02b</user><assistant>" and (loc.start, loc.end) == (None, None)
