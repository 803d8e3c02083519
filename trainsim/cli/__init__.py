"""The ``trainsim`` command: typer app; every subcommand lives in its own module and only parses, calls the
public API and renders. A :class:`TrainsimError` becomes one line on stderr and exit code 2; every other
ending is decided in :mod:`.handler` (usage errors exit 2, bugs exit 3, never a traceback)."""
from __future__ import annotations

import sys

from .application import app

# subcommand modules register themselves on `app` when imported
from . import catalog_cmd, model_cmd, estimate_cmd  # noqa: E402,F401

for _optional in ("plan_cmd", "validate_cmd", "scenario_cmd", "infer_cmd", "report_cmd", "sweep_cmd",
                  "size_cmd", "capacity_cmd", "sensitivity_cmd", "compare_cmd", "check_cmd", "version_cmd",
                  "serve_cmd"):
    try:  # modules arrive one issue at a time; a missing one is simply not offered
        __import__(f"{__name__}.{_optional}")
    except ModuleNotFoundError as exc:  # pragma: no cover - only while a module does not exist yet
        if exc.name != f"{__name__}.{_optional}":
            raise


def main(argv: list[str] | None = None) -> None:
    """The console entry point: exit codes and one-line errors are decided in :mod:`trainsim.cli.handler`."""
    from .handler import run

    sys.exit(run(app, argv))
