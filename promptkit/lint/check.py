"""``promptkit check``: build every template's fixtures and hold them to ``promptkit.lock``.

Lint reads templates; check tokenizes them. Per template it runs the token-level checks of
:mod:`promptkit.lint.tokens`, then compares the tokenizer and chat-template fingerprints and
the hash of the stable-prefix ids with the lock. Any difference fails (PK704) and says what
moved -- a tokenizer swap or a chat-template edit shifts every id after it, which is exactly the
silent cache regression this exists to catch. ``update=True`` approves the current state instead.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path

from jinja2.exceptions import TemplateSyntaxError as JinjaSyntaxError

from promptkit.builder import PromptBuilder
from promptkit.errors import TemplateError
from promptkit.lint.config import LintConfig
from promptkit.lint.engine import Report, discover, display_path, tokenizer_loader
from promptkit.lint.lockfile import Lock, LockEntry, read_lock, write_lock
from promptkit.lint.prefix import PrefixPolicy
from promptkit.lint.rules import Finding
from promptkit.lint.samples import load_fixtures, samples_path
from promptkit.lint.tokens import divergence, first_difference, measure
from promptkit.prompt import BuiltPrompt
from promptkit.template import PromptTemplate
from promptkit.tokenization import Tokenizer

__all__ = ["check_paths", "check_template", "lock_entry"]


def lock_entry(prompts: Sequence[BuiltPrompt], *, tokenizer: Tokenizer) -> LockEntry:
    """What the lock records for a template whose fixtures built ``prompts``."""
    digest = hashlib.blake2b(digest_size=16)
    for prompt in prompts:
        digest.update(array("q", prompt.token_ids[: prompt.stable_tokens]).tobytes())
        digest.update(b"|")
    first = prompts[0]
    return LockEntry(
        tokenizer=tokenizer.fingerprint,
        chat_template=first.chat_template_fingerprint,
        prefix_hash=digest.hexdigest(),
        stable_tokens=tuple(p.stable_tokens for p in prompts),
        stable_ids=first.token_ids[: first.stable_tokens],
    )


def _compare(
    old: LockEntry,
    new: LockEntry,
    *,
    builder: PromptBuilder,
    template: PromptTemplate,
    prompt: BuiltPrompt,
) -> list[Finding]:
    findings: list[Finding] = []
    path = template.filename
    redo = "if the change is deliberate, run `promptkit check --update` and commit the lock"
    if old.tokenizer != new.tokenizer:
        findings.append(
            Finding(
                "PK704",
                path,
                None,
                f"the tokenizer changed (fingerprint {old.tokenizer} -> {new.tokenizer}): every "
                f"cached prefix is invalid and ids may shift; {redo}",
            )
        )
    if old.chat_template != new.chat_template:
        findings.append(
            Finding(
                "PK704",
                path,
                None,
                f"the chat template changed (fingerprint {old.chat_template} -> "
                f"{new.chat_template}); {redo}",
            )
        )
    if old.prefix_hash != new.prefix_hash:
        moved = first_difference(old.stable_ids, new.stable_ids)
        if moved is not None:
            d = divergence(builder, template, old.stable_ids, prompt, moved)
            what = f"samples[0]'s stable prefix moved at {d.describe()}"
            line = d.line
        else:
            what = (
                "the stable prefix of another sample moved (stable tokens "
                f"{list(old.stable_tokens)} -> {list(new.stable_tokens)})"
            )
            line = template.segments[0].line
        findings.append(Finding("PK704", path, line, f"{what}; {redo}"))
    return findings


def check_template(
    path: Path,
    *,
    builder: PromptBuilder,
    policy: PrefixPolicy,
    locked: LockEntry | None,
    shown: str,
) -> tuple[list[Finding], LockEntry | None]:
    """Findings for one template file, and the lock entry it would get."""
    fixtures_file = samples_path(path)
    if not fixtures_file.is_file():
        message = (
            f"no fixtures: add {fixtures_file.name} next to the template with a list of "
            "variable objects (see docs/lint.md, promptkit check)"
        )
        return [Finding("PK707", shown, None, message)], None
    try:
        source = path.read_text(encoding="utf-8")
        template = PromptTemplate(source, name=shown)
    except (OSError, TemplateError, JinjaSyntaxError) as exc:
        line = getattr(exc, "line", None) or getattr(exc, "lineno", None)
        detail = getattr(exc, "detail", None) or str(exc)
        return [Finding("PK706", shown, line, f"the template does not load: {detail}")], None
    measured = measure(template, load_fixtures(fixtures_file), builder=builder, policy=policy)
    findings = list(measured.findings)
    if not measured.prompts or any(f.rule == "PK706" for f in findings):
        return findings, None
    entry = lock_entry(measured.prompts, tokenizer=builder.tokenizer)
    if locked is None:
        findings.append(
            Finding(
                "PK705",
                shown,
                None,
                "the template is not in promptkit.lock; run `promptkit check --update` to record "
                "its stable prefix and commit the lock",
            )
        )
    else:
        findings += _compare(
            locked, entry, builder=builder, template=template, prompt=measured.prompts[0]
        )
    return findings, entry


def check_paths(
    paths: Sequence[Path],
    *,
    config: LintConfig,
    tokenizer: Callable[[], Tokenizer] | None = None,
    update: bool = False,
) -> Report:
    """Check every template under ``paths``; with ``update``, rewrite their lock entries."""
    files = [p for p in discover(paths, config=config, suffixes=(".j2",)) if p.suffix != ".py"]
    lock_path = config.lock_path
    lock = read_lock(lock_path)
    load = tokenizer or tokenizer_loader(config)
    policy = PrefixPolicy(
        tokenizer=load, block_size=config.block_size, minimum=config.min_prefix_tokens
    )
    builder = policy.builder()
    findings: list[Finding] = []
    fresh = Lock(dict(lock.templates))
    for path in files:
        key = display_path(path, root=lock_path.parent)
        found, entry = check_template(
            path,
            builder=builder,
            policy=policy,
            locked=None if update else lock.templates.get(key),
            shown=display_path(path),
        )
        if update:
            found = [f for f in found if f.rule != "PK705"]
            if entry is not None:
                fresh.templates[key] = entry
        findings += [f for f in found if config.enabled(f.rule)]
    if update:
        root = lock_path.parent
        fresh.templates = {k: v for k, v in fresh.templates.items() if (root / k).is_file()}
        write_lock(lock_path, fresh)
    return Report(tuple(sorted(findings, key=lambda f: f.sort_key)), len(files))
