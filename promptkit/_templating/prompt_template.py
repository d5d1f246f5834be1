"""Prompt templates: load, check statically, render into segments.

A :class:`PromptTemplate` is checked once, when it is loaded, by the template analysis
(:mod:`promptkit._templating.analysis`): the first finding that stops loading is raised as its
typed error, naming the template file, line and variable. Each template compiles in an
environment of its own (:func:`promptkit._templating.environment.template_environment`), so nothing
is shared between templates or left behind by them. Rendering then only has to run Jinja.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader
from jinja2 import Template as JinjaTemplate
from jinja2.exceptions import SecurityError, UndefinedError

from promptkit._segments import SegmentSpec, VariableSpec
from promptkit._templating.analysis import TemplateAnalysis, analyze_source
from promptkit._templating.environment import (
    SEGMENT_CLOSE,
    SEGMENT_OPEN,
    SEGMENT_SEP,
    TrackedExpression,
    compile_template,
    compile_tracking,
    contains_marker,
    strip_tracking,
    template_environment,
)
from promptkit.errors import PromptkitError, TemplateError, TemplateSyntaxError, VariableError

__all__ = ["PromptTemplate", "RenderedSegment", "TrackedSpan"]


@dataclass(frozen=True, slots=True)
class RenderedSegment:
    """One segment's rendered text (before normalization)."""

    spec: SegmentSpec
    text: str


@dataclass(frozen=True, slots=True)
class TrackedSpan:
    """A run of a tracked render's segment text that came from one expression or text chunk."""

    segment: int
    start: int
    end: int
    origin: TrackedExpression


class PromptTemplate:
    """A segmented Jinja2 prompt template, statically checked on construction.

    Use :meth:`from_file` for files (errors then name the path) or :meth:`from_string`.
    """

    def __init__(self, source: str, *, name: str = "<string>", path: Path | None = None) -> None:
        _check_source(source, str(path) if path is not None else name)
        self.source = source
        self.name = name
        self.path = path
        self._filename = str(path) if path is not None else name
        self._environment = template_environment()
        if path is not None:
            # `{% include %}`/`{% import %}` resolve next to the template (lint follows them).
            self._environment.loader = FileSystemLoader(Path(path).parent)
        #: Everything the static analysis found; a loaded template has only non-blocking findings.
        self.analysis: TemplateAnalysis = analyze_source(
            source, environment=self._environment, filename=self._filename
        )
        first = self.analysis.blocking
        if first is not None and first.raises is not None:
            raise self._error(first.raises, first.message, first.line, first.variable)
        self.variables: dict[str, VariableSpec] = dict(self.analysis.variables)
        self.segments: list[SegmentSpec] = list(self.analysis.segments)
        #: Declared variables each segment reads (directly or through derived names).
        self.segment_variables: dict[str, frozenset[str]] = dict(self.analysis.segment_variables)
        # The analysis ran Jinja's code generator already, so compiling cannot fail here.
        self._compiled = compile_template(
            self._environment, source, name=name, filename=self._filename
        )

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path) -> PromptTemplate:
        """Load a template file (UTF-8)."""
        file = Path(path)
        try:
            source = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise TemplateError(
                f"cannot read template: {exc.strerror}", template=str(file)
            ) from None
        except UnicodeDecodeError as exc:
            line = file.read_bytes()[: exc.start].count(b"\n") + 1
            raise TemplateError(
                f"not UTF-8 (byte {exc.object[exc.start]:#x} at offset {exc.start}): save the "
                "template as UTF-8",
                template=str(file),
                line=line,
            ) from None
        return cls(source, name=file.stem, path=file)

    @classmethod
    def from_string(cls, source: str, *, name: str = "<string>") -> PromptTemplate:
        """Build a template from a string; ``name`` is used in errors and reports."""
        return cls(source, name=name)

    @property
    def filename(self) -> str:
        """The path (or name) errors and reports point at."""
        return self._filename

    @property
    def is_chat(self) -> bool:
        """Whether segments carry chat roles (rendered through the model's chat template)."""
        return any(s.role is not None for s in self.segments)

    @cached_property
    def fingerprint(self) -> str:
        """A hash of the template source (changes when the template does)."""
        import hashlib

        return hashlib.blake2b(self.source.encode(), digest_size=8).hexdigest()

    def _error(
        self, cls: type[TemplateError], message: str, line: int | None, variable: str | None = None
    ) -> TemplateError:
        return cls(message, template=self._filename, line=line, variable=variable)

    # -- rendering ------------------------------------------------------------------------

    def _check_variables(self, variables: Mapping[str, Any]) -> None:
        for name, spec in self.variables.items():
            if name not in variables:
                raise self._error(
                    VariableError, "variable declared here but not given", spec.line, name
                )
        for name in variables:
            if name not in self.variables:
                raise self._error(
                    VariableError,
                    "variable given but not declared (declared: "
                    f"{', '.join(sorted(self.variables)) or 'none'})",
                    None,
                    name,
                )
        for name, value in variables.items():
            if contains_marker(value):
                raise self._error(
                    VariableError,
                    "value contains ASCII control characters \\x02-\\x07, which promptkit reserves",
                    self.variables[name].line,
                    name,
                )

    def _run(self, compiled: JinjaTemplate, variables: Mapping[str, Any]) -> str:
        self._check_variables(variables)
        try:
            return compiled.render(**variables)
        except UndefinedError as exc:
            raise self._error(VariableError, f"{exc.message}", self._line_of(exc)) from None
        except SecurityError as exc:
            raise self._error(
                TemplateError, f"blocked by the sandbox: {exc}", self._line_of(exc)
            ) from None
        except TemplateError as exc:
            if exc.template is None:
                raise self._error(type(exc), exc.detail, self._line_of(exc), exc.variable) from None
            raise
        except PromptkitError as exc:
            raise self._error(VariableError, str(exc), self._line_of(exc)) from None
        except Exception as exc:
            raise self._error(
                TemplateError, f"{type(exc).__name__}: {exc}", self._line_of(exc)
            ) from None

    def _line_of(self, exc: BaseException) -> int | None:
        line = None
        for frame, lineno in traceback.walk_tb(exc.__traceback__):
            if frame.f_code.co_filename == self._filename:
                line = lineno
        return line

    def render(self, variables: Mapping[str, Any]) -> list[RenderedSegment]:
        """Render to one text per segment, in template order."""
        output = self._run(self._compiled, variables)
        return [
            RenderedSegment(spec, text)
            for spec, text in zip(self.segments, self._split(output), strict=True)
        ]

    def _split(self, output: str) -> list[str]:
        parts = output.split(SEGMENT_OPEN)
        texts: list[str] = []
        for part in parts[1:]:
            _, _, rest = part.partition(SEGMENT_SEP)
            body, _, _ = rest.rpartition(SEGMENT_CLOSE)
            texts.append(body)
        if len(texts) != len(self.segments):  # pragma: no cover - guarded by analysis
            raise self._error(TemplateError, "segment structure broken while rendering", None)
        return texts

    def render_tracked(self, variables: Mapping[str, Any]) -> tuple[list[str], list[TrackedSpan]]:
        """Render with provenance: segment texts plus the spans each expression produced."""
        compiled, expressions = self._tracking
        output = self._run(compiled, variables)
        texts: list[str] = []
        spans: list[TrackedSpan] = []
        for index, raw in enumerate(self._split(output)):
            clean, raw_spans = strip_tracking(raw)
            texts.append(clean)
            spans.extend(TrackedSpan(index, s, e, expressions[i]) for s, e, i in raw_spans)
        return texts, spans

    @cached_property
    def _tracking(self) -> tuple[JinjaTemplate, tuple[TrackedExpression, ...]]:
        # Compiled on first use, in an environment of its own; what each marker id stands for
        # belongs to this template and goes with it.
        return compile_tracking(self.source, name=self.name, filename=self._filename)

    def variable_lines(self, name: str) -> list[int]:
        """Lines where ``name`` (or a name derived from it) is read, for reports."""
        reads = self.analysis.reads
        return sorted({line for ref, line in reads if name in (ref, self.derived_origin(ref))})

    def derived_origin(self, name: str) -> str | None:
        """The declared variable a local name was built from, if any."""
        if name in self.variables:
            return name
        found = self.analysis.derived.get(name)
        return found[1] if found else None


def _check_source(source: object, filename: str) -> None:
    """A template source is a str that can be encoded (no lone surrogates)."""
    if not isinstance(source, str):
        raise TemplateError(
            f"a template source is a str, not {type(source).__name__}", template=filename
        )
    try:
        source.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TemplateSyntaxError(
            f"lone surrogate {source[exc.start]!r} at character {exc.start}: no tokenizer can "
            "encode it",
            template=filename,
            line=source[: exc.start].count("\n") + 1,
        ) from None
