"""``trainsim plan RUN.yaml``: search every valid plan; best plans, Pareto front, rejections; --emit flags.
No valid plan: the nearest alternatives (:mod:`trainsim.alternatives`) and exit code 1."""
from __future__ import annotations

import sys
from pathlib import Path

import typer

from .application import app
from .costopts import ELECTRICITY, PRICE, PUE, cost_inputs
from .runload import print_warnings
from .. import api
from ..report.progress import progress_bar
from ..report.terminal import print_json, render_search, render_plan_diff
from ..report.tabular import print_csv


@app.command("plan")
def plan_cmd(run: Path = typer.Argument(..., help="run-spec YAML"),
             top: int = typer.Option(5, "--top", min=1, max=1000,
                                     help="how many plans to list, 1-1000 (every feasible plan: "
                                          "trainsim.search(...).to_frame(all=True))"),
             fix: str = typer.Option(None, "--fix", help="fix plan fields, e.g. tp=8,pp=16"),
             emit: str = typer.Option(None, "--emit", help="print the best plan as megatron, mindspeed or primus arguments (bash), or a torchtitan TOML section"),
             json_: bool = typer.Option(False, "--json", help="print one JSON object"),
             use_all: bool = typer.Option(False, "--use-all", help="plans must use every chip (no idle domains)"),
             quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
             csv_: bool = typer.Option(False, "--csv", help="print the listed plans as CSV rows"),
             framework: str = typer.Option(None, "--framework", help="offer only what this software stack has and "
                                                                   "time the plans under it (e.g. megatron-core-2024, "
                                                                   "torchtitan-2024); default: the run's framework:, "
                                                                   "else its chip vendor's stack (megatron-bridge-"
                                                                   "2026 on NVIDIA, mindspeed-2026 on Ascend, "
                                                                   "primus-megatron-2025 on AMD; trainsim catalog "
                                                                   "frameworks)"),
             against: str = typer.Option(None, "--against", help="compare the best plan with this reference plan, "
                                                               "cause by cause (e.g. tp=8,pp=16,ep=64)"),
             price: float = PRICE, pue: float = PUE, electricity: float = ELECTRICITY) -> None:
    """Find the fastest plan that fits in memory."""
    for opt, v in (("--fix", fix), ("--emit", emit), ("--framework", framework), ("--against", against)):
        if v is not None and not v.strip():     # `--against ""` was the option left out, without a word
            raise api.TrainsimError("expected a value, got an empty one (leave the option out for none)", field=opt)
    fix, emit, framework, against = fix or "", emit or "", framework or "", against or ""
    dropped = [o for o, on in (("--json", json_), ("--csv", csv_), ("--against", against)) if on]
    if emit and dropped:   # --emit prints the flags alone: the others would be dropped without a word
        raise api.TrainsimError(f"prints only the best plan's flags and does not combine with "
                                f"{' or '.join(dropped)} (run them separately)", field="--emit")
    inputs = cost_inputs(price, pue, electricity)
    r = api.load_run(run)
    if against:
        # a bad reference plan is bad input (exit 2) whether or not a plan is found (the stack: --framework's),
        # one line: checked before the run's warnings are printed
        api.parse_against(r, against, framework)
    print_warnings(r)
    with progress_bar("searching plans", enabled=not (quiet or json_ or emit or csv_)) as tick:
        res = api.search_plans(r, fix=fix, framework=framework, emit=emit, top=top, use_all=use_all, cost=inputs,
                               progress=tick)   # no plan: res.alternatives, and exit code 1 below
    diff = None
    if against and res.best is not None:
        diff = api.plan_against(res.best, against)
    if emit and res.best is not None:
        print(api.emit_flags(res.best, emit))
        for line in api.emit_warnings(res.best, emit):   # flags that cannot carry out the stated plan
            print(line, file=sys.stderr)
        note = api.emit_stack_note(r, emit, framework)
        if note:   # the emitted plan's stack is not the run's: one line (an input error already says so itself)
            print(note, file=sys.stderr)
    elif csv_ and diff is not None:   # --against: each row says which it is, the reference plan last
        print_csv([{"role": role, **e.to_dict()} for role, e in
                   [("best", res.best), *[("runner_up", e) for e in res.runners_up], ("reference", diff.reference)]])
    elif csv_:   # no plan: the nearest alternatives as rows, as --json lists them
        print_csv([e.to_dict() for e in [res.best] + res.runners_up] if res.best else res.alternatives)
    elif json_:
        print_json({**res.to_dict(), "against": diff.to_dict() if diff is not None else None})
    else:
        render_search(res)
        if diff is not None:
            render_plan_diff(diff)
    if res.best is None:
        if emit or csv_:
            print(f"error: {r.path}: plan: {res.no_plan_message()}", file=sys.stderr)
        raise typer.Exit(1)
