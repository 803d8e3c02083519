"""``trainsim capacity --system S --units N --days D [--family dense|deepseek-v3]``: the largest pretraining run
a fleet finishes in D days -- the most training compute (6 N_active D FLOP) of the model sizes that reach their
token budget (model shape by a stated rule) -- with its binding limits."""
from __future__ import annotations

import typer

from .application import app
from .csvopt import CSV
from .. import api
from ..api import scenarios
from ..report.fmt import gib, pct, plan as plan_text, value as fmt
from ..report.progress import progress_bar
from ..report.terminal import print_json, wide_console as console
from .csvopt import print_rows


@app.command("capacity")
def capacity_cmd(system: str = typer.Option(..., "--system", help="catalog system id (cloudmatrix-384)"),
                 units: int | None = typer.Option(None, "--units", help="scale-up domains (pods, SuperPoDs, servers); give this or --chips"),
                 chips: int | None = typer.Option(None, "--chips", help="chips (instead of --units)"),
                 days: float = typer.Option(90.0, "--days", help="wall-clock days"),
                 family: str = typer.Option("deepseek-v3", "--family", help="dense (Chinchilla) or deepseek-v3"),
                 precision: str = typer.Option("bf16", "--precision", help="bf16 or fp8"),
                 sparsity: float = typer.Option(0.0, "--sparsity", help="MoE total/active parameters, >= 1, deepseek-v3 family only (0: "
                                               "the sourced assumption, 18.1; the shape rounds the routed experts to a "
                                               "multiple of 64)"),
                 failures: bool = typer.Option(True, "--failures/--no-failures", help="include goodput"),
                 json_: bool = typer.Option(False, "--json", help="print one JSON object"),
                 csv_: bool = CSV,
                 quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress spinner")) -> None:
    """Largest run a fleet trains in D days: the most training compute (6 N_active D FLOP) over the model sizes
    that reach their token budget, the model size following; and what limits it."""
    # the argument checks (units or chips, days, family, precision, system) are scenarios.capacity's, before the work
    with progress_bar("capacity (a plan search per probe)", enabled=not (quiet or json_ or csv_)):
        res = scenarios.capacity(system, chips, days, units=units, family=family, precision=precision, sparsity=sparsity,
                           failures=failures, names=api.CLI_NAMES)
    no_answer = res.tokens is None     # no model size reaches its token budget: exit 1 (README, exit codes)
    if csv_:
        print_rows(res.to_dict())
        raise typer.Exit(1 if no_answer else 0)
    if json_:
        print_json(res.to_dict())
        raise typer.Exit(1 if no_answer else 0)
    from rich.table import Table


    c = console()
    c.print(f"[bold]{res.message}[/bold]")
    if res.estimate is not None:
        e = res.estimate
        c.print(f"best plan: {plan_text(e.plan)}, batch {e.run.training.batch_seqs:,} seqs, MFU {e.mfu:.1%} (vs BF16 peak), "
                f"memory {gib(e.memory_per_chip_bytes)}; goodput "
                f"{pct(res.goodput) if res.goodput is not None else 'not counted (--no-failures)'}")
    t = Table(title="limits")
    for col in ("limit", "binding", "detail"):
        t.add_column(col, overflow="fold")
    for l_ in res.limits:
        t.add_row(l_["limit"], "[red]yes[/red]" if l_["binding"] else "no", l_["detail"])
    c.print(t)
    it = Table(title="model sizes probed")
    for col in ("active", "total", "rule tokens", "tokens in days", "MFU (BF16 peak)"):
        it.add_column(col, justify="right")
    shown = set()
    for i in sorted(res.iterations, key=lambda i: i["active_params"]):   # smallest model first, each shape once
        row = (fmt(i["active_params"]), fmt(i["total_params"]), fmt(i["tokens_rule"]), fmt(i["tokens_in_days"]),
               pct(i["mfu"]) if i["mfu"] is not None else "no plan")
        if row not in shown:
            shown.add(row)
            it.add_row(*row)
    c.print(it)
    if no_answer:
        raise typer.Exit(1)
