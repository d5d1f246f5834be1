"""Engine exceptions, mapped at the adapter boundary.

::

    EngineError                 anything an engine adapter raises on purpose
    ├── EngineNotInstalled      the backend package (vllm, openai) is missing: says what to install
    ├── EngineStartError        the engine could not start (bad model dir, not enough memory ...)
    ├── EngineRequestError      the engine rejected a request (too long, bad sampling settings)
    └── EngineClosedError       the engine was used after close()

    EngineWarning               (a UserWarning) the engine works, but reports less than it should
    └── CachedTokensNotReported a server answers without per-request cached-token counts

Backend errors never escape raw: :func:`engine_adapter.base.mapped_errors` wraps them, keeping the
original as ``__cause__``.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of engine adapter errors."""


class EngineNotInstalled(EngineError):
    """The backend package is not installed."""


class EngineStartError(EngineError):
    """The engine failed to start."""


class EngineRequestError(EngineError):
    """The engine refused or failed a request."""


class EngineClosedError(EngineError):
    """The engine was used after :meth:`close`."""


class EngineWarning(UserWarning):
    """The engine runs, but is configured so that promptkit learns less than it could."""


class CachedTokensNotReported(EngineWarning):
    """The server does not report cached tokens per request, so every verdict is UNKNOWN.

    For a vLLM OpenAI server the message names the flag to restart it with:
    ``--enable-prompt-tokens-details``.
    """
