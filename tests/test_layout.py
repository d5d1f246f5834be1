"""Tests mirror the modules: each module has ``test_<module>.py``, or says here which test covers it.

A module added without a test of its own, or an entry left behind after a module went away, fails
this test. ``_x.py`` is mirrored by ``test_x.py``; engine modules may be ``test_engine_x.py`` and
lint modules ``test_lint_x.py``, wherever they sit under ``tests/``.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Modules exercised through a neighbour's tests, because they have no behaviour of their own to
# test apart from it (a stage of a pipeline, a CLI command, a data model).
COVERED_BY = {
    "engine_adapter/_block_chain.py": "tests/test_expectation.py",
    "engine_adapter/_resident_blocks.py": "tests/test_expectation.py",
    "engine_adapter/_routing.py": "tests/engine_adapter/test_engine_routed.py",
    "engine_adapter/_kv_events.py": "tests/test_client.py",
    "engine_adapter/_vllm_common.py": "tests/engine_adapter/test_engine_vllm.py",
    "engine_adapter/base.py": "tests/engine_adapter/test_engine_seam.py",
    "engine_adapter/fake.py": "tests/test_client_fast.py",
    "engine_adapter/models.py": "tests/engine_adapter/test_engine_wire.py",
    "promptkit/_built_prompt.py": "tests/test_builder.py",
    "promptkit/_model_store.py": "tests/cli/test_cli.py",
    "promptkit/_placement.py": "tests/test_builder.py",
    "promptkit/_segments.py": "tests/templating/test_prompt_template.py",
    "promptkit/_source.py": "tests/test_audit.py",
    "promptkit/_templating/derived_names.py": "tests/templating/test_analysis.py",
    "promptkit/_templating/finder.py": "tests/test_builder.py",
    "promptkit/_templating/heuristics.py": "tests/templating/test_analysis.py",
    "promptkit/_templating/hint.py": "tests/templating/test_analysis.py",
    "promptkit/_templating/history_hints.py": "tests/lint/test_stability_corpus.py",
    "promptkit/_tools.py": "tests/test_conversation.py",
    "promptkit/_volatility.py": "tests/lint/test_lint_corpus.py",
    "promptkit/cli/__main__.py": "tests/cli/test_cli.py",
    "promptkit/cli/_app.py": "tests/cli/test_cli.py",
    "promptkit/cli/_console.py": "tests/reporting/test_report_outputs.py",
    "promptkit/cli/_demo_run.py": "tests/cli/test_demo.py",
    "promptkit/cli/_lint.py": "tests/lint/test_lint_cli.py",
    "promptkit/cli/_reference.py": "tests/test_docs.py",
    "promptkit/cli/_report.py": "tests/reporting/test_report_outputs.py",
    "promptkit/lint/_chat_check.py": "tests/lint/test_stability_corpus.py",
    "promptkit/lint/_metamorphic.py": "tests/lint/test_stability_corpus.py",
    "promptkit/lint/_python_flow.py": "tests/lint/test_stability_corpus.py",
    "promptkit/lint/_template_extras.py": "tests/lint/test_lint_cli.py",
    "promptkit/lint/config.py": "tests/lint/test_lint_cli.py",
    "promptkit/lint/engine.py": "tests/lint/test_lint_corpus.py",
    "promptkit/lint/formats.py": "tests/lint/test_lint_cli.py",
    "promptkit/lint/lockfile.py": "tests/lint/test_lint_check.py",
    "promptkit/lint/prefix.py": "tests/lint/test_lint_check.py",
    "promptkit/lint/rules.py": "tests/lint/test_lint_corpus.py",
    "promptkit/lint/samples.py": "tests/lint/test_lint_check.py",
    "promptkit/lint/sarif.py": "tests/lint/test_lint_cli.py",
    "promptkit/lint/sources.py": "tests/lint/test_lint_corpus.py",
    "promptkit/lint/suppress.py": "tests/lint/test_lint_corpus.py",
    "promptkit/lint/template_rules.py": "tests/lint/test_lint_corpus.py",
    "promptkit/lint/tokens.py": "tests/lint/test_lint_check.py",
    "promptkit/lint/whitespace.py": "tests/lint/test_lint_corpus.py",
    "promptkit/reporting/html.py": "tests/reporting/test_report_outputs.py",
    "promptkit/reporting/plots.py": "tests/reporting/test_report_outputs.py",
    "promptkit/reporting/records.py": "tests/reporting/test_report_outputs.py",
    "promptkit/reporting/table.py": "tests/reporting/test_report_outputs.py",
    "promptkit/testing.py": "tests/lint/test_lint_cli.py",
}


def _modules() -> list[str]:
    found = []
    for package in ("promptkit", "engine_adapter"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name != "__init__.py" and "__pycache__" not in path.parts:
                found.append(path.relative_to(ROOT).as_posix())
    return sorted(found)


def _mirrors(module: str) -> list[str]:
    stem = Path(module).stem.lstrip("_")
    names = {f"test_{stem}.py", f"test_engine_{stem}.py", f"test_lint_{stem}.py"}
    return sorted(
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "tests").rglob("test_*.py")
        if p.name in names
    )


def test_every_module_has_its_own_test_or_names_the_one_that_covers_it() -> None:
    missing = [m for m in _modules() if not _mirrors(m) and m not in COVERED_BY]
    assert missing == [], f"add tests/test_<module>.py or an entry in COVERED_BY: {missing}"


def test_covered_by_names_only_live_modules_without_a_mirror_and_existing_tests() -> None:
    modules = set(_modules())
    assert [m for m in COVERED_BY if m not in modules] == []  # the module went away
    assert [m for m in COVERED_BY if _mirrors(m)] == []  # it has its own test now
    assert [t for t in COVERED_BY.values() if not (ROOT / t).is_file()] == []
