"""``trainsim serve [--port 8765] [--host 127.0.0.1]``: the interactive explorer (plan, size / capacity, what if)
as a local web page; needs the ``[serve]`` extra."""
from __future__ import annotations

import typer

from .. import api
from .application import app

try:   # the explorer needs the optional [serve] extra (Starlette, uvicorn)
    from ..serve.app import serve
except ModuleNotFoundError as _exc:
    serve, _MISSING = None, _exc.name


@app.command("serve")
def serve_cmd(port: int = typer.Option(8765, "--port", help="TCP port"),
              host: str = typer.Option("127.0.0.1", "--host", help="address to bind (default: loopback only)"),
              workers: int = typer.Option(2, "--workers", help="engine calls running at once"),
              quiet: bool = typer.Option(False, "--quiet", "-q", help="no request log")) -> None:
    """Start the interactive explorer and print its address."""
    settings = api.serve_settings(host=host, port=port, workers=workers, quiet=quiet, names=api.CLI_NAMES)
    if serve is None:   # the explorer: a front end beside the CLI, on the same api
        raise api.TrainsimError(f"the explorer needs the serve extra ({_MISSING} is missing): "
                                "pip install -e '.[serve]'", field="serve")
    serve(**settings)
