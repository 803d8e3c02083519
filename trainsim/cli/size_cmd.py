"""``trainsim size RUN.yaml --days D [--unit system|chip]``: the fewest scale-up domains (or chips) whose best
plan finishes the run in D days of wall-clock time (failures included unless --no-failures)."""
from __future__ import annotations

import sys
from pathlib import Path

import typer

from .application import app
from .costopts import ELECTRICITY, PRICE, PUE, cost_inputs
from .runload import load_run_warned
from .. import api
from ..api import scenarios
from ..report.fmt import counted, days as days_fmt, gib, pct, plan as plan_text, value as fmt
from ..report.terminal import print_json, wide_console as console, cost_rows
from ..report.progress import progress_bar
from ..report.tabular import print_csv


@app.command("size")
def size_cmd(run: Path = typer.Argument(..., help="run-spec YAML with training.tokens"),
             days: float = typer.Option(..., "--days", help="deadline in days"),
             unit: str = typer.Option("system", "--unit", help="system (one scale-up domain) or chip"),
             failures: bool = typer.Option(True, "--failures/--no-failures",
                                           help="count failures and restarts (goodput) in the days"),
             json_: bool = typer.Option(False, "--json", help="print one JSON object"),
             quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress spinner"),
             csv_: bool = typer.Option(False, "--csv", help="print the probes as CSV rows"),
             price: float = PRICE, pue: float = PUE, electricity: float = ELECTRICITY) -> None:
    """Fewest units that finish a run in D days (each probe is a full plan search)."""
    inputs = cost_inputs(price, pue, electricity)
    scenarios.check_size_args(days, unit, api.CLI_NAMES)   # bad input is one line, before the run's warnings
    spec = load_run_warned(run)
    # training.tokens is checked by scenarios.size, before the work
    with progress_bar("sizing (a plan search per probe)", enabled=not (quiet or json_)):
        res = scenarios.size(spec, days, unit=unit, failures=failures, cost=inputs, max_chips=None, names=api.CLI_NAMES)
    cost = res.cost
    if csv_:
        print_csv(res.probes)
        if not res.feasible:   # no answer: exit 1 as --json and the table do, the reason on stderr (stdout is CSV)
            print(f"{run}: {res.message}", file=sys.stderr)
            raise typer.Exit(1)
        return
    if json_:
        print_json({**res.to_dict(), "cost": cost})
        if not res.feasible:
            raise typer.Exit(1)  # no answer: exit 1, the message names the fastest count found
        return
    from rich.table import Table


    c = console()
    colour = "green" if res.feasible else "red"
    c.print(f"[{colour}]{res.message}[/{colour}]")
    if res.estimate is not None:
        e = res.estimate
        c.print(f"best plan: {plan_text(e.plan)}, MFU {e.mfu:.1%} (vs BF16 peak), memory "
                f"{gib(e.memory_per_chip_bytes)} of {gib(e.run.system.chip.hbm_bytes)}")
        used, stated = e.run.training.batch_seqs, res.batch_requested_seqs
        if stated and used != stated:   # sizing.run_at moves an exact batch (< 8%) to one the chips split: say so
            c.print(f"global batch: {used:,} sequences (stated {stated:,}, {used / stated - 1:+.1%}: the nearest "
                    f"batch {e.run.chips:,} chips split with short pipelines)")

    for k, v in cost_rows(cost):
        c.print(f"{k}: {v}")
    t = Table(title=f"probes ({unit} = {counted(res.unit_chips, 'chip')})")   # 1 chip, 8 chips
    for col in ("units", "chips", "batch (seqs)", "days", "effective days", "goodput"):
        t.add_column(col, justify="right")
    for p in res.probes:
        # as every days figure (the answer above, estimate, report: numfmt.days), without the word
        days_cells = ((days_fmt(p["days"], unit=False), days_fmt(p["effective_days"], unit=False)) if p["fits"]
                      else ("no plan", "no plan"))
        t.add_row(fmt(p["units"]), fmt(p["chips"]), f"{p['batch_seqs']:,}", *days_cells,
                  pct(p["goodput"]) if isinstance(p["goodput"], (int, float)) else fmt(p["goodput"]))
    c.print(t)
    if not res.feasible:
        raise typer.Exit(1)
