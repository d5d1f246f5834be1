"""SARIF 2.1.0 output, the format GitHub code scanning (and most CI dashboards) ingest.

One run, the full rule catalogue in ``tool.driver.rules`` (so rule help shows even for rules with
no result), paths relative to ``%SRCROOT%``, and inline suppressions as ``inSource``
suppressions with their reason as justification.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from promptkit.lint.engine import Report
from promptkit.lint.rules import RULES

__all__ = ["SARIF_SCHEMA", "SARIF_VERSION", "to_sarif"]

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _rules() -> list[dict[str, Any]]:
    return [
        {
            "id": r.id,
            "name": r.name,
            "shortDescription": {"text": r.summary},
            "help": {"text": f"{r.summary}. Bad and good examples: {r.docs}"},
            "defaultConfiguration": {"level": r.severity.value},
            "properties": {"tags": ["prefix-cache"]},
        }
        for r in RULES.values()
    ]


def _artifact(path: str) -> dict[str, str]:
    if PurePosixPath(path).is_absolute():
        return {"uri": "file://" + quote(path)}
    return {"uri": quote(path), "uriBaseId": "%SRCROOT%"}


def to_sarif(report: Report) -> str:
    from promptkit import __version__

    index = {rule_id: i for i, rule_id in enumerate(RULES)}
    results: list[dict[str, Any]] = []
    for f in report.findings:
        region: dict[str, Any] = {"startLine": f.line or 1}
        if f.column is not None:
            region["startColumn"] = f.column
        result: dict[str, Any] = {
            "ruleId": f.rule,
            "ruleIndex": index[f.rule],
            "level": f.severity.value,
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": _artifact(f.path),
                        "region": region,
                    }
                }
            ],
        }
        if f.suppressed is not None:
            result["suppressions"] = [{"kind": "inSource", "justification": f.suppressed}]
        results.append(result)
    log = {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "promptkit",
                        "version": __version__,
                        "rules": _rules(),
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2, sort_keys=True) + "\n"
