"""What the embedded and the remote vLLM backends say to vLLM alike: sampling fields, metrics.

Pure functions, no I/O and no vLLM import. The embedded engines pass :func:`sampling_fields` to
``vllm.SamplingParams(**fields)``; the remote engine sends the same dict in the body of a
completions request, which vLLM's server turns back into ``SamplingParams``. One translation, so
the two backends cannot sample differently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from engine_adapter.models import OutputConstraint, PrefixCacheCounters, SamplingSettings

__all__ = [
    "CACHE_CONFIG_METRIC",
    "HITS_METRIC",
    "QUERIES_METRIC",
    "Sample",
    "parse_prometheus",
    "prefix_counters",
    "sampling_fields",
    "structured_outputs",
]

QUERIES_METRIC = "vllm:prefix_cache_queries"
HITS_METRIC = "vllm:prefix_cache_hits"
#: A gauge whose labels carry the cache configuration (``block_size``, ``enable_prefix_caching``).
CACHE_CONFIG_METRIC = "vllm:cache_config_info"

#: One metric sample: ``(name, labels, value)``.
Sample = tuple[str, dict[str, str], float]

_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def sampling_fields(settings: SamplingSettings) -> dict[str, Any]:
    """``settings`` as vLLM ``SamplingParams`` fields; unset ones are left out (vLLM's default)."""
    fields: dict[str, Any] = {
        "max_tokens": settings.max_tokens,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "seed": settings.seed,
        "stop": list(settings.stop) or None,
        "stop_token_ids": list(settings.stop_token_ids) or None,
        "logprobs": settings.logprobs,
        "structured_outputs": (
            structured_outputs(settings.constraint) if settings.constraint is not None else None
        ),
    }
    return {name: value for name, value in fields.items() if value is not None}


def structured_outputs(constraint: OutputConstraint) -> dict[str, Any]:
    """``constraint`` as vLLM's ``StructuredOutputsParams`` fields (xgrammar compiles them).

    Whitespace inside the JSON is limited: a small model left free fills the JSON with newlines
    until ``max_tokens`` runs out. A bare schema is plain ``json`` with no whitespace at all;
    literal text around it needs a structural tag (a sequence: text, JSON, text).
    """
    schema = json.loads(constraint.json_schema)
    if not constraint.prefix and not constraint.suffix:
        return {"json": schema, "disable_any_whitespace": True}
    elements: list[dict[str, Any]] = []
    if constraint.prefix:
        elements.append({"type": "const_string", "value": constraint.prefix})
    elements.append({"type": "json_schema", "json_schema": schema, "max_whitespace_cnt": 1})
    if constraint.suffix:
        elements.append({"type": "const_string", "value": constraint.suffix})
    tag = {"type": "structural_tag", "format": {"type": "sequence", "elements": elements}}
    # Not sorted: the schema's property order is the order the JSON is generated in (a tool
    # call's "name" before its "arguments").
    return {"structural_tag": json.dumps(tag, separators=(",", ":"))}


def prefix_counters(samples: Iterable[tuple[str, float]]) -> PrefixCacheCounters | None:
    """vLLM's prefix-cache counters from ``(name, value)`` samples, summed over engines and label
    sets; ``None`` unless both are published. Prometheus names (``..._total``) count too."""
    totals: dict[str, float] = {}
    for name, value in samples:
        base = name.removesuffix("_total")
        if base in (QUERIES_METRIC, HITS_METRIC):
            totals[base] = totals.get(base, 0.0) + value
    if len(totals) < 2:
        return None
    return PrefixCacheCounters(queries=int(totals[QUERIES_METRIC]), hits=int(totals[HITS_METRIC]))


def parse_prometheus(text: str) -> list[Sample]:
    """Samples ``(name, labels, value)`` of a Prometheus text exposition; comments skipped."""
    samples: list[Sample] = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        try:
            number = float(value)
        except ValueError:
            continue
        samples.append((name, dict(_LABEL.findall(labels or "")), number))
    return samples
