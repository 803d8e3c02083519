"""``trainsim sweep SWEEP.yaml -o results.parquet [--workers N | --scheduler tcp://host:8786] [--resume]``:
every point of a design-space sweep, each a full plan search, streamed to Parquet; ``trainsim sweep --summary
results.parquet [--deadline-days D] [--plots DIR]``: the frontier and plots. Spec format: :mod:`trainsim.sweep`."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from .application import app
from .costopts import ELECTRICITY, PRICE, PUE, cost_inputs


def _fmt(x, kind: str = "") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if kind == "usd":   # one number format everywhere (trainsim.numfmt)
        from ..numfmt import money

        return money(x)
    if kind == "count":
        from ..numfmt import count

        return count(x)
    if kind == "pct":
        return f"{100 * x:.1f}%"
    if kind == "gib":
        return f"{x / 2**30:.1f}"
    if isinstance(x, float):
        if abs(x) >= 1e5 or (x and abs(x) < 1e-3):
            return f"{x:.3g}"
        return f"{x:,.3g}" if abs(x) < 1000 else f"{x:,.0f}"
    return str(x)


def _plan(r: dict) -> str:
    if r.get("plan.tp") is None:
        return "-"
    s = (f"tp{r['plan.tp']} pp{r['plan.pp']} ep{r['plan.ep']} cp{r['plan.cp']} dp{r['plan.dp']} "
         f"z{r['plan.zero']} mb{r['plan.micro_batch']} {r['plan.schedule']}")
    if r.get("plan.vpp", 1) and r.get("plan.vpp", 1) > 1:
        s += f" vpp{r['plan.vpp']}"
    if r.get("plan.recompute") not in (None, "none"):
        s += f" rc:{r['plan.recompute']}"
    return s


def _setting(r: dict, cols: list[str]) -> str:
    from ..sweep.summary import format_value as _fmt_col, short_name as _short

    return " ".join(f"{_short(c)}={_fmt_col(c, r.get(c))}" for c in cols)


def _render_summary(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..sweep.summary import format_value as _fmt_col, short_name as _short

    import sys

    c = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    err = ", ".join(f"{k} {v}" for k, v in sorted(s["errors"].items())) or "none"
    c.print(f"[bold]{s['name']}[/bold]  {s['file']}  (trainsim {s['trainsim_version']})")
    c.print(f"{s['points']:,} points: {s['ok']:,} with a plan; errors: {err}")
    for k, msg in s["error_examples"].items():
        c.print(f"  e.g. {k}: {msg[:160]}")
    if s["deadline_days"] is not None:
        c.print(f"{s['meeting_deadline']:,} points finish within {s['deadline_days']:g} days")
    cols = s["axis_columns"]
    labels = {"fastest": "fastest", "cheapest_rental": "cheapest", "cheapest_capex": "cheapest capex",
              "fewest_chips": "fewest chips", "best_mfu": "best MFU (vs BF16 peak)"}
    picked: dict[int, tuple[list[str], dict]] = {}
    for k, label in labels.items():
        r = s["frontier"].get(k)
        if r is not None:
            picked.setdefault(r["point"], ([], r))[0].append(label)
    if not picked:
        c.print("[red]no point meets the conditions[/red]")
    else:
        t = Table(title="frontier" + (f" (within {s['deadline_days']:g} days)" if s["deadline_days"] is not None
                                      else ""))
        for h in ("", "point", "chips", "days", "chip-hours", "energy (MWh)", "cost (rental)", "cost (capex)", "MFU (BF16 peak)",
                  "GiB/chip"):
            t.add_column(h, justify="left" if h == "" else "right")
        for pt, (roles, r) in picked.items():
            t.add_row(", ".join(roles), str(pt), _fmt(r.get("chips")), _fmt(r.get("days")),
                      _fmt(r.get("chip_hours"), "count"), _fmt(r.get("energy_mwh"), "count"),
                      _fmt(r.get("cost_rental_usd"), "usd"), _fmt(r.get("cost_capex_usd"), "usd"),
                      _fmt(r.get("mfu"), "pct"), _fmt(r.get("memory_per_chip_bytes"), "gib"))
        c.print(t)
        for pt, (_, r) in picked.items():
            bind = f"{r['binding']} {_fmt(r.get('binding_share'), 'pct')}" if r.get("binding") else "-"
            c.print(f"  point {pt}: {_setting(r, cols)}")
            c.print(f"    plan {_plan(r)}; binding {bind}")
    p = s["pareto"]
    if len(p["rows"]) > 1:
        from ..numfmt import label

        t = Table(title=f"Pareto front: {label(p['x'])} vs {label(p['y'])}")
        for h in ("point", "setting", "days", label(p["y"]), "MFU (BF16 peak)"):
            t.add_column(h, justify="left" if h == "setting" else "right")
        for r in p["rows"]:
            t.add_row(str(r["point"]), _setting(r, cols), _fmt(r.get("days")),
                      _fmt(r.get(p["y"]), "usd" if p["y"].startswith("cost") else ""), _fmt(r.get("mfu"), "pct"))
        c.print(t)
    for col, rows in s["per_axis"].items():
        t = Table(title=f"best {s['metric']} by {_short(col)} (over the other axes)")
        for h in (_short(col), f"best {s['metric']}", "point", "with a plan"):
            t.add_column(h, justify="right")
        for r in rows:
            t.add_row(_fmt_col(col, r["value"]), _fmt(r["best"]), "-" if r["point"] is None else str(r["point"]),
                      f"{r['ok']}/{r['of']}")
        c.print(t)
    for p in s.get("plots", []):
        c.print(f"wrote {p}")


@app.command("sweep")
def sweep_cmd(sweep: Optional[Path] = typer.Argument(None, help="sweep-spec YAML (format: trainsim.sweep docs)"),
              output: Optional[Path] = typer.Option(None, "-o", "--output",
                                                    help="results Parquet file (default: SWEEP.parquet)"),
              workers: int = typer.Option(0, "--workers", help="start a local Dask cluster of N worker processes"),
              scheduler: str = typer.Option("", "--scheduler", help="run on an existing Dask cluster, "
                                                                    "e.g. tcp://host:8786"),
              resume: bool = typer.Option(False, "--resume", help="continue an interrupted sweep"),
              overwrite: bool = typer.Option(False, "--overwrite", help="discard the parts of an unfinished run"),
              batch: int = typer.Option(0, "--batch", help="points per task (default: auto)"),
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
    from ..errors import TrainsimError

    if summary is not None:
        if sweep is not None:
            raise TrainsimError("give a sweep spec to run or --summary RESULTS.parquet, not both")
        from ..sweep.summary import summarize

        given = [n for n, v in (("--price-per-chip-hour", price), ("--pue", pue), ("--electricity", electricity))
                 if v is not None]
        if given:
            raise TrainsimError("cost options apply when a sweep runs (the results file keeps the costs it was "
                                "written with), not with --summary", field=given[0])
        s = summarize(summary, deadline_days=deadline_days, metric=metric, plots_dir=plots)
        _print_summary(s, json_, csv_)
        return
    if sweep is None:
        raise TrainsimError("give a sweep-spec YAML (or --summary RESULTS.parquet)")
    from ..sweep import load_sweep

    from ..sweep.executors import MAX_LOCAL_WORKERS

    if not 0 <= workers <= MAX_LOCAL_WORKERS:
        raise TrainsimError(f"expected 0 to {MAX_LOCAL_WORKERS} local worker processes, got {workers}",
                            field="--workers")
    spec = load_sweep(sweep).with_cost_overrides(cost_inputs(price, pue, electricity))
    if dry_run:
        from rich.console import Console

        from ..sweep.summary import format_value

        c = Console(highlight=False)
        c.print(f"[bold]{spec.name}[/bold]: {spec.n_points:,} points")
        for a in spec.axes:
            vals = ", ".join(" / ".join(format_value(col, v) for col, v in zip(a.columns, r)) for r in a.rows[:8])
            vals += " ..." if len(a) > 8 else ""
            c.print(f"  {a.name} ({a.kind}, {len(a)}): {', '.join(a.columns)} = {vals}")
        c.print(f"  columns: {', '.join(spec.column_names)}")
        return
    out = output or Path(sweep.name).with_suffix(".parquet")
    from ..sweep.runner import run_sweep

    import signal

    def _stop(signum, frame):   # SIGTERM (a batch system's time limit) stops like Ctrl-C: finished rows are kept
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        res = run_sweep(spec, out, workers=workers, scheduler=scheduler or None, resume=resume, overwrite=overwrite,
                        batch=batch, quiet=quiet)
    except KeyboardInterrupt:
        import sys

        from ..sweep.writer import parts_dir

        print(f"interrupted: finished points are saved in {parts_dir(out)}; rerun with --resume to continue",
              file=sys.stderr)
        sys.exit(130)   # not typer.Exit: under standalone_mode=False click returns its code instead of exiting
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not quiet or not res.complete:
        import sys

        if res.evaluated == 0 and res.complete:
            print(f"{out}: already complete ({res.points:,} points)", file=sys.stderr)
        else:
            print(f"{out}: {res.evaluated:,} points evaluated ({res.errors:,} with an error"
                  f"{f', {res.resumed:,} resumed' if res.resumed else ''}) in {res.seconds:.1f} s, "
                  f"{res.points_per_s:,.1f} points/s, {res.mode}, batch {res.batch}", file=sys.stderr)
    if deadline_days is not None or plots is not None or json_ or csv_:
        from ..sweep.summary import summarize

        s = summarize(out, deadline_days=deadline_days, metric=metric, plots_dir=plots)
        _print_summary(s, json_, csv_)


def _print_summary(s: dict, json_: bool, csv_: bool) -> None:
    """The summary as JSON, as CSV (one row per frontier role: fastest, cheapest, ...), or as tables."""
    if csv_:
        from .csvopt import print_rows

        print_rows([{"role": k, **r} for k, r in s["frontier"].items() if r is not None])
    elif json_:
        from ..report.terminal import print_json

        print_json(s)
    else:
        _render_summary(s)
