"""``trainsim report RUN_OR_SCENARIO.yaml -o report.html [--png DIR]``: one self-contained HTML report (the answer
in one sentence, step-time breakdown, memory against HBM, best plans, scaling, sensitivity, ranges, validation
error, every input with its source); ``--png DIR`` also writes the charts as PNG files."""
from __future__ import annotations

import sys
from pathlib import Path

import typer

from .application import app
from .costopts import ELECTRICITY, PRICE, PUE, cost_inputs
from .runload import load_run_warned
from .. import api
from ..api import reports
from ..report.progress import progress_bar
from ..report.build import is_scenario
from ..report.fmt import does_not_fit
from .csvopt import print_rows


@app.command("report")
def report_cmd(file: Path = typer.Argument(..., help="run-spec YAML, or scenario YAML (a file with kind:)"),
               output: Path = typer.Option(None, "--output", "-o", help="HTML file to write (default: FILE's "
                                                                         "name with .html, in this folder; with "
                                                                         "--json / --csv only when given)"),
               png: Path = typer.Option(None, "--png", help="also write the charts as PNG files into DIR"),
               top: int = typer.Option(5, "--top", min=1, max=1000, help="how many best plans to show"),
               sweeps: bool = typer.Option(True, "--sweeps/--no-sweeps",
                                           help="scaling and sensitivity sweeps (each point is a plan search)"),
               force: bool = typer.Option(False, "--force", help="replace an existing output file"),
               quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar, no 'wrote' lines"),
               json_: bool = typer.Option(False, "--json", help="print the report's numbers as one JSON object"),
               csv_: bool = typer.Option(False, "--csv", help="print the report's headline numbers as one CSV row"),
               price: float = PRICE, pue: float = PUE, electricity: float = ELECTRICITY) -> None:
    """Write a self-contained HTML report of a run or a scenario."""
    # --json / --csv print the numbers; they write the page only when -o names it (no file appears unasked)
    write_html = output is not None or not (json_ or csv_)
    out = (api.check_output_path(output or Path(file.stem + ".html"), force=force, what="report",
                                 suffixes=(".html", ".htm"))  # before the work
           if write_html else None)
    if png is not None:
        api.check_output_dir(png, field="--png", what="PNG folder")    # before the work, not after the page
    inputs = cost_inputs(price, pue, electricity)
    spec = file if is_scenario(file) else load_run_warned(file)   # a run spec's warnings before the work
    with progress_bar(f"report {file.name}", enabled=not (quiet or json_ or csv_)) as tick:
        rep = reports.report(spec, progress=tick, top=top, with_scaling=sweeps, with_sensitivity=sweeps,
                         cost_inputs=inputs)
    if out is not None:
        rep.write(out, force=force)
    pngs = rep.write_pngs(png) if png is not None else []
    if csv_:
        print_rows(report_row(rep.data))
    elif json_:
        print(rep.to_json())
    elif not quiet:
        print(f"wrote {out}" + (f" and {len(pngs)} charts in {png}" if png is not None else ""))
    if rep.data.get("kind") == "run" and rep.data.get("estimate") is None:   # no answer: the page says why, exit 1
        print(f"error: {file}: {rep.data.get('message', 'no plan')}", file=sys.stderr)
        raise typer.Exit(1)
    est = rep.data.get("estimate") if rep.data.get("kind") == "run" else None
    if est is not None and not est["fits"]:   # a stated plan that does not fit: the page (memory chart drawn), exit 1
        print(f"error: {file}: plan: {does_not_fit(est)}", file=sys.stderr)
        raise typer.Exit(1)


def report_row(data: dict) -> dict:
    """The CSV row of a report: the run's estimate (with its cost), or the scenario's result plus its run's."""
    if data.get("kind") == "scenario":
        r = {k: v for k, v in data["result"].items() if k != "traceback"}
        run = data.get("run") or {}
        return {**r, "run": run.get("estimate")} if run.get("estimate") else r
    return {"name": data.get("name"), "answer": data.get("answer"), **(data.get("estimate") or {})}
