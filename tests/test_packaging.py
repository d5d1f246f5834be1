"""The built wheel carries what an installed promptkit needs at run time, under the right name."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DIST = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    # Wheel file names spell the distribution with underscores (promptkit_vllm-0.1.0-...).
    (built,) = out.glob(f"{re.sub(r'[-_.]+', '_', DIST)}-*.whl")
    return built


def test_wheel_ships_templates_and_demo_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("long_doc_qa", "rag_answer", "agent_tools", "chat"):
        assert f"promptkit/data/templates/{shipped}.j2" in names
        assert f"promptkit/data/templates/{shipped}.samples.json" in names
    assert "promptkit/data/demo/people_table.md" in names
    assert "promptkit/py.typed" in names and "engine_adapter/py.typed" in names


def test_wheel_carries_every_package_folder_and_the_bench_suite(wheel: Path) -> None:
    # pyproject lists packages by hand (promptkit_bench is built from bench/), so a new subpackage
    # left off the list would ship without its modules.
    names = set(zipfile.ZipFile(wheel).namelist())
    root = Path(__file__).resolve().parent.parent
    for init in [
        *root.glob("promptkit/**/__init__.py"),
        *root.glob("engine_adapter/**/__init__.py"),
    ]:
        assert init.relative_to(root).as_posix() in names
    assert "promptkit_bench/suite.py" in names
    assert "promptkit_bench/templates/rag.j2" in names
    assert "promptkit_bench/benchmarks_intro.md" in names


def test_installed_wheel_is_promptkit_vllm_providing_the_promptkit_package(
    wheel: Path, tmp_path: Path
) -> None:
    # PyPI's `promptkit` is an unrelated project: the distribution must be promptkit-vllm, while
    # the import package and the command stay `promptkit`.
    assert DIST == "promptkit-vllm"
    target = tmp_path / "site"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile"),
            *("-q", "--target", str(target), str(wheel)),
        ],
        check=True,
        capture_output=True,
    )
    (dist,) = importlib.metadata.distributions(path=[str(target)])
    assert dist.metadata["Name"] == DIST
    assert {f.parts[0] for f in dist.files or ()} >= {
        "promptkit",
        "engine_adapter",
        "promptkit_bench",
    }
    scripts = {ep.name: ep.value for ep in dist.entry_points.select(group="console_scripts")}
    assert scripts == {"promptkit": "promptkit.cli:main"}
    assert (target / "bin" / "promptkit").is_file()

    # The installed copy imports as `promptkit` and finds its shipped templates by name (they are
    # package data, not only in a checkout's templates/).
    probe = (
        "import promptkit, promptkit_bench.corpus; "
        "print(promptkit.__file__); print(promptkit.load_template('long_doc_qa').name)"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", probe],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,  # not the checkout, whose promptkit/ would shadow the installed one
    ).stdout.splitlines()
    assert Path(out[0]).is_relative_to(target)
    assert out[1] == "long_doc_qa"
