"""The numbers of a run report, as one JSON-able dict: the estimate (exactly ``trainsim estimate --json``), the
best plans, a scaling sweep over chip counts, a hardware sensitivity (tornado), the catalog ranges, the validation
error that applies and every input with its source. No formatting and no drawing here.

Sweeps re-run the plan search (memoised by :func:`trainsim.scenario.common.best`), so every point is the best
plan at that chip count or hardware value, not today's plan moved there.
"""
from __future__ import annotations

import math
from dataclasses import replace

from ..alternatives import no_plan
from ..errors import NoPlanError, TrainsimError
from ..io.specfile import located
from ..spec import PlanSpec, Run
from . import fmt
from .progress import as_tick
from ..scenario.common import at_chips, best
from ..scenario.sensitivity import PARAMS, UNITS, scaled, value
from ..scenario.ranges import cost_inputs, propagate, uncertain_inputs
from ..estimate import estimate, is_complete
from ..search import search
from ..perf.calibration import validation_error
from .sources import all_inputs
from ..fit_advice import fit_advice, over_by

SCALING_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
SENSITIVITY_FACTORS = (0.5, 2.0)
PLACEHOLDER_TOKENS = 1e12   # sweeps of a run without training.tokens: days are then only used as ratios


def plan_row(est, label: str) -> dict:
    """One plan's numbers for the tables and the stacked bars."""
    return {"label": label, "plan": dict(est.plan), "step_time_s": est.step_time_s,
            "tokens_per_s_per_chip": est.tokens_per_s_per_chip, "mfu": est.mfu, "hfu": est.hfu,
            "memory_per_chip_bytes": est.memory_per_chip_bytes, "memory": dict(est.memory),
            "breakdown": dict(est.breakdown), "fits": est.fits, "days": est.days}


def answer(est=None, run: Run | None = None, message: str = "") -> str:
    """The report's answer in one sentence."""
    if est is None:
        return f"{run.arch.name} on {run.chips:,} x {run.system.chip.id} ({run.system.id}): {message}."
    d = est.to_dict()
    # a plan that idles chips: its rate and MFU are per used chip, its days and cost per chip paid for; the sentence
    # said '7,712.3 tokens/s per chip' on 100 H100 where 80 of them work (x 100 reads 25% more than the run trains)
    idle = d.get("idle_chips") or 0
    used = f"; the plan uses {d['chips_used']:,}, {idle:,} idle but paid for" if idle else ""
    who = f"{d['model']} on {d['chips']:,} x {d['chip']} ({d['system']}{used})"
    how = (f"at {fmt.pct(d['mfu'])} MFU ({fmt.tokens_per_s(d['tokens_per_s_per_chip'])} tokens/s per "
           f"{'used ' if idle else ''}chip, step {fmt.step_time(d['step_time_s'])}) with {fmt.plan(d['plan'])}")
    mem = f"{fmt.gib(d['memory_per_chip_bytes'])} of {fmt.gib(d['hbm_bytes'])} HBM per chip"
    if not d["fits"]:
        return f"{who} does not fit: the plan needs {mem}."
    if "days" in d:
        return (f"{who} trains {fmt.count(est.run.training.tokens)} tokens in {fmt.days(d['days'])} "
                f"{how}, using {mem}.")
    return f"{who} runs one training step {how}, using {mem}."


def sweep_plan(run: Run, plan: PlanSpec | None = None) -> PlanSpec:
    """The plan fields a sweep keeps fixed: ``plan`` (default: the run's own), without ``dp`` (it follows the
    chip count)."""
    p = plan if plan is not None else run.plan
    return p.model_copy(update={"dp": None}) if p.dp is not None else p


def _sweep_run(run: Run, plan: PlanSpec | None) -> Run:
    r = replace(run, plan=sweep_plan(run, plan))
    if r.training.tokens is None:
        r = replace(r, training=r.training.model_copy(update={"tokens": PLACEHOLDER_TOKENS}))
    return r


def chip_counts(chips: int, unit: int, factors=SCALING_FACTORS) -> list[int]:
    """Chip counts around ``chips`` (x factors), whole scale-up domains where the run uses at least one."""
    out = set()
    for f in factors:
        n = chips * f
        if chips >= unit > 1:
            n = max(unit, round(n / unit) * unit)
        out.add(max(1, int(round(n))))
    out.add(chips)
    return sorted(out)


def scaling(run: Run, plan: PlanSpec | None = None, counts: list[int] | None = None, progress=None) -> list[dict]:
    """The best plan at each chip count: days (None without training.tokens), step time, MFU, plan, batch."""
    tick = as_tick(progress)
    base = _sweep_run(run, plan)
    counts = counts or chip_counts(run.chips, run.system.scale_up_size)
    rows = []
    for n in counts:
        tick.advance(f"{n:,} chips", 0)
        res = best(at_chips(base, n))
        e = res.best
        # the batch the best plan uses (within training.batch_tolerance of the stated one), as estimate prints it
        used = (e.run if e is not None else res.run).training.batch_seqs
        row = {"chips": n, "days": None, "step_time_s": None, "mfu": None, "tokens_per_s_per_chip": None,
               "plan": None, "memory_per_chip_bytes": None, "global_batch_seqs": used,
               "batch_adjusted": used != run.training.batch_seqs}
        if e is None:
            row["message"] = res.no_plan_message()
        else:
            row.update(days=e.days if run.training.tokens is not None else None, step_time_s=e.step_time_s,
                       mfu=e.mfu, tokens_per_s_per_chip=e.tokens_per_s_per_chip, plan=dict(e.plan),
                       memory_per_chip_bytes=e.memory_per_chip_bytes)
        rows.append(row)
        tick.advance()
    return rows


def _days(res) -> float:
    return math.inf if res.best is None else float(res.best.days)


def _params(run: Run) -> list[str]:
    return [p for p in PARAMS if p != "scale_out_bandwidth" or len(run.system.levels) > 1]


def sensitivity(run: Run, plan: PlanSpec | None = None, params=None, factors=SENSITIVITY_FACTORS,
                progress=None) -> dict:
    """Days of the best plan with one hardware parameter at a time scaled by each factor (the plan re-searched),
    as % change vs nominal: the tornado chart's data. Parameters: :data:`trainsim.scenario.sensitivity.PARAMS`."""
    tick = as_tick(progress)
    base = _sweep_run(run, plan)
    nominal = _days(best(base))
    if not math.isfinite(nominal):
        return {"nominal_days": None, "rows": [], "message": "no plan fits at the nominal values"}
    rows = []
    params = params or _params(run)
    for p in params:
        unit, scale = UNITS[p]
        row = {"param": p, "label": f"{p.replace('_', ' ')} ({value(run.system, p) / scale:.3g} {unit})",
               "nominal": value(run.system, p) / scale, "unit": unit, "points": []}
        for f in factors:
            tick.advance(f"{p} x{f:g}", 0)
            d = _days(best(replace(base, system=scaled(run.system, p, f))))
            row["points"].append({"factor": f, "days": d if run.training.tokens is not None else None,
                                  "change_pct": (d / nominal - 1.0) * 100.0 if math.isfinite(d) else math.inf})
            tick.advance()
        lo, hi = row["points"][0], row["points"][-1]
        row.update(low=lo["change_pct"], high=hi["change_pct"], low_label=f"x{lo['factor']:g}",
                   high_label=f"x{hi['factor']:g}")
        rows.append(row)
    return {"nominal_days": nominal if run.training.tokens is not None else None, "factors": list(factors),
            "rows": rows, "method": "one parameter at a time, scaled by each factor; the plan re-searched"}


def ranges(run: Run, plan: PlanSpec | None = None, validation: dict | None = None) -> dict:
    """Low / nominal / high days from the catalog ranges of the system's inputs (one at a time, plan re-searched),
    and the band the validation error puts around the nominal prediction."""
    base = _sweep_run(run, plan)
    has_tokens = run.training.tokens is not None
    inputs = uncertain_inputs(base.system, base.training.precision)
    out = {"inputs": [], "low": None, "nominal": None, "high": None, "driver": None, "unit": "days" if has_tokens
           else "relative"}
    if inputs:
        p = propagate(base, metric=_days, inputs=inputs)
        nom = p["nominal"]
        out.update(driver=p["driver"], method=p["method"])
        if math.isfinite(nom):
            scale = 1.0 if has_tokens else 1.0 / nom
            out.update(low=p["low"] * scale, nominal=nom * scale, high=p["high"] * scale)
            out["inputs"] = [{"input": r["input"], "name": r.get("name"), "low": r["low"], "nominal": r["nominal"], "high": r["high"],
                              "reason": r.get("reason", ""), "result_at_low": r["result_at_low"] * scale,
                              "result_at_high": r["result_at_high"] * scale} for r in p["by_input"]]
    out["cost_inputs"] = cost_inputs(base.system)   # ranges that move energy / capex only, not the days
    if validation and validation.get("median_abs_error") is not None:
        e = float(validation["median_abs_error"])
        out["validation_band"] = {"median_abs_error": e, "tokens_per_s_factor_low": 1 - e,
                                  "tokens_per_s_factor_high": 1 + e,
                                  "days_factor_low": 1 / (1 + e), "days_factor_high": 1 / (1 - e) if e < 1 else None}
    return out


def run_data(run: Run, *, top: int = 5, with_scaling: bool = True, with_sensitivity: bool = True,
             with_ranges: bool = True, sweep: PlanSpec | None = None, spec_source: str | None = None,
             progress=None, cost_inputs: dict | None = None) -> dict:
    """Everything a run report shows. ``sweep``: the plan fields the best-plans search and the sweeps keep fixed
    (default: the run's own plan; a run that fixes every field gets a free search for its best plans);
    ``cost_inputs``: overrides of :func:`trainsim.cost.run_cost` -- ``price_per_chip_hour``, ``pue``,
    ``electricity_usd_per_kwh`` -- for the estimate's cost, as ``--price-per-chip-hour``, ``--pue``,
    ``--electricity`` give them."""
    tick = as_tick(progress)
    fam = run.system.chip.family
    n_sens = len(SENSITIVITY_FACTORS) * len(_params(run)) if with_sensitivity else 0
    n_scale = len(chip_counts(run.chips, run.system.scale_up_size)) if with_scaling else 0
    tick.set_total(2 + n_scale + n_sens + (1 if with_ranges else 0))
    tick.advance("estimate", 0)
    data: dict = {"kind": "run", "name": run.name, "title": run.name or run.arch.name,
                  "validation_error": validation_error(fam), "family": fam,
                  "inputs": all_inputs(run, spec_source)}
    try:
        est = estimate(run)
    except NoPlanError as exc:   # no answer: the message carries the nearest alternatives (trainsim estimate's)
        est, data["message"] = None, str(no_plan(exc.result, run) if exc.result is not None else exc)
    except TrainsimError as exc:   # a stated plan that breaks a plan rule is bad input, as in estimate / compare
        raise located(exc, run.path) from None
    if est is not None and cost_inputs:
        from dataclasses import replace

        est = replace(est, cost_inputs=dict(cost_inputs))   # a copy: a memoised estimate keeps its own
    tick.advance("best plans")
    data["estimate"] = est.to_dict() if est is not None else None
    data["answer"] = answer(est, run, data.get("message", ""))
    free = sweep if sweep is not None else (PlanSpec() if is_complete(run.plan) else run.plan)
    res = search(run, free, top=top, progress=tick.sub("best plans"))
    data["search"] = {"fixed": free.model_dump(exclude_none=True), "plans_evaluated": res.plans_evaluated,
                      "plans_feasible": res.plans_feasible, "search_seconds": res.search_seconds,
                      "rejected": res.rejected, "message": None if res.best else res.no_plan_message()}
    rows = []
    if est is not None:
        rows.append(plan_row(est, "estimate"))
    for i, e in enumerate(([res.best] if res.best else []) + res.runners_up, 1):
        if est is not None and e.plan == est.plan:
            rows[0]["label"] = f"estimate = #{i}"
            rows[0]["rank"] = i
            continue
        r = plan_row(e, f"#{i}")
        r["rank"] = i
        rows.append(r)
    if not rows and res.least_memory is not None:
        # nothing fits: draw the plan that needs the least memory against HBM, with what would make it fit

        least = res.least_memory
        rows.append(plan_row(least, "least memory (does not fit)"))
        data["does_not_fit"] = {**over_by(least.memory_per_chip_bytes, run.system.chip.hbm_bytes),
                                "plan": least.plan, "fixes": fit_advice(run, least.plan)}
    data["hbm_bytes"] = run.system.chip.hbm_bytes
    data["plans"] = rows
    tick.advance()
    data["scaling"] = scaling(run, free, progress=tick) if with_scaling else []
    data["sensitivity"] = sensitivity(run, free, progress=tick) if with_sensitivity else None
    if with_ranges:
        tick.advance("ranges", 0)
        data["ranges"] = ranges(run, free, data["validation_error"])
        tick.advance()
    else:
        data["ranges"] = None
    return data
