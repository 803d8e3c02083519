"""Scenario kind ``same-job-compare`` (S5): one job (another scenario's) on two clusters, ``a`` and ``b``: days,
MFU, where the time goes, and whether ``a`` is within a tolerance of ``b``'s wall-clock days."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import Field
from ...types_checked import PosFloat

from ..common import best, comm_fraction, days_of, plan_summary
from ..ranges import apply, fp4_efficiency_input
from .base import (KindInputs, KindResult, _add_ranges, _chips, _input, _job_run, _listify, _model_inputs, _need,
                   _public, _run_row, _stack_input, _sibling, _triple, family_validation, chip_name, register_kind)
from ...catalog.resolve import resolve_system


class Inputs(KindInputs):
    """S5's inputs: the job and the two sides, each ``{system, chips or pods, precision, label, note}``."""

    job: str = Field(description="the scenario file whose job runs on both sides")
    a: dict = Field(description="side a: {system, chips or pods, precision (one or a list), label, note}")
    b: dict = Field(description="side b, as side a")
    tolerance: PosFloat = Field(1.25, description="'about as capable' = a's days within this factor of b's")
    tolerance_note: str = Field("assumption: 'about as capable' = within this factor of the other's wall-clock days",
                                description="why this tolerance")


def compute(inp: Inputs, base_dir: Path) -> KindResult:
    """The numbers of scenario kind S5 ``same-job-compare`` for ``inp`` (paths from ``base_dir``), no prose."""
    doc = inp.doc()
    a = inp.assumption_set()
    job = _sibling(doc, "job", base_dir)
    sides = {}
    for side in ("a", "b"):
        e = _need(doc, side)
        s_obj = resolve_system(e["system"], base_dir)
        n = _chips({"id": doc.get("id", "?"), **e}, s_obj, f"{side}.")
        rows = []
        for prec in _listify(e.get("precision", "bf16")):
            run = _job_run(job, base_dir, system=e["system"], chips=n, precision=prec, framework=e.get("framework"))
            rows.append(_run_row(run, a, with_ranges=False))
        fitting = [r for r in rows if r.get("fits")]
        if fitting:     # catalog ranges (re-searched) only for this side's fastest row
            _add_ranges(min(fitting, key=lambda r: r["effective_days"]["nominal"]), a, True)
        peak = {p: n * s_obj.chip.flops(p) / 1e18 for p in ("bf16", "fp8")}
        sides[side] = {"label": e.get("label", s_obj.id), "system": s_obj, "chips": n, "rows": rows, "peak_eflops": peak,
                       "hbm_pb": n * s_obj.chip.hbm_bytes / 1e15, "hbm_bw_pbs": n * s_obj.chip.hbm_bw / 1e15,
                       "fp8_native": bool(s_obj.chip.peak_flops.get("fp8"))}
    numbers: dict[str, Any] = {}
    for side, s in sides.items():
        numbers[side] = {"label": s["label"], "chips": s["chips"], "peak_eflops": s["peak_eflops"],
                         "fp8_native": s["fp8_native"], "hbm_pb": s["hbm_pb"], "hbm_bandwidth_pb_s": s["hbm_bw_pbs"],
                         "runs": [{**_public(r), "comm_fraction": comm_fraction(r.get("_est"))} for r in s["rows"]]}
    fit = lambda s: [r for r in s["rows"] if r.get("fits")]  # noqa: E731
    fa, fb = fit(sides["a"]), fit(sides["b"])
    if not fa or not fb:
        return KindResult(numbers=numbers, best_plan=None, assumptions=a.report(),
                          validation_error=family_validation(r["_est"].run for s in sides.values()
                                                       for r in fit(s)),
                          facts={"fail": "the job does not fit on one of the two systems"})
    ba = min(fa, key=lambda r: r["effective_days"]["nominal"])
    bb = min(fb, key=lambda r: r["effective_days"]["nominal"])
    ratio = ba["effective_days"]["nominal"] / bb["effective_days"]["nominal"]
    # catalog ranges are independent between the two sides; the failure assumptions are shared, so the
    # goodput ends enter both sides together
    g_ratio = [bb["_gp"][e] / ba["_gp"][e] for e in ("low", "nominal", "high")]
    r_lo = ba["days"]["low"] / bb["days"]["high"] * min(g_ratio)
    r_hi = ba["days"]["high"] / bb["days"]["low"] * max(g_ratio)
    span_cat = (ba["days"]["high"] / bb["days"]["low"]) / (ba["days"]["low"] / bb["days"]["high"])
    span_gp = max(g_ratio) / min(g_ratio)
    cat_driver = ba.get("range_driver") or bb.get("range_driver") or "the catalog ranges"
    drv = cat_driver if span_cat >= span_gp else "the failure rate and restart time"
    if drv.endswith(".fp8_gemm_efficiency"):   # the uncertain input of scenario/ranges.py fp8_efficiency_input, in words
        drv = "the unshipped chip's FP8 efficiency"
    for side, r_ in (("a", ba), ("b", bb)):
        est_ = r_["_est"]
        numbers[side]["batch_tokens_per_chip_per_step"] = (est_.run.training.batch_seqs * est_.run.training.seq_len
                                                           / est_.run.chips)
    # FP8 on a chip without FP8 calibration runs: an uncertain input of the catalog ranges above
    # (scenario/ranges.py fp8_efficiency_input), so it is in this side's days range already; shown apart here
    fp8_in = [r for r in ba.get("range_inputs", []) if r["input"].endswith(".fp8_gemm_efficiency")]
    if fp8_in:
        u = fp8_in[0]
        numbers["a"]["fp8_efficiency_range"] = {"days_at_low_efficiency": u["result_at_low"],
                                                "days_at_high_efficiency": u["result_at_high"],
                                                "effective_fp8_peak": {"name": "fp8_flops", "low": u["low"],
                                                                       "high": u["high"]}}
    # FP4 on a chip with an FP4 peak and no FP4 training runs: the sourced range of scenario/data/fp4_training.yaml
    # applied to side a's FP8 run (plan re-optimised at each end), days without failures
    fp4 = fp4_efficiency_input(ba["_run"].system) if ba["precision"] == "fp8" else None
    if fp4:
        d4 = {end: days_of(best(replace(ba["_run"], system=apply(ba["_run"].system, "chip", "fp8_flops", fp4[end]))))
              for end in ("low", "nominal", "high")}
        numbers["a"]["fp4_range"] = {"days_without_failures": {"low": d4["high"], "nominal": d4["nominal"],
                                                               "high": d4["low"]},
                                     "gemm_speedup_over_fp8": fp4["gemm_speedup"], "source": fp4["reason"]}
    numbers["days_ratio_a_over_b"] = _triple(r_lo, ratio, r_hi)
    pa, pb = sides["a"]["peak_eflops"], sides["b"]["peak_eflops"]
    numbers["peak_ratio_bf16"] = pa["bf16"] / pb["bf16"]
    numbers["peak_ratio_best_precision"] = max(pa.values()) / (pb["fp8"] if sides["b"]["fp8_native"] else pb["bf16"])
    return KindResult(
        numbers=numbers, best_plan=plan_summary(ba["_est"]),
        assumptions=_model_inputs(job) + [_input(f"side.{k}", s["label"], doc[k].get("note", "scenario file"))
                                          for k, s in sides.items()]
        + [_stack_input(f"software stack on side.{k}", doc[k], job, system=sides[k]["system"])
           for k in sides]
        + [_input("tolerance", inp.tolerance, inp.tolerance_note)] + a.report(),
        validation_error=family_validation(r["_est"].run for r in fa + fb),
        facts={"rows": [_public(r) for r in fa + fb], "ratio": (r_lo, ratio, r_hi), "driver": drv,
               "tolerance": inp.tolerance})


def verdict(res: KindResult) -> tuple[str, str, str]:
    """Scenario kind S5 ``same-job-compare``'s (verdict class, headline, details) from its computed result."""
    f, n = res.facts, res.numbers
    if f.get("fail"):
        return "not supported", "The job does not fit on one of the two systems.", f["fail"]
    r_lo, ratio, r_hi = f["ratio"]
    drv, tol = f["driver"], f["tolerance"]
    la, lb = n["a"]["label"], n["b"]["label"]
    pa, pb = n["a"]["peak_eflops"], n["b"]["peak_eflops"]

    def desc(r):
        top = ", ".join(f"{k} {v:.0%}" for k, v in r["where_time_goes"][:3])
        return (f"{r['chips']:,} {chip_name(r['chip'])} {r['precision']}{' (' + r['framework'] + ')' if r.get('framework') else ''}: "
                f"{r['days']['nominal']:.0f} days "
                f"({r['effective_days']['nominal']:.0f} with failures), MFU {r['mfu']:.0%}, step: {top}")

    text = (f"{la} has {pa['bf16']:.1f} EFLOPS BF16 ({pa['fp8']:.1f} FP8) vs {lb}'s {pb['bf16']:.1f} EFLOPS BF16"
            f"{'' if n['b']['fp8_native'] else ' (no FP8)'}; "
            + "; ".join(desc(r) for r in f["rows"])
            + f". Best {la} / best {lb} time: {ratio:.2f}x (range {r_lo:.2f}-{r_hi:.2f}x)")
    ca, cb = (min(fit_rows, key=lambda r: r["effective_days"]["nominal"]).get("cost_capex_usd") or {}
              for fit_rows in ([r for r in f["rows"] if r["chips"] == n["a"]["chips"]],
                               [r for r in f["rows"] if r["chips"] == n["b"]["chips"]]))
    if ca.get("nominal") and cb.get("nominal"):
        text += (f"; the job costs ${ca['nominal'] / 1e6:.0f}M amortised with power on {la} "
                 f"(${ca['low'] / 1e6:.0f}-{ca['high'] / 1e6:.0f}M over the price ranges; no SuperPoD price is "
                 f"published, $138-341M per pod assumed) vs ${cb['nominal'] / 1e6:.0f}M "
                 f"(${cb['low'] / 1e6:.0f}-{cb['high'] / 1e6:.0f}M) on {lb}")
    text += (f"; per step each chip of {la} processes {n['a']['batch_tokens_per_chip_per_step']:,.0f} "
             f"tokens of the batch vs {n['b']['batch_tokens_per_chip_per_step']:,.0f} on {lb}, which is why "
             f"the larger cluster runs at lower MFU")
    fp8 = [r for r in f["rows"] if r["precision"] == "fp8" and r["chips"] == n["a"]["chips"]]
    bf16 = [r for r in f["rows"] if r["precision"] == "bf16" and r["chips"] == n["a"]["chips"]]
    fp8_note = ""
    fr = n["a"].get("fp8_efficiency_range")
    if fr:                 # FP8 efficiency of an unshipped chip: the validation set's FP8 fits as a range
        lo_d, hi_d = sorted((fr["days_at_high_efficiency"], fr["days_at_low_efficiency"]))
        fp8_note = (f" FP8 efficiency of this unshipped chip comes from the FP8 runs of other chips: "
                    f"{lo_d:.0f}-{hi_d:.0f} days without failures over its range")
        f4 = n["a"].get("fp4_range")
        if f4:
            d4 = f4["days_without_failures"]
            fp8_note += f", {d4['low']:.0f}-{d4['high']:.0f} in FP4 (no FP4 training run published for it)"
            text += (f"; in FP4, with GEMMs {f4['gemm_speedup_over_fp8']['low']:.2f}-"
                     f"{f4['gemm_speedup_over_fp8']['high']:.2f}x their FP8 speed (the gain fitted on NVFP4 "
                     f"pretraining rows of GB200/GB300; scenario/data/fp4_training.yaml), {d4['low']:.0f}-"
                     f"{d4['high']:.0f} days without failures (nominal {d4['nominal']:.0f})")
        fp8_note += "."
        text += (f"; the FP8 GEMM efficiency of the unshipped chip, taken as the spread fitted on the validation "
                 f"set's FP8 runs, gives {lo_d:.0f}-{hi_d:.0f} days without failures on {la}")
    elif fp8 and bf16:     # no FP8 fits at all: from none (as BF16) to the engine's prediction
        fp8_note = (f" FP8 efficiency on this unshipped chip is unknown: from no gain over BF16 "
                    f"({bf16[0]['effective_days']['nominal']:.0f} days) to the engine's prediction "
                    f"({fp8[0]['effective_days']['nominal']:.0f} days).")
    head = (f"{la[:1].upper() + la[1:]} takes {ratio:.1f}x as long as {lb} for the S2 job ({r_lo:.1f}-{r_hi:.1f}x over the "
            f"catalog and failure ranges)")
    if r_hi <= tol:
        cls, head = "supported", head + f", within the {tol:g}x that 'about as capable' allows."
    elif ratio <= tol:
        cls, head = f"depends on {drv}", head + f"; within {tol:g}x unless {drv} sits at its pessimistic end."
    elif r_lo <= tol:
        cls = f"depends on {drv}"
        head += f"; within {tol:g}x only at the favourable end of {drv}."
        text += f"; only the favourable end of {drv} is within {tol:g}x"
    else:
        cls = "not supported"
        head += (f", because it has {1 / n['peak_ratio_best_precision']:.1f}x less peak compute even in FP8." + fp8_note)
        text += (f": one SuperPoD takes {ratio:.1f}x as long, because it has "
                 f"{1 / n['peak_ratio_best_precision']:.1f}x less peak compute even in FP8")
    res.facts["deciding"] = (f"peak compute: {1 / n['peak_ratio_best_precision']:.1f}x less even in FP8; FP8 "
                             f"efficiency of the unshipped chip" if cls == "not supported" else f"{drv}")
    return cls, head, text


handle = register_kind("same-job-compare", Inputs, compute, verdict)
