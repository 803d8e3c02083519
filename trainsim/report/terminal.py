"""Terminal rendering (rich): estimates, plan searches. Only formatting here; numbers come from the API."""
from __future__ import annotations

import json
import math

from rich.console import Console
from rich.table import Table

GIB = 2**30


def console() -> Console:
    return Console(highlight=False)


def print_json(obj) -> None:
    def default(o):
        try:
            import numpy as np

            if isinstance(o, np.generic):
                return o.item()
            if isinstance(o, np.ndarray):
                return o.tolist()
        except ImportError:  # pragma: no cover
            pass
        if isinstance(o, tuple):
            return list(o)
        return str(o)

    def clean(o):
        if isinstance(o, float) and (math.isnan(o) or math.isinf(o)):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o

    print(json.dumps(clean(obj), indent=2, default=default))


def plan_text(plan: dict) -> str:
    keys = ("tp", "pp", "vpp", "dp", "ep", "etp", "cp", "zero", "recompute", "micro_batch", "schedule")
    s = " ".join(f"{k}={plan[k]}" for k in keys if k in plan)
    if plan.get("node_limit"):
        s += f" node_limit={plan['node_limit']}"
    return s


def render_estimate(est, title: str | None = None, c: Console | None = None) -> None:
    c = c or console()
    d = est.to_dict()
    t = Table(title=title or f"{d['name']}: {d['model']} on {d['chips']:,} x {d['chip']} ({d['system']})",
              show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("plan", plan_text(d["plan"]))
    t.add_row("step time", f"{d['step_time_s']:.3f} s")
    t.add_row("tokens/s per chip", f"{d['tokens_per_s_per_chip']:,.1f}")
    t.add_row("MFU / HFU (vs BF16 peak)", f"{d['mfu']:.1%} / {d['hfu']:.1%}")
    if d.get("precision", "bf16") != "bf16":
        t.add_row(f"MFU / HFU (vs {d['precision'].upper()} peak)",
                  f"{d['mfu_at_precision']:.1%} / {d['hfu_at_precision']:.1%}")
    fits = "fits" if d["fits"] else "[red]DOES NOT FIT[/red]"
    t.add_row("memory per chip", f"{d['memory_per_chip_bytes'] / GIB:.1f} GiB of {d['hbm_bytes'] / GIB:.1f} GiB ({fits})")
    if "days" in d:
        t.add_row("whole run", f"{d['days']:.1f} days, {d['chip_hours']:.3g} chip-hours")
    c.print(t)
    b = Table(title="step time by cause")
    b.add_column("cause")
    b.add_column("seconds", justify="right")
    b.add_column("share", justify="right")
    step = d["step_time_s"]
    for k, v in d["breakdown"].items():
        if v > 0:
            b.add_row(k, f"{v:.4f}", f"{v / step:.1%}")
    c.print(b)
    m = Table(title="memory per chip")
    m.add_column("part")
    m.add_column("GiB", justify="right")
    for k, v in d["memory_breakdown_bytes"].items():
        m.add_row(k, f"{v / GIB:.2f}")
    c.print(m)
    pl = Table(title="placement of parallel groups")
    for col in ("group", "size", "stride", "levels crossed", "per scale-up domain"):
        pl.add_column(col)
    for g, v in d["plan"]["placement"].items():
        if v["size"] > 1:
            pl.add_row(g, str(v["size"]), str(v["stride"]), ", ".join(v["levels"]), str(v["members_per_scale_up_domain"]))
    c.print(pl)


def render_search(res, c: Console | None = None) -> None:
    c = c or console()
    if res.best is None:
        c.print(f"[red]{res.no_plan_message()}[/red]")
    else:
        render_estimate(res.best, c=c)
        t = Table(title="best plans that fit")
        for col in ("#", "plan", "step s", "tok/s/chip", "MFU (BF16 peak)", "GiB/chip"):
            t.add_column(col, justify="right" if col != "plan" else "left")
        for i, r in enumerate([res.best] + res.runners_up, 1):
            t.add_row(str(i), plan_text(r.plan), f"{r.step_time_s:.3f}", f"{r.tokens_per_s_per_chip:,.1f}",
                      f"{r.mfu:.1%}", f"{r.memory_per_chip_bytes / GIB:.1f}")
        c.print(t)
        pt = Table(title="Pareto front: step time vs memory")
        for col in ("plan", "step s", "GiB/chip"):
            pt.add_column(col)
        for r in res.pareto[:10]:
            pt.add_row(plan_text(r["plan"]), f"{r['step_time_s']:.3f}", f"{r['memory_per_chip_bytes'] / GIB:.1f}")
        c.print(pt)
    rj = Table(title=f"{res.plans_evaluated:,} plans evaluated, {res.plans_feasible:,} fit, "
                     f"in {res.search_seconds:.3f} s; rejected by reason")
    rj.add_column("reason")
    rj.add_column("plans", justify="right")
    for k, v in sorted(res.rejected.items(), key=lambda kv: -kv[1]):
        rj.add_row(k, f"{v:,}")
    c.print(rj)
