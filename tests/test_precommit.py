"""docs/lint.md's pre-commit configurations, run with the real ``pre-commit``.

The YAML is read from the docs page, so the page cannot drift from what is tested. A temporary
git project with a clean template must pass and, once a cache-busting template is added, fail
with the rule id. Marked ``precommit`` (not an engine test; ``-m "not precommit"`` skips it).

The remote form installs this repository's HEAD commit -- committed changes only -- into
pre-commit's own virtualenv with pip, dependencies included: about 20 s here, and it needs the
package index.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from promptkit.cli import app

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "lint" / "corpus"
CLEAN = CORPUS / "good" / "chat_qa.j2"
CACHE_BUSTER = CORPUS / "bad" / "PK101_now_in_system.j2"

pytestmark = pytest.mark.precommit


def _documented_configs() -> tuple[str, str]:
    """The ``repo: local`` and the remote ``.pre-commit-config.yaml`` of docs/lint.md."""
    page = (ROOT / "docs" / "lint.md").read_text(encoding="utf-8")
    section = page[page.index("\n## pre-commit\n") :]
    section = section[: section.index("\n# ", 1)]  # up to the next top-level heading
    blocks = re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)
    local = [b for b in blocks if "repo: local" in b]
    remote = [b for b in blocks if "repo: local" not in b]
    assert len(local) == len(remote) == 1, blocks
    return local[0], remote[0]


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _project(tmp_path: Path, config: str) -> Path:
    """A git project with one clean template, its samples, settings and ``config``."""
    project = tmp_path / "project"
    (project / "templates").mkdir(parents=True)
    shutil.copy(CLEAN, project / "templates" / "qa.j2")
    samples = [{"question": "Why?"}, {"question": "How?"}]
    (project / "templates" / "qa.samples.json").write_text(json.dumps(samples))
    (project / "pyproject.toml").write_text("[tool.promptkit]\nblock-size = 32\n")
    (project / ".pre-commit-config.yaml").write_text(config)
    _git("init", "-q", cwd=project)
    return project


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    env["PRE_COMMIT_COLOR"] = "never"
    # This interpreter's bin/ holds the `promptkit` that `language: system` finds.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _pre_commit(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    _git("add", "-A", cwd=project)
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _assert_clean_passes_and_cache_buster_fails(
    project: Path, env: dict[str, str], hooks: list[str]
) -> None:
    clean = _pre_commit(project, env, "run", "--all-files")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    for hook in hooks:
        assert re.search(rf"^{hook}\.+Passed$", clean.stdout, flags=re.MULTILINE), clean.stdout
    shutil.copy(CACHE_BUSTER, project / "templates" / "now.j2")
    busted = _pre_commit(project, env, "run", "--all-files")
    assert busted.returncode == 1, busted.stdout + busted.stderr
    assert re.search(r"^promptkit lint\.+Failed$", busted.stdout, flags=re.MULTILINE)
    assert "templates/now.j2:4: PK101 [error]" in busted.stdout


def test_documented_local_hooks_run_as_written(tmp_path: Path) -> None:
    local, _ = _documented_configs()
    project = _project(tmp_path, local)
    env = _env(tmp_path)
    env["PYTHONPATH"] = str(ROOT)  # the `promptkit` on PATH runs this checkout's code
    # The check hook compares with the lock: record the clean state first.
    config = ["--config", str(project / "pyproject.toml")]
    locked = CliRunner().invoke(app, ["check", str(project / "templates"), "--update", *config])
    assert locked.exit_code == 0, locked.output
    _assert_clean_passes_and_cache_buster_fails(project, env, ["promptkit lint", "promptkit check"])


def test_documented_remote_hook_installs_from_this_repository(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("the remote form installs a commit of this repository: needs a git checkout")
    _, remote = _documented_configs()
    assert remote.count("<promptkit-git-url>") == 1 and remote.count("<commit-sha>") == 1
    project = _project(tmp_path, remote.replace("<promptkit-git-url>", str(ROOT)))
    env = _env(tmp_path)
    env.pop("PYTHONPATH", None)  # the hook must run its own installed copy
    env.pop("PROMPTKIT_MODEL", None)
    env["PROMPTKIT_HOME"] = str(tmp_path / "no-model")  # a machine where no model was prepared
    # As the docs say, autoupdate fills in `rev` (--bleeding-edge: HEAD, whatever the tags).
    update = _pre_commit(project, env, "autoupdate", "--bleeding-edge", "--freeze")
    assert update.returncode == 0, update.stdout + update.stderr
    head = _git("rev-parse", "HEAD", cwd=ROOT)
    assert f"rev: {head}\n" in (project / ".pre-commit-config.yaml").read_text()
    _assert_clean_passes_and_cache_buster_fails(project, env, ["promptkit lint"])
