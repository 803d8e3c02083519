"""``trainsim compare A.yaml B.yaml [...]``: runs side by side -- plan, step time by cause, memory, days, cost --
and which inputs differ. Each run is estimated exactly as ``trainsim estimate`` does (its plan, completed by the
plan search where it is partial)."""
from __future__ import annotations

import sys
from pathlib import Path

import typer

from .application import app
from .costopts import ELECTRICITY, PRICE, PUE, cost_inputs
from .runload import load_run_warned
from ..report.fmt import days, does_not_fit, money, quantity as count, tokens_per_s, value
from .. import api
from ..report.terminal import wide_console as console, print_json
from ..report.tabular import print_csv


def _cell(key: str, v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, str):
        return v
    if key == "mfu":
        return f"{v:.1%}"
    if key == "tokens_per_s_per_chip":   # as estimate prints it: every run to the same precision (not 4,794 vs 10k)
        return tokens_per_s(v)
    if "usd" in key:
        return money(v)
    if key.startswith("breakdown") or key == "step_time_s":
        return f"{v:.3f}"
    if key == "chips":                   # an exact count: 24,960 and 25,000 chips both read '25k'
        return f"{v:,}"
    if key == "days":                    # as every days figure (numfmt.days): '15,151.2', never '0.0'
        return days(v, unit=False)
    if key == "memory_per_chip_bytes":
        return f"{v:.1f}"
    return count(v)


@app.command("compare")
def compare_cmd(runs: list[Path] = typer.Argument(..., help="two or more run-spec YAML files"),
                json_: bool = typer.Option(False, "--json", help="print one JSON object"),
                csv_: bool = typer.Option(False, "--csv", help="print one CSV row per run"),
                price: float = PRICE, pue: float = PUE, electricity: float = ELECTRICITY) -> None:
    """Runs side by side: plan, step time by cause, memory, days, cost, and what differs."""
    inputs = cost_inputs(price, pue, electricity)
    for p in runs if len(runs) > 1 else []:   # each run's warnings before the work (api.compare reads the files
        load_run_warned(p)                    # again and refuses a single run: one line, no warning before it)
    res = api.compare(runs, cost=inputs)        # two or more runs: api.compare checks
    if csv_:
        print_csv(res.to_dict()["runs"])
    elif json_:
        print_json(res.to_dict())
    else:
        _render(runs, res)
    unfit = [(p, d) for p, d in zip(runs, (e.to_dict() for e in res.estimates)) if not d["fits"]]
    for p, d in unfit:            # a stated plan that does not fit is no answer (as `estimate`): its fixes, exit 1
        print(f"error: {p}: plan: {does_not_fit(d)}", file=sys.stderr)
    if unfit:
        raise typer.Exit(1)


def _render(runs: list[Path], res) -> None:
    """The side-by-side table and the inputs that differ."""
    diff = res.differing_inputs
    from rich.table import Table


    c = console()
    t = Table(title="side by side")
    t.add_column("")
    for p in runs:
        t.add_column(p.name, justify="right")
    for label, key, vals in res.rows():
        t.add_row(label, *[_cell(key, v) for v in vals])
    c.print(t)
    if not diff:                 # an empty table with its header read as a rendering fault
        c.print("inputs that differ: none (the specs resolve to the same inputs)")
        return
    d = Table(title="inputs that differ")
    d.add_column("input")
    for p in runs:
        d.add_column(p.name, justify="right")
    for k, vals in diff.items():
        # numbers as every table prints them (1,024 chips beside the side-by-side table's 1,024, not 1024; a
        # float 14.8e12 as 14.8T, not 14800000000000.0), text as written
        d.add_row(k, *[v if isinstance(v, str) else value(v) for v in vals])
    c.print(d)
