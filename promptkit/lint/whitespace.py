"""Whitespace rules (PK401-PK403), the only rules that read raw lines.

Whitespace is content to a tokenizer: ``"a \\n"`` and ``"a\\n"`` are different ids. promptkit
normalizes stable segments when it renders, but an editor or a pre-commit hook that "fixes" the
file still changes the template -- and the lock -- in a commit that looks like a no-op, and the
same template rendered by anything else keeps the difference.
"""

from __future__ import annotations

from promptkit.lint.rules import Finding

__all__ = ["whitespace_findings"]


def whitespace_findings(source: str, *, path: str, line_offset: int = 0) -> list[Finding]:
    """Trailing blanks (each line), CRLF (once per file) and mixed indentation (first line)."""
    findings: list[Finding] = []
    lines = source.split("\n")
    crlf = next((i for i, line in enumerate(lines) if line.endswith("\r")), None)
    if crlf is not None:
        findings.append(
            Finding(
                "PK402",
                path,
                crlf + 1 + line_offset,
                "CRLF line endings: the same template checked out on another OS renders other "
                "text; save it with LF (and add `*.j2 text eol=lf` to .gitattributes)",
            )
        )
    indents: dict[str, int] = {}
    mixed = False
    for number, raw in enumerate(lines, start=1 + line_offset):
        line = raw.rstrip("\r")
        if line != line.rstrip(" \t"):
            findings.append(
                Finding(
                    "PK401",
                    path,
                    number,
                    "trailing whitespace: editors and hooks strip it, which silently changes "
                    "the prompt's tokens; remove it",
                )
            )
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if indent and line.strip():
            kinds = {"tab" if ch == "\t" else "space" for ch in indent}
            for kind in kinds:
                indents.setdefault(kind, number)
            if not mixed and (len(kinds) > 1 or len(indents) > 1):
                mixed = True
                findings.append(
                    Finding(
                        "PK403",
                        path,
                        number,
                        "indentation mixes tabs and spaces (first tab on line "
                        f"{indents.get('tab')}, first space on line {indents.get('space')}); "
                        "editors convert one into the other and change the tokens; use spaces",
                    )
                )
    return findings
