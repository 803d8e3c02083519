"""``trainsim serve [--port 8765] [--host 127.0.0.1]``: the interactive explorer (plan, size / capacity, what if)
as a local web page; needs the ``[serve]`` extra."""
from __future__ import annotations

import typer

from .application import app


@app.command("serve")
def serve_cmd(port: int = typer.Option(8765, "--port", help="TCP port"),
              host: str = typer.Option("127.0.0.1", "--host", help="address to bind (default: loopback only)"),
              workers: int = typer.Option(2, "--workers", help="engine calls running at once"),
              quiet: bool = typer.Option(False, "--quiet", "-q", help="no request log")) -> None:
    """Start the interactive explorer and print its address."""
    from ..errors import TrainsimError

    if not 0 < port < 65536:
        raise TrainsimError(f"expected a port between 1 and 65535, got {port}", field="--port")
    if workers < 1:
        raise TrainsimError(f"expected at least 1 worker, got {workers}", field="--workers")
    try:
        from ..serve.app import serve
    except ModuleNotFoundError as exc:
        raise TrainsimError(f"the explorer needs the serve extra ({exc.name} is missing): "
                            "pip install -e '.[serve]'", field="serve") from None
    serve(host=host, port=port, workers=workers, quiet=quiet)
