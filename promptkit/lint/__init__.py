"""Prompt linting for CI: static rules over templates (``lint``) and token-level checks (``check``).

``lint_paths`` reads templates, model chat templates and Python that builds prompts, and reports
every cache-buster it can see without rendering. ``check_paths`` renders each template's
fixtures with the real tokenizer and chat template and holds the stable prefix to
``promptkit.lock``. Both return a :class:`Report`; :func:`render` prints it as text, JSON, SARIF
2.1.0 or GitHub annotations. Rules are listed in :data:`RULES` and explained in docs/lint.md.
"""

from __future__ import annotations

from promptkit.lint.check import check_paths
from promptkit.lint.config import LintConfig, load_config
from promptkit.lint.engine import Report, lint_paths
from promptkit.lint.formats import FORMATS, render
from promptkit.lint.rules import RULES, Finding, Rule, Severity
from promptkit.lint.samples import Fixtures, load_fixtures

__all__ = [
    "FORMATS",
    "RULES",
    "Finding",
    "Fixtures",
    "LintConfig",
    "Report",
    "Rule",
    "Severity",
    "check_paths",
    "lint_paths",
    "load_config",
    "load_fixtures",
    "render",
]
