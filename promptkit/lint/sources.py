"""Files that are not promptkit templates: model chat templates and Python that builds prompts.

* A chat template (``*.jinja``, e.g. a model's ``chat_template.jinja``) is checked for the clock
  (PK103) and for ``tojson`` without sorted keys (PK201): outside promptkit -- vLLM's server,
  ``apply_chat_template`` -- neither is pinned or canonical.
* A Python file that does not parse is a finding (PK001). One that imports promptkit is checked
  for ``json.dumps`` without ``sort_keys=True`` whose result reaches a prompt (PK201), for a
  clock, uuid or random value passed into a variable a template declares stable (PK106), for
  ``control_tokens="allow"`` (PK801: values may become control tokens), and
  every template literal passed to ``PromptTemplate``/``from_string`` is linted as
  a template, with lines counted in the Python file.
"""

from __future__ import annotations

import ast
from pathlib import Path

from jinja2 import Environment
from jinja2.exceptions import TemplateSyntaxError as JinjaSyntaxError

from promptkit._chat_template import ChatTemplate
from promptkit._templating.analysis import analyze_source
from promptkit._templating.environment import template_environment
from promptkit.errors import TokenizationError
from promptkit.lint._chat_check import chat_history_findings
from promptkit.lint._python_flow import reaches_prompt, volatile_splices
from promptkit.lint.prefix import PrefixPolicy
from promptkit.lint.rules import Finding
from promptkit.lint.template_rules import lint_template

__all__ = ["lint_chat_template", "lint_python"]

_TEMPLATE_FACTORIES = frozenset({"PromptTemplate", "from_string"})


def lint_chat_template(source: str, *, path: str) -> list[Finding]:
    """PK103, PK201 and PK302 for a model chat template."""
    try:
        clock = set(ChatTemplate(source, name=path).volatile_names)
        tokens = [t for t in Environment().lex(source) if t[1] != "whitespace"]
    except (TokenizationError, JinjaSyntaxError) as exc:
        return [Finding("PK001", path, getattr(exc, "lineno", None), str(exc))]
    findings: list[Finding] = chat_history_findings(source, path=path)
    seen: set[int] = set()
    for index, (line, kind, value) in enumerate(tokens):
        if kind == "name" and value in clock and line not in seen:
            seen.add(line)
            findings.append(
                Finding(
                    "PK103",
                    path,
                    line,
                    f"the chat template reads the clock ({value}): rendered live (vLLM's server, "
                    "apply_chat_template) its text -- and every cached prefix -- changes at "
                    "midnight; promptkit pins the date, other renderers do not: remove or pin it",
                )
            )
        piped = index > 0 and tokens[index - 1][2] == "|"
        if kind == "name" and value == "tojson" and piped and not _sorted_keys(tokens, index + 1):
            findings.append(
                Finding(
                    "PK201",
                    path,
                    line,
                    "tojson without sort_keys=true: transformers' tojson keeps the caller's key "
                    "order, so tool schemas built in another order render other tokens; use "
                    "tojson(sort_keys=true) or send canonical schemas (promptkit.canonical_tools)",
                )
            )
    return findings


def _sorted_keys(tokens: list[tuple[int, str, str]], start: int) -> bool:
    """Whether the filter call starting at ``tokens[start]`` passes ``sort_keys=true``."""
    if start >= len(tokens) or tokens[start][2] != "(":
        return False
    depth = 0
    values: list[str] = []
    for _, _, value in tokens[start:]:
        depth += {"(": 1, ")": -1}.get(value, 0)
        values.append(value)
        if depth == 0:
            break
    return any(
        values[i : i + 3] in (["sort_keys", "=", "true"], ["sort_keys", "=", "True"])
        for i in range(len(values))
    )


def _json_names(tree: ast.Module) -> set[str]:
    """Names bound to ``json.dumps``/``json.dump`` by ``from json import ...``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "json":
            names |= {a.asname or a.name for a in node.names if a.name in ("dumps", "dump")}
    return names


def _imports_promptkit(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
            a.name.split(".")[0] == "promptkit" for a in node.names
        ):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "promptkit":
            return True
    return False


def _stable_variables(tree: ast.Module, *, path: str) -> set[str]:
    """Variables declared more stable than ``request`` by templates this file loads: literals
    given to ``PromptTemplate``/``from_string`` and files given to ``from_file`` (relative to
    the Python file, then the cwd)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        arg = node.args[0]
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            continue
        text: str | None = None
        if name in _TEMPLATE_FACTORIES:
            text = arg.value
        elif name == "from_file":
            for candidate in (Path(path).parent / arg.value, Path(arg.value)):
                if candidate.is_file():
                    text = candidate.read_text(encoding="utf-8")
                    break
        if text is None:
            continue
        analysis = analyze_source(text, environment=template_environment(), filename=path)
        names |= {v.name for v in analysis.variables.values() if v.stability.is_stable}
    return names


def lint_python(source: str, *, path: str, prefix: PrefixPolicy | None = None) -> list[Finding]:
    """PK201 for ``json.dumps`` that reaches a prompt, PK106 for a clock or uuid passed into a
    stable variable, PK801 for ``control_tokens="allow"``, and every rule for template
    literals, in files using promptkit."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return [
            Finding(
                "PK001",
                path,
                exc.lineno,
                f"the Python file does not parse ({exc.msg}), so the prompts it builds cannot be "
                "checked; fix the syntax error",
            )
        ]
    if not _imports_promptkit(tree):
        return []
    json_names = _json_names(tree)
    findings: list[Finding] = [
        Finding(
            "PK106",
            path,
            splice.line,
            f"{splice.shown} reaches the template variable {splice.variable!r}, which a template "
            "here declares stable: the value differs on every call and moves the cached prefix; "
            "declare the variable request and render it in a request segment, or pass a fixed "
            "value",
        )
        for splice in volatile_splices(tree, variables=_stable_variables(tree, path=path))
    ]
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        is_json = (
            isinstance(func, ast.Attribute)
            and func.attr in ("dumps", "dump")
            and isinstance(func.value, ast.Name)
            and func.value.id == "json"
        ) or (isinstance(func, ast.Name) and func.id in json_names)
        if (
            is_json
            and not any(
                k.arg == "sort_keys" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in node.keywords
            )
            and reaches_prompt(tree, node)
        ):
            findings.append(
                Finding(
                    "PK201",
                    path,
                    node.lineno,
                    "json.dumps without sort_keys=True writes keys in insertion order, so equal "
                    "values can render different prompts; use promptkit.canonical_json",
                    column=node.col_offset + 1,
                )
            )
        findings += _control_tokens_allowed(node, path=path)
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        literal = node.args[0] if node.args else None
        if (
            name in _TEMPLATE_FACTORIES
            and isinstance(literal, ast.Constant)
            and isinstance(literal.value, str)
        ):
            findings += lint_template(
                literal.value, path=path, line_offset=literal.lineno - 1, prefix=prefix
            )
    return findings


def _control_tokens_allowed(call: ast.Call, *, path: str) -> list[Finding]:
    """PK801: a client or builder told to let values through as control tokens."""
    return [
        Finding(
            "PK801",
            path,
            keyword.value.lineno,
            "control_tokens='allow' lets a question, document or chat message that holds "
            "'<|im_end|>' or '<|im_start|>' become the model's real control tokens (a forged "
            "system turn); keep the default 'escape' (or 'reject'), and allow only values you "
            "wrote yourself; records list such values with control_tokens_policy='allow'",
            column=keyword.value.col_offset + 1,
        )
        for keyword in call.keywords
        if keyword.arg == "control_tokens"
        and isinstance(keyword.value, ast.Constant)
        and keyword.value.value == "allow"
    ]
