"""``trainsim estimate RUN.yaml [--json]``: one plan's step time, MFU, memory and breakdown."""
from __future__ import annotations

import sys
from pathlib import Path

import typer

from .application import app
from .costopts import ELECTRICITY, PRICE, PUE, cost_inputs
from .runload import load_run_warned
from .. import api
from ..report.fmt import does_not_fit
from ..report.terminal import print_json, render_estimate
from ..report.tabular import print_csv


@app.command("estimate")
def estimate_cmd(run: Path = typer.Argument(..., help="run-spec YAML"),
                 json_: bool = typer.Option(False, "--json", help="print one JSON object"),
                 csv_: bool = typer.Option(False, "--csv", help="print one CSV row (flat columns)"),
                 price: float = PRICE, pue: float = PUE, electricity: float = ELECTRICITY) -> None:
    """Predict one training step (and the whole run with training.tokens) for the run's plan."""
    inputs = cost_inputs(price, pue, electricity)
    r = load_run_warned(run)
    try:
        est = api.estimate_run(r, cost=inputs)
    except api.NoPlanError as exc:     # no answer: the nearest alternatives (in exc.result), exit 1
        res = exc.result
        if json_:
            print_json(res.to_dict())
        else:
            if csv_:   # the nearest alternatives as rows, as --json lists them
                print_csv(res.alternatives)
            print(f"error: {r.path}: plan: {res.no_plan_message()}", file=sys.stderr)
        raise typer.Exit(1) from None
    if csv_:
        print_csv([est.to_dict()])
    elif json_:
        print_json(est.to_dict())
    else:
        render_estimate(est)
    if not est.fits:      # a stated plan that does not fit is no answer: printed with its fixes, exit 1
        print(f"error: {r.path}: plan: {does_not_fit(est.to_dict())}", file=sys.stderr)
        raise typer.Exit(1)
