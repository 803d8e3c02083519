"""Scenario kind ``hardware-sensitivity`` (S8): how a job's days move with each hardware input (elasticities) and
the value of one input below which the job slows by more than a given fraction."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import Field

from ..common import best, plan_summary
from ..sensitivity import elasticity, sensitivity, threshold
from .base import KindInputs, KindResult, _job_run, _model_inputs, _sibling, _validation, register_kind

DEFAULT_PARAMS = ["hbm_bandwidth", "hbm_capacity", "scale_up_bandwidth", "scale_out_bandwidth", "peak_flops"]


class Inputs(KindInputs):
    """S8's inputs: the job (another scenario file, or this file's own model/system/training), the inputs varied,
    the factors and the threshold asked for."""

    job: str | None = Field(None, description="the scenario file whose job is varied (default: this file's)")
    vary: list[str] = Field(DEFAULT_PARAMS, description="hardware inputs varied one at a time")
    factors: list[float] = Field([0.25, 0.5, 1.5, 2.0], description="factors applied to each input")
    threshold: dict = Field({"param": "hbm_bandwidth", "slowdown": 0.10},
                            description="{param, slowdown}: the value of param below which days grow by more than "
                                        "slowdown")
    reference_hbm_tb_s: dict = Field(default_factory=dict, description="chips' HBM bandwidths shown for comparison")


def compute(inp: Inputs, base_dir: Path) -> KindResult:
    doc = inp.doc()
    a = inp.assumption_set()
    job = _sibling(doc, "job", base_dir) if inp.job else doc
    run = _job_run(job, base_dir)
    params = inp.vary or DEFAULT_PARAMS
    sens = sensitivity(run, params, tuple(inp.factors))
    el = {p: elasticity(sens, p) for p in sens["params"]}
    th_doc = inp.threshold or {"param": "hbm_bandwidth", "slowdown": 0.10}
    th = threshold(run, th_doc.get("param", "hbm_bandwidth"), float(th_doc.get("slowdown", 0.10)))
    numbers: dict[str, Any] = {"nominal_days": sens["nominal_days"], "chips": run.chips, "system": run.system.id,
                               "elasticity_dln_days_dln_param": el,
                               "days_by_param": {p: [{k: r[k] for k in ("factor", "value", "unit", "days",
                                                                        "change_pct", "plan_changed")}
                                                     for r in v["rows"]] for p, v in sens["params"].items()},
                               "threshold": th}
    numbers["reference_hbm_bandwidth_tb_s"] = inp.reference_hbm_tb_s
    return KindResult(numbers=numbers, best_plan=plan_summary(best(run).best),
                      assumptions=_model_inputs(job) + a.report(),
                      validation_error=_validation([run.system.chip.family]), facts={"chip": run.system.chip.id})


def verdict(res: KindResult) -> tuple[str, str]:
    n = res.numbers
    el, th, refs, chip = n["elasticity_dln_days_dln_param"], n["threshold"], n["reference_hbm_bandwidth_tb_s"], \
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
        return cls, text
    return "supported", text + f" - the chip's {nominal_bw:.2f} TB/s is at or near the threshold"


handle = register_kind("hardware-sensitivity", Inputs, compute, verdict)
