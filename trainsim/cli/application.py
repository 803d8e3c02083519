"""The typer app every ``trainsim`` subcommand registers itself on, and the CLI's command dispatch.

**The one deferred import of trainsim** (issue 12 item 4, issue 15's start-up time): every module imports what it
needs at its top, except that a subcommand's module (``trainsim/cli/<name>_cmd.py``, which registers the command
on :data:`app` when imported) is imported only when that subcommand runs. :data:`COMMANDS` is the table of
command -> module; :func:`load_commands` imports the modules a command line needs (the one it names, or all of
them for ``--help``, shell completion or a name that is not a command, so that help and "did you mean" list
every command). ``tests/test_imports.py`` fails on any other function-level import of a trainsim module.
"""
from __future__ import annotations

import os
from importlib import import_module
from typing import Sequence

import typer

app = typer.Typer(add_completion=True, no_args_is_help=False, pretty_exceptions_enable=False,
                  help="trainsim: what can be trained on which hardware, how fast, and at what cost.")

#: command name -> the module of trainsim.cli that registers it (in the order ``trainsim --help`` lists them)
COMMANDS = {
    "catalog": "catalog_cmd", "model": "model_cmd", "estimate": "estimate_cmd", "plan": "plan_cmd",
    "validate": "validate_cmd", "scenario": "scenario_cmd", "infer": "infer_cmd", "posttrain": "infer_cmd",
    "report": "report_cmd", "sweep": "sweep_cmd", "size": "size_cmd", "capacity": "capacity_cmd",
    "sensitivity": "sensitivity_cmd", "compare": "compare_cmd", "check": "check_cmd", "serve": "serve_cmd",
}
#: the root options (``--version``): always registered
ROOT_MODULE = "version_cmd"


def command_name(argv: Sequence[str]) -> str | None:
    """The subcommand a command line names: its first argument that is not an option (the root options,
    ``--version``, ``--help``, ``--install-completion``, ``--show-completion``, take no value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def load_commands(argv: Sequence[str] | None = None) -> typer.Typer:
    """Register on :data:`app` the subcommands ``argv`` needs and return the app: only the named command's
    module when ``argv`` names one of :data:`COMMANDS`, else (``argv`` None, no command, ``--help``, an unknown
    name, shell completion) every command."""
    name = None if argv is None or "_TRAINSIM_COMPLETE" in os.environ else command_name(argv)
    wanted = [COMMANDS[name]] if name in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for module in [ROOT_MODULE, *wanted]:
        import_module(f"{__package__}.{module}")    # registers the command(s) on `app` (once)
    return app
