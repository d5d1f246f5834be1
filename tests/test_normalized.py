"""The builder's memo of normalized stable text: same result as normalizing, and bounded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from promptkit._canonical import normalize_text
from promptkit._normalized import NormalizedTexts


@given(texts=st.lists(st.text(alphabet=" \t\r\nabcé\u0301", max_size=30), max_size=20))
def test_a_remembered_text_normalizes_as_normalize_text_does(texts: list[str]) -> None:
    memo = NormalizedTexts(max_chars=50)
    for text in texts + texts:
        assert memo(text) == normalize_text(text)


def test_the_memo_is_bounded_by_characters_least_recent_first() -> None:
    memo = NormalizedTexts(max_chars=10)
    for text in ("aaaa \n", "bbbb \n", "cccc \n"):
        memo(text)
    assert memo._chars <= 10
    assert list(memo._texts) == ["cccc \n"]
    memo("x" * 11)  # larger than the bound: normalized, never remembered
    assert "x" * 11 not in memo._texts
