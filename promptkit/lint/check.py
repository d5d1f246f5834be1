"""``promptkit check``: build every template's fixtures and hold them to ``promptkit.lock``.

Lint reads templates; check tokenizes them. Per template it runs the token-level checks of
:mod:`promptkit.lint.tokens`, then compares the tokenizer and chat-template fingerprints and
the hash of the stable-prefix ids with the lock. Any difference fails (PK704) and says what
moved -- a tokenizer swap or a chat-template edit shifts every id after it, which is exactly the
silent cache regression this exists to catch. ``update=True`` approves the current state instead.
"""

from __future__ import annotations

import hashlib
import shlex
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path

from promptkit._builder import PromptBuilder
from promptkit._built_prompt import BuiltPrompt
from promptkit._templating.prompt_template import PromptTemplate
from promptkit._tokenization import Tokenizer
from promptkit.errors import LintConfigError, PromptkitError, TemplateError
from promptkit.lint._chat_check import chat_template_findings
from promptkit.lint.config import LintConfig, load_config
from promptkit.lint.engine import (
    Report,
    discover,
    display_path,
    is_chat_template,
    tokenizer_loader,
)
from promptkit.lint.lockfile import Lock, LockEntry, read_lock, write_lock
from promptkit.lint.prefix import PrefixPolicy
from promptkit.lint.rules import Finding
from promptkit.lint.samples import load_fixtures, samples_path, synthesized_fixtures
from promptkit.lint.tokens import divergence, first_difference, measure

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


def _update_command(shown: str, *options: str) -> str:
    """The command that records template ``shown`` in the lock. Hints must work when pasted, and
    ``check`` needs a path, so the template's is always given."""
    return shlex.join(["promptkit", "check", shown, "--update", *options])


def _options_to_repeat(config: LintConfig) -> list[str]:
    """``--lockfile``/``--model`` where a plain ``promptkit check`` from the cwd would use another
    lock or model than ``config`` -- that is, where this run had them on its command line."""
    try:
        plain: LintConfig | None = load_config()
    except LintConfigError:
        plain = None
    options = []
    if plain is None or plain.lock_path.resolve() != config.lock_path.resolve():
        options += ["--lockfile", display_path(config.lock_path)]
    if config.model is not None and (plain is None or plain.model != config.model):
        options += ["--model", config.model]
    return options


def _compare(
    old: LockEntry,
    new: LockEntry,
    *,
    builder: PromptBuilder,
    template: PromptTemplate,
    prompt: BuiltPrompt,
    approve: str,
) -> list[Finding]:
    findings: list[Finding] = []
    path = template.filename
    redo = f"if the change is deliberate, run `{approve}` and commit the lock"
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
    approve: str | None = None,
) -> tuple[list[Finding], LockEntry | None]:
    """Findings for one template file, and the lock entry it would get.

    ``approve`` is the command the PK704/PK705 messages tell the user to run (default:
    ``promptkit check SHOWN --update``).
    """
    approve = approve or _update_command(shown)
    fixtures_file = samples_path(path)
    try:
        source = path.read_text(encoding="utf-8")
        template = PromptTemplate(source, name=shown)
    except (OSError, TemplateError) as exc:
        line = getattr(exc, "line", None)
        detail = getattr(exc, "detail", None) or str(exc)
        return [Finding("PK706", shown, line, f"the template does not load: {detail}")], None
    if fixtures_file.is_file():
        fixtures = load_fixtures(fixtures_file)
    else:
        fixtures = synthesized_fixtures(template)
        try:
            builder.build(template, fixtures.samples[0])
        except PromptkitError as exc:
            message = (
                f"no fixtures, and samples made from the declared variables do not render "
                f"({exc}): add {fixtures_file.name} next to the template with a list of "
                "variable objects (see docs/lint.md, promptkit check)"
            )
            return [Finding("PK707", shown, None, message)], None
    measured = measure(template, fixtures, builder=builder, policy=policy)
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
                f"the template is not in promptkit.lock; run `{approve}` to record its stable "
                "prefix and commit the lock",
            )
        )
    else:
        findings += _compare(
            locked,
            entry,
            builder=builder,
            template=template,
            prompt=measured.prompts[0],
            approve=approve,
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
    discovered = discover(paths, config=config, suffixes=(".j2", ".jinja"))
    files = [p for p in discovered if p.suffix != ".py" and not is_chat_template(p)]
    chats = [p for p in discovered if is_chat_template(p)]
    lock_path = config.lock_path
    lock = read_lock(lock_path)
    load = tokenizer or tokenizer_loader(config)
    policy = PrefixPolicy(
        tokenizer=load, block_size=config.block_size, minimum=config.min_prefix_tokens
    )
    builder = policy.builder()
    findings: list[Finding] = []
    fresh = Lock(dict(lock.templates))
    repeat = [] if update else _options_to_repeat(config)
    for path in files:
        key = display_path(path, root=lock_path.parent)
        shown = display_path(path)
        found, entry = check_template(
            path,
            builder=builder,
            policy=policy,
            locked=None if update else lock.templates.get(key),
            shown=shown,
            approve=_update_command(shown, *repeat),
        )
        if update:
            found = [f for f in found if f.rule != "PK705"]
            if entry is not None:
                fresh.templates[key] = entry
        findings += [f for f in found if config.enabled(f.rule)]
    for path in chats:
        shown = display_path(path)
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            findings.append(Finding("PK001", shown, None, f"cannot read the file: {exc}"))
            continue
        found_chat = chat_template_findings(source, path=shown, tokenizer=load())
        findings += [f for f in found_chat if config.enabled(f.rule)]
    if update:
        root = lock_path.parent
        fresh.templates = {k: v for k, v in fresh.templates.items() if (root / k).is_file()}
        write_lock(lock_path, fresh)
    return Report(tuple(sorted(findings, key=lambda f: f.sort_key)), len(files) + len(chats))
