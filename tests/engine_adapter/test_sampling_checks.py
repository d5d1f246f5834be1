"""SamplingSettings are checked against vLLM's limits when built, so a bad value never reaches
(and never wedges) an engine; ``stop`` as a string is one stop string."""

from __future__ import annotations

from typing import Any

import pytest

from engine_adapter import SamplingError, SamplingSettings
from engine_adapter._wire import sampling_fields
from promptkit_bench.reliability_probe import BAD_SAMPLING

# One list of bad values: the reliability page's (bench/reliability_probe.py) is this test's too.
BAD = BAD_SAMPLING


@pytest.mark.parametrize("fields", BAD, ids=repr)
def test_bad_sampling_values_are_refused_naming_the_field(fields: dict[str, Any]) -> None:
    (name,) = fields
    with pytest.raises(SamplingError, match=name):
        SamplingSettings(**fields)


def test_a_stop_string_is_one_stop_string() -> None:
    settings = SamplingSettings(stop="The")
    assert settings.stop == ("The",)
    assert sampling_fields(settings)["stop"] == ["The"]
    assert SamplingSettings(stop=["a", "b"]).stop == ("a", "b")  # type: ignore[arg-type]


def test_good_values_pass_and_integers_are_floats_where_floats_are_meant() -> None:
    settings = SamplingSettings(max_tokens=1, temperature=2, top_p=1, seed=2**63 - 1, logprobs=20)
    assert settings.temperature == 2.0 and isinstance(settings.temperature, float)
    assert SamplingSettings().max_tokens == 64
