from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from promptkit.cli import EXIT_USAGE, app

runner = CliRunner()


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "demo" in result.output


def test_model_path_prints_the_cache_dir(tmp_path: Path) -> None:
    result = runner.invoke(app, ["model", "path"], env={"PROMPTKIT_HOME": str(tmp_path)})
    assert result.exit_code == 0
    assert str(tmp_path) in result.output.replace("\n", "")


def test_demo_with_a_bad_model_dir_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--model", str(tmp_path / "missing")])
    assert result.exit_code == EXIT_USAGE
    assert "does not exist" in result.output and "--model" in result.output


def test_stdout_to_stderr_moves_child_process_output(capfd: object) -> None:
    import subprocess
    import sys

    from promptkit.cli._app import stdout_to_stderr

    with stdout_to_stderr():
        subprocess.run([sys.executable, "-c", "print('engine noise')"], check=True)
    print("json")
    out, err = capfd.readouterr()  # type: ignore[attr-defined]
    assert out == "json\n" and "engine noise" in err


def test_error_messages_keep_their_bracketed_text() -> None:
    # Regression: rich took "[tool.promptkit]" for a style tag and printed "set  model".
    template = Path(__file__).resolve().parents[1] / "lint" / "corpus" / "good" / "plain_qa.j2"
    result = runner.invoke(app, ["lint", str(template), "--model", "/nonexistent"])
    assert result.exit_code == EXIT_USAGE
    assert "set [tool.promptkit] model" in result.output
