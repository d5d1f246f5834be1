"""Static rules over one promptkit template's Jinja AST.

The linter parses with the same environment the renderer uses and walks the AST itself, so it
reports every finding instead of stopping at the first error the way :class:`PromptTemplate`
does. It shares :func:`promptkit.template.derive_names` with the loader, so both agree on how
stable a ``set``/``for``/macro name is; and it loads the template with :class:`PromptTemplate`
once as a safety net, so lint can never pass a template the loader rejects.
"""

from __future__ import annotations

from typing import Any

from jinja2 import meta, nodes
from jinja2.exceptions import TemplateSyntaxError as JinjaSyntaxError

from promptkit.derived_names import BINDING_NODES, Origin, binding, derive_names, is_tag_call
from promptkit.environment import template_environment
from promptkit.errors import StabilityError, TemplateError, VariableError
from promptkit.lint.prefix import PrefixPolicy, literal_prefix_findings
from promptkit.lint.rules import Finding
from promptkit.segments import SegmentSpec, Stability, VariableSpec
from promptkit.template import PromptTemplate
from promptkit.volatility import call_name, field_stability, volatile_sources

__all__ = ["lint_template"]

# Rules whose findings already explain a StabilityError/VariableError the loader raises.
_LOADER_RULES = frozenset({"PK101", "PK104", "PK105", "PK301", "PK501"})


def lint_template(
    source: str, *, path: str, line_offset: int = 0, prefix: PrefixPolicy | None = None
) -> list[Finding]:
    """All findings for one template source. ``line_offset`` shifts lines (templates in .py)."""
    environment = template_environment()
    try:
        ast = environment.parse(source)
    except JinjaSyntaxError as exc:
        line = (exc.lineno or 1) + line_offset
        return [Finding("PK001", path, line, f"the template does not parse: {exc.message}")]
    analysis = _Analysis(ast, path, known_globals=frozenset(environment.globals))
    findings = analysis.run()
    template: PromptTemplate | None = None
    try:
        template = PromptTemplate(source, name=path)
    except (StabilityError, VariableError) as exc:
        if not any(f.rule in _LOADER_RULES for f in findings):
            findings.append(Finding("PK001", path, exc.line, exc.detail))
    except TemplateError as exc:
        findings.append(Finding("PK001", path, exc.line, exc.detail))
    except JinjaSyntaxError as exc:  # raised by compilation, e.g. an unknown filter
        findings.append(Finding("PK001", path, exc.lineno, f"the template does not compile: {exc}"))
    if prefix is not None and template is not None:
        findings.extend(literal_prefix_findings(template, analysis.segments, prefix=prefix))
    unique = {(f.rule, f.line, f.message): f for f in findings}
    return [
        Finding(f.rule, f.path, None if f.line is None else f.line + line_offset, f.message)
        for f in unique.values()
    ]


def _value(node: nodes.Node) -> Any:
    """A ``Const``'s value (the tags store names, classes and lines as constants)."""
    return node.value  # type: ignore[attr-defined]


def _subtree_ids(node: nodes.Node) -> set[int]:
    return {id(node)} | {id(n) for n in node.find_all(nodes.Node)}


class _Analysis:
    """One walk over a parsed template, collecting findings instead of raising."""

    def __init__(self, ast: nodes.Template, path: str, *, known_globals: frozenset[str]) -> None:
        self.ast = ast
        self.path = path
        self.known_globals = known_globals
        self.variables: dict[str, VariableSpec] = {}
        self.segments: list[tuple[SegmentSpec, nodes.CallBlock]] = []
        self.findings: list[Finding] = []
        self.flagged_calls: set[str] = set()
        self.derived: dict[str, Origin] = {}
        self.tainted: dict[str, str] = {}

    def add(self, rule: str, line: int | None, message: str) -> None:
        self.findings.append(Finding(rule, self.path, line, message))

    def lookup(self, name: str) -> Origin | None:
        if name in self.variables:
            return self.variables[name].stability, name
        return self.derived.get(name)

    def run(self) -> list[Finding]:
        self._collect()
        self.derived = derive_names(self.ast, self.variables)
        self._taint()
        highest: SegmentSpec | None = None
        for index, (spec, node) in enumerate(self.segments):
            if highest is not None and spec.stability < highest.stability:
                self.add(
                    "PK301",
                    spec.line,
                    f"segment {spec.name!r} ({spec.stability.label}) comes after the less stable "
                    f"segment {highest.name!r} ({highest.stability.label}): nothing after a "
                    "volatile segment can be cached; order segments from most to least stable",
                )
            elif highest is None or spec.stability > highest.stability:
                highest = spec
            self._segment(spec, node)
            self._blank_lines(index)
        self._variables()
        return self.findings

    # -- structure ------------------------------------------------------------------------

    def _collect(self) -> None:
        for node in self.ast.body:
            if isinstance(node, nodes.ExprStmt) and is_tag_call(node.node, "_declare"):
                call = node.node
                assert isinstance(call, nodes.Call) and isinstance(call.args[0], nodes.List)
                for item in call.args[0].items:
                    assert isinstance(item, nodes.Tuple)
                    name, label, line = (_value(x) for x in item.items)
                    if name in self.variables:
                        self.add("PK001", line, f"variable {name!r} is declared twice")
                        continue
                    self.variables[name] = VariableSpec(name, Stability.parse(label), line)
            elif isinstance(node, nodes.CallBlock) and is_tag_call(node.call, "_segment"):
                assert isinstance(node.call, nodes.Call)
                name, label, role = (_value(a) for a in node.call.args)
                spec = SegmentSpec(name, Stability.parse(label), node.lineno, role)
                self.segments.append((spec, node))

    def _taint(self) -> None:
        """Names set from a clock or random call are as volatile as the call itself."""
        for _ in range(3):
            for node in self.ast.find_all(BINDING_NODES):
                expr, targets, _ = binding(node)
                source = next((shown for _, shown in volatile_sources(expr)), None)
                if source is None:
                    source = next(
                        (
                            self.tainted[n.name]
                            for n in expr.find_all(nodes.Name)
                            if n.name in self.tainted
                        ),
                        None,
                    )
                if source is not None:
                    self.tainted.update(dict.fromkeys(targets, source))

    # -- per segment ----------------------------------------------------------------------

    def _segment(self, spec: SegmentSpec, node: nodes.CallBlock) -> None:
        body = nodes.Output(node.body)
        if spec.stability.is_stable:
            self._volatile_calls(spec, body)
            self._serialization(spec, body)
        conditions: set[int] = set()
        for cond in body.find_all((nodes.If, nodes.CondExpr)):
            test = cond.test if isinstance(cond, nodes.If | nodes.CondExpr) else None
            if test is not None:
                conditions |= {id(n) for n in test.find_all(nodes.Name)} | {id(test)}
        for ref in body.find_all(nodes.Name):
            if ref.ctx == "load":
                self._name(spec, ref, conditional=id(ref) in conditions)
        self._fields(spec, body)

    def _volatile_calls(self, spec: SegmentSpec, body: nodes.Node) -> None:
        for line, shown in volatile_sources(body):
            self.flagged_calls.add(shown.strip("|()").rsplit(".", 1)[-1])
            self.add(
                "PK101",
                line,
                f"{shown} differs on every render and lands in the {spec.stability.label} "
                f"segment {spec.name!r}, so no two prompts share that prefix; pass the value "
                "as a request variable in a request segment (or pin it, as ChatTemplate pins "
                "the date)",
            )
        for ref in body.find_all(nodes.Name):
            if ref.ctx == "load" and ref.name in self.tainted:
                self.add(
                    "PK101",
                    ref.lineno,
                    f"{ref.name!r} is set from {self.tainted[ref.name]} and lands in the "
                    f"{spec.stability.label} segment {spec.name!r}; move it to a request segment",
                )

    def _name(self, spec: SegmentSpec, ref: nodes.Name, *, conditional: bool) -> None:
        origin = self.lookup(ref.name)
        if origin is None or origin[0] <= spec.stability:
            return
        stability, source = origin
        via = "" if source == ref.name else f" (built from {source!r})"
        if conditional:
            self.add(
                "PK105",
                ref.lineno,
                f"a condition in the {spec.stability.label} segment {spec.name!r} reads the "
                f"{stability.label} value {ref.name!r}{via}: the text it selects changes with "
                f"it and moves the cached prefix; move the conditional part to a "
                f"{stability.label} segment",
            )
        else:
            self.add(
                "PK104",
                ref.lineno,
                f"{stability.label} value {ref.name!r}{via} renders into the "
                f"{spec.stability.label} segment {spec.name!r}: every change of it moves the "
                f"cached prefix; move it to a {stability.label} segment further down, or declare "
                f"it {spec.stability.label} if it really is that stable",
            )

    def _fields(self, spec: SegmentSpec, body: nodes.Node) -> None:
        """Declared variables and their fields whose *names* say they are volatile."""
        called = {id(call.node) for call in body.find_all(nodes.Call)}  # PK101's business
        for node in body.find_all((nodes.Name, nodes.Getattr, nodes.Getitem)):
            if id(node) in called:
                continue
            root: nodes.Node = node
            while isinstance(root, nodes.Getattr | nodes.Getitem):
                root = root.node
            if not isinstance(root, nodes.Name) or root.name not in self.variables:
                continue
            if self.variables[root.name].stability > spec.stability:
                continue  # PK104 already says so
            if isinstance(node, nodes.Name):
                field = node.name
            elif isinstance(node, nodes.Getattr):
                field = node.attr
            elif (
                isinstance(node, nodes.Getitem)
                and isinstance(node.arg, nodes.Const)
                and isinstance(node.arg.value, str)
            ):
                field = node.arg.value
            else:
                continue
            usual = field_stability(field)
            if usual is not None and usual > spec.stability:
                self.add(
                    "PK102",
                    node.lineno,
                    f"{field!r} is usually {usual.label}-level (an id, a clock or a per-user "
                    f"field) but renders into the {spec.stability.label} segment {spec.name!r}; "
                    f"declare it {usual.label} and move it to such a segment",
                )

    def _serialization(self, spec: SegmentSpec, body: nodes.Node) -> None:
        where = f"the {spec.stability.label} segment {spec.name!r}"
        ordered: set[int] = set()
        for flt in body.find_all(nodes.Filter):
            if flt.name in ("sort", "dictsort") and flt.node is not None:
                ordered |= _subtree_ids(flt.node)
        for flt in body.find_all(nodes.Filter):
            sort_keys = next((k.value for k in flt.kwargs if k.key == "sort_keys"), None)
            if flt.name == "string" or (
                flt.name == "tojson" and isinstance(sort_keys, nodes.Const) and not sort_keys.value
            ):
                self.add(
                    "PK201",
                    flt.lineno,
                    f"|{flt.name} in {where} serializes in the caller's key order (or as a Python "
                    "repr); use |tojson, which promptkit makes canonical (sorted keys)",
                )
            elif flt.name == "items" and id(flt) not in ordered:
                self._unordered(flt.lineno, "|items", where)
        for call in body.find_all(nodes.Call):
            name, shown = call_name(call)
            sort_keys = next((k.value for k in call.kwargs if k.key == "sort_keys"), None)
            if name == "dumps" and not (isinstance(sort_keys, nodes.Const) and sort_keys.value):
                self.add(
                    "PK201",
                    call.lineno,
                    f"{shown} in {where} without sort_keys=True follows the caller's key order; "
                    "use |tojson (canonical) or sort_keys=True",
                )
            elif name in ("items", "keys", "values") and not call.args and id(call) not in ordered:
                self._unordered(call.lineno, shown, where)

    def _unordered(self, line: int, shown: str, where: str) -> None:
        self.add(
            "PK202",
            line,
            f"{shown} in {where} iterates in the caller's insertion order; sort it "
            "(|dictsort, or |sort) so equal values render equal text",
        )

    def _blank_lines(self, index: int) -> None:
        """Leading/trailing blank lines where a chat template or caller may strip() them."""
        spec, node = self.segments[index]
        chat = spec.role is not None
        before = self.segments[index - 1][0] if index else None
        after = self.segments[index + 1][0] if index + 1 < len(self.segments) else None
        starts = before is None or (chat and before.role != spec.role)
        ends = after is None or (chat and after.role != spec.role)
        first = node.body[0] if node.body else None
        last = node.body[-1] if node.body else None
        if starts and isinstance(first, nodes.Output) and first.nodes:
            data = first.nodes[0]
            if isinstance(data, nodes.TemplateData) and data.data.lstrip(" \t").startswith("\n"):
                self._blank(spec, data.lineno, "starts")
        if ends and isinstance(last, nodes.Output) and last.nodes:
            data = last.nodes[-1]
            if isinstance(data, nodes.TemplateData) and data.data.rstrip(" \t").endswith("\n\n"):
                self._blank(spec, data.lineno + data.data.count("\n") - 1, "ends")

    def _blank(self, spec: SegmentSpec, line: int, side: str) -> None:
        self.add(
            "PK404",
            line,
            f"segment {spec.name!r} {side} with a blank line at the edge of its message; chat "
            "templates and callers that strip() drop it in some paths and keep it in others, "
            "so the same prompt tokenizes two ways; remove the blank line",
        )

    # -- variables ------------------------------------------------------------------------

    def _variables(self) -> None:
        loads = [n for n in self.ast.find_all(nodes.Name) if n.ctx == "load"]
        undeclared = (
            meta.find_undeclared_variables(self.ast)
            - set(self.variables)
            - self.known_globals
            - self.flagged_calls
        )
        for name in sorted(undeclared):
            line = min(n.lineno for n in loads if n.name == name)
            self.add(
                "PK501",
                line,
                f"{name!r} is used but not declared; add it to {{% vars {name}=CLASS %}} with its "
                "stability class",
            )
        used = {n.name for n in loads}
        for name, spec in self.variables.items():
            if name not in used:
                self.add(
                    "PK502",
                    spec.line,
                    f"{name!r} is declared but never used; remove it from {{% vars %}} (callers "
                    "still have to pass it, and a change of it looks like a cache miss)",
                )
