"""Scenario kind ``hardware-sensitivity`` (S8): how a job's days move with each hardware input (elasticities) and
the value of one input below which the job slows by more than a given fraction."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import Field
from ...types_checked import PosFloat

from ..common import best, plan_summary
from ..sensitivity import canonical, elasticity, sensitivity, threshold
from .base import (KindInputs, KindResult, _job_run, _model_inputs, _sibling, _stack_input, family_validation,
                   register_kind, short_name)
from ...errors import TrainsimError
from ...inference.serve import infer
from ...inference.spec import parse_serving
from ...inference.validate import held_out_summary
from ..economics import rental_rate
from ..sensitivity import scaled
from ...units import parse_fraction

def _slowdown(inp) -> float:
    """``threshold.slowdown``: 0.10 or '10%' (units.parse_fraction), below 1 (the inference side solves for
    (1 - slowdown) x the nominal throughput); 0.10 when unstated."""
    return parse_fraction((inp.threshold or {}).get("slowdown", 0.10), "threshold.slowdown", below_one=True)


DEFAULT_PARAMS = ["hbm_bandwidth", "hbm_capacity", "scale_up_bandwidth", "scale_out_bandwidth", "peak_flops"]


class Inputs(KindInputs):
    """S8's inputs: the job (another scenario file, or this file's own model/system/training), the inputs varied,
    the factors and the threshold asked for."""

    job: str | None = Field(None, description="the scenario file whose job is varied (default: this file's)")
    vary: list[str] = Field(DEFAULT_PARAMS, min_length=1, description="hardware inputs varied one at a time")
    factors: list[PosFloat] = Field([0.25, 0.5, 1.5, 2.0], min_length=1, description="factors applied to each input")
    threshold: dict = Field({"param": "hbm_bandwidth", "slowdown": 0.10},
                            description="{param, slowdown}: the value of param below which days grow by more than "
                                        "slowdown")
    reference_hbm_tb_s: dict = Field(default_factory=dict, description="chips' HBM bandwidths shown for comparison")
    inference: dict | None = Field(None, description="decode of the job's model on the job's system, served by "
                                   "trainsim's inference engine: {input_len, output_len, precision, tpot_ms}; "
                                   "tokens/s per chip and cost per million tokens as HBM bandwidth varies")
    inference_factors: list[PosFloat] = Field([0.25, 0.5, 0.75, 1.0, 1.5, 2.0], min_length=1,
                                           description="HBM bandwidth factors for the inference rows")


def compute(inp: Inputs, base_dir: Path) -> KindResult:
    """The numbers of scenario kind S8 ``hardware-sensitivity`` for ``inp`` (paths from ``base_dir``), no prose."""
    doc = inp.doc()
    a = inp.assumption_set()
    job = _sibling(doc, "job", base_dir) if inp.job else doc
    run = _job_run(job, base_dir)
    # an unknown parameter names this file's key, not the sensitivity command's --vary option
    params = [canonical(p, field=f"vary[{i}]") for i, p in enumerate(inp.vary or DEFAULT_PARAMS)]
    sens = sensitivity(run, params, tuple(inp.factors))
    el = {p: elasticity(sens, p) for p in sens["params"]}
    th_doc = inp.threshold or {"param": "hbm_bandwidth", "slowdown": 0.10}
    th = threshold(run, canonical(th_doc.get("param", "hbm_bandwidth"), field="threshold.param"), _slowdown(inp))
    numbers: dict[str, Any] = {"nominal_days": sens["nominal_days"], "chips": run.chips, "system": run.system.id,
                               "elasticity_dln_days_dln_param": el,
                               "days_by_param": {p: [{k: r[k] for k in ("factor", "value", "unit", "days",
                                                                        "change_pct", "plan_changed")}
                                                     for r in v["rows"]] for p, v in sens["params"].items()},
                               "threshold": th}
    numbers["reference_hbm_bandwidth_tb_s"] = inp.reference_hbm_tb_s
    # the true threshold under its own name (a dict with a "nominal" key reads as a range to a renderer)
    numbers["threshold"] = {"param": th["param"], "slowdown": th["slowdown"],
                            "threshold_tb_s": th.get("value"), "chip_value_tb_s": th["nominal"],
                            "threshold_over_chip_value": th.get("factor"), "days_at_chip_value": th["nominal_days"],
                            "days_at_threshold": th.get("days_at_threshold"), "message": th["message"]}
    ve = family_validation([run])
    if inp.inference:
        numbers["inference_decode"] = _decode_rows(job, run, inp, a, base_dir)
        # the decode rows rest on the serving model: its held-out error, not the training model's
        ve["inference_model"] = held_out_summary() or {"note": "no leave-one-out figure in inference.yaml"}
    return KindResult(numbers=numbers, best_plan=plan_summary(best(run).best),
                      assumptions=_model_inputs(job) + [_stack_input(f"software stack on {short_name(run.system)}",
                                                                     job, system=run.system)] + a.report(),
                      validation_error=ve,
                      facts={"chip": short_name(run.system.chip), "th": th})


def _decode_rows(job: dict, run, inp: Inputs, a, base_dir: Path) -> dict:
    """Decode tokens/s per chip and $ per million output tokens of the job's model on the job's system, at each HBM
    bandwidth factor (trainsim.inference: best decode plan under the TPOT bound), and the bandwidth below which
    decode throughput falls by more than the threshold's slowdown."""
    from dataclasses import replace


    spec = dict(inp.inference or {})
    tpot = spec.pop("tpot_ms", None)
    sv = parse_serving({"name": f"{job.get('id', 'job')}-decode", "model": job["model"], "system": job["system"],
                        "serving": {**spec, "phase": "decode"}, **({"latency": {"tpot_ms": tpot}} if tpot else {})},
                       base_dir=base_dir, where="inference")
    rate = rental_rate(run.system, a)

    def at(f: float) -> dict:
        try:
            d = infer(replace(sv, system=scaled(sv.system, "hbm_bandwidth", f)) if f != 1.0 else sv)["decode"]
        except TrainsimError as exc:       # no decode plan meets the latency bound at this bandwidth
            return {"factor": f, "hbm_tb_s": sv.system.chip.hbm_bw * f / 1e12, "tokens_per_s_per_chip": 0.0,
                    "tpot_s": None, "batch_per_chip": 0.0,
                    "usd_per_million_tokens": {"low": None, "nominal": None, "high": None},
                    "plan": None, "note": str(exc)}
        tps = d["tokens_per_s_per_chip"]
        usd = {e: (rate[e] / (tps * 3600.0) * 1e6) if rate[e] and tps else None for e in ("low", "nominal", "high")}
        return {"factor": f, "hbm_tb_s": sv.system.chip.hbm_bw * f / 1e12, "tokens_per_s_per_chip": tps,
                "tpot_s": d["tpot_s"], "batch_per_chip": d["batch_per_chip"],
                "usd_per_million_tokens": {"low": usd["low"], "nominal": usd["nominal"], "high": usd["high"]},
                "plan": d["plan"]}

    rows = [at(float(f)) for f in inp.inference_factors]
    nom = next((r for r in rows if r["factor"] == 1.0), None) or at(1.0)
    for r in rows:
        r["change_pct"] = (r["tokens_per_s_per_chip"] / nom["tokens_per_s_per_chip"] - 1.0) * 100.0
    slow = _slowdown(inp)
    lo, hi = 0.05, 1.0          # bisection on the factor where throughput is (1 - slow) x nominal
    target = (1.0 - slow) * nom["tokens_per_s_per_chip"]
    if at(lo)["tokens_per_s_per_chip"] >= target:
        thr = None
    else:
        for _ in range(10):
            mid = 0.5 * (lo + hi)
            if at(mid)["tokens_per_s_per_chip"] >= target:
                hi = mid
            else:
                lo = mid
        thr = hi
    return {"input_len": sv.serving.input_len, "output_len": sv.serving.output_len,
            "precision": sv.serving.precision, "tpot_bound_ms": tpot, "rental_basis": rate["basis"],
            "rows": rows, "threshold_tb_s": None if thr is None else thr * sv.system.chip.hbm_bw / 1e12,
            "threshold_over_chip_value": thr, "slowdown": slow}


def _inference_headline(inf: dict) -> str:
    rows = {r["factor"]: r for r in inf["rows"]}
    half = rows.get(0.5)
    if not half:
        return ""
    nom = rows[1.0]
    cost_x = half["usd_per_million_tokens"]["nominal"] / nom["usd_per_million_tokens"]["nominal"] \
        if half["usd_per_million_tokens"]["nominal"] and nom["usd_per_million_tokens"]["nominal"] else None
    thr = inf.get("threshold_tb_s")
    tpot = inf.get("tpot_bound_ms")
    bound = (f" (the batch that still meets the {tpot:g} ms per-token bound shrinks from {nom['batch_per_chip']:g} to "
             f"{half['batch_per_chip']:g} per chip)") if tpot and "batch_per_chip" in half else ""
    return (f"For inference the premise holds: at half the HBM bandwidth decode tokens/s per chip fall "
            f"{-half['change_pct']:.0f}%{bound}"
            + (f" and the cost per million tokens rises {cost_x:.1f}x" if cost_x else "")
            + (f" (a 10% loss already below {thr:.2f} TB/s)" if thr else "") + ".")


def verdict(res: KindResult) -> tuple[str, str, str]:
    """Scenario kind S8 ``hardware-sensitivity``'s (verdict class, headline, details) from its computed result."""
    n = res.numbers
    el, th, refs, chip = n["elasticity_dln_days_dln_param"], res.facts["th"], n["reference_hbm_bandwidth_tb_s"], \
        res.facts["chip"]
    hb = el.get("hbm_bandwidth", math.nan)
    pf = el.get("peak_flops", math.nan)
    rank = sorted(((abs(v), p) for p, v in el.items() if math.isfinite(v)), reverse=True)
    text = (f"{n['chips']:,} {chip}, {n['nominal_days']:.0f} days at nominal: elasticity of days "
            + ", ".join(f"{p} {el[p]:+.2f}" for _, p in rank)
            + f" (-1 = time inversely proportional). {th['message']}")
    nominal_bw = th["nominal"]
    if th.get("value") is None or th["value"] < 0.75 * nominal_bw:
        margin = "far below" if th.get("value") is None or th["value"] < 0.5 * nominal_bw else "below"
        text += (f" - {margin} the {chip}'s {nominal_bw:.2f} TB/s"
                 + "".join(f"; {k}: {v} TB/s" for k, v in refs.items()))
        cls = "not supported" if abs(pf) > abs(hb) else "depends on the workload"
        text += (". For pretraining, peak compute (and the network) moves days more than HBM bandwidth"
                 if abs(pf) > abs(hb) else ". HBM bandwidth matters as much as compute here")
    else:
        cls = "supported"
        text += f" - the chip's {nominal_bw:.2f} TB/s is at or near the threshold"
    inf = n.get("inference_decode")
    if th.get("value") is not None:
        head = (f"Pretraining slows by more than {th['slowdown']:.0%} only below {th['value']:.2f} TB/s of HBM "
                f"bandwidth, {th['value'] / nominal_bw:.0%} of this chip's {nominal_bw:.2f} TB/s")
    else:
        head = f"Pretraining never slows by {th['slowdown']:.0%} within the bandwidths tried"
    if cls == "not supported":
        head += (", and peak compute moves days more: the premise is not supported for pretraining, which is what "
                 "the seed argues.")
        deciding = (f"pretraining: HBM threshold {th['value']:.2f} TB/s vs the chip's {nominal_bw:.2f}; "
                    if th.get("value") is not None else "pretraining: no HBM threshold; ")
    else:
        head += ": HBM bandwidth does limit this pretraining run."
        deciding = "the chip's HBM bandwidth is near the threshold; "
    if inf:
        ih = _inference_headline(inf)
        head += (" " + ih) if ih else ""
        half = next((r for r in inf["rows"] if r["factor"] == 0.5), None)
        tpot = inf.get("tpot_bound_ms")
        deciding += "inference: decode throughput" + (
            f" {half['change_pct']:+.0f}% at half the bandwidth" + (f" under a {tpot:g} ms TPOT bound" if tpot else "")
            if half else " scales with HBM bandwidth")
    res.facts["deciding"] = deciding
    return cls, head, text


handle = register_kind("hardware-sensitivity", Inputs, compute, verdict)
