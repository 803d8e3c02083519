"""Uncertain catalog inputs -> low / nominal / high results.

The catalog gives a Range(low, nominal, high) for inputs where sources disagree (``Chip.ranges``,
``System.ranges``, from catalog/data/ranges.yaml). :func:`propagate` re-runs the plan search with each
performance input at its low and at its high value, one at a time (a tornado analysis: the plan is re-optimised
every time), and reports the smallest and largest result with the input that drives the spread. Inputs that
cannot change a training step (power, price, TDP) are left to :mod:`trainsim.scenario.economics`; FP8/FP4 peaks
are varied only when the run trains in that precision.
"""
from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache
from importlib import resources

from ..catalog.types import System
from ..spec import Run
from .common import best, days_of
from ..perf.calibration import calib_for, fitted_values
from ..yamlload import load_data

# fields of Chip.ranges / System.ranges that change a training step, and how to apply a value
CHIP_FIELDS = ("bf16_flops", "fp8_flops", "hbm_bytes", "hbm_bw", "scale_up_bw", "scale_out_bw")
SYSTEM_FIELDS = ("scale_up_size", "scale_up_bw", "scale_up_latency", "scale_out_bw", "scale_out_latency",
                 "scale_up_oversubscription")


def apply(system: System, scope: str, name: str, v: float) -> System:
    """``system`` with one uncertain input set to ``v`` (SI units)."""
    c = system.chip
    levels = list(system.levels)
    if scope == "chip":
        if name.endswith("_flops"):
            prec = name.removesuffix("_flops")
            c = c.with_(peak_flops={**c.peak_flops, prec: v})
        elif name == "hbm_bytes":
            c = c.with_(hbm_bytes=v)
        elif name == "hbm_bw":
            c = c.with_(hbm_bw=v)
        elif name == "scale_up_bw":
            c = c.with_(scale_up_bw=v)
            levels[0] = replace(levels[0], bw=v)
        elif name == "scale_out_bw":
            c = c.with_(scale_out_bw=v)
            if len(levels) > 1:
                levels[1] = replace(levels[1], bw=v)
        return system.with_(chip=c, levels=tuple(levels))
    if name == "scale_up_size":
        levels[0] = levels[0].resized(int(v))
    elif name == "scale_up_bw":
        levels[0] = replace(levels[0], bw=v)
        c = c.with_(scale_up_bw=v)
    elif name == "scale_up_latency":
        levels[0] = replace(levels[0], latency_s=v)
    elif name == "scale_up_oversubscription":   # the scale-up Clos's uplinks above its blocks (R of R:1)
        levels[0] = replace(levels[0], topology=replace(levels[0].topology, oversubscription=v))
    elif name == "scale_out_bw" and len(levels) > 1:
        levels[1] = replace(levels[1], bw=v)
        c = c.with_(scale_out_bw=v)
    elif name == "scale_out_latency" and len(levels) > 1:
        levels[1] = replace(levels[1], latency_s=v)
    return system.with_(chip=c, levels=tuple(levels))


def uncertain_inputs(system: System, precision: str = "bf16") -> list[dict]:
    """The performance inputs of ``system`` that carry a range with low != high."""
    out = []
    for scope, table, fields in (("chip", system.chip.ranges, CHIP_FIELDS), ("system", system.ranges, SYSTEM_FIELDS)):
        for name in fields:
            r = table.get(name)
            if r is None or r.low == r.high:
                continue
            if name == "fp8_flops" and precision != "fp8":
                continue
            src = (system.chip.sources if scope == "chip" else system.sources).get(f"{name}.range")
            out.append({"scope": scope, "input": f"{system.chip.id if scope == 'chip' else system.id}.{name}",
                        "name": name, "low": r.low, "nominal": r.nominal, "high": r.high,
                        "reason": src.note if src else ""})
    fp8 = fp8_efficiency_input(system, precision)
    return out + ([fp8] if fp8 else [])


#: the System fields whose catalog range moves a run's energy and cost but not its step (so not its days)
COST_FIELDS = ("power_per_chip_w", "price_per_chip_usd")


def cost_inputs(system: System) -> list[dict]:
    """The cost inputs of ``system`` (:data:`COST_FIELDS`) that carry a range with low != high, as
    :func:`uncertain_inputs` gives the performance ones: they move the energy (power) and the capex (price) of a
    run, never its days, so :func:`propagate` does not sweep them (:mod:`trainsim.scenario.economics` prices
    both ends)."""
    out = []
    for name in COST_FIELDS:
        r = system.ranges.get(name)
        if r is None or r.low == r.high:
            continue
        src = system.sources.get(f"{name}.range")
        out.append({"scope": "system", "input": f"{system.id}.{name}", "name": name, "low": r.low,
                    "nominal": r.nominal, "high": r.high, "reason": src.note if src else ""})
    return out


def fp8_efficiency_input(system: System, precision: str) -> dict | None:
    """FP8 GEMM efficiency of a chip without FP8 calibration runs as an uncertain input (issue 17): the spread of
    the FP8 efficiencies fitted on the validation set's FP8 runs (calibration.yaml ``gemm_eff_fp8``, every chip
    family and software stack with three or more FP8 runs), applied as an effective FP8 peak: GEMM time is
    FLOPs / (peak x efficiency), so peak x e / e_nominal at efficiency e is the same step. None for BF16 runs,
    chips without an FP8 rate and chip families that have their own FP8 fit."""
    peak = system.chip.peak_flops.get("fp8")
    vals = fitted_values("gemm_eff_fp8")
    fam = system.chip.family
    if precision != "fp8" or not peak or not vals or fam in vals:
        return None
    e_nom = calib_for(fam).gemm_eff_fp8
    lo, hi = min(vals.values()), max(vals.values())
    return {"scope": "chip", "input": f"{system.chip.id}.fp8_gemm_efficiency", "name": "fp8_flops",
            "low": peak * lo / e_nom, "nominal": peak, "high": peak * hi / e_nom,
            "reason": f"FP8 GEMM efficiency of a chip without FP8 runs: {lo:.0%}-{hi:.0%} of the FP8 peak (nominal "
                      f"{e_nom:.0%}), the spread fitted on the validation set's FP8 runs ({len(vals)} chip-family "
                      f"and software-stack fits), applied as an effective FP8 peak"}


@lru_cache(maxsize=1)
def fp4_training_data() -> dict:
    """``scenario/data/fp4_training.yaml``: the sourced range of the FP4 GEMM gain realised on a chip without FP4
    training runs, with the published NVFP4-over-FP8 training points behind it."""
    text = resources.files("trainsim.scenario").joinpath("data/fp4_training.yaml").read_text(encoding="utf-8")
    return load_data(text) or {}


def fp4_gemm_speedup(fp4_peak: float, fp8_peak: float, realised: float) -> float:
    """GEMM speed of an FP4 run over the same run in FP8: ``g = 1 + f (P_fp4 / P_fp8 - 1)``, ``f`` the fraction of
    the FP4 peak's gain the GEMMs realise (0: none, 1: the full peak ratio). Source of the form and of f's range:
    ``scenario/data/fp4_training.yaml`` (f fitted by ``scripts/fit_fp4.py`` on the Megatron-Bridge NVFP4 rows
    published beside four FP8 validation runs of GB200/GB300, same plans: 1.31-1.50x end to end)."""
    return 1.0 + realised * (fp4_peak / fp8_peak - 1.0)


def fp4_efficiency_input(system: System) -> dict | None:
    """FP4 (NVFP4 / MXFP4 / HiF4) training on a chip with an FP4 peak, as an uncertain input: the FP8 run whose
    GEMMs run :func:`fp4_gemm_speedup` times faster, applied as an effective FP8 peak (FP8 peak x g at the low,
    nominal and high realised fraction of ``fp4_training.yaml``). There is no FP4 training run in the validation
    set; f is fitted on the NVFP4 rows published beside four of its FP8 runs. None for a chip without both an FP8
    and an FP4 peak."""
    c = system.chip
    fp8, fp4 = c.peak_flops.get("fp8"), c.peak_flops.get("fp4")
    if not fp8 or not fp4:
        return None
    f = fp4_training_data()["realised_gain_fraction"]
    g = {end: fp4_gemm_speedup(fp4, fp8, float(f[end])) for end in ("low", "nominal", "high")}
    return {"scope": "chip", "input": f"{c.id}.fp4_gemm_efficiency", "name": "fp8_flops",
            "low": fp8 * g["low"], "nominal": fp8 * g["nominal"], "high": fp8 * g["high"], "gemm_speedup": g,
            "reason": f"FP4 training without published FP4 runs on this chip: GEMMs {g['low']:.2f}-{g['high']:.2f}x "
                      f"(nominal {g['nominal']:.2f}x) their FP8 speed, {f['low']:.0%}-{f['high']:.0%} of the FP4 "
                      f"peak's {fp4 / fp8:.2f}x realised, fitted on NVFP4 pretraining rows of GB200/GB300 (no FP4 "
                      f"run on this chip; scenario/data/fp4_training.yaml)"}


def propagate(run: Run, metric=None, inputs: list[dict] | None = None) -> dict:
    """low / nominal / high of ``metric(SearchResult)`` (default: days of the best plan) over the uncertain inputs
    of ``run.system``; ``by_input`` lists each input's two results and ``driver`` the input with the widest swing."""
    metric = metric or days_of
    nominal = metric(best(run))
    inputs = uncertain_inputs(run.system, run.training.precision) if inputs is None else inputs
    rows = []
    for u in inputs:
        vals = {}
        for end in ("low", "high"):
            if u[end] == u["nominal"]:
                vals[end] = nominal
                continue
            r = replace(run, system=apply(run.system, u["scope"], u["name"], u[end]))
            vals[end] = metric(best(r))
        finite = [v for v in vals.values() if math.isfinite(v)] + [nominal]
        swing = (max(finite) - min(finite)) if finite else math.inf
        if any(not math.isfinite(v) for v in vals.values()):
            swing = math.inf
        rows.append({**u, "result_at_low": vals["low"], "result_at_high": vals["high"], "swing": swing})
    allv = [nominal] + [r[k] for r in rows for k in ("result_at_low", "result_at_high")]
    lo, hi = min(allv), max(allv)
    driver = max(rows, key=lambda r: r["swing"]) if rows else None
    return {"low": lo, "nominal": nominal, "high": hi, "by_input": rows,
            "driver": driver["input"] if driver and driver["swing"] > 0 else None,
            "method": "one input at a time at its catalog low and high (plan re-optimised each time)"}
