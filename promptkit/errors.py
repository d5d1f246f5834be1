"""The promptkit exception tree.

Every error the SDK raises on bad input is one of these, and each says *where* (template, line,
variable) and *what to do next*. ``except PromptkitError`` catches them all, engine errors
included::

    PromptkitError                    the one root (defined in engine_adapter.errors)
    ├── EngineError                   engine failures: EngineStartError, EngineRequestError ...
    │                                 (the branch is drawn in engine_adapter.errors)
    ├── TemplateError                 a template cannot be loaded, parsed or rendered
    │   ├── TemplateSyntaxError       bad segment/vars tags or Jinja syntax
    │   ├── StabilityError            a volatile variable reaches a more stable segment,
    │   │                             or segments are ordered from less to more stable
    │   └── VariableError             a variable is missing, undeclared or not serializable
    │       └── ControlTokenError     a value holds the model's control tokens (policy "reject")
    ├── SerializationError            a value has no canonical JSON form (NaN, unknown type ...)
    ├── TokenizationError             the tokenizer or chat template failed or is missing
    │   └── BoundaryError             a segment boundary tokenizes differently from the whole text
    ├── ModelError                    a model directory is missing or unusable
    ├── ConversationError             a turn does not extend the previous turn's tokens
    ├── TenantError                   a request's tenant is missing or cannot be salted
    ├── ArgumentError                 an argument of the wrong kind (sampling= a dict ...)
    └── ConfigError                   bad configuration (pyproject, CLI flags, environment)
        └── LintConfigError           bad [tool.promptkit] lint settings, samples or promptkit.lock

The root is defined in :mod:`engine_adapter.errors`, because the engine adapters never import
promptkit; this module re-exports that very class, and :class:`EngineError` with it.
"""

from __future__ import annotations

from engine_adapter.errors import EngineError, PromptkitError

__all__ = [
    "ArgumentError",
    "BoundaryError",
    "ConfigError",
    "ControlTokenError",
    "ConversationError",
    "EngineError",
    "LintConfigError",
    "ModelError",
    "PromptkitError",
    "SerializationError",
    "StabilityError",
    "TemplateError",
    "TemplateSyntaxError",
    "TenantError",
    "TokenizationError",
    "VariableError",
]


class TemplateError(PromptkitError):
    """A template could not be loaded, parsed or rendered.

    ``template``, ``line`` and ``variable`` are set whenever they are known, and are part of the
    message, so a CI log line alone is enough to find the problem.
    """

    def __init__(
        self,
        message: str,
        *,
        template: str | None = None,
        line: int | None = None,
        variable: str | None = None,
    ) -> None:
        self.template = template
        self.line = line
        self.variable = variable
        self.detail = message
        where = template or "<string>"
        if line is not None:
            where += f":{line}"
        if variable is not None:
            where += f" (variable {variable!r})"
        super().__init__(f"{where}: {message}")


class TemplateSyntaxError(TemplateError):
    """Bad ``{% segment %}``/``{% vars %}`` tags, or a Jinja syntax error."""


class StabilityError(TemplateError):
    """Volatile content would land in a more stable segment, or segment order is not monotone."""


class VariableError(TemplateError):
    """A variable is missing at render time, undeclared, or of the wrong kind."""


class ControlTokenError(VariableError):
    """A value holds text the tokenizer would read as a control token (``<|im_start|>`` ...).

    Raised under the ``"reject"`` policy (see :mod:`promptkit._control_tokens`); the default
    ``"escape"`` policy neutralizes such text instead.
    """


class SerializationError(PromptkitError):
    """A value has no canonical serialization (NaN, Infinity, an unsupported type ...)."""


class TokenizationError(PromptkitError):
    """The tokenizer or the chat template failed."""


class BoundaryError(TokenizationError):
    """Tokens at a segment boundary differ from tokenizing the whole text and cannot be fixed."""


class ModelError(PromptkitError):
    """A model directory is missing, incomplete or cannot be prepared."""


class ConversationError(PromptkitError):
    """A new turn's token ids do not extend the previous turn's ids."""


class TenantError(PromptkitError):
    """A request has no tenant on a multi-tenant client, or a tenant cannot be salted.

    The message says what to pass (``tenant=``) or to set (``PROMPTKIT_TENANT_SECRET``).
    """


class ArgumentError(PromptkitError, TypeError):
    """An argument of the wrong kind: ``variables=None``, ``sampling=`` a dict, a template's
    name where a template is expected. Also a ``TypeError``, as Python would raise."""


class ConfigError(PromptkitError):
    """Invalid configuration: pyproject ``[tool.promptkit]``, CLI flags or environment."""


class LintConfigError(ConfigError):
    """Bad lint/check settings: ``[tool.promptkit]``, a samples file or ``promptkit.lock``.

    ``promptkit lint`` and ``promptkit check`` exit with code 2 on it (usage error), never 1.
    """
