"""``trainsim estimate RUN.yaml [--json]``: one plan's step time, MFU, memory and breakdown."""
from __future__ import annotations

from pathlib import Path

import typer

from . import app
from .costopts import ELECTRICITY, PRICE, PUE, cost_inputs


@app.command("estimate")
def estimate_cmd(run: Path = typer.Argument(..., help="run-spec YAML"),
                 json_: bool = typer.Option(False, "--json", help="print one JSON object"),
                 csv_: bool = typer.Option(False, "--csv", help="print one CSV row (flat columns)"),
                 price: float = PRICE, pue: float = PUE, electricity: float = ELECTRICITY) -> None:
    """Predict one training step (and the whole run with training.tokens) for the run's plan."""
    from .. import api
    from ..report.terminal import print_json, render_estimate

    inputs = cost_inputs(price, pue, electricity)
    est = api.estimate(api.load_run(run))
    est.cost_inputs = inputs
    if csv_:
        from ..report.tabular import print_csv

        print_csv([est.to_dict()])
    elif json_:
        print_json(est.to_dict())
    else:
        render_estimate(est)
