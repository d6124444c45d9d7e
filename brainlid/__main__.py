"""``python -m brainlid`` runs the command line."""

from .cli import _console_main

_console_main()
