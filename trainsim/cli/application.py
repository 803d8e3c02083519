"""The typer app every ``trainsim`` subcommand registers itself on (a module of its own, so that the
subcommand modules and :mod:`trainsim.cli` do not import each other)."""
from __future__ import annotations

import typer

app = typer.Typer(add_completion=True, no_args_is_help=False, pretty_exceptions_enable=False,
                  help="trainsim: what can be trained on which hardware, how fast, and at what cost.")
