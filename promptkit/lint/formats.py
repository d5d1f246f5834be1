"""Report formats: ``text`` for people, ``json`` for scripts, ``github`` for Actions annotations,
``sarif`` for code scanning (see :mod:`promptkit.lint.sarif`).

Every format lists suppressed findings too (SARIF and JSON mark them; text and GitHub skip them)
so a reviewer can see what was waved through and why.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from promptkit.lint.engine import Report
from promptkit.lint.rules import RULES, Finding
from promptkit.lint.sarif import to_sarif

__all__ = ["FORMATS", "render"]


def _where(finding: Finding) -> str:
    where = finding.path
    if finding.line is not None:
        where += f":{finding.line}"
        if finding.column is not None:
            where += f":{finding.column}"
    return where


def to_text(report: Report) -> str:
    lines = [
        f"{_where(f)}: {f.rule} [{f.severity.value}] {f.message}"
        f"  ({RULES[f.rule].name}, see {RULES[f.rule].docs})"
        for f in report.active
    ]
    suppressed = len(report.findings) - len(report.active)
    tail = f", {suppressed} suppressed" if suppressed else ""
    count = len(report.active)
    noun = "finding" if count == 1 else "findings"
    lines.append(f"{count} {noun} in {report.files} file(s){tail}")
    return "\n".join(lines) + "\n"


def to_json(report: Report) -> str:
    payload = {
        "version": 1,
        "files": report.files,
        "findings": [
            {
                "rule": f.rule,
                "name": RULES[f.rule].name,
                "severity": f.severity.value,
                "path": f.path,
                "line": f.line,
                "column": f.column,
                "message": f.message,
                "suppressed": f.suppressed,
                "docs": RULES[f.rule].docs,
            }
            for f in report.findings
        ],
    }
    return json.dumps(payload, indent=2, sort_keys=True) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def to_github(report: Report) -> str:
    """GitHub Actions workflow commands: one ``::error``/``::warning`` annotation per finding."""
    lines: list[str] = []
    for f in report.active:
        props = [f"file={_escape_property(f.path)}"]
        if f.line is not None:
            props.append(f"line={f.line}")
        if f.column is not None:
            props.append(f"col={f.column}")
        props.append(f"title={_escape_property(f'{f.rule} {RULES[f.rule].name}')}")
        lines.append(f"::{f.severity.value} {','.join(props)}::{_escape_data(f.message)}")
    return "".join(line + "\n" for line in lines)


FORMATS: dict[str, Callable[[Report], str]] = {
    "text": to_text,
    "json": to_json,
    "sarif": to_sarif,
    "github": to_github,
}


def render(report: Report, *, fmt: str) -> str:
    """The report in format ``fmt`` (one of :data:`FORMATS`)."""
    return FORMATS[fmt](report)
