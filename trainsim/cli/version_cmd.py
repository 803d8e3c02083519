"""``trainsim --version``: the installed version (a root option, registered as the app's callback)."""
from __future__ import annotations

import typer

from .application import app
from .. import api


def _version(value: bool) -> None:
    if value:
        print(f"trainsim {api.version()}")
        raise typer.Exit(0)


@app.callback()
def root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="print the version and exit")) -> None:
    """trainsim: what can be trained on which hardware, how fast, and at what cost."""
