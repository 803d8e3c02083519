"""Terminal rendering (rich): estimates, plan searches. Only formatting here; numbers come from the API.

rich is imported when something is rendered (:func:`console`, :func:`table`, :func:`panel`), not when this module
is: a command that prints JSON or CSV never loads it (start-up time, issue 15)."""
from __future__ import annotations

import json
import math
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from .fmt import NO_SINGLE_FIX, days as _days, pct, plan as _plan, search_counts, step_time as _step_time
from ..numfmt import count, money

if TYPE_CHECKING:
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table

from ..units import GIB as GIB  # bytes per GiB: the one definition


def console() -> Console:
    """The terminal's console (no highlighting)."""
    from rich.console import Console

    return Console(highlight=False)


def table(*args: Any, **kw: Any) -> Table:
    """A rich table (``rich.table.Table(*args, **kw)``)."""
    from rich.table import Table

    return Table(*args, **kw)


def panel(*args: Any, **kw: Any) -> Panel:
    """A rich panel (``rich.panel.Panel(*args, **kw)``)."""
    from rich.panel import Panel

    return Panel(*args, **kw)


def wide_console(width: int = 120) -> Console:
    """A console ``width`` columns wide when the output is not a terminal (pipes, files), else the terminal's width
    (the scenario, sizing, capacity, sensitivity and compare tables; 160 for the RL step check's run names)."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else width)


def print_json(obj) -> None:
    """Print ``obj`` as indented JSON (numpy numbers and arrays as plain ones; non-finite floats as null)."""
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
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
    """A plan as ``tp=8 pp=16 ...`` (:func:`trainsim.report.fmt.plan`; empty for no plan)."""
    return _plan(plan, empty="")


def cost_rows(cost: dict | None) -> list[tuple[str, str]]:
    """(label, value) rows of a run's cost for a terminal table."""
    if not cost:
        return []
    inp = cost["inputs"]
    rate = inp["rental_usd_per_chip_hour"]["value"]
    rows = [("cost basis", cost["basis"]),
            ("chip-hours", count(cost["chip_hours"], "chip-hours")),
            ("energy", "-" if cost["energy_mwh"] is None else
             f"{count(cost['energy_mwh'])} MWh (PUE {inp['pue']['value']:g})"),
            ("cost, rental", "no rental price in the catalog (give --price-per-chip-hour)"
             if cost["cost_rental_usd"] is None else f"{money(cost['cost_rental_usd'])} at {money(rate)}/chip-hour"),
            ("cost, capex", "no system price in the catalog" if cost["cost_capex_usd"] is None else
             f"{money(cost['cost_capex_usd'])} ({money(cost['capex_amortised_usd'])} amortised over "
             f"{inp['life_years']['value']:g} years + {money(cost['electricity_usd'])} electricity at "
             f"${inp['electricity_usd_per_kwh']['value']:g}/kWh)")]
    return rows


def trust_rows(ve: dict | None) -> list[tuple[str, str]]:
    """(label, text) rows saying how far an estimate can be trusted: the leave-one-out error of predicted tokens/s
    per chip on its chip family (or, for a family without validation runs, that it is unmeasured and the floor
    shown) and on its model kind (dense / MoE), from the estimate's ``validation_error``
    (:func:`trainsim.perf.calibration.validation_error_that_applies`)."""
    if not ve:
        return []
    rows = []
    fam = ve.get("chip_family")
    if fam:
        if fam.get("runs"):
            rows.append(("held-out error, chip family", f"median {pct(fam['median_abs_error'])}, max "
                         f"{pct(fam['max_abs_error'])} over {fam['runs']:,} validation runs"))
        else:
            rows.append(("held-out error, chip family", "unmeasured (no validation run on this chip family); "
                         f"no smaller than {fam.get('shown_family', 'another family')}'s median "
                         f"{pct(fam['median_abs_error'])}"))
    kind = ve.get("model_kind")
    if kind and kind.get("runs"):
        rows.append((f"held-out error, {kind['kind']} models", f"median {pct(kind['median_abs_error'])}, max "
                     f"{pct(kind['max_abs_error'])} over {kind['runs']:,} validation runs"))
    return rows


def render_estimate(est, title: str | None = None, c: Console | None = None) -> None:
    """One estimate as terminal tables: the plan, step time by cause, memory against HBM, days and cost."""
    c = c or console()
    d = est.to_dict()
    t = table(title=title or f"{d['name']}: {d['model']} on {d['chips']:,} x {d['chip']} ({d['system']})",
              show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("plan", plan_text(d["plan"]))
    if (d.get("profile_defaults") or {}).get("note"):
        t.add_row("plan fields filled", d["profile_defaults"]["note"])
    if d.get("idle_chips"):
        t.add_row("chips used", f"{d['chips_used']:,} of {d['chips']:,} ({d['idle_chips']:,} idle, paid for)")
    if d.get("global_batch_seqs") is not None:
        asked = d.get("global_batch_requested_seqs")
        note = f" (asked {asked:,}: {d['global_batch_seqs'] / asked - 1:+.1%})" if asked and asked != d[
            "global_batch_seqs"] else ""
        t.add_row("global batch", f"{d['global_batch_seqs']:,} sequences{note}")
    t.add_row("step time", _step_time(d["step_time_s"]))
    t.add_row("tokens/s per chip", f"{d['tokens_per_s_per_chip']:,.1f}")
    t.add_row("MFU / HFU (vs BF16 peak)", f"{d['mfu']:.1%} / {d['hfu']:.1%}")
    if d.get("precision", "bf16") != "bf16":
        recipe = f"; {d['fp8_recipe']} scaling" if d.get("fp8_recipe") else ""
        if d.get("precision_native") is False:   # priced at the BF16 rate: say so rather than a second BF16 MFU
            recipe = f"; the chip has no {d['precision'].upper()} tensor cores: priced at its BF16 rate"
        t.add_row(f"MFU / HFU (vs {d['precision'].upper()} peak{recipe})",
                  f"{d['mfu_at_precision']:.1%} / {d['hfu_at_precision']:.1%}")
    fits = "fits" if d["fits"] else "[red]DOES NOT FIT[/red]"
    t.add_row("memory per chip",
              f"{d['memory_per_chip_bytes'] / GIB:,.1f} GiB of {d['hbm_bytes'] / GIB:,.1f} GiB ({fits})")
    dnf = d.get("does_not_fit")
    if dnf:
        t.add_row("over by", f"{dnf['over_by_bytes'] / GIB:,.1f} GiB ({dnf['over_by_fraction']:,.0%})")
        for fx in dnf.get("fixes", []):
            t.add_row("fits with", f"{fx['change']}: {fx['memory_per_chip_bytes'] / GIB:,.1f} GiB, "
                                   f"step {_step_time(fx['step_time_s'])}")
        if not dnf.get("fixes"):
            t.add_row("fits with", NO_SINGLE_FIX)
    for label, text in trust_rows(d.get("validation_error")):
        t.add_row(label, text)
    if "days" in d:
        t.add_row("whole run (without failures)", _days(d["days"]))
        for k, v in cost_rows(d.get("cost")):
            t.add_row(k, v)
    c.print(t)
    b = table(title="step time by cause")
    b.add_column("cause")
    b.add_column("seconds", justify="right")
    b.add_column("share", justify="right")
    step = d["step_time_s"]
    for k, v in d["breakdown"].items():
        if v > 0:
            b.add_row(k, f"{v:.4f}", f"{v / step:.1%}")
    c.print(b)
    m = table(title="memory per chip")
    m.add_column("part")
    m.add_column("GiB", justify="right")
    for k, v in d["memory_breakdown_bytes"].items():
        m.add_row(k, f"{v / GIB:.2f}")
    c.print(m)
    pl = table(title="placement of parallel groups")
    for col in ("group", "size", "stride", "levels crossed", "per scale-up domain"):
        pl.add_column(col)
    for g, v in d["plan"]["placement"].items():
        if v["size"] > 1:
            pl.add_row(g, str(v["size"]), str(v["stride"]), ", ".join(v["levels"]), str(v["members_per_scale_up_domain"]))
    c.print(pl)


def render_search(res, c: Console | None = None) -> None:
    """A plan search as terminal tables: the best plans, the Pareto front, rejections by reason, or the nearest alternatives when no plan fits."""
    c = c or console()
    if res.best is None:
        c.print(f"[red]{res.no_plan_message().split('; nearest alternatives')[0]}[/red]")
        if res.alternatives:
            at = table(title="nearest alternatives (each has a plan)")
            for col in ("change", "step s", "MFU (BF16 peak)", "days", "GiB/chip", "plan"):
                at.add_column(col, justify="left" if col in ("change", "plan") else "right")
            for a in res.alternatives:
                at.add_row(a["text"], f"{a['step_time_s']:.3f}", f"{a['mfu']:.1%}",
                           _days(a["days"], unit=False) if a.get("days") is not None else "-",
                           f"{a['memory_per_chip_bytes'] / GIB:.1f}", plan_text(a["plan"]))
            c.print(at)
    else:
        render_estimate(res.best, c=c)
        t = table(title="best plans that fit")
        for col in ("#", "plan", "step s", "tok/s/chip", "MFU (BF16 peak)", "GiB/chip"):
            t.add_column(col, justify="right" if col != "plan" else "left")
        for i, r in enumerate([res.best] + res.runners_up, 1):
            t.add_row(str(i), plan_text(r.plan), f"{r.step_time_s:.3f}", f"{r.tokens_per_s_per_chip:,.1f}",
                      f"{r.mfu:.1%}", f"{r.memory_per_chip_bytes / GIB:.1f}")
        c.print(t)
        # the front is built on step time per sequence (search._pareto over step / batch): plans of a batch in
        # tokens run different batches, so each row shows its own, or a row looks beaten by a faster one
        pt = table(title="Pareto front: step time per sequence vs memory")
        for col in ("plan", "step s", "batch (seqs)", "GiB/chip"):
            pt.add_column(col, justify="left" if col == "plan" else "right")
        for r in res.pareto[:10]:
            pt.add_row(plan_text(r["plan"]), f"{r['step_time_s']:.3f}", f"{r['global_batch_seqs']:,}",
                       f"{r['memory_per_chip_bytes'] / GIB:.1f}")
        c.print(pt)
    counts = (f"{search_counts(res.plans_evaluated, res.plans_feasible, res.rejected)}, "
              f"in {res.search_seconds:.3f} s")
    if res.best is not None and res.best_from_fewer_chips:
        # the counts cover the usual chip counts; the best plan was found on fewer chips (search's best-plan pass)
        counts += f" (on the usual chip counts; the best plan, on {res.best.used:,} chips, was found below them)"
    if not res.rejected:           # every plan fits (a plan fixed in full): a line, not an empty table
        c.print(f"{counts}; none rejected")
        return
    rj = table(title=f"{counts}; rejected by reason")
    rj.add_column("reason")
    rj.add_column("plans", justify="right")
    for k, v in sorted(res.rejected.items(), key=lambda kv: -kv[1]):
        rj.add_row(k, f"{v:,}")
    c.print(rj)


def _diff_table(title: str, first: str, rows, scale: float, digits: int) -> Table:
    """A best / reference / difference table of (name, best, reference) rows, values divided by ``scale``."""
    t = table(title=title)
    for col in (first, "best", "reference", "best - reference"):
        t.add_column(col, justify="left" if col == first else "right")
    for name, b, r in rows:
        t.add_row(name, f"{b / scale:.{digits}f}", f"{r / scale:.{digits}f}", f"{(b - r) / scale:+.{digits}f}")
    return t


def render_plan_diff(diff, c: Console | None = None) -> None:
    """``plan --against``: the best plan beside the reference plan, cause by cause and part by part."""
    c = c or console()
    c.print(f"[bold]against {plan_text(diff.reference.plan)}[/bold]: {diff.headline()}")
    if diff.idle_note():
        c.print(diff.idle_note())
    c.print(_diff_table(f"step time by cause (seconds per reference step on the run's {diff.best.run.chips:,} "
                        "chips)", "cause", diff.causes, 1.0, 3))
    c.print(_diff_table("memory per chip (GiB)", "part", diff.memory, GIB, 1))
    if not diff.reference.fits:
        c.print("[yellow]the reference plan does not fit in the chip's memory in this model[/yellow]")
