from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import random
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptkit import SerializationError, Tokenizer, canonical_json, canonical_tools, normalize_text

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _shuffled(value: object, rng: random.Random) -> object:
    """The same value with every dict rebuilt in a random key insertion order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


@given(json_values, st.integers(min_value=0, max_value=2**32))
def test_canonical_json_is_invariant_under_key_insertion_order(value: object, seed: int) -> None:
    assert canonical_json(_shuffled(value, random.Random(seed))) == canonical_json(value)


@given(json_values)
def test_canonical_json_round_trips(value: object) -> None:
    assert canonical_json(json.loads(canonical_json(value))) == canonical_json(value)


def test_canonical_json_is_stable_across_processes() -> None:
    value = {"b": [1, 2.5, {"z": "é", "a": None}], "a": {3, 1, 2}, "c": -0.0}
    code = (
        "from promptkit import canonical_json; "
        "print(canonical_json({'b': [1, 2.5, {'z': 'é', 'a': None}], 'a': {3, 1, 2}, 'c': -0.0}))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    ).stdout.strip()
    assert other == canonical_json(value)
    assert other == '{"a":[1,2,3],"b":[1,2.5,{"a":null,"z":"é"}],"c":0.0}'


def test_nested_keys_sorted_and_unicode_kept() -> None:
    assert canonical_json({"é": 1, "a": {"y": 1, "x": 2}}) == '{"a":{"x":2,"y":1},"é":1}'


def test_nfc_normalizes_strings() -> None:
    assert canonical_json("e\u0301") == canonical_json("é")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_infinity_rejected(bad: float) -> None:
    with pytest.raises(SerializationError, match="no JSON form"):
        canonical_json({"x": [bad]})


def test_error_names_the_path() -> None:
    with pytest.raises(SerializationError, match=r"\$\.outer\.inner\[1\]"):
        canonical_json({"outer": {"inner": [1, b"bytes"]}})


def test_non_string_keys_rejected() -> None:
    with pytest.raises(SerializationError, match="string keys"):
        canonical_json({1: "a"})


def test_documented_type_rules() -> None:
    class Color(enum.Enum):
        RED = "red"

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    when = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    value = {
        "t": (1, 2),
        "s": frozenset({"b", "a"}),
        "d": when,
        "day": dt.date(2025, 1, 2),
        "c": Color.RED,
        "p": Point(1, 2),
        "n": decimal.Decimal("1.10"),
    }
    assert json.loads(canonical_json(value)) == {
        "t": [1, 2],
        "s": ["a", "b"],
        "d": "2025-01-02T03:04:05+00:00",
        "day": "2025-01-02",
        "c": "red",
        "p": {"x": 1, "y": 2},
        "n": "1.10",
    }
    with pytest.raises(SerializationError, match="naive datetime"):
        canonical_json(dt.datetime(2025, 1, 1))


def test_pydantic_models_serialize() -> None:
    from pydantic import BaseModel

    class Tool(BaseModel):
        name: str
        weight: float

    assert canonical_json(Tool(name="x", weight=1.0)) == '{"name":"x","weight":1.0}'


@given(st.text())
def test_normalize_text_is_idempotent(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert "\r" not in once


def test_normalize_keeps_the_last_lines_trailing_blank() -> None:
    # The last line's trailing space joins the next segment: it is content.
    assert normalize_text("a  \r\nb \t\nend: ") == "a\nb\nend: "


def test_spaced_canonical_json_matches_how_models_write_json() -> None:
    value = {"b": [1, 2], "a": {"c": None}}
    assert canonical_json(value, spaced=True) == '{"a": {"c": null}, "b": [1, 2]}'
    assert canonical_json(value) == '{"a":{"c":null},"b":[1,2]}'


def test_compact_canonical_json_takes_fewer_tokens_than_spaced(tokenizer: Tokenizer) -> None:
    schemas = canonical_tools(
        [
            {
                "name": f"tool_{i}",
                "description": "Look it up.",
                "parameters": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}},
                    "required": ["id"],
                },
            }
            for i in range(5)
        ]
    )
    compact = "\n".join(canonical_json(s) for s in schemas)
    spaced = "\n".join(canonical_json(s, spaced=True) for s in schemas)
    assert len(tokenizer.encode(compact).ids) < len(tokenizer.encode(spaced).ids)
