"""``promptkit.lock``: what each template's stable prefix tokenized to when it was last approved.

Per template (keyed by its path relative to the lock file, with ``/``): the tokenizer and chat
template fingerprints, one hash over every sample's stable-prefix ids, each sample's stable
length, and the first sample's stable ids themselves -- kept so a failing check can name the
first token that moved, not just say that something did.

Contract: the file is JSON with sorted keys and a fixed layout, so an unchanged lock is
byte-identical after ``--update`` and a real change is a readable diff.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from promptkit.errors import LintConfigError

__all__ = ["LOCK_VERSION", "Lock", "LockEntry", "read_lock", "write_lock"]

LOCK_VERSION = 1
_HEX32 = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class LockEntry:
    """One template's approved stable prefix."""

    tokenizer: str
    chat_template: str | None
    prefix_hash: str
    stable_tokens: tuple[int, ...]
    stable_ids: tuple[int, ...]


@dataclass(slots=True)
class Lock:
    """All entries of one lock file."""

    templates: dict[str, LockEntry] = field(default_factory=dict)


# `check --update` reads the old lock too (to keep other templates' entries), so it cannot
# repair one it cannot read: the file has to go first.
_REGENERATE = "delete it and record your templates again, e.g. `promptkit check templates --update`"


def _entry(key: str, raw: Any, path: Path) -> LockEntry:
    try:
        entry = LockEntry(
            tokenizer=str(raw["tokenizer"]),
            chat_template=None if raw["chat_template"] is None else str(raw["chat_template"]),
            prefix_hash=str(raw["prefix_hash"]),
            stable_tokens=tuple(int(n) for n in raw["stable_tokens"]),
            stable_ids=tuple(int(n) for n in str(raw["stable_ids"]).split()),
        )
        _consistent(entry)
    except (KeyError, TypeError, ValueError) as exc:
        raise LintConfigError(
            f"{path}: entry {key!r} is malformed ({exc!r}); {_REGENERATE}"
        ) from None
    return entry


def _consistent(entry: LockEntry) -> None:
    """Refuse an entry that no ``check --update`` could have written (a corrupted lock must not
    pass ``check`` by comparing garbage with garbage)."""
    if not _HEX32.fullmatch(entry.prefix_hash):
        raise ValueError("prefix_hash is not 32 hex digits")
    if not entry.stable_tokens or min(entry.stable_tokens) < 0:
        raise ValueError("stable_tokens must be a non-empty list of counts")
    if len(entry.stable_ids) != entry.stable_tokens[0]:
        raise ValueError(
            f"stable_ids holds {len(entry.stable_ids)} ids but stable_tokens[0] says "
            f"{entry.stable_tokens[0]}"
        )
    if any(i < 0 for i in entry.stable_ids):
        raise ValueError("a token id is negative")


def read_lock(path: Path) -> Lock:
    """Read the lock; a missing file is an empty lock (every template then reports PK705)."""
    if not path.exists():
        return Lock()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # unreadable, not UTF-8, not JSON
        raise LintConfigError(f"{path}: cannot read the lock file: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != LOCK_VERSION:
        raise LintConfigError(f"{path}: not a version {LOCK_VERSION} promptkit lock; {_REGENERATE}")
    templates = data.get("templates", {})
    if not isinstance(templates, dict):
        raise LintConfigError(f"{path}: 'templates' must be an object")
    return Lock({key: _entry(key, raw, path) for key, raw in templates.items()})


def write_lock(path: Path, lock: Lock) -> None:
    """Write the lock atomically (a temporary file renamed into place)."""
    templates: dict[str, Any] = {}
    for key in sorted(lock.templates):
        raw = asdict(lock.templates[key])
        raw["stable_tokens"] = list(raw["stable_tokens"])
        raw["stable_ids"] = " ".join(str(i) for i in raw["stable_ids"])
        templates[key] = raw
    text = json.dumps({"version": LOCK_VERSION, "templates": templates}, indent=2, sort_keys=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)
