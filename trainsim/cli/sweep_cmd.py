"""``trainsim sweep SWEEP.yaml -o results.parquet [--workers N | --scheduler tcp://host:8786] [--resume]``:
every point of a design-space sweep, each a full plan search, streamed to Parquet; ``trainsim sweep --summary
results.parquet [--deadline-days D] [--plots DIR]``: the frontier and plots. Spec format: :mod:`trainsim.sweep`."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .application import app
from .costopts import ELECTRICITY, PRICE, PUE, cost_inputs
from .. import api
from ..api import sweeps
from ..api import TrainsimError
from ..report.fmt import counted, sweep_value as format_value
from .csvopt import print_rows
from ..report.terminal import print_json
from ..report.sweep import render_summary


@app.command("sweep")
def sweep_cmd(sweep: Optional[Path] = typer.Argument(None, help="sweep-spec YAML (format: trainsim.sweep docs)"),
              output: Optional[Path] = typer.Option(None, "-o", "--output",
                                                    help="results Parquet file (default: SWEEP.parquet)"),
              workers: int = typer.Option(0, "--workers", help="start a local Dask cluster of N worker processes (0: in-process)"),
              scheduler: str = typer.Option("", "--scheduler", help="run on an existing Dask cluster, "
                                                                    "e.g. tcp://host:8786"),
              resume: bool = typer.Option(False, "--resume", help="continue an interrupted sweep"),
              overwrite: bool = typer.Option(False, "--overwrite", help="discard the parts of an unfinished run"),
              batch: int = typer.Option(0, "--batch", help="points per task (0: automatic)"),
              quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
              dry_run: bool = typer.Option(False, "--dry-run", help="show the axes and point count, evaluate nothing"),
              summary: Optional[Path] = typer.Option(None, "--summary", help="summarise a results file"),
              deadline_days: Optional[float] = typer.Option(None, "--deadline-days",
                                                            help="frontier among points finishing in D days"),
              metric: str = typer.Option("days", "--metric", help="what per-axis tables and plots show"),
              plots: Optional[Path] = typer.Option(None, "--plots", help="write PNG plots to this folder"),
              json_: bool = typer.Option(False, "--json", help="print the summary as JSON"),
              csv_: bool = typer.Option(False, "--csv", help="print the summary's frontier as CSV rows"),
              price: float = PRICE, pue: float = PUE, electricity: float = ELECTRICITY) -> None:
    """Design-space sweep: every point a full plan search; in-process, on a local or a remote Dask cluster."""
    if summary is not None:
        if sweep is not None:
            raise TrainsimError("give a sweep spec to run or --summary RESULTS.parquet, not both")
        given = [n for n, v in (("--price-per-chip-hour", price), ("--pue", pue), ("--electricity", electricity))
                 if v is not None]
        if given:
            raise TrainsimError("cost options apply when a sweep runs (the results file keeps the costs it was "
                                "written with), not with --summary", field=given[0])
        s = sweeps.sweep_summary(summary, deadline_days=deadline_days, metric=metric, plots=plots,
                                 names=api.CLI_NAMES).to_dict()
        _print_summary(s, json_, csv_)
        return
    if sweep is None:
        raise TrainsimError("give a sweep-spec YAML (or --summary RESULTS.parquet)")
    sweeps.check_workers(workers, names=api.CLI_NAMES, batch=batch)
    sweeps.check_deadline(deadline_days, names=api.CLI_NAMES)
    spec = sweeps.load_sweep(sweep, cost=cost_inputs(price, pue, electricity))
    if dry_run:
        from rich.console import Console


        c = Console(highlight=False)
        c.print(f"[bold]{spec.name}[/bold]: {counted(spec.n_points, 'point')}")
        for a in spec.axes:
            vals = ", ".join(" / ".join(format_value(col, v) for col, v in zip(a.columns, r)) for r in a.rows[:8])
            vals += " ..." if len(a) > 8 else ""
            c.print(f"  {a.name} ({a.kind}, {len(a)}): {', '.join(a.columns)} = {vals}")
        c.print(f"  columns: {', '.join(spec.column_names)}")
        return
    out = output or Path(sweep.name).with_suffix(".parquet")
    import signal

    def _stop(signum, frame):   # SIGTERM (a batch system's time limit) stops like Ctrl-C: finished rows are kept
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        res = sweeps.sweep(spec, out, workers=workers, scheduler=scheduler or None, resume=resume, overwrite=overwrite,
                        batch=batch, quiet=quiet)
    except KeyboardInterrupt:
        print(f"interrupted: finished points are saved in {sweeps.sweep_parts_dir(out)}; rerun with --resume to continue",
              file=sys.stderr)
        sys.exit(130)   # not typer.Exit: under standalone_mode=False click returns its code instead of exiting
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not quiet or not res.complete:
        if res.evaluated == 0 and res.complete:
            print(f"{out}: already complete ({counted(res.points, 'point')})", file=sys.stderr)
        else:
            print(f"{out}: {counted(res.evaluated, 'point')} evaluated ({res.errors:,} with an error"
                  f"{f', {res.resumed:,} resumed' if res.resumed else ''}) in {res.seconds:.1f} s, "
                  f"{res.points_per_s:,.1f} points/s, {res.mode}, batch {res.batch}", file=sys.stderr)
    if res.complete and res.evaluated and not res.resumed and res.errors == res.evaluated:
        # no point has an answer: the file (with each point's error) is written, but no answer (exit 1)
        print(f"error: {sweep}: no point of the sweep has an answer ({res.errors:,} of {res.evaluated:,} with an "
              f"error; its error column in {out} says why)", file=sys.stderr)
        raise typer.Exit(1)
    if deadline_days is not None or plots is not None or json_ or csv_:
        s = sweeps.sweep_summary(out, deadline_days=deadline_days, metric=metric, plots=plots,
                                 names=api.CLI_NAMES).to_dict()
        _print_summary(s, json_, csv_)


def _print_summary(s: dict, json_: bool, csv_: bool) -> None:
    """The summary as JSON, as CSV (one row per frontier role: fastest, cheapest, ...), or as tables."""
    if csv_:
        print_rows([{"role": k, **r} for k, r in s["frontier"].items() if r is not None])
    elif json_:
        print_json(s)
    else:
        render_summary(s)
