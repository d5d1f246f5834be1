"""Reporting: request records and run summaries, and the views of them.

``records`` holds :class:`RequestRecord`, the verdicts and :func:`summarize`; ``table``, ``html``
and ``plots`` render a summary for the terminal, a browser and image files; ``metrics`` feeds
Prometheus from records. The views import the records, never the reverse, and nothing here
imports the client: a log file on disk is all a report needs.
"""

from __future__ import annotations

from promptkit.reporting.records import (
    MissExplanation,
    RequestRecord,
    RunSummary,
    Verdict,
    read_records,
    summarize,
)

__all__ = ["MissExplanation", "RequestRecord", "RunSummary", "Verdict", "read_records", "summarize"]
