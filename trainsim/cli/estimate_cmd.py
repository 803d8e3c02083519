"""``trainsim estimate RUN.yaml [--json]``: one plan's step time, MFU, memory and breakdown."""
from __future__ import annotations

from pathlib import Path

import typer

from . import app


@app.command("estimate")
def estimate_cmd(run: Path = typer.Argument(..., help="run-spec YAML"),
                 json_: bool = typer.Option(False, "--json", help="print one JSON object")) -> None:
    """Predict one training step (and the whole run with training.tokens) for the run's plan."""
    from .. import api
    from ..report.terminal import print_json, render_estimate

    est = api.estimate(api.load_run(run))
    if json_:
        print_json(est.to_dict())
    else:
        render_estimate(est)
