"""``trainsim sensitivity RUN.yaml [--vary a,b] [--threshold 10%]``: days of the best plan as one hardware
parameter at a time moves (x0.25 .. x2, plan re-optimised), and the value below which the run slows by X%."""
from __future__ import annotations

from pathlib import Path

import typer

from .application import app
from .csvopt import CSV


def _percent(text: str) -> float:
    from ..errors import TrainsimError

    t = text.strip()
    try:
        v = float(t[:-1]) / 100.0 if t.endswith("%") else float(t)
    except ValueError:
        raise TrainsimError(f"expected a percentage such as 10%, got {text!r}", field="--threshold") from None
    if v <= 0:
        raise TrainsimError(f"expected a positive slowdown, got {text!r}", field="--threshold")
    return v


@app.command("sensitivity")
def sensitivity_cmd(run: Path = typer.Argument(..., help="run-spec YAML with training.tokens"),
                    vary: str = typer.Option("hbm_bandwidth,hbm_capacity,scale_up_bandwidth,scale_out_bandwidth,"
                                             "peak_flops", "--vary", help="comma-separated parameters"),
                    factors: str = typer.Option("0.25,0.5,1.5,2", "--factors", help="multipliers of the nominal value"),
                    threshold: str = typer.Option("", "--threshold", help="e.g. 10%: the value below which the run "
                                                                          "slows by more than this, per parameter"),
                    json_: bool = typer.Option(False, "--json", help="print one JSON object"),
                    csv_: bool = CSV,
                    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar")) -> None:
    """How much each hardware parameter moves the days of a run (the plan re-optimised per variation)."""
    from .. import api
    from ..errors import TrainsimError
    from ..report.progress import progress_bar
    from ..report.terminal import print_json
    from ..scenario.render import fmt
    from ..scenario.sensitivity import canonical, elasticity, sensitivity
    from ..scenario.sensitivity import threshold as find_threshold

    r = api.load_run(run)
    if r.training.tokens is None:
        raise TrainsimError("the run needs training.tokens", field="training.tokens", where=str(run))
    params = [canonical(p) for p in vary.split(",") if p.strip()]
    try:
        fs = tuple(float(x) for x in factors.split(",") if x.strip())
    except ValueError:
        raise TrainsimError(f"expected numbers such as 0.5,2, got {factors!r}", field="--factors") from None
    x = _percent(threshold) if threshold else None
    with progress_bar("sensitivity", enabled=not (quiet or json_ or csv_)) as tick:
        tick.set_total(len(params) * (2 if x else 1))
        out = None
        for p in params:               # one parameter at a time, so the bar can move (searches are memoised)
            tick.advance(p, 0)
            one = sensitivity(r, [p], fs)
            out = one if out is None else {**out, "params": {**out["params"], **one["params"]}}
            tick.advance()
        out["elasticity"] = {p: elasticity(out, p) for p in out["params"]}
        if x:
            out["thresholds"] = {}
            for p in params:
                tick.advance(f"threshold {p}", 0)
                out["thresholds"][p] = find_threshold(r, p, x)
                tick.advance()
    if csv_:   # one row per parameter and factor
        from .csvopt import print_rows

        print_rows([{"parameter": p, "nominal": v["nominal"], "unit": v["unit"], **row,
                     "elasticity": out["elasticity"][p]} for p, v in out["params"].items() for row in v["rows"]])
        return
    if json_:
        print_json(out)
        return
    from rich.table import Table

    from ..scenario.render import console

    c = console()
    c.print(f"nominal: {out['nominal_days']:.1f} days")
    t = Table(title="days of the best plan (change vs nominal)")
    t.add_column("parameter")
    t.add_column("nominal", justify="right")
    for f in fs:
        t.add_column(f"x{f:g}", justify="right")
    t.add_column("elasticity", justify="right")
    for p, v in out["params"].items():
        cells = [f"{row['days']:.1f} ({row['change_pct']:+.0f}%)" if row["days"] != float("inf") else "no fit"
                 for row in v["rows"]]
        t.add_row(p, f"{fmt(v['nominal'])} {v['unit']}", *cells, fmt(out["elasticity"][p]))
    c.print(t)
    for p, th in (out.get("thresholds") or {}).items():
        c.print(f"{p}: {th['message']}")
