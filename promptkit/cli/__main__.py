"""``python -m promptkit.cli``: the same as the ``promptkit`` command."""

from promptkit.cli import main

main()
