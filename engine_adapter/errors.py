"""Engine exceptions, and the one root every promptkit error shares.

::

    PromptkitError                 the root: catch it for every error promptkit raises on purpose
    │                              (promptkit.errors re-exports it and draws the SDK's branches)
    └── EngineError                anything an engine adapter raises on purpose
        ├── EngineNotInstalled     the backend (vllm, openai) is missing: says what to install
        ├── EngineStartError       the engine could not start (bad model dir, no memory ...)
        ├── EngineRequestError     the engine rejected or failed a request (too long, settings)
        │   ├── EngineCapabilityError  a request needs what the engine lacks (a cache salt)
        │   ├── SamplingError          a sampling setting is outside vLLM's limits (checked early)
        │   └── PartialBatchError      some requests of a batch failed; the answers of the others
        │                              are kept on the error
        ├── EngineDeadError        the engine died under a request: start a new one
        └── EngineClosedError      the engine was used after close()

    EngineWarning                  (a UserWarning) the engine runs but reports less than it could
    └── CachedTokensNotReported    a server answers without per-request cached-token counts

The root lives here, not in :mod:`promptkit.errors`, because ``engine_adapter`` never imports
``promptkit``; :mod:`promptkit.errors` re-exports this very class.

Backend errors are mapped at the adapter boundary by :func:`engine_adapter.base.map_exceptions`,
each backend naming the exceptions it maps (the original stays as ``__cause__``); anything else,
a bug included, propagates unchanged.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CachedTokensNotReported",
    "EngineCapabilityError",
    "EngineClosedError",
    "EngineDeadError",
    "EngineError",
    "EngineNotInstalled",
    "EngineRequestError",
    "EngineStartError",
    "EngineWarning",
    "PartialBatchError",
    "PromptkitError",
    "SamplingError",
]


class PromptkitError(Exception):
    """Base class of every error promptkit and its engine adapters raise on purpose."""


class EngineError(PromptkitError):
    """Base class of engine adapter errors."""


class EngineNotInstalled(EngineError):
    """The backend package is not installed."""


class EngineStartError(EngineError):
    """The engine failed to start."""


class EngineRequestError(EngineError):
    """The engine refused or failed a request."""


class EngineCapabilityError(EngineRequestError):
    """A request needs a capability the engine does not declare (e.g. ``supports_cache_salt``).

    Raised before anything is sent, so no request of the batch ran.
    """


class SamplingError(EngineRequestError, ValueError):
    """A sampling setting is outside vLLM's limits; raised when ``SamplingSettings`` is built,
    so a bad value never reaches (and never wedges) an engine. Also a ``ValueError``."""


class PartialBatchError(EngineRequestError):
    """Some requests of a batch failed and others were answered: nothing computed is lost.

    ``results`` has one entry per request, in order: its result, or ``None`` where it failed;
    ``errors`` maps the index of each failed request to its error. The promptkit client records
    the answered requests and sets ``generations`` (a :class:`~promptkit.Generation` or ``None``
    per request) before re-raising.
    """

    def __init__(
        self, message: str, *, results: list[Any], errors: dict[int, BaseException]
    ) -> None:
        super().__init__(message)
        self.results = results
        self.errors = errors
        self.generations: list[Any] | None = None


class EngineDeadError(EngineError):
    """The engine died (its worker process exited); it cannot serve again: start a new one."""


class EngineClosedError(EngineError):
    """The engine was used after :meth:`close`."""


class EngineWarning(UserWarning):
    """The engine runs, but is configured so that promptkit learns less than it could."""


class CachedTokensNotReported(EngineWarning):
    """The server does not report cached tokens per request, so every verdict is UNKNOWN.

    For a vLLM OpenAI server the message names the flag to restart it with:
    ``--enable-prompt-tokens-details``.
    """
