"""Lint rules over one promptkit template: the template analysis's findings, all of them.

The checks themselves live in :mod:`promptkit._templating.analysis`, which the loader runs too:
:class:`PromptTemplate` stops at the first finding that blocks loading, lint reports every
finding under its rule id. Lint also follows includes and holds declared filters and globals to
their class (:mod:`promptkit.lint._template_extras`). A template that loads is measured for
PK601 (the stable prefix, when it is literal text).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from promptkit._templating.analysis import analyze_source
from promptkit._templating.environment import template_environment
from promptkit._templating.prompt_template import PromptTemplate
from promptkit.lint._template_extras import declare, extra_hints
from promptkit.lint.config import Declared
from promptkit.lint.prefix import PrefixPolicy, literal_prefix_findings
from promptkit.lint.rules import Finding

__all__ = ["lint_template"]


def lint_template(
    source: str,
    *,
    path: str,
    line_offset: int = 0,
    prefix: PrefixPolicy | None = None,
    declared: Sequence[Declared] = (),
    directory: Path | None = None,
) -> list[Finding]:
    """All findings for one template source. ``line_offset`` shifts lines (templates in .py);
    ``directory`` is where includes are looked up (default: the directory of ``path``)."""
    environment = template_environment()
    declare(environment, declared)
    analysis = analyze_source(source, environment=environment, filename=path)
    findings = [Finding(f.rule, path, f.line, f.message) for f in analysis.findings]
    if not any(f.rule == "PK001" for f in analysis.findings):
        hints = extra_hints(
            source,
            environment=environment,
            segments=analysis.segments,
            variables=analysis.variables,
            declared=declared,
            directory=directory if directory is not None else Path(path).parent,
        )
        findings += [Finding(h.rule, path, h.line, h.message) for h in hints]
    if prefix is not None and analysis.blocking is None and not declared:
        findings += literal_prefix_findings(PromptTemplate(source, name=path), prefix=prefix)
    return [
        Finding(f.rule, f.path, None if f.line is None else f.line + line_offset, f.message)
        for f in findings
    ]
