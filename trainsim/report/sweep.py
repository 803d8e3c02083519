"""Terminal rendering of ``trainsim sweep --summary`` (numbers come from :mod:`trainsim.sweep.summary`)."""
from __future__ import annotations

import math
import numbers

from .fmt import counted, days, is_fraction_key, is_money_key, label, money, plan_columns, quantity
from .fmt import sweep_column as _short, sweep_value as _fmt_col
from ..units import GIB


#: result columns holding days, printed as every other output prints days (fmt.days: one decimal, 21.9 beside
#: 22.0, not 22; 245.7, not 246; under 0.1 days two significant figures and the time, never 0.0)
DAY_KEYS = frozenset({"days", "effective_days", "ideal_days"})


def _metric_kind(metric: str) -> str:
    """How a ``--metric`` column prints: fractions in percent (:func:`.fmt.is_fraction_key`, as the frontier's MFU
    column), money in dollars (:func:`trainsim.numfmt.is_money_key`), as every other output prints those keys."""
    if is_fraction_key(metric):
        return "pct"
    if metric in DAY_KEYS:
        return "days"
    return "usd" if is_money_key(metric) else ""


def _fmt(x, kind: str = "") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if kind == "usd":   # one number format everywhere (trainsim.numfmt)
        return money(x)
    if kind == "count":
        return quantity(x)
    if kind == "pct":
        return f"{100 * x:.1f}%"
    if kind == "days":  # the one computed-duration format, without the word (a column under a 'days' header)
        return days(x, unit=False)
    if kind == "gib":
        return f"{x / GIB:.1f}"
    if isinstance(x, numbers.Integral) and not isinstance(x, bool):   # a chip count: 24,960 as everywhere else
        return f"{int(x):,}"
    if isinstance(x, float):
        if abs(x) >= 1e5 or (x and abs(x) < 1e-3):
            return f"{x:.3g}"
        return f"{x:,.3g}" if abs(x) < 1000 else f"{x:,.0f}"
    return str(x)


def _setting(r: dict, cols: list[str]) -> str:
    return " ".join(f"{_short(c)}={_fmt_col(c, r.get(c))}" for c in cols)


def render_summary(s: dict) -> None:
    """The summary of a sweep results file (:func:`trainsim.sweep.summary.summarize`) as terminal tables: the
    frontier (fastest, cheapest, fewest chips, best MFU), the Pareto front and the best value per axis."""
    from rich.console import Console
    from rich.table import Table

    import sys


    c = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    err = ", ".join(f"{k} {v}" for k, v in sorted(s["errors"].items())) or "none"
    c.print(f"[bold]{s['name']}[/bold]  {s['file']}  (trainsim {s['trainsim_version']})")
    c.print(f"{counted(s['points'], 'point')}: {s['ok']:,} with a plan; errors: {err}")
    for k, msg in s["error_examples"].items():
        # whole up to 400 characters (the error line's limit), then cut with '...': a cut at 160 dropped the
        # figures a no-fit message ends with ('needs 150.0 GiB per chi')
        c.print(f"  e.g. {k}: {msg if len(msg) <= 400 else msg[:397] + '...'}", markup=False)
    if s["deadline_days"] is not None:
        c.print(f"{counted(s['meeting_deadline'], 'point')} finish{'es' if s['meeting_deadline'] == 1 else ''} within {s['deadline_days']:g} days")
    cols = s["axis_columns"]
    labels = {"fastest": "fastest", "cheapest_rental": "cheapest", "cheapest_capex": "cheapest capex",
              "fewest_chips": "fewest chips", "best_mfu": "best MFU (vs BF16 peak)"}
    picked: dict[int, tuple[list[str], dict]] = {}
    for k, role in labels.items():
        r = s["frontier"].get(k)
        if r is not None:
            picked.setdefault(r["point"], ([], r))[0].append(role)
    if not picked:
        c.print("[red]no point meets the conditions[/red]")
    else:
        t = Table(title="frontier" + (f" (within {s['deadline_days']:g} days)" if s["deadline_days"] is not None
                                      else ""))
        for h in ("", "point", "chips", "days", "chip-hours", "energy (MWh)", "cost (rental)", "cost (capex)", "MFU (BF16 peak)",
                  "GiB/chip"):
            t.add_column(h, justify="left" if h == "" else "right")
        for pt, (roles, r) in picked.items():
            t.add_row(", ".join(roles), str(pt), _fmt(r.get("chips")), _fmt(r.get("days"), "days"),
                      _fmt(r.get("chip_hours"), "count"), _fmt(r.get("energy_mwh"), "count"),
                      _fmt(r.get("cost_rental_usd"), "usd"), _fmt(r.get("cost_capex_usd"), "usd"),
                      _fmt(r.get("mfu"), "pct"), _fmt(r.get("memory_per_chip_bytes"), "gib"))
        c.print(t)
        for pt, (_, r) in picked.items():
            bind = f"{r['binding']} {_fmt(r.get('binding_share'), 'pct')}" if r.get("binding") else "-"
            c.print(f"  point {pt}: {_setting(r, cols)}")
            c.print(f"    plan {plan_columns(r)}; binding {bind}")
    p = s["pareto"]
    if len(p["rows"]) > 1:

        t = Table(title=f"Pareto front: {label(p['x'])} vs {label(p['y'])}")
        for h in ("point", "setting", "days", label(p["y"]), "MFU (BF16 peak)"):
            t.add_column(h, justify="left" if h == "setting" else "right")
        for r in p["rows"]:
            t.add_row(str(r["point"]), _setting(r, cols), _fmt(r.get("days"), "days"),
                      _fmt(r.get(p["y"]), _metric_kind(p["y"])), _fmt(r.get("mfu"), "pct"))
        c.print(t)
    for col, rows in s["per_axis"].items():
        t = Table(title=f"best {s['metric']} by {_short(col)} (over the other axes)")
        for h in (_short(col), f"best {s['metric']}", "point", "with a plan"):
            t.add_column(h, justify="right")
        for r in rows:
            t.add_row(_fmt_col(col, r["value"]), _fmt(r["best"], _metric_kind(s["metric"])),
                      "-" if r["point"] is None else str(r["point"]),
                      f"{r['ok']}/{r['of']}")
        c.print(t)
    for p in s.get("plots", []):
        c.print(f"wrote {p}")
