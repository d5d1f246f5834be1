"""Prometheus metrics for request records (optional: ``pip install 'promptkit-vllm[metrics]'``).

::

    from prometheus_client import start_http_server
    from promptkit.reporting.metrics import PrefixMetrics

    metrics = PrefixMetrics()          # registers on prometheus_client's default registry
    start_http_server(9100)
    out = client.generate(template, variables)
    metrics.observe(out.record)

Exported series, each labelled by ``template``:

==================================================  ==========================================
``promptkit_requests_total{verdict}``               requests by verdict
``promptkit_prompt_tokens_total``                   prompt tokens sent, every request
``promptkit_known_prompt_tokens_total``             prompt tokens of requests whose cached
                                                    count the engine reported
``promptkit_cached_tokens_total``                   tokens the engine served from cache
``promptkit_expected_cached_tokens_total``          tokens the client expected cached, over
                                                    requests whose cached count is known
``promptkit_unknown_requests_total``                requests whose cached count the engine did
                                                    not report
``promptkit_ttft_seconds{cached}``                  TTFT histogram, ``cached="true"/"false"/
                                                    "unknown"``
==================================================  ==========================================

An unknown cached count is never counted as 0: such a request adds only to ``requests``,
``prompt_tokens``, ``unknown_requests`` and ``ttft_seconds{cached="unknown"}``. The cache counters
(known prompt, cached, expected) all cover the same known requests, so
``cached_tokens_total / known_prompt_tokens_total`` is the hit ratio and ``cached / expected``
the share of the promise kept, whatever the share of unknown requests. Alert on
``increase(promptkit_requests_total{verdict="DRIFT"}[1h]) > 0``, and on
``increase(promptkit_unknown_requests_total[1h]) > 0``: a vLLM server started without
``--enable-prompt-tokens-details``.

``prometheus_client`` is imported when a :class:`PrefixMetrics` is made, never at import time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from promptkit.errors import ConfigError
from promptkit.reporting.records import RequestRecord

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["TTFT_BUCKETS", "PrefixMetrics"]

# Seconds. Cached TTFTs on a GPU sit in the tens of milliseconds; uncached long prompts on a CPU
# take seconds: the buckets cover both, with resolution where hits land.
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigError(
            "promptkit.reporting.metrics needs prometheus_client: "
            "pip install 'promptkit-vllm[metrics]'"
        ) from None
    return prometheus_client


class PrefixMetrics:
    """Counters and a TTFT histogram that :meth:`observe` updates from each request record.

    Args:
        registry: where to register; default is ``prometheus_client``'s global registry, which
            ``start_http_server`` exposes. Make one ``PrefixMetrics`` per registry: registering
            the same names twice is an error in ``prometheus_client``.
        namespace: the metric name prefix.
    """

    def __init__(
        self, *, registry: CollectorRegistry | None = None, namespace: str = "promptkit"
    ) -> None:
        prom = _prometheus()
        where: dict[str, Any] = {
            "registry": prom.REGISTRY if registry is None else registry,
            "namespace": namespace,
        }
        self.requests = prom.Counter(
            "requests", "Requests by prefix-cache verdict.", ["template", "verdict"], **where
        )

        def per_template(name: str, documentation: str) -> Any:
            return prom.Counter(name, documentation, ["template"], **where)

        self.prompt_tokens = per_template("prompt_tokens", "Prompt tokens sent.")
        self.known_prompt_tokens = per_template(
            "known_prompt_tokens",
            "Prompt tokens of requests whose cached count the engine reported: the hit ratio's "
            "denominator.",
        )
        self.unknown_requests = per_template(
            "unknown_requests",
            "Requests whose cached count the engine did not report (a vLLM server needs "
            "--enable-prompt-tokens-details).",
        )
        self.cached_tokens = per_template(
            "cached_tokens", "Prompt tokens the engine served from its prefix cache."
        )
        self.expected_cached_tokens = per_template(
            "expected_cached_tokens",
            "Prompt tokens the client expected the engine to serve from cache, over requests "
            "whose cached count is known.",
        )
        self.ttft = prom.Histogram(
            "ttft_seconds",
            "Time to first token, by whether any prompt token was served from cache "
            '("unknown" when the engine did not say).',
            ["template", "cached"],
            buckets=TTFT_BUCKETS,
            **where,
        )

    def observe(self, record: RequestRecord) -> None:
        """Count one request; an unknown cached count adds to no cache counter."""
        template = record.template
        self.requests.labels(template=template, verdict=record.verdict.value).inc()
        self.prompt_tokens.labels(template=template).inc(record.prompt_tokens)
        if record.cached_tokens is None:
            self.unknown_requests.labels(template=template).inc()
            cached = "unknown"
        else:
            self.known_prompt_tokens.labels(template=template).inc(record.prompt_tokens)
            self.cached_tokens.labels(template=template).inc(record.cached_tokens)
            self.expected_cached_tokens.labels(template=template).inc(record.expected_cached_tokens)
            cached = "true" if record.cached_tokens > 0 else "false"
        if record.ttft_s is not None:
            self.ttft.labels(template=template, cached=cached).observe(record.ttft_s)

    def observe_all(self, records: Iterable[RequestRecord]) -> None:
        """Count many requests, e.g. ``read_records(log)`` of a finished run."""
        for record in records:
            self.observe(record)
