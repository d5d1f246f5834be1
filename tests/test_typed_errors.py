"""Bad input gives a typed error from the one hierarchy, never a traceback, a hang or a silently
wrong prompt: the cases the reliability audit found (issue 14), then a hypothesis fuzz."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_adapter import SamplingError, SamplingSettings
from promptkit import (
    ArgumentError,
    Client,
    PromptkitError,
    PromptTemplate,
    TemplateError,
    Tokenizer,
    VariableError,
    parse_tool_calls,
    read_records,
)
from promptkit._templating.finder import load_template
from promptkit.lint.lockfile import read_lock
from tests.prefix_cache_fake import SimulatedPrefixCache
from tests.sample_templates import DOCUMENT, QA

ONE = "{% vars q=request %}{% segment r request %}Q: {{ q }}{% endsegment %}"


@pytest.fixture()
def fast_client(tokenizer: Tokenizer) -> Client:
    return Client(engine=SimulatedPrefixCache(block_size=32).engine(), tokenizer=tokenizer)


def test_variables_none_is_an_argument_error(fast_client: Client) -> None:
    with pytest.raises(ArgumentError, match="variables must be a mapping"):
        fast_client.generate(PromptTemplate.from_string(QA, name="qa"), None)  # type: ignore[arg-type]


def test_sampling_as_a_dict_is_an_argument_error(fast_client: Client) -> None:
    qa = PromptTemplate.from_string(QA, name="qa")
    with pytest.raises(ArgumentError, match="SamplingSettings"):
        fast_client.generate(
            qa,
            {"document": DOCUMENT, "question": "q"},
            sampling={"max_tokens": 4},  # type: ignore[arg-type]
        )


def test_a_template_name_instead_of_a_template_says_how_to_load_it(fast_client: Client) -> None:
    with pytest.raises(ArgumentError, match=r"client.template\('long_doc_qa'\)"):
        fast_client.generate("long_doc_qa", {})  # type: ignore[arg-type]


def test_a_lone_surrogate_names_the_variable(fast_client: Client) -> None:
    with pytest.raises(VariableError, match="lone surrogate") as info:
        fast_client.generate(PromptTemplate.from_string(ONE, name="one"), {"q": "bad \ud800"})
    assert info.value.variable == "q"


def test_a_recursive_value_under_tojson_names_the_variable(fast_client: Client) -> None:
    template = PromptTemplate.from_string(
        "{% vars q=request %}{% segment r request %}{{ q | tojson }}{% endsegment %}", name="j"
    )
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(VariableError, match="contains itself"):
        fast_client.generate(template, {"q": loop})


def test_none_is_never_printed_as_the_text_none() -> None:
    with pytest.raises(VariableError, match="printed None") as info:
        PromptTemplate.from_string(ONE, name="one").render({"q": None})
    assert info.value.line == 1 and info.value.template == "one"


def test_a_non_utf8_template_file_is_a_template_error(tmp_path: Path) -> None:
    path = tmp_path / "latin.jinja"
    path.write_bytes(b"{% vars q=request %}\n{% segment r request %}caf\xe9{% endsegment %}")
    with pytest.raises(TemplateError, match="not UTF-8") as info:
        PromptTemplate.from_file(path)
    assert info.value.line == 2


def test_an_unknown_filter_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="nosuch"):
        PromptTemplate.from_string(
            "{% vars q=request %}{% segment r request %}{{ q | nosuch }}{% endsegment %}"
        )


@pytest.mark.parametrize("name", ["../pyproject", "../../etc/passwd", "..", "a/../chat"])
def test_template_names_never_leave_the_templates_directory(name: str) -> None:
    with pytest.raises(TemplateError):
        load_template(name)


def test_a_truncated_last_log_line_is_skipped_with_a_warning(
    tmp_path: Path, fast_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "requests.jsonl"
    with Client(engine=fast_client.engine, tokenizer=fast_client.tokenizer, log_path=log) as c:
        for question in ("a", "b"):
            c.generate(PromptTemplate.from_string(ONE, name="one"), {"q": question})
    text = log.read_text(encoding="utf-8")
    log.write_text(text[: len(text) - 40], encoding="utf-8")  # killed mid-line
    with caplog.at_level(logging.WARNING):
        assert len(read_records(log)) == 1
    assert "truncated" in caplog.text
    log.write_text("{not json}\n" + text, encoding="utf-8")  # a bad line elsewhere is an error
    with pytest.raises(PromptkitError, match=":1: not a promptkit record"):
        read_records(log)


def test_a_corrupted_lock_file_is_refused(tmp_path: Path) -> None:
    good = json.loads(Path("promptkit.lock").read_text(encoding="utf-8"))
    key = next(iter(good["templates"]))
    good["templates"][key]["stable_ids"] = "1 2 3"  # not what stable_tokens says
    lock = tmp_path / "promptkit.lock"
    lock.write_text(json.dumps(good), encoding="utf-8")
    with pytest.raises(PromptkitError, match="stable_ids holds 3 ids"):
        read_lock(lock)
    lock.write_bytes(b"\xff\xfe garbage")
    with pytest.raises(PromptkitError, match="cannot read the lock file"):
        read_lock(lock)


def test_a_thousand_brackets_in_model_output_are_not_a_tool_call() -> None:
    assert parse_tool_calls("[" * 1000) == []
    assert parse_tool_calls("<tool_call>" + "[" * 5000 + "</tool_call>") == []


def test_the_tokenizer_cache_is_bounded_by_bytes(tokenizer: Tokenizer) -> None:
    small = Tokenizer(tokenizer.hf, cache_bytes=2 * 2**20)
    for n in range(30):
        small.encode_stable([f"Document {n}.\n" + "Many words of text here. " * 4000])
    assert 0 < small.cached_bytes <= 2 * 2**20


# -- fuzz: whatever the input, a typed error or a result ------------------------------------

_pieces = st.text(max_size=6) | st.sampled_from(
    ["{{", "}}", "{%", "%}", "\ud800", "segment", "vars", "endsegment", " q ", "|", "<|im_end|>"]
)
_text = st.lists(_pieces, max_size=8).map("".join)
_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_FUZZ
@given(source=_text)
def test_fuzz_template_sources(source: str) -> None:
    with contextlib.suppress(PromptkitError):
        PromptTemplate.from_string("{% vars q=request %}" + source, name="fuzz")


@_FUZZ
@given(value=_values)
def test_fuzz_variable_values(fast_client: Client, value: Any) -> None:
    template = PromptTemplate.from_string(
        "{% vars q=request %}{% segment r request %}{{ q }} {{ q | tojson }}{% endsegment %}",
        name="fuzz",
    )
    with contextlib.suppress(PromptkitError):
        fast_client.build(template, {"q": value})


@_FUZZ
@given(
    fields=st.dictionaries(
        st.sampled_from(["max_tokens", "temperature", "top_p", "seed", "stop", "logprobs"]),
        _values,
        max_size=3,
    )
)
def test_fuzz_sampling_settings(fields: dict[str, Any]) -> None:
    with contextlib.suppress(SamplingError):
        SamplingSettings(**fields)


@_FUZZ
@given(lines=st.lists(_text | st.just('{"request_id": 1}'), max_size=4), cut=st.booleans())
def test_fuzz_logs(tmp_path_factory: pytest.TempPathFactory, lines: list[str], cut: bool) -> None:
    path = tmp_path_factory.mktemp("logs") / "log.jsonl"
    path.write_text("\n".join(lines) + ("" if cut else "\n"), encoding="utf-8", errors="replace")
    with contextlib.suppress(PromptkitError):
        read_records(path)


@_FUZZ
@given(data=st.binary(max_size=200) | _text.map(lambda t: t.encode("utf-8", "replace")))
def test_fuzz_lock_files(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("locks") / "promptkit.lock"
    path.write_bytes(data)
    with contextlib.suppress(PromptkitError):
        read_lock(path)
