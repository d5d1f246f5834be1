"""The block-hash chain and the mirror: continuing a chain equals computing it whole."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from promptkit import PrefixCacheMirror
from promptkit._built_prompt import block_hashes

ids_strategy = st.lists(st.integers(min_value=0, max_value=50_000), max_size=200).map(tuple)


@given(
    ids=ids_strategy,
    cut=st.integers(min_value=0, max_value=200),
    salt=st.sampled_from([None, "tenant"]),
)
def test_continuing_a_chain_from_known_hashes_equals_the_whole_chain(
    ids: tuple[int, ...], cut: int, salt: str | None
) -> None:
    known = block_hashes(ids[:cut], 32, salt=salt)
    assert block_hashes(ids, 32, salt=salt, known=known) == block_hashes(ids, 32, salt=salt)


@given(prompt=ids_strategy, output=ids_strategy)
def test_record_with_the_prompts_hashes_remembers_the_same_blocks(
    prompt: tuple[int, ...], output: tuple[int, ...]
) -> None:
    fresh, reused = PrefixCacheMirror(block_size=32), PrefixCacheMirror(block_size=32)
    expected, hashes = reused.lookup(prompt)
    assert expected == 0 == fresh.expected_cached(prompt)
    fresh.record(prompt, output)
    reused.record(prompt, output, prompt_hashes=hashes)
    probe = prompt + output
    assert fresh.expected_cached(probe) == reused.expected_cached(probe)
    assert len(fresh) == len(reused)
