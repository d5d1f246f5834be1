"""The static analysis of a promptkit template: every check, written once.

One walk over the parsed template returns all its findings, each under the id of the lint rule
that reports it. :class:`~promptkit._templating.prompt_template.PromptTemplate` raises the first
finding that stops a template from loading as that finding's error; ``promptkit lint`` reports
every finding. A finding stops loading when it names the error it ``raises``:

* ``TemplateSyntaxError`` (PK001): the template does not parse; text, an expression or a block
  outside a segment; no segment; nested or duplicate segments; some segments with ``role=``
  and others without;
* ``StabilityError``: a segment more stable than one before it (PK301); a variable, or a name
  built from one, that renders into (PK104) or decides text in (PK105) a more stable segment;
* ``VariableError``: a variable used but not declared (PK501, or PK101 when the undeclared name
  is a clock call such as ``now()``), or declared twice (PK001).

The rest -- unused variables, and the heuristics of :mod:`promptkit._templating.heuristics` (clock
calls on declared values, id-like fields, key order, blank lines at a message edge) -- are for
lint to report (and for a reason to suppress); they do not stop a template from loading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment, meta, nodes
from jinja2.exceptions import TemplateSyntaxError as JinjaSyntaxError

from promptkit._segments import SegmentSpec, Stability, VariableSpec
from promptkit._templating.derived_names import Origin, derive_names, taint_names
from promptkit._templating.heuristics import blank_edge_hints, segment_hints
from promptkit.errors import StabilityError, TemplateError, TemplateSyntaxError, VariableError

__all__ = ["TemplateAnalysis", "TemplateFinding", "analyze_source"]


@dataclass(frozen=True, slots=True)
class TemplateFinding:
    """One problem in a template, under the id of the lint rule that reports it."""

    rule: str
    message: str
    line: int | None
    variable: str | None = None
    #: What :class:`~promptkit._templating.prompt_template.PromptTemplate` raises for it; ``None``
    # for a heuristic.
    raises: type[TemplateError] | None = None


@dataclass(frozen=True, slots=True)
class TemplateAnalysis:
    """What one walk over a template found: findings (by line), declarations and segments.

    A template that does not parse has its one finding and nothing else.
    """

    findings: tuple[TemplateFinding, ...]
    variables: Mapping[str, VariableSpec] = field(default_factory=dict)
    segments: tuple[SegmentSpec, ...] = ()
    #: ``set``/``for``/macro names and the stability and declared variable they come from.
    derived: Mapping[str, Origin] = field(default_factory=dict)
    #: Declared variables each segment reads (directly or through derived names).
    segment_variables: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: Every name the template reads, with its line, in the order Jinja walks them.
    reads: tuple[tuple[str, int], ...] = ()
    #: The text a segment always renders when its body is literal text only, else ``None``.
    literal_texts: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def blocking(self) -> TemplateFinding | None:
        """The first finding (in source order) that stops the template from loading."""
        return next((f for f in self.findings if f.raises is not None), None)


def analyze_source(source: str, *, environment: Environment, filename: str) -> TemplateAnalysis:
    """Parse ``source`` with the template's own ``environment`` (its tags, filters, globals)."""
    try:
        ast = environment.parse(source, filename=filename)
    except JinjaSyntaxError as exc:
        message = f"the template does not parse: {exc.message or exc}"
        return TemplateAnalysis(
            (TemplateFinding("PK001", message, exc.lineno, None, TemplateSyntaxError),)
        )
    return _Walk(ast, known_globals=frozenset(environment.globals)).run()


def _is_tag(node: nodes.Node, method: str) -> bool:
    """Whether ``node`` calls promptkit's ``_declare`` (``{% vars %}``) or ``_segment`` tag."""
    return (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.ExtensionAttribute)
        and node.node.name == method
    )


def _value(node: nodes.Node) -> Any:
    """A ``Const``'s value (the tags store names, classes and lines as constants)."""
    assert isinstance(node, nodes.Const)
    return node.value


def _literal(body: list[nodes.Node]) -> str | None:
    parts: list[str] = []
    for node in body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if not isinstance(child, nodes.TemplateData):
                return None
            parts.append(child.data)
    return "".join(parts)


class _Walk:
    """One pass over a parsed template, collecting findings instead of raising."""

    def __init__(self, ast: nodes.Template, *, known_globals: frozenset[str]) -> None:
        self.ast = ast
        self.known_globals = known_globals
        self.loads = [n for n in ast.find_all(nodes.Name) if n.ctx == "load"]
        self.findings: dict[tuple[str, int | None, str], TemplateFinding] = {}
        self.variables: dict[str, VariableSpec] = {}
        self.segments: list[tuple[SegmentSpec, nodes.CallBlock]] = []
        self.segment_variables: dict[str, frozenset[str]] = {}
        self.derived: dict[str, Origin] = {}
        self.tainted: dict[str, str] = {}
        self.undeclared: set[str] = set()
        self.called: set[str] = set()  # undeclared names a PK101 finding already reports

    def add(
        self,
        rule: str,
        line: int | None,
        message: str,
        *,
        variable: str | None = None,
        raises: type[TemplateError] | None = None,
    ) -> None:
        self.findings.setdefault(
            (rule, line, message), TemplateFinding(rule, message, line, variable, raises)
        )

    def lookup(self, name: str) -> Origin | None:
        if name in self.variables:
            return self.variables[name].stability, name
        return self.derived.get(name)

    def run(self) -> TemplateAnalysis:
        self._top_level()
        self.derived = derive_names(self.ast, self.variables)
        self.tainted = taint_names(self.ast)
        try:
            found = meta.find_undeclared_variables(self.ast)
        except JinjaSyntaxError as exc:  # Jinja's code generator: an unknown filter or test
            found = set()
            message = f"the template does not compile: {exc.message or exc}"
            self.add("PK001", exc.lineno, message, raises=TemplateSyntaxError)
        self.undeclared = found - set(self.variables) - self.known_globals
        self._segments()
        self._roles()
        self._variables()
        return TemplateAnalysis(
            findings=tuple(sorted(self.findings.values(), key=lambda f: f.line or 0)),
            variables=self.variables,
            segments=tuple(spec for spec, _ in self.segments),
            derived=self.derived,
            segment_variables=self.segment_variables,
            reads=tuple((n.name, n.lineno) for n in self.loads),
            literal_texts={spec.name: _literal(node.body) for spec, node in self.segments},
        )

    # -- structure ------------------------------------------------------------------------

    def _top_level(self) -> None:
        for node in self.ast.body:
            if isinstance(node, nodes.ExprStmt) and _is_tag(node.node, "_declare"):
                self._declare(node.node)
            elif isinstance(node, nodes.CallBlock) and _is_tag(node.call, "_segment"):
                name, label, role = (_value(a) for a in node.call.args)
                spec = SegmentSpec(name, Stability.parse(label), node.lineno, role)
                self.segments.append((spec, node))
            elif isinstance(node, nodes.Output):
                for child in node.nodes:
                    if not (isinstance(child, nodes.TemplateData) and not child.data.strip()):
                        self.add(
                            "PK001",
                            child.lineno,
                            "text or expression outside a segment: put it inside a "
                            "{% segment %} block",
                            raises=TemplateSyntaxError,
                        )
            elif not isinstance(node, nodes.Assign | nodes.AssignBlock | nodes.Macro):
                self.add(
                    "PK001",
                    node.lineno,
                    f"{{% {type(node).__name__.lower()} %}} outside a segment: put it inside a "
                    "{% segment %} block (segments must be at the top level)",
                    raises=TemplateSyntaxError,
                )
        if not self.segments:
            self.add(
                "PK001",
                1,
                "the template has no {% segment NAME CLASS %} block; wrap its text in segments",
                raises=TemplateSyntaxError,
            )

    def _declare(self, call: nodes.Node) -> None:
        assert isinstance(call, nodes.Call) and isinstance(call.args[0], nodes.List)
        for item in call.args[0].items:
            assert isinstance(item, nodes.Tuple)
            name, label, line = (_value(x) for x in item.items)
            if name in self.variables:
                self.add(
                    "PK001",
                    line,
                    f"variable {name!r} is declared twice; keep one NAME=CLASS in {{% vars %}}",
                    variable=name,
                    raises=VariableError,
                )
                continue
            self.variables[name] = VariableSpec(name, Stability.parse(label), line)

    def _segments(self) -> None:
        highest: SegmentSpec | None = None
        seen: set[str] = set()
        for index, (spec, node) in enumerate(self.segments):
            if spec.name in seen:
                self.add(
                    "PK001",
                    spec.line,
                    f"segment {spec.name!r} is defined twice; give each segment its own name",
                    raises=TemplateSyntaxError,
                )
            seen.add(spec.name)
            if highest is not None and spec.stability < highest.stability:
                self.add(
                    "PK301",
                    spec.line,
                    f"segment {spec.name!r} ({spec.stability.label}) comes after the less stable "
                    f"segment {highest.name!r} ({highest.stability.label}): nothing after a "
                    "volatile segment can be cached, so order segments from most to least stable",
                    raises=StabilityError,
                )
            elif highest is None or spec.stability > highest.stability:
                highest = spec
            for inner in node.find_all(nodes.CallBlock):
                if _is_tag(inner.call, "_segment"):
                    self.add(
                        "PK001",
                        inner.lineno,
                        "segments cannot be nested: close one with {% endsegment %} before the "
                        "next begins",
                        raises=TemplateSyntaxError,
                    )
            self._segment(spec, node)
            for hint in blank_edge_hints(self.segments, index):
                self.add(hint.rule, hint.line, hint.message)

    def _roles(self) -> None:
        with_role = [spec for spec, _ in self.segments if spec.role is not None]
        if with_role and len(with_role) != len(self.segments):
            missing = next(spec for spec, _ in self.segments if spec.role is None)
            self.add(
                "PK001",
                missing.line,
                f"segment {missing.name!r} has no role= but others do: in a chat template every "
                "segment needs a role",
                raises=TemplateSyntaxError,
            )

    # -- per segment ----------------------------------------------------------------------

    def _segment(self, spec: SegmentSpec, node: nodes.CallBlock) -> None:
        body = nodes.Output(node.body)
        conditions: set[int] = set()
        for cond in body.find_all((nodes.If, nodes.CondExpr)):
            if isinstance(cond, nodes.If | nodes.CondExpr):
                conditions |= {id(n) for n in cond.test.find_all(nodes.Name)} | {id(cond.test)}
        used: set[str] = set()
        for ref in body.find_all(nodes.Name):
            origin = self.lookup(ref.name) if ref.ctx == "load" else None
            if origin is None:
                continue
            used.add(origin[1])
            if origin[0] > spec.stability:
                self._too_volatile(spec, ref, origin, conditional=id(ref) in conditions)
        self.segment_variables[spec.name] = frozenset(used)
        hints = segment_hints(spec, body, variables=self.variables, tainted=self.tainted)
        for hint in hints:
            # A clock call on an undeclared name (`now()`) could never render: it blocks loading.
            undeclared = hint.rule == "PK101" and hint.variable in self.undeclared
            if undeclared and hint.variable is not None:
                self.called.add(hint.variable)
            raises = VariableError if undeclared else None
            self.add(hint.rule, hint.line, hint.message, variable=hint.variable, raises=raises)

    def _too_volatile(
        self, spec: SegmentSpec, ref: nodes.Name, origin: Origin, *, conditional: bool
    ) -> None:
        stability, source = origin
        via = "" if source == ref.name else f" (built from {source!r})"
        where = f"the {spec.stability.label} segment {spec.name!r}"
        if conditional:
            rule, message = (
                "PK105",
                f"a condition in {where} reads the {stability.label} value {ref.name!r}{via}: "
                "the text it selects changes with it and moves the cached prefix; move the "
                f"conditional part to a {stability.label} segment",
            )
        else:
            rule, message = (
                "PK104",
                f"{stability.label} value {ref.name!r}{via} renders into {where}: every change "
                f"of it moves the cached prefix; move it to a {stability.label} segment further "
                f"down, or declare it {spec.stability.label} if it really is that stable",
            )
        self.add(rule, ref.lineno, message, variable=ref.name, raises=StabilityError)

    # -- variables ------------------------------------------------------------------------

    def _variables(self) -> None:
        for name in sorted(self.undeclared - self.called):
            line = min((n.lineno for n in self.loads if n.name == name), default=None)
            self.add(
                "PK501",
                line,
                f"{name!r} is used but not declared; add it to {{% vars {name}=CLASS %}} with its "
                "stability class",
                variable=name,
                raises=VariableError,
            )
        used = {n.name for n in self.loads}
        for name, spec in self.variables.items():
            if name not in used:
                self.add(
                    "PK502",
                    spec.line,
                    f"{name!r} is declared but never used; remove it from {{% vars %}} (callers "
                    "still have to pass it, and a change of it looks like a cache miss)",
                    variable=name,
                )
