"""``trainsim sensitivity RUN.yaml [--vary a,b] [--threshold 10%]``: days of the best plan as one hardware
parameter at a time moves (x0.25 .. x2, plan re-optimised), and the value below which the run slows by X%."""
from __future__ import annotations

from pathlib import Path

import typer

from .application import app
from .runload import load_run_warned
from .csvopt import CSV
from ..api import TrainsimError
from .. import api
from ..api import scenarios
from ..report.fmt import days as days_fmt, percent_value, signed_pct, value as fmt
from ..report.progress import progress_bar
from ..report.terminal import print_json, wide_console as console
from .csvopt import print_rows


def _percent(text: str) -> float:
    t = text.strip()
    v = percent_value(t)
    if v is None:
        raise TrainsimError(f"expected a percentage such as 10%, got {text!r}", field="--threshold")
    if v <= 0:
        raise TrainsimError(f"expected a positive slowdown, got {text!r}", field="--threshold")
    if not t.endswith("%") and v >= 1:   # a bare 10 is 10x (1000%), never what "--threshold 10" means
        raise TrainsimError(f"expected a percentage such as 10% or a fraction such as 0.1, got {text!r} (a bare "
                            f"number is a fraction: {v:g} would be {v:.0%}; write it with % if meant)",
                            field="--threshold")
    return v


@app.command("sensitivity")
def sensitivity_cmd(run: Path = typer.Argument(..., help="run-spec YAML (without training.tokens: per-token figures instead of days)"),
                    vary: str = typer.Option("hbm_bandwidth,hbm_capacity,scale_up_bandwidth,scale_out_bandwidth,"
                                             "peak_flops", "--vary", help="comma-separated parameters: hbm_bandwidth, "
                                             "hbm_capacity, scale_up_bandwidth, scale_out_bandwidth, peak_flops "
                                             "('hbm' alone is refused: capacity or bandwidth)"),
                    factors: str = typer.Option("0.25,0.5,1.5,2", "--factors", help="multipliers of the nominal value, each 1e-6 .. 1e6"),
                    threshold: str = typer.Option("", "--threshold", help="e.g. 10%: the value below which the run "
                                                                          "slows by more than this, per parameter"),
                    json_: bool = typer.Option(False, "--json", help="print one JSON object"),
                    csv_: bool = CSV,
                    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar")) -> None:
    """How much each hardware parameter moves the days of a run (the plan re-optimised per variation)."""
    params = [p for p in vary.split(",") if p.strip()]
    try:
        fs = tuple(float(x) for x in factors.split(",") if x.strip())
    except ValueError:
        raise api.TrainsimError(f"expected numbers such as 0.5,2, got {factors!r}", field="--factors") from None
    x = _percent(threshold) if threshold else None
    # the options are bad input of one line, checked before the run's warnings are printed (as size does)
    scenarios.check_sensitivity_args(params, fs, None, api.CLI_NAMES)
    r = load_run_warned(run)
    with progress_bar("sensitivity", enabled=not (quiet or json_ or csv_)) as tick:
        # one parameter at a time, so the bar can move (searches are memoised); no point limit on the command line;
        # scenarios.sensitivity checks training.tokens and the factors before the first search
        out = scenarios.sensitivity(r, params, fs, threshold=x, progress=tick, max_points=None,
                              names=api.CLI_NAMES).to_dict()
    if csv_:   # one row per parameter and factor

        print_rows([{"parameter": p, "nominal": v["nominal"], "unit": v["unit"], **row,
                     "elasticity": out["elasticity"][p]} for p, v in out["params"].items() for row in v["rows"]])
        return
    if json_:
        print_json(out)
        return
    from rich.table import Table


    c = console()
    per_token = out["nominal_days"] is None    # no training.tokens: tokens/s per chip instead of days
    if per_token:
        c.print(f"nominal: {fmt(out['nominal_tokens_per_s_per_chip'])} tokens/s per chip, step "
                f"{fmt(out['nominal_step_time_s'])} s, MFU {out['nominal_mfu']:.1%} (no training.tokens: per token)")
    else:
        c.print(f"nominal: {days_fmt(out['nominal_days'])}")
    t = Table(title="tokens/s per chip of the best plan (change of time per token vs nominal)" if per_token
              else "days of the best plan (change vs nominal)")
    t.add_column("parameter")
    t.add_column("nominal", justify="right")
    for f in next(iter(out["params"].values()))["rows"]:   # the factors as searched (a repeated one once)
        t.add_column(f"x{f['factor']:g}", justify="right")
    t.add_column("elasticity", justify="right")
    for p, v in out["params"].items():
        cells = ["no fit" if row["change_pct"] == float("inf") else
                 f"{fmt(row['tokens_per_s_per_chip'])} ({signed_pct(row['change_pct'], 0)})" if per_token else
                 f"{days_fmt(row['days'], unit=False)} ({signed_pct(row['change_pct'], 0)})" for row in v["rows"]]
        t.add_row(p, f"{fmt(v['nominal'])} {v['unit']}", *cells, fmt(out["elasticity"][p]))
    c.print(t)
    for p, v in out["params"].items():     # a "no fit" cell says why
        for row in v["rows"]:
            if row.get("note"):
                c.print(f"{p} x{row['factor']:g}: {row['note']}")
    for p, th in (out.get("thresholds") or {}).items():
        c.print(f"{p}: {th['message']}")
