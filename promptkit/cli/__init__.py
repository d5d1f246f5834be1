"""The ``promptkit`` command.

Each command lives in its own module here, parses its arguments, calls one library function and
prints. Exit codes: 0 success, 1 findings or a failed check, 2 usage or configuration error.
"""

from __future__ import annotations

from promptkit.cli._app import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, app

# Importing the command modules registers their commands on ``app``.
from promptkit.cli import _bench  # noqa: F401  isort: skip
from promptkit.cli import _demo  # noqa: F401  isort: skip
from promptkit.cli import _lint  # noqa: F401  isort: skip
from promptkit.cli import _report  # noqa: F401  isort: skip

__all__ = ["EXIT_FINDINGS", "EXIT_OK", "EXIT_USAGE", "app", "main"]


def main() -> None:
    """Console-script entry point.

    An exception no command turned into an ``error:`` line is a bug; it still exits 2 (usage or
    configuration), never 1, which CI reads as "findings".
    """
    try:
        app(standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:
        import sys
        import traceback

        traceback.print_exc(file=sys.stderr)
        print(
            f"error: internal error {type(exc).__name__}: {exc} (a bug: please report it)",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_USAGE) from None
