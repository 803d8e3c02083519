"""The ``trainsim`` command: typer app; every subcommand lives in its own module and only parses, calls the
public API and renders. A :class:`TrainsimError` becomes one line on stderr and exit code 2; every other
ending is decided in :mod:`.handler` (usage errors exit 2, bugs exit 3, never a traceback).

:func:`main` imports only the module of the subcommand it runs (:mod:`.application`'s table of command ->
module, the CLI's one deferred import); ``trainsim.cli.app`` is the app with every command registered (for
tests and embedding)."""
from __future__ import annotations

import atexit
import os
import sys
import threading

from .malloc_tuning import keep_freed_memory
from .application import command_name, load_commands
from .handler import run

#: commands whose only output is stdout and stderr: their process ends without the interpreter's teardown
QUICK_EXIT = frozenset({"plan", "estimate", "model", "catalog", "check", "compare", "size", "capacity",
                        "sensitivity", "validate"})


def main(argv: list[str] | None = None) -> None:
    """The console entry point: exit codes and one-line errors are decided in :mod:`trainsim.cli.handler`.
    The process keeps the memory it frees (:mod:`trainsim.cli.malloc_tuning`: fewer page faults in the search)
    and, for the commands of :data:`QUICK_EXIT` run as the program (``argv`` None), ends without the
    interpreter's teardown (:func:`exit_now`)."""
    keep_freed_memory()
    args = sys.argv[1:] if argv is None else argv
    code = run(load_commands(args), argv)
    if argv is None and command_name(args) in QUICK_EXIT:
        exit_now(code)
    sys.exit(code)


def exit_now(code: int) -> None:
    """End the process with ``code`` once stdout and stderr are flushed, skipping the interpreter's teardown
    (freeing every module and object one by one: measured 0.09-0.12 s after a ``plan`` on the loaded 2-core
    machine, against 0.035 s for a bare ``import numpy`` process and 0.01 s with this exit), unless something
    asked to run at exit (an ``atexit`` handler: logging, multiprocessing, a Dask cluster) or a thread is still
    running; then it returns and the normal exit follows."""
    ncallbacks = getattr(atexit, "_ncallbacks", None)
    if ncallbacks is None or ncallbacks() or threading.active_count() > 1:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):          # a closed or broken stream: the normal exit reports it as before
        return
    os._exit(code)


def __getattr__(name: str):
    """``trainsim.cli.app``: the typer app with every command registered."""
    if name == "app":
        return load_commands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
