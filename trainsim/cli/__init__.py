"""The ``trainsim`` command: typer app; every subcommand lives in its own module and only parses, calls the
public API and renders. A :class:`TrainsimError` becomes one line on stderr and exit code 2."""
from __future__ import annotations

import sys

import typer

from ..errors import NoPlanError, TrainsimError

app = typer.Typer(add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="trainsim: what can be trained on which hardware, how fast, and at what cost.")

# subcommand modules register themselves on `app` when imported
from . import catalog_cmd, model_cmd, estimate_cmd  # noqa: E402,F401

for _optional in ("plan_cmd", "validate_cmd", "scenario_cmd", "infer_cmd", "report_cmd", "sweep_cmd",
                  "size_cmd", "capacity_cmd", "sensitivity_cmd", "compare_cmd", "check_cmd", "version_cmd"):
    try:  # modules arrive one issue at a time; a missing one is simply not offered
        __import__(f"{__name__}.{_optional}")
    except ModuleNotFoundError as exc:  # pragma: no cover - only while a module does not exist yet
        if exc.name != f"{__name__}.{_optional}":
            raise


def main() -> None:
    try:
        rc = app(standalone_mode=False)
        if isinstance(rc, int) and rc:  # click returns typer.Exit codes in non-standalone mode
            sys.exit(rc)
    except TrainsimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1 if isinstance(exc, NoPlanError) else 2)   # no answer: 1; bad input: 2
    except (typer.Exit,) as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors and friends
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(2)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise
