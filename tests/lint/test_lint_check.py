"""``promptkit check`` with the real tokenizer: token-level rules and the lock file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from promptkit._tokenization import Tokenizer
from promptkit.lint import LintConfig, Report, check_paths
from promptkit.lint.lockfile import read_lock

ROOT = Path(__file__).resolve().parent.parent.parent
DOC = "ACME routers reboot when the blue light blinks. " * 12

CHAT = """{% vars title=session, document=session, question=request %}
{% segment system static role=system %}
You are a careful assistant. Answer questions using only the document the user provides.
{% endsegment %}
{% segment document session role=user %}
Document: {{ title }}

{{ document }}
{% endsegment %}
{% segment question request role=user %}
Question: {{ question }}
{% endsegment %}
"""
SAMPLES = [
    {"title": "Manual", "document": DOC, "question": "Why does it reboot?"},
    {"title": "Manual", "document": DOC, "question": "What colour is the light?"},
]


def _project(tmp_path: Path, source: str = CHAT, samples: Any = SAMPLES) -> Path:
    (tmp_path / "prompts").mkdir(exist_ok=True)
    template = tmp_path / "prompts" / "qa.j2"
    template.write_text(source)
    (tmp_path / "prompts" / "qa.samples.json").write_text(json.dumps(samples))
    return template


def _check(tmp_path: Path, tokenizer: Tokenizer, *, update: bool = False) -> Report:
    config = LintConfig(root=tmp_path, block_size=16)
    return check_paths(
        [tmp_path / "prompts"], config=config, tokenizer=lambda: tokenizer, update=update
    )


def _messages(report: Report) -> list[str]:
    return [f"{f.rule} {f.line} {f.message}" for f in report.active]


def _model_copy(model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "model"
    copy.mkdir()
    for item in model_dir.iterdir():
        if item.is_file() and item.suffix != ".safetensors":
            shutil.copy(item, copy / item.name)
    return copy


def test_unlocked_then_update_then_clean(tmp_path: Path, tokenizer: Tokenizer) -> None:
    _project(tmp_path)
    assert [f.rule for f in _check(tmp_path, tokenizer).active] == ["PK705"]
    assert not _check(tmp_path, tokenizer, update=True).failed
    lock = read_lock(tmp_path / "promptkit.lock")
    entry = lock.templates["prompts/qa.j2"]
    assert entry.chat_template is not None and len(entry.stable_tokens) == 2
    before = (tmp_path / "promptkit.lock").read_bytes()
    assert _messages(_check(tmp_path, tokenizer)) == []  # nothing changed: passes
    _check(tmp_path, tokenizer, update=True)
    assert (tmp_path / "promptkit.lock").read_bytes() == before  # update is deterministic


def test_template_edit_names_first_moved_token_and_line(
    tmp_path: Path, tokenizer: Tokenizer
) -> None:
    template = _project(tmp_path)
    _check(tmp_path, tokenizer, update=True)
    template.write_text(CHAT.replace("Document: {{ title }}", "Doc: {{ title }}"))
    report = _check(tmp_path, tokenizer)
    [finding] = report.active
    assert finding.rule == "PK704" and finding.line == 6
    assert "segment 'document'" in finding.message and "'Document'" in finding.message


def test_chat_template_change_is_caught(
    tmp_path: Path, tokenizer: Tokenizer, model_dir: Path
) -> None:
    _project(tmp_path)
    _check(tmp_path, tokenizer, update=True)
    copy = _model_copy(model_dir, tmp_path)
    chat = (copy / "chat_template.jinja").read_text()
    changed = chat.replace(
        "'<|im_start|>' + message['role'] + '\n'", "'<|im_start|>' + message['role'] + ':\n'"
    )
    assert changed != chat
    (copy / "chat_template.jinja").write_text(changed)
    report = _check(tmp_path, Tokenizer.from_dir(copy))
    messages = _messages(report)
    assert any("chat template changed" in m for m in messages), messages
    assert any("stable prefix moved at token #" in m for m in messages), messages
    assert not any("tokenizer changed" in m for m in messages)


def test_tokenizer_swap_is_caught(tmp_path: Path, tokenizer: Tokenizer, model_dir: Path) -> None:
    _project(tmp_path)
    _check(tmp_path, tokenizer, update=True)
    copy = _model_copy(model_dir, tmp_path)
    data = json.loads((copy / "tokenizer.json").read_text())
    merges = data["model"]["merges"]
    data["model"]["merges"] = merges[1:]  # drop the first (most used) merge
    (copy / "tokenizer.json").write_text(json.dumps(data))
    messages = _messages(_check(tmp_path, Tokenizer.from_dir(copy)))
    assert any("tokenizer changed" in m for m in messages), messages
    assert any("stable prefix moved" in m for m in messages), messages


def test_dict_order_dependence_is_caught(tmp_path: Path, tokenizer: Tokenizer) -> None:
    source = """{% vars settings=deploy, question=request %}
{% segment system static %}
You are a careful assistant. Answer questions using only the settings listed below.
{% endsegment %}
{% segment settings deploy %}
{% for key, value in settings.items() %}
{{ key }} = {{ value }}
{% endfor %}
{% endsegment %}
{% segment question request %}
Question: {{ question }}
{% endsegment %}
"""
    samples = [{"settings": {"alpha": 1, "beta": 2}, "question": "Why?"}]
    _project(tmp_path, source, samples)
    findings = [f for f in _check(tmp_path, tokenizer).active if f.rule == "PK708"]
    assert findings and "moves when dict key order changes: `settings` on line 7" in (
        findings[0].message
    )
    assert findings[0].line == 7  # the {{ key }} expression


def test_random_content_in_a_stable_segment_is_caught(tmp_path: Path, tokenizer: Tokenizer) -> None:
    # Two samples with equal stable values must share the stable prefix; |random breaks that.
    source = CHAT.replace(
        "You are a careful assistant.",
        "You are a careful assistant. {% for _ in range(12) %}{{ 'abcdefghij' | random }}{% endfor %}",
    )
    _project(tmp_path, source, SAMPLES)
    findings = [f for f in _check(tmp_path, tokenizer).active if f.rule == "PK701"]
    assert findings and "renders differently each time" in findings[0].message
    assert findings[0].line in (2, 3)  # the segment (random text cannot be traced further)


def test_conversation_must_be_append_only(tmp_path: Path, tokenizer: Tokenizer) -> None:
    source = """{% vars history=turn, message=request %}
{% segment system static %}
You are a friendly, concise assistant. Keep answers short unless asked for more detail.
{% endsegment %}
{% segment history turn %}{{ history }}{% endsegment %}
{% segment message request %}
User: {{ message }}
Assistant:{% endsegment %}
"""
    good = [
        {"history": "", "message": "Hi"},
        {"history": "User: Hi\nAssistant: Hello!\n", "message": "Bye"},
    ]
    bad = [
        {"history": "", "message": "Hi"},
        {"history": "user: Hi\nAssistant: Hello!\n", "message": "Bye"},
    ]
    _project(tmp_path, source, {"samples": good[:1], "conversations": [good]})
    assert not [f for f in _check(tmp_path, tokenizer).active if f.rule == "PK702"]
    _project(tmp_path, source, {"samples": good[:1], "conversations": [bad]})
    [finding] = [f for f in _check(tmp_path, tokenizer).active if f.rule == "PK702"]
    assert "turn 1 does not extend turn 0" in finding.message and finding.line == 5


def test_merging_boundary_and_short_prefix(tmp_path: Path, tokenizer: Tokenizer) -> None:
    source = """{% vars prompt=request %}
{% segment head static %}
Complete this: {% endsegment %}
{% segment prompt request %}
{{ prompt }}{% endsegment %}
"""
    _project(tmp_path, source, [{"prompt": "the"}, {"prompt": "a"}])
    rules = {f.rule for f in _check(tmp_path, tokenizer).active}
    assert {"PK703", "PK601"} <= rules


def test_missing_samples_and_broken_templates(tmp_path: Path, tokenizer: Tokenizer) -> None:
    template = _project(tmp_path)
    template.with_name("qa.samples.json").unlink()
    # Samples are made from the declared variables: the template is checked, then needs a lock.
    assert [f.rule for f in _check(tmp_path, tokenizer).active] == ["PK705"]
    structured = CHAT.replace("{{ title }}", "{{ title.text }}")
    template.write_text(structured)
    found = _check(tmp_path, tokenizer).active
    assert [f.rule for f in found] == ["PK707"] and "no attribute 'text'" in found[0].message
    _project(tmp_path, CHAT, [{"title": "x", "question": "y"}])
    assert "PK706" in {f.rule for f in _check(tmp_path, tokenizer).active}


@pytest.mark.parametrize(
    "content", ["{", '{"samples": "x"}', "[]", '{"samples": [1]}', '{"conversations": [[{}]]}']
)
def test_bad_samples_file_is_a_config_error(
    tmp_path: Path, tokenizer: Tokenizer, content: str
) -> None:
    from promptkit.errors import LintConfigError

    template = _project(tmp_path)
    template.with_name("qa.samples.json").write_text(content)
    with pytest.raises(LintConfigError):
        _check(tmp_path, tokenizer)


def test_shipped_templates_check_against_a_fresh_lock(tmp_path: Path, tokenizer: Tokenizer) -> None:
    config = LintConfig(root=ROOT, lockfile=tmp_path / "promptkit.lock", block_size=16)
    templates = [ROOT / "templates"]
    check_paths(templates, config=config, tokenizer=lambda: tokenizer, update=True)
    report = check_paths(templates, config=config, tokenizer=lambda: tokenizer)
    assert _messages(report) == []
