"""Lint rules over one promptkit template: the template analysis's findings, all of them.

The checks themselves live in :mod:`promptkit._templating.analysis`, which the loader runs too:
:class:`PromptTemplate` stops at the first finding that blocks loading, lint reports every
finding under its rule id. A template that loads is measured for PK601 (the stable prefix, when
it is literal text).
"""

from __future__ import annotations

from promptkit._templating.analysis import analyze_source
from promptkit._templating.environment import template_environment
from promptkit._templating.prompt_template import PromptTemplate
from promptkit.lint.prefix import PrefixPolicy, literal_prefix_findings
from promptkit.lint.rules import Finding

__all__ = ["lint_template"]


def lint_template(
    source: str, *, path: str, line_offset: int = 0, prefix: PrefixPolicy | None = None
) -> list[Finding]:
    """All findings for one template source. ``line_offset`` shifts lines (templates in .py)."""
    analysis = analyze_source(source, environment=template_environment(), filename=path)
    findings = [Finding(f.rule, path, f.line, f.message) for f in analysis.findings]
    if prefix is not None and analysis.blocking is None:
        findings += literal_prefix_findings(PromptTemplate(source, name=path), prefix=prefix)
    return [
        Finding(f.rule, f.path, None if f.line is None else f.line + line_offset, f.message)
        for f in findings
    ]
