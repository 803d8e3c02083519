"""Sensitivity of a run's days to one hardware parameter at a time, the plan re-optimised for every variation.

Parameters: ``hbm_bandwidth`` (Chip.hbm_bw), ``hbm_capacity`` (Chip.hbm_bytes), ``scale_up_bandwidth`` (the
scale-up level's per-chip bandwidth), ``scale_out_bandwidth`` (the scale-out level's), ``peak_flops`` (every
precision's dense peak). Each variation multiplies the nominal value by a factor (default x0.25 .. x2) and runs
the full plan search again, so the answer is "how much slower is the best plan", not "how much slower is today's
plan". :func:`threshold` bisects (in log space) for the value below which the run slows by more than X%.
"""
from __future__ import annotations

import math
from dataclasses import replace

from ..alternatives import no_plan
from ..catalog.describe import display_unit
from ..catalog.types import System
from ..errors import TrainsimError, ambiguous, unknown
from ..io.specfile import located
from ..estimate import is_complete
from ..plan_estimate import complete_plans
from ..spec import Run
from .common import best, days_of

PARAMS = ("hbm_bandwidth", "hbm_capacity", "scale_up_bandwidth", "scale_out_bandwidth", "peak_flops")
ALIASES = {"hbm_bw": "hbm_bandwidth", "hbm_bytes": "hbm_capacity",
           "scale_up_bw": "scale_up_bandwidth", "scale_up": "scale_up_bandwidth",
           "scale_out_bw": "scale_out_bandwidth", "scale_out": "scale_out_bandwidth", "flops": "peak_flops",
           "peak": "peak_flops"}
#: names that could mean more than one parameter: refused with the choices (``hbm`` is capacity or bandwidth)
AMBIGUOUS = {"hbm": ("hbm_capacity", "hbm_bandwidth")}
#: display unit and scale per parameter, each as ``trainsim catalog`` prints the quantity: HBM capacity in GiB, as
#: every memory table shows it (an "80 GB" H100 is 80 GiB, not the 85.9 GB its SI value reads as); scale-out
#: bandwidth in Gb/s (1e9 bit/s = 1.25e8 B/s), as NICs are quoted and the catalog's scale-out column reads
UNITS = {"hbm_bandwidth": ("TB/s", 1e12), "hbm_capacity": display_unit("bytes"),
         "scale_up_bandwidth": display_unit("bytes_per_s"), "scale_out_bandwidth": display_unit("bits_per_s"),
         "peak_flops": ("TFLOP/s BF16", 1e12)}
FACTORS = (0.25, 0.5, 0.75, 1.5, 2.0)


def canonical(param: str, field: str = "--vary") -> str:
    """The canonical name of sensitivity parameter ``param`` (aliases resolved); unknown raises with the
    nearest names, the error naming ``field`` (the CLI's --vary, the API's params)."""
    p = ALIASES.get(param.strip(), param.strip())
    if p in AMBIGUOUS:
        raise ambiguous(p, AMBIGUOUS[p], field=field)
    if p not in PARAMS:
        raise unknown("sensitivity parameter", param, PARAMS, field=field)
    return p


def value(system: System, param: str) -> float:
    """The value of hardware parameter ``param`` in ``system`` (SI: bytes, bytes/s or FLOP/s)."""
    c = system.chip
    return {"hbm_bandwidth": c.hbm_bw, "hbm_capacity": c.hbm_bytes, "scale_up_bandwidth": system.levels[0].bw,
            "scale_out_bandwidth": system.levels[1].bw if len(system.levels) > 1 else c.scale_out_bw,
            "peak_flops": c.flops("bf16")}[canonical(param)]


def scaled(system: System, param: str, factor: float) -> System:
    """``system`` with one parameter multiplied by ``factor`` (chip field and network level kept consistent)."""
    p = canonical(param)
    c = system.chip
    levels = list(system.levels)
    if p == "hbm_bandwidth":
        c = c.with_(hbm_bw=c.hbm_bw * factor)
    elif p == "hbm_capacity":
        c = c.with_(hbm_bytes=c.hbm_bytes * factor)
    elif p == "peak_flops":
        c = c.with_(peak_flops={k: (v * factor if v else v) for k, v in c.peak_flops.items()})
    elif p == "scale_up_bandwidth":
        levels[0] = replace(levels[0], bw=levels[0].bw * factor)
        c = c.with_(scale_up_bw=c.scale_up_bw * factor)
    elif p == "scale_out_bandwidth":
        if len(levels) < 2:
            raise TrainsimError("the system has no scale-out level", field="--vary")
        levels[1] = replace(levels[1], bw=levels[1].bw * factor)
        c = c.with_(scale_out_bw=c.scale_out_bw * factor)
    return system.with_(chip=c, levels=tuple(levels))


def days_at(run: Run, param: str, factor: float) -> tuple[float, object]:
    """Days of the best plan of ``run`` with ``param`` scaled by ``factor``, and that plan. A run without
    ``training.tokens`` has no days: its quantity is the whole job's seconds per training token, 1 / (tokens/s),
    which days are a constant multiple of (days = tokens x s/token / 86400), so every ratio built on it (change vs
    nominal, elasticity, threshold) is the same. ``inf`` when nothing fits."""
    res = best(_scaled_run(run, param, factor))
    if run.training.tokens is None:
        return (math.inf if res.best is None else 1.0 / res.best.tokens_per_s), res.best
    return days_of(res), res.best


def _scaled_run(run: Run, param: str, factor: float) -> Run:
    return replace(run, system=scaled(run.system, param, factor)) if factor != 1.0 else run


def no_fit_note(run: Run, param: str, factor: float) -> str:
    """Why the plan search of ``run`` with ``param`` scaled by ``factor`` has no answer (the row's ``note``
    where its numbers are null): the search's own reason -- no valid plan for the chips and batch, or none fits
    in memory with the smallest need against the scaled HBM (the same memoised search as :func:`days_at`)."""
    return best(_scaled_run(run, param, factor)).no_plan_message()


def _per_token(est) -> dict:
    """The per-token quantities of a best plan (None when nothing fits): tokens/s per chip, step time, MFU."""
    return {"tokens_per_s_per_chip": None if est is None else est.tokens_per_s_per_chip,
            "step_time_s": None if est is None else est.step_time_s, "mfu": None if est is None else est.mfu}


def sensitivity(run: Run, params=PARAMS, factors=FACTORS) -> dict:
    """For each parameter and factor: the best plan's days (None when the run states no ``training.tokens``), its
    tokens/s per chip, step time and MFU, and the change of the run's time vs nominal (in %; per token without
    tokens, :func:`days_at`); where no plan fits these are null (change ``inf``) and ``note`` says why
    (:func:`no_fit_note`; None elsewhere)."""
    has_tokens = run.training.tokens is not None
    if is_complete(run.plan):   # a stated plan that breaks a plan rule is bad input (exit 2), as estimate says
        try:
            complete_plans(run, run.plan)
        except TrainsimError as exc:
            raise located(exc, run.path) from None
    base_days, base_est = days_at(run, "peak_flops", 1.0)
    if not math.isfinite(base_days):   # no answer (exit 1), with the nearest alternatives: not bad input
        raise located(no_plan(best(run), run), run.path)
    out = {"nominal_days": base_days if has_tokens else None, "nominal_plan": base_est.plan,
           **{f"nominal_{k}": v for k, v in _per_token(base_est).items()}, "params": {}}
    for p in map(canonical, params):
        unit, scale = UNITS[p]
        rows = []
        for f in factors:
            d, est = days_at(run, p, f)
            rows.append({"factor": f, "value": value(run.system, p) * f / scale, "unit": unit,
                         "days": d if has_tokens else None, **_per_token(est),
                         "change_pct": (d / base_days - 1.0) * 100.0 if math.isfinite(d) else math.inf,
                         "plan_changed": est is not None and est.plan != base_est.plan,
                         "plan": None if est is None else est.plan,
                         "note": None if est is not None else no_fit_note(run, p, f)})
        out["params"][p] = {"nominal": value(run.system, p) / scale, "unit": unit, "rows": rows}
    return out


def elasticity(sens: dict, param: str) -> float:
    """d ln(days) / d ln(param) between the widest factors at which a plan fits (x0.25 and x2 by default): -1 =
    time inversely proportional to the parameter, 0 = insensitive. Where no plan fits at a factor below 1 the run
    cannot be done there at all, so the slope is unbounded: ``-inf`` (printed '-unbounded', JSON null), never the
    slope of the fitting factors alone -- HBM capacity of the DeepSeek-V3 example (no fit at x0.25 and x0.5,
    +0% at x1.5 and x2) printed elasticity 0, 'insensitive', beside its two 'no fit' cells. ``+inf`` where no plan
    fits at a factor above 1 only."""
    every = sens["params"][canonical(param)]["rows"]
    if any(not math.isfinite(r["change_pct"]) and r["factor"] < 1.0 for r in every):
        return -math.inf
    if any(not math.isfinite(r["change_pct"]) and r["factor"] > 1.0 for r in every):
        return math.inf
    rows = [r for r in every if math.isfinite(r["change_pct"])]
    lo, hi = (min(rows, key=lambda r: r["factor"]), max(rows, key=lambda r: r["factor"])) if rows else (None, None)
    if lo is None or hi is None or hi["factor"] == lo["factor"]:   # fewer than two distinct factors: no slope
        return math.nan
    # without training.tokens (days None): time per token relative to nominal, 1 + change_pct / 100 (same ratio)
    def t(r):
        return r["days"] if r["days"] is not None else 1.0 + r["change_pct"] / 100.0
    return math.log(t(hi) / t(lo)) / math.log(hi["factor"] / lo["factor"])


#: the bisection of :func:`threshold` stops when its bracket is narrower than this ratio of factors (0.5%): seven
#: fixed halvings of [1/64, 1] left a bracket of 64^(1/128) = 3.3%, as wide as the slowdowns asked about, so a 5%
#: threshold on peak FLOP/s was printed as x0.97 (957 TFLOP/s on H100) where the run slows 5% only at x0.945
THRESHOLD_RATIO = 1.005


def threshold(run: Run, param: str, slowdown: float = 0.10, lo: float = 1.0 / 64, iters: int = 7) -> dict:
    """The value of ``param`` below which the best plan is more than ``slowdown`` (0.10 = 10%) slower than at the
    nominal value. Bisection on log(factor) in [lo, 1], assuming days fall as the parameter grows: at least
    ``iters`` halvings, and on until the bracket is within :data:`THRESHOLD_RATIO` (at most 30)."""
    p = canonical(param)
    unit, scale = UNITS[p]
    def days(d):   # days_at gives seconds per token without training.tokens: no days then
        return d if run.training.tokens is not None else None
    base, _ = days_at(run, p, 1.0)
    limit = base * (1.0 + slowdown)
    nominal = value(run.system, p)
    d_lo, _ = days_at(run, p, lo)
    if d_lo <= limit:
        return {"param": p, "slowdown": slowdown, "nominal": nominal / scale, "unit": unit, "factor": None,
                "value": None, "below": lo * nominal / scale, "nominal_days": days(base),
                "message": f"even at x{lo:g} ({lo * nominal / scale:.3g} {unit}) the run slows by only "
                           f"{(d_lo / base - 1) * 100:.1f}%"}
    a, b = math.log(lo), 0.0             # days(e^a) > limit, days(e^b) <= limit
    n = 0
    while n < 30 and (n < iters or b - a > math.log(THRESHOLD_RATIO)):
        n += 1
        m = 0.5 * (a + b)
        d, _ = days_at(run, p, math.exp(m))
        if d > limit:
            a = m
        else:
            b = m
    f = math.exp(b)
    d_f, _ = days_at(run, p, f)
    return {"param": p, "slowdown": slowdown, "nominal": nominal / scale, "unit": unit, "factor": f,
            "value": f * nominal / scale, "nominal_days": days(base), "days_at_threshold": days(d_f),
            "message": f"below ~{f * nominal / scale:.3g} {unit} (x{f:.2f} of {nominal / scale:.3g}) the run slows "
                       f"by more than {slowdown:.0%}"}
