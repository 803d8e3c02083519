"""When a plan does not fit in HBM: by how much, and the smallest changes that make it fit.

Each candidate changes one thing a framework offers (Megatron-Core names) and is costed by the same engine:

* selective recompute of more modules, in the order of memory freed per unit of time repeated
  (``layernorm``, ``moe_act``, ``mla_up_proj``, ``core_attn``, ``shared_experts``, ``mlp``, ``moe``), then full
  recompute (uniform, 1 layer);
* a higher ZeRO stage (distributed optimizer, then gradients);
* the optimizer states in host memory (``--optimizer-cpu-offload``);
* where the run's stack offers it at the plan's ZeRO stage, the optimizer states swapped to host memory between
  steps (MindSpeed ``--swap-optimizer``, :func:`trainsim.frameworks.swap_search`), named with the HBM it frees
  and the time it adds per step (the two estimates' optimizer memory and step time: perf/memory.py
  ``swap_buffer_bytes``, perf/step.py ``swap_optimizer_time``);
* a smaller micro-batch;
* twice the pipeline stages (when the chips and layers allow it).

Candidates that fit are listed fastest first, each with its memory, step time and what it changed; a selective
module that frees no memory (one the model does not have, e.g. ``moe_act`` in a dense model) is left out.
"""
from __future__ import annotations

from dataclasses import replace

from .errors import TrainsimError
from .frameworks import framework_of, plan_options, swap_search
from .numfmt import gib
from .parallel.plan import RECOMPUTE
from .plan_estimate import estimate_complete
from .spec import OptimizerSpec, PlanSpec, Run

MODULE_ORDER = ("layernorm", "moe_act", "mla_up_proj", "core_attn", "shared_experts", "mlp", "moe")


FIELDS = ("tp", "pp", "vpp", "ep", "etp", "cp", "zero", "recompute", "micro_batch", "schedule", "node_limit")


#: the swapped-optimizer candidate's change, before what it frees and costs (:func:`_swap_row`)
SWAP_CHANGE = "optimizer states swapped to host memory between steps (MindSpeed --swap-optimizer)"


def _candidates(run: Run, plan: dict) -> list[tuple[str, Run, dict]]:
    """The changes other than more selective modules (those: :func:`fit_advice`)."""
    out: list[tuple[str, Run, dict]] = []
    if run.plan.swap_optimizer is not True and plan["zero"] in swap_search(run).get("swap_zero", ()):
        out.append((SWAP_CHANGE, replace(run, plan=run.plan.model_copy(update={"swap_optimizer": True})), dict(plan)))
    if plan["recompute"] != "full":
        out.append(("full recompute (uniform, 1 layer)", run, {**plan, "recompute": "full"}))
    if plan["zero"] < 2:
        out.append((f"ZeRO stage {plan['zero'] + 1}", run, {**plan, "zero": plan["zero"] + 1}))
    if "optimizer" not in run.optimizer.offload:
        o = OptimizerSpec(**{**run.optimizer.model_dump(), "offload": [*run.optimizer.offload, "optimizer"]})
        out.append(("optimizer states in host memory", replace(run, optimizer=o), dict(plan)))
    if plan["micro_batch"] > 1:
        out.append((f"micro-batch {plan['micro_batch'] // 2}", run, {**plan, "micro_batch": plan["micro_batch"] // 2}))
    pp2 = plan["pp"] * 2
    if run.chips % (plan["tp"] * pp2 * plan["cp"]) == 0 and pp2 <= run.arch.n_layers:
        out.append((f"pp {pp2} (twice the pipeline stages)", run, {**plan, "pp": pp2}))
    return out


#: the plan options a candidate keeps as the run states them (every PlanSpec field the search does not set: the
#: recompute modules and method, the stage split, activation offload); once only five were carried, so a stated
#: ``pipeline_split: balanced`` fell back to the even split and the full-recompute fix was costed on another plan
#: than the one it printed (DeepSeek-V3's published plan: 29.7 s beside the searched 22.4 s for the same fields)
KEPT_OPTIONS = tuple(k for k in PlanSpec.model_fields if k not in FIELDS and k != "dp")


def _estimate(run: Run, plan: dict):
    spec = PlanSpec(**{k: plan[k] for k in FIELDS}, **{k: getattr(run.plan, k) for k in KEPT_OPTIONS})
    try:
        return estimate_complete(replace(run, plan=spec), spec)
    except TrainsimError:   # a change the plan rules or the stack refuse (e.g. pp beyond the layers) is no advice
        return None


def _row(what: str, e) -> dict:
    return {"change": what, "memory_per_chip_bytes": e.memory_per_chip_bytes, "step_time_s": e.step_time_s,
            "tokens_per_s_per_chip": e.tokens_per_s_per_chip, "mfu": e.mfu, "chips_used": e.used,
            "global_batch_seqs": e.run.training.batch_seqs,
            "plan": {k: v for k, v in e.plan.items() if k != "placement"},
            **({"days": e.days} if e.days is not None else {})}


def _swap_row(e, base) -> dict:
    """The swapped-optimizer candidate's row: what it frees (the optimizer memory of ``base``, the plan as stated,
    less the candidate's) and what it costs (the step time it adds), both from the two estimates."""
    frees = base.memory["optimizer"] - e.memory["optimizer"]
    costs = e.step_time_s - base.step_time_s
    row = _row(f"{SWAP_CHANGE}: frees {gib(frees)}, +{costs:.3g} s a step", e)
    return {**row, "frees_bytes": frees, "adds_step_time_s": costs}


def fit_advice(run: Run, plan: dict, limit: int = 5) -> list[dict]:
    """Single changes to ``plan`` (a plan row as ``Estimate.plan``) that fit, fastest first. Selective modules
    are added one at a time in :data:`MODULE_ORDER`; a module that frees no memory (one the model does not have)
    is left out of the list and of every later set."""
    found: list[dict] = []
    base = _estimate(run, plan)
    if plan["recompute"] != "full":
        stated = plan_options(run.plan, framework_of(run))["recompute_modules"]
        have = set(stated or []) if plan["recompute"] == "selective" else set()
        acc: list[str] = sorted(have)
        prev = base.memory_per_chip_bytes if base is not None else float("inf")
        for m in MODULE_ORDER:
            if m in have:
                continue
            r = replace(run, plan=run.plan.model_copy(update={"recompute_modules": acc + [m]}))
            e = _estimate(r, {**plan, "recompute": "selective"})
            if e is None or e.memory_per_chip_bytes >= prev:
                continue
            acc, prev = acc + [m], e.memory_per_chip_bytes
            if e.fits:
                found.append(_row(f"selective recompute of {', '.join(acc)}", e))
    for what, r, p in _candidates(run, plan):
        e = _estimate(r, p)
        if e is not None and e.fits:
            found.append(_swap_row(e, base) if what == SWAP_CHANGE and base is not None else _row(what, e))
    found.sort(key=lambda d: d["step_time_s"])
    return found[:limit]


def over_by(memory_bytes: float, hbm_bytes: float) -> dict:
    """How far a plan is over the chip's memory."""
    return {"over_by_bytes": memory_bytes - hbm_bytes, "over_by_fraction": memory_bytes / hbm_bytes - 1.0}


__all__ = ["fit_advice", "over_by", "MODULE_ORDER", "RECOMPUTE"]
