"""Canonical serialization: one byte sequence per value, every time, on every machine.

This module is a contract. Changing any rule here changes the text -- and therefore the token
ids and the prefix-cache hashes -- of every prompt that embeds JSON; treat a change as a
breaking release and regenerate ``promptkit.lock`` files.

Rules of :func:`canonical_json`:

* objects: keys sorted by code point at every depth; keys must be strings (ints, floats and
  bools are rejected rather than silently stringified, since ``{1: ..}`` and ``{"1": ..}`` would
  then collide);
* separators ``", "`` and ``": "``, no indentation unless ``indent`` is given (then ``\\n`` and
  ``indent`` spaces; still sorted);
* ``ensure_ascii=False``: non-ASCII text stays as it is, after NFC normalization of every
  string (keys and values), so that composed and decomposed accents serialize alike;
* floats in shortest round-trip form (Python's ``repr``); ``-0.0`` becomes ``0.0``; integral
  floats keep their ``.0``; NaN and +/-Infinity raise :class:`SerializationError`;
* ``tuple`` and ``list`` become arrays in their order; ``set``/``frozenset`` become arrays
  sorted by the canonical JSON of their members (their iteration order is not stable);
* ``datetime`` becomes ISO 8601 and must be timezone-aware (naive times depend on the host);
  ``date`` and ``time`` become ISO 8601; ``Decimal`` is rejected unless finite, then written
  as its exact string; ``Enum`` becomes its value; ``bytes`` is rejected (encode it yourself:
  base64 and hex are both common, and a silent choice would surprise someone);
* pydantic models become ``model_dump(mode="json")``; dataclasses become ``asdict``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import math
import unicodedata
from collections.abc import Mapping
from typing import Any

from promptkit.errors import SerializationError

__all__ = ["canonical_json", "normalize_text", "to_canonical"]


def to_canonical(value: Any, *, path: str = "$") -> Any:
    """Return a plain JSON value (dict/list/str/int/float/bool/None) following the module rules."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise SerializationError(
                f"{path}: {value!r} has no JSON form; replace it with null or a string"
            )
        return 0.0 if value == 0 else value
    if isinstance(value, enum.Enum):
        return to_canonical(value.value, path=path)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(
                    f"{path}: object key {key!r} is a {type(key).__name__}; use string keys"
                )
            norm_key = unicodedata.normalize("NFC", key)
            if norm_key in out:
                raise SerializationError(f"{path}: keys collide after NFC normalization: {key!r}")
            out[norm_key] = to_canonical(item, path=f"{path}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [to_canonical(v, path=f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, set | frozenset):
        items = [to_canonical(v, path=f"{path}[]") for v in value]
        return sorted(items, key=_dumps)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise SerializationError(
                f"{path}: naive datetime {value!r}; attach a timezone (e.g. datetime.UTC)"
            )
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise SerializationError(f"{path}: {value!r} has no JSON form")
        return str(value)
    if isinstance(value, bytes | bytearray):
        raise SerializationError(
            f"{path}: bytes have no canonical text form; encode them (base64 or hex) first"
        )
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return to_canonical(model_dump(mode="json"), path=path)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_canonical(dataclasses.asdict(value), path=path)
    raise SerializationError(
        f"{path}: {type(value).__name__} has no canonical JSON form; convert it to "
        "dict/list/str/number first"
    )


def _dumps(value: Any, indent: int | None = None) -> str:
    return json.dumps(
        value,
        sort_keys=True,
        ensure_ascii=False,
        allow_nan=False,
        indent=indent,
        separators=(",", ": ") if indent is not None else (", ", ": "),
    )


def canonical_json(value: Any, *, indent: int | None = None) -> str:
    """Serialize ``value`` to its one canonical JSON text (see the module docstring).

    Contract: the output for a given value never changes between runs, machines or Python
    versions; changing it changes every prefix hash built on it.
    """
    return _dumps(to_canonical(value), indent=indent)


def normalize_text(text: str) -> str:
    """Normalize text for a stable segment: LF line ends, no trailing blanks before a newline, NFC.

    Applied identically on every render, so that an editor's CRLF or a stray trailing space never
    makes two renders of the same stable text differ. Leading indentation and blank lines are
    kept: they are content.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    # The last line has no newline: its trailing blank joins the next segment and is content.
    text = "\n".join([line.rstrip(" \t") for line in lines[:-1]] + lines[-1:])
    return unicodedata.normalize("NFC", text)
