"""Boundary safety with the real tokenizer: extending a cached prefix equals tokenizing it whole."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptkit import Tokenizer

atoms = st.sampled_from(
    [*"ab xyz019.,:;!?-_\n\t ", "é", "ß", "你", "<|im_end|>", "  ", "\n\n", " word", "Hello"]
)
pieces = st.lists(atoms, max_size=24).map("".join)


@settings(
    max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(head=pieces, tail=pieces)
def test_extend_equals_whole_tokenization_or_reports_the_move(
    tokenizer: Tokenizer, head: str, tail: str
) -> None:
    base = tokenizer.encode(head)
    ext = tokenizer.extend(base, tail)
    whole = tokenizer.encode(head + tail)
    assert ext.encoded.ids == whole.ids
    assert ext.encoded.text == head + tail
    kept = len(base.ids) - ext.moved_tokens
    assert base.ids[:kept] == whole.ids[:kept]
    if ext.moved_tokens == 0:
        assert whole.ids[: len(base.ids)] == base.ids


def test_merge_across_boundary_is_reported(tokenizer: Tokenizer) -> None:
    base = tokenizer.encode("fulfill the following paragraph: ")
    ext = tokenizer.extend(base, "Hello, my name is")
    assert ext.moved_tokens >= 1
    assert (
        ext.encoded.ids
        == tokenizer.encode("fulfill the following paragraph: Hello, my name is").ids
    )


def test_long_prefix_uses_the_window_not_a_full_pass(tokenizer: Tokenizer) -> None:
    base = tokenizer.encode("word " * 2000 + "end.\n")
    ext = tokenizer.extend(base, "Question: why?")
    assert ext.checked == "window" and ext.moved_tokens == 0


def test_stable_prefix_cache_hits(tokenizer: Tokenizer) -> None:
    pieces_ = ["System text.\n", "Document body.\n"]
    hits = tokenizer.cache_hits
    first = tokenizer.encode_stable(pieces_)
    second = tokenizer.encode_stable(pieces_)
    assert second is first and tokenizer.cache_hits == hits + 1
    extended = tokenizer.encode_stable([*pieces_, "More.\n"])
    assert extended.encoded.ids[: len(first.encoded.ids)] == first.encoded.ids
    assert extended.ends[:2] == first.ends


def test_fingerprint_is_stable_and_tokenizer_specific(
    tokenizer: Tokenizer, model_dir: Path, tmp_path: Path
) -> None:
    # Stable: an independent load of the same files gives the same value.
    assert Tokenizer.from_dir(model_dir).fingerprint == tokenizer.fingerprint
    assert len(tokenizer.fingerprint) == 16
    # Specific: the same tokenizer with one merge rule removed is a different tokenizer.
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):
        shutil.copy(model_dir / name, tmp_path / name)
    spec = json.loads((tmp_path / "tokenizer.json").read_text())
    spec["model"]["merges"] = spec["model"]["merges"][:-1]
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    changed = Tokenizer.from_dir(tmp_path)
    assert changed.fingerprint != tokenizer.fingerprint
