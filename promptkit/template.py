"""Prompt templates: load, check statically, render into segments.

A :class:`PromptTemplate` is checked once, when it is loaded: segments at the top level and in
order of falling stability, every variable declared with a stability class, and no variable (or
name derived from one by ``set``, ``for`` or a macro) rendering into a segment more stable than
itself. Errors name the template file, line and variable. Each template compiles in an
environment of its own (:func:`promptkit.environment.template_environment`), so nothing is
shared between templates or left behind by them. Rendering then only has to run Jinja.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from jinja2 import Template as JinjaTemplate
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.exceptions import TemplateSyntaxError as JinjaSyntaxError

from promptkit.derived_names import const, derive_names, is_tag_call
from promptkit.environment import (
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
from promptkit.errors import (
    PromptkitError,
    StabilityError,
    TemplateError,
    TemplateSyntaxError,
    VariableError,
)
from promptkit.segments import SegmentSpec, Stability, VariableSpec

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
        self.source = source
        self.name = name
        self.path = path
        self._filename = str(path) if path is not None else name
        self._environment = template_environment()
        try:
            ast = self._environment.parse(source, name=name, filename=self._filename)
        except JinjaSyntaxError as exc:
            raise TemplateSyntaxError(
                exc.message or str(exc), template=self._filename, line=exc.lineno
            ) from None
        self.variables: dict[str, VariableSpec] = {}
        self.segments: list[SegmentSpec] = []
        self._derived: dict[str, tuple[Stability, str]] = {}
        #: Declared variables each segment reads (directly or through derived names).
        self.segment_variables: dict[str, frozenset[str]] = {}
        self._analyse(ast)
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

    # -- static analysis ------------------------------------------------------------------

    def _analyse(self, ast: nodes.Template) -> None:
        segment_nodes: list[nodes.CallBlock] = []
        for node in ast.body:
            if isinstance(node, nodes.ExprStmt) and is_tag_call(node.node, "_declare"):
                self._declare(node)
            elif isinstance(node, nodes.CallBlock) and is_tag_call(node.call, "_segment"):
                segment_nodes.append(node)
            elif isinstance(node, nodes.Output):
                self._check_outside_output(node)
            elif not isinstance(node, nodes.Assign | nodes.AssignBlock | nodes.Macro):
                raise self._error(
                    TemplateSyntaxError,
                    f"{{% {type(node).__name__.lower()} %}} outside a segment: put it inside a "
                    "{% segment %} block (segments must be at the top level)",
                    node.lineno,
                )
        if not segment_nodes:
            raise self._error(
                TemplateSyntaxError,
                "the template has no {% segment NAME CLASS %} block; wrap its text in segments",
                1,
            )
        self._derive_names(ast)
        for node in segment_nodes:
            self._add_segment(node)
        self._check_undeclared(ast)
        self._check_roles()

    def _declare(self, node: nodes.ExprStmt) -> None:
        call = node.node
        assert isinstance(call, nodes.Call)
        items = call.args[0]
        assert isinstance(items, nodes.List)
        for item in items.items:
            assert isinstance(item, nodes.Tuple)
            name, stability, line = (const(x) for x in item.items)
            if name in self.variables:
                raise self._error(VariableError, "variable declared twice", line, name)
            self.variables[name] = VariableSpec(name, Stability.parse(stability), line)

    def _check_outside_output(self, node: nodes.Output) -> None:
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData) and not child.data.strip():
                continue
            raise self._error(
                TemplateSyntaxError,
                "text or expression outside a segment: put it inside a {% segment %} block",
                child.lineno,
            )

    def _stability_of(self, name: str) -> tuple[Stability, str] | None:
        if name in self.variables:
            return self.variables[name].stability, name
        return self._derived.get(name)

    def _derive_names(self, ast: nodes.Template) -> None:
        self._derived = derive_names(ast, self.variables)

    def _add_segment(self, node: nodes.CallBlock) -> None:
        call = node.call
        assert isinstance(call, nodes.Call)
        name, stability_label, role = (const(a) for a in call.args)
        spec = SegmentSpec(name, Stability.parse(stability_label), node.lineno, role)
        if any(s.name == name for s in self.segments):
            raise self._error(
                TemplateSyntaxError, f"segment {name!r} is defined twice", node.lineno
            )
        for inner in node.find_all(nodes.CallBlock):
            if is_tag_call(inner.call, "_segment"):
                raise self._error(TemplateSyntaxError, "segments cannot be nested", inner.lineno)
        if self.segments and spec.stability < self.segments[-1].stability:
            before = self.segments[-1]
            raise self._error(
                StabilityError,
                f"segment {name!r} ({spec.stability.label}) comes after the less stable segment "
                f"{before.name!r} ({before.stability.label}): nothing after a volatile segment can "
                "be cached, so order segments from most to least stable",
                node.lineno,
            )
        used: set[str] = set()
        for ref in node.find_all(nodes.Name):
            if ref.ctx != "load":
                continue
            found = self._stability_of(ref.name)
            if found is not None:
                used.add(found[1])
            if found is not None and found[0] > spec.stability:
                stability, origin = found
                via = "" if origin == ref.name else f" (built from {origin!r})"
                raise self._error(
                    StabilityError,
                    f"{stability.label} value{via} renders into the {spec.stability.label} segment "
                    f"{name!r}: every change of it would move the cached prefix; move it to a "
                    f"{stability.label} segment further down, or declare it "
                    f"{spec.stability.label} if it really is that stable",
                    ref.lineno,
                    ref.name,
                )
        self.segment_variables[name] = frozenset(used)
        self.segments.append(spec)

    def _check_undeclared(self, ast: nodes.Template) -> None:
        undeclared = (
            meta.find_undeclared_variables(ast)
            - set(self.variables)
            - frozenset(self._environment.globals)
        )
        if not undeclared:
            return
        first = min(
            (ref for ref in ast.find_all(nodes.Name) if ref.name in undeclared),
            key=lambda ref: ref.lineno,
        )
        raise self._error(
            VariableError,
            "variable is used but not declared; add it to {% vars NAME=CLASS %} with its "
            "stability class",
            first.lineno,
            first.name,
        )

    def _check_roles(self) -> None:
        with_role = [s for s in self.segments if s.role is not None]
        if with_role and len(with_role) != len(self.segments):
            missing = next(s for s in self.segments if s.role is None)
            raise self._error(
                TemplateSyntaxError,
                f"segment {missing.name!r} has no role= but others do: in a chat template every "
                "segment needs a role",
                missing.line,
            )

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
        ast = self._environment.parse(self.source)
        lines = set()
        for ref in ast.find_all(nodes.Name):
            if ref.ctx == "load":
                found = self._stability_of(ref.name)
                if ref.name == name or (found is not None and found[1] == name):
                    lines.add(ref.lineno)
        return sorted(lines)

    def derived_origin(self, name: str) -> str | None:
        """The declared variable a local name was built from, if any."""
        if name in self.variables:
            return name
        found = self._derived.get(name)
        return found[1] if found else None
