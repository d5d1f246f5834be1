"""The metamorphic check's value perturbations: same meaning, another shape."""

from __future__ import annotations

from promptkit.lint._perturb import (
    OtherOrderSet,
    grow,
    reorder_keys,
    reorder_sets,
    reorder_unordered_lists,
    vary,
    vary_request_fields,
)


def test_reorder_keys_is_recursive_and_says_whether_anything_moved() -> None:
    value = {"a": 1, "b": {"x": 1, "y": [{"p": 1, "q": 2}]}}
    out, changed = reorder_keys(value)
    assert changed and out == value
    assert list(out) == ["b", "a"] and list(out["b"]) == ["y", "x"]
    assert list(out["b"]["y"][0]) == ["q", "p"]
    assert reorder_keys({"only": [1, 2]}) == ({"only": [1, 2]}, False)


def test_sets_iterate_in_the_other_order_and_print_like_sets() -> None:
    tags = {"vip", "eu", "beta"}
    out, changed = reorder_sets({"tags": tags})
    assert changed and isinstance(out["tags"], OtherOrderSet)
    assert list(out["tags"]) == list(reversed(list(tags))) and out["tags"] == tags
    assert repr(out["tags"]).startswith("{'") and repr(OtherOrderSet()) == "set()"


def test_only_collections_without_a_meaningful_order_are_reversed() -> None:
    assert reorder_unordered_lists([1, 2], name="tools") == ([2, 1], True)
    assert reorder_unordered_lists([1, 2], name="steps") == ([1, 2], False)
    nested, changed = reorder_unordered_lists({"plugins": ["a", "b"], "steps": [1, 2]}, name="x")
    assert changed and nested == {"plugins": ["b", "a"], "steps": [1, 2]}


def test_vary_changes_every_leaf_and_request_fields_flip_order() -> None:
    assert vary({"s": "a", "n": 1, "b": True, "none": None}) == (
        {"s": "a (other)", "n": 8, "b": False, "none": None},
        True,
    )
    chunks = [{"id": "a", "score": 0.9}, {"id": "b", "score": 0.1}]
    out, changed = vary_request_fields({"chunks": chunks})
    assert changed and [c["id"] for c in out["chunks"]] == ["a", "b"]
    assert out["chunks"][0]["score"] < out["chunks"][1]["score"]  # the order by score flipped
    assert vary_request_fields({"name": "Ann", "created_at": "2019"})[1] is False


def test_grow_pads_the_history_then_adds_a_turn() -> None:
    base, after = grow([{"role": "user", "content": "hi"}])  # type: ignore[misc]
    assert len(base) == 8 and after[:8] == base and len(after) == 9
    text, longer = grow("User: hi")  # type: ignore[misc]
    assert longer.startswith(text) and longer != text
    assert grow(3) is None and grow([]) is None
