"""The built wheel carries what an installed promptkit needs at run time."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_templates_and_demo_data(tmp_path: Path) -> None:
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
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("promptkit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("long_doc_qa", "rag_answer", "agent_tools", "chat"):
        assert f"promptkit/data/templates/{shipped}.j2" in names
        assert f"promptkit/data/templates/{shipped}.samples.json" in names
    assert "promptkit/data/demo/people_table.md" in names
    assert "promptkit/py.typed" in names and "engine_adapter/py.typed" in names
