"""The Jinja2 environments promptkit compiles templates with, and its two tags.

Templates run sandboxed (``ImmutableSandboxedEnvironment``) with ``StrictUndefined`` -- a missing
variable is an error, never an empty string that silently changes the prompt, and a template
cannot change the values it is given. ``tojson`` is replaced by
:func:`promptkit._canonical.canonical_json`, so JSON in a prompt is sorted and stable;
``sort_tools`` turns tool definitions into canonical schemas sorted by name. Every template
builds its own environment with :func:`template_environment` and configures nothing after that:
there is no module-level environment to share or to grow.

Tags (parsed by :class:`SegmentExtension`, errors carry the template line)::

    {% vars document=session, question=request %}
    {% segment system static %} ... {% endsegment %}
    {% segment question request role=user %} ... {% endsegment %}

At render time each segment's output is wrapped in private control characters so the renderer can
cut the output into segments without any regex over template source. In *tracking* mode (used to
explain cache misses) every ``{{ expression }}`` and every chunk of literal text is wrapped too,
with an id that maps back to its template line and the variables it reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from jinja2 import StrictUndefined, nodes
from jinja2 import Template as JinjaTemplate
from jinja2.exceptions import TemplateSyntaxError as JinjaSyntaxError
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from promptkit._canonical import canonical_json
from promptkit._segments import Stability
from promptkit._tools import canonical_tools

__all__ = [
    "MARKERS",
    "SEGMENT_CLOSE",
    "SEGMENT_OPEN",
    "SEGMENT_SEP",
    "TRACK_CLOSE",
    "TRACK_OPEN",
    "TRACK_SEP",
    "SegmentExtension",
    "TrackedExpression",
    "compile_template",
    "compile_tracking",
    "contains_marker",
    "strip_tracking",
    "template_environment",
]

# Control characters that never occur in prompt text (inputs containing them are rejected).
SEGMENT_OPEN = "\x02"
SEGMENT_SEP = "\x03"
SEGMENT_CLOSE = "\x04"
TRACK_OPEN = "\x05"
TRACK_SEP = "\x06"
TRACK_CLOSE = "\x07"
MARKERS = (SEGMENT_OPEN, SEGMENT_SEP, SEGMENT_CLOSE, TRACK_OPEN, TRACK_SEP, TRACK_CLOSE)

_TRACK_FUNCTION = "__promptkit_track"


@dataclass(frozen=True, slots=True)
class TrackedExpression:
    """What a tracking marker id stands for: a line, its kind and the names it reads."""

    line: int
    kind: str  # "expression" or "text"
    source: str
    names: tuple[str, ...]


class SegmentExtension(Extension):
    """Adds ``{% vars %}`` and ``{% segment %}`` to Jinja."""

    tags = {"vars", "segment"}  # noqa: RUF012 - Jinja declares it a set

    def parse(self, parser: Parser) -> nodes.Node | list[nodes.Node]:
        token = next(parser.stream)
        if token.value == "vars":
            return self._parse_vars(parser, token.lineno)
        return self._parse_segment(parser, token.lineno)

    def _stability(self, parser: Parser, lineno: int) -> str:
        tok = parser.stream.expect("name")
        try:
            return Stability.parse(tok.value).label
        except ValueError as exc:
            raise JinjaSyntaxError(str(exc), tok.lineno, parser.name, parser.filename) from None

    def _parse_vars(self, parser: Parser, lineno: int) -> nodes.Node:
        pairs: list[nodes.Expr] = []
        while parser.stream.current.type != "block_end":
            name_tok = parser.stream.expect("name")
            parser.stream.expect("assign")
            stability = self._stability(parser, name_tok.lineno)
            pairs.append(
                nodes.Tuple(
                    [
                        nodes.Const(name_tok.value),
                        nodes.Const(stability),
                        nodes.Const(name_tok.lineno),
                    ],
                    "load",
                )
            )
            if not parser.stream.skip_if("comma"):
                break
        if not pairs:
            raise JinjaSyntaxError(
                "{% vars %} needs at least one NAME=CLASS pair, e.g. {% vars question=request %}",
                lineno,
                parser.name,
                parser.filename,
            )
        call = self.call_method("_declare", [nodes.List(pairs)], lineno=lineno)
        return nodes.ExprStmt(call, lineno=lineno)

    def _parse_segment(self, parser: Parser, lineno: int) -> nodes.Node:
        name = parser.stream.expect("name").value
        stability = self._stability(parser, lineno)
        role: str | None = None
        if parser.stream.current.type == "name" and parser.stream.current.value == "role":
            next(parser.stream)
            parser.stream.expect("assign")
            tok = next(parser.stream)
            if tok.type not in ("name", "string"):
                raise JinjaSyntaxError(
                    "role= takes a name such as system, user or assistant",
                    tok.lineno,
                    parser.name,
                    parser.filename,
                )
            role = str(tok.value)
        if parser.stream.current.type != "block_end":
            raise JinjaSyntaxError(
                "expected {% segment NAME CLASS [role=ROLE] %}",
                parser.stream.current.lineno,
                parser.name,
                parser.filename,
            )
        body = parser.parse_statements(("name:endsegment",), drop_needle=True)
        args: list[nodes.Expr] = [nodes.Const(name), nodes.Const(stability), nodes.Const(role)]
        call = self.call_method("_segment", args, lineno=lineno)
        return nodes.CallBlock(call, [], [], body, lineno=lineno)

    @staticmethod
    def _declare(pairs: list[Any]) -> str:
        return ""

    @staticmethod
    def _segment(name: str, stability: str, role: str | None, caller: Callable[[], str]) -> str:
        return f"{SEGMENT_OPEN}{name}{SEGMENT_SEP}{caller()}{SEGMENT_CLOSE}"


class _TrackingEnvironment(ImmutableSandboxedEnvironment):
    """An environment that records what each tracking marker id stands for while compiling.

    Jinja keeps extension state on the environment; this one belongs to a single compilation
    (see :func:`compile_tracking`), so the record is that template's and nobody else's.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.tracked: list[TrackedExpression] = []


class TrackingExtension(Extension):
    """Rewrites the token stream so every expression and text chunk carries a marker id.

    Registered only in a :class:`_TrackingEnvironment`; the ids index its ``tracked`` list.
    """

    def filter_stream(self, stream: TokenStream) -> Iterable[Token]:
        assert isinstance(self.environment, _TrackingEnvironment)
        registry = self.environment.tracked
        tokens: Iterator[Token] = iter(stream)
        for tok in tokens:
            if tok.type == "data" and tok.value:
                ident = len(registry)
                registry.append(TrackedExpression(tok.lineno, "text", tok.value, ()))
                yield Token(
                    tok.lineno, "data", f"{TRACK_OPEN}{ident}{TRACK_SEP}{tok.value}{TRACK_CLOSE}"
                )
            elif tok.type == "variable_begin":
                inner: list[Token] = []
                end = tok
                for nxt in tokens:
                    if nxt.type == "variable_end":
                        end = nxt
                        break
                    inner.append(nxt)
                ident = len(registry)
                names = tuple(dict.fromkeys(t.value for t in inner if t.type == "name"))
                source = " ".join(str(t.value) for t in inner)
                registry.append(TrackedExpression(tok.lineno, "expression", source, names))
                yield tok
                yield Token(tok.lineno, "name", _TRACK_FUNCTION)
                yield Token(tok.lineno, "lparen", "(")
                yield Token(tok.lineno, "integer", ident)  # type: ignore[arg-type]
                yield Token(tok.lineno, "comma", ",")
                yield Token(tok.lineno, "lparen", "(")
                yield from inner
                yield Token(tok.lineno, "rparen", ")")
                yield Token(tok.lineno, "rparen", ")")
                yield end
            else:
                yield tok


def _track(ident: int, value: Any) -> str:
    return f"{TRACK_OPEN}{ident}{TRACK_SEP}{value}{TRACK_CLOSE}"


def _printable(value: Any) -> Any:
    """What ``{{ expression }}`` prints: ``None`` is refused, never the text "None"."""
    if value is None:
        from promptkit.errors import VariableError

        raise VariableError(
            "an expression printed None (it would appear as the text 'None' in the prompt): "
            "pass a value, or write {{ x if x is not none else '' }}"
        )
    return value


def _raise_template_error(message: str) -> None:
    from promptkit.errors import TemplateError

    raise TemplateError(message)


_Env = TypeVar("_Env", bound=ImmutableSandboxedEnvironment)


def _build(cls: type[_Env], extensions: list[type[Extension]]) -> _Env:
    env = cls(
        undefined=StrictUndefined,
        extensions=extensions,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # Templates are compiled from source by their owner and never looked up by name, so
        # Jinja's per-environment template cache would only hold what nobody asks for again.
        cache_size=0,
        finalize=_printable,
    )
    env.filters["tojson"] = _tojson
    env.filters["sort_tools"] = canonical_tools
    env.globals["raise_exception"] = _raise_template_error
    return env


def template_environment() -> ImmutableSandboxedEnvironment:
    """A new sandboxed environment for one template (its owner configures nothing after this)."""
    return _build(ImmutableSandboxedEnvironment, [SegmentExtension])


def compile_template(
    environment: ImmutableSandboxedEnvironment, source: str, *, name: str, filename: str
) -> JinjaTemplate:
    """Compile ``source`` under ``filename``, so runtime tracebacks point at the template's lines.

    Raises ``jinja2.TemplateSyntaxError`` for what only compilation finds (an unknown filter).
    """
    code = environment.compile(source, name=name, filename=filename)
    return environment.template_class.from_code(environment, code, environment.make_globals(None))


def compile_tracking(
    source: str, *, name: str, filename: str
) -> tuple[JinjaTemplate, tuple[TrackedExpression, ...]]:
    """Compile ``source`` in tracking mode, in an environment of its own.

    Returns the template and what each of its marker ids stands for. Nothing is kept anywhere
    else: the record lives as long as the caller keeps the result.
    """
    env = _build(_TrackingEnvironment, [SegmentExtension, TrackingExtension])
    env.globals[_TRACK_FUNCTION] = _track
    compiled = compile_template(env, source, name=name, filename=filename)
    return compiled, tuple(env.tracked)


def _tojson(value: Any, indent: int | None = None) -> str:
    return canonical_json(value, indent=indent)


def contains_marker(value: Any) -> bool:
    """Whether a variable value (at any depth) holds one of the reserved marker characters."""
    if isinstance(value, str):
        return any(marker in value for marker in MARKERS)
    if isinstance(value, Mapping):
        return any(contains_marker(k) or contains_marker(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(contains_marker(v) for v in value)
    return False


def strip_tracking(raw: str) -> tuple[str, list[tuple[int, int, int]]]:
    """Remove tracking markers; return clean text and (start, end, id) spans in it."""
    out: list[str] = []
    length = 0
    stack: list[tuple[int, int]] = []
    spans: list[tuple[int, int, int]] = []
    i = 0
    n = len(raw)
    while i < n:
        ch = raw[i]
        if ch == TRACK_OPEN:
            sep = raw.index(TRACK_SEP, i)
            stack.append((int(raw[i + 1 : sep]), length))
            i = sep + 1
        elif ch == TRACK_CLOSE:
            ident, start = stack.pop()
            spans.append((start, length, ident))
            i += 1
        else:
            j = i
            while j < n and raw[j] not in (TRACK_OPEN, TRACK_CLOSE):
                j += 1
            out.append(raw[i:j])
            length += j - i
            i = j
    return "".join(out), spans
