"""The ``trainsim`` command: typer app; every subcommand lives in its own module and only parses, calls the
public API and renders. A :class:`TrainsimError` becomes one line on stderr and exit code 2; every other
ending is decided in :mod:`.handler` (usage errors exit 2, bugs exit 3, never a traceback).

:func:`main` imports only the module of the subcommand it runs (:mod:`.application`'s table of command ->
module, the CLI's one deferred import); ``trainsim.cli.app`` is the app with every command registered (for
tests and embedding)."""
from __future__ import annotations

import sys

from .malloc_tuning import keep_freed_memory
from .application import load_commands
from .handler import run


def main(argv: list[str] | None = None) -> None:
    """The console entry point: exit codes and one-line errors are decided in :mod:`trainsim.cli.handler`.
    The process keeps the memory it frees (:mod:`trainsim.cli.malloc_tuning`: fewer page faults in the search)."""
    keep_freed_memory()
    sys.exit(run(load_commands(sys.argv[1:] if argv is None else argv), argv))


def __getattr__(name: str):
    """``trainsim.cli.app``: the typer app with every command registered."""
    if name == "app":
        return load_commands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
