"""Scenario kind ``pretrain-feasibility`` (S2): one job on one cluster against a deadline, and its size relative to
another scenario's job (the claim's "1.5x larger")."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from ...types_checked import PosFloat

from ..common import best, days_of, plan_summary
from ..economics import training_flops
from .base import (KindInputs, KindResult, _count_check, _dominant, _flops_claimed, _input, _job_run, _stack_input,
                   _model_inputs, _public, _run_row, _sibling, family_validation, register_kind, short_name)


class Inputs(KindInputs):
    """S2's inputs: the job (model, training, system, chips or pods), the deadline and the claimed ratio."""

    model: Any = Field(description="catalog id, config path or inline model mapping")
    training: dict = Field(description="training keys of a run spec")
    system: Any = Field(description="catalog id or inline system")
    claimed: dict | None = Field(None, description="the claim's figures (total_params, active_params, tokens)")
    deadline_days: PosFloat = Field(120.0, description="the pretraining window the claim implies, in days (default "
                                                    "120: 'finished by late April 2026' read as about 4 months)")
    deadline_note: str = Field("", description="why this deadline")
    compare_to: str | None = Field(None, description="another scenario file whose job this one is compared to")
    claimed_ratio: PosFloat = Field(1.5, description="the claimed size of this job relative to compare_to's (the "
                                                  "seed's '1.5x larger'); it holds within 10%")


def compute(inp: Inputs, base_dir: Path) -> KindResult:
    """The numbers of scenario kind S2 ``pretrain-feasibility`` for ``inp`` (paths from ``base_dir``), no prose."""
    doc = inp.doc()
    a = inp.assumption_set()
    run = _job_run(doc, base_dir)
    row = _run_row(run, a)
    fl = training_flops(run.arch, run.training.tokens, run.training.seq_len)   # as the run spec parsed it ("35T")
    claimed = inp.claimed or {}
    numbers: dict[str, Any] = {
        "chips": run.chips, "system": run.system.id,
        "training_flops_6na": fl["flops_6na"], "training_flops_claimed_6na": _flops_claimed(claimed),
        "params": _count_check(run.arch, claimed), **{k: v for k, v in _public(row).items() if k not in ("system",)},
    }
    facts: dict[str, Any] = {"deadline": inp.deadline_days, "fits": bool(row.get("fits")),
                             "message": row.get("message"), "arch_name": run.arch.name, "chips": run.chips,
                             "chip": short_name(run.system.chip), "dominant": _dominant(row) if row.get("fits") else None,
                             "ratio": None}
    if inp.compare_to:
        other = _sibling(doc, "compare_to", base_dir)
        orun = _job_run(other, base_dir, system=run.system.id, chips=run.chips, framework=run.framework)
        ofl = training_flops(orun.arch, orun.training.tokens, orun.training.seq_len)
        ratio = fl["flops_6na"] / ofl["flops_6na"]
        c_ratio = None
        if _flops_claimed(claimed) and _flops_claimed(other.get("claimed")):
            c_ratio = _flops_claimed(claimed) / _flops_claimed(other.get("claimed"))
        ores = best(orun)
        t_ratio = (row["days"]["nominal"] / days_of(ores)) if row.get("fits") and ores.best else None
        numbers["vs_" + str(other.get("id"))] = {
            "flops_ratio_models": ratio, "flops_ratio_claimed_figures": c_ratio,
            "days_ratio_same_cluster": t_ratio,
            "note": f"{other.get('id')} = {other.get('claim', '')[:80]}..."}
        facts["ratio"] = {"other": other.get("id"), "ratio": ratio, "claimed": c_ratio, "days": t_ratio,
                          "want": inp.claimed_ratio}
    return KindResult(numbers=numbers, best_plan=plan_summary(row.get("_est")),
                      assumptions=_model_inputs(doc) + [_stack_input(f"software stack on {short_name(run.system)}",
                                                                     doc, system=run.system)]
                      + [_input("deadline_days", inp.deadline_days,
                                                               inp.deadline_note)] + a.report(),
                      validation_error=family_validation([run]), facts=facts)


def verdict(res: KindResult) -> tuple[str, str, str]:
    """Scenario kind S2 ``pretrain-feasibility``'s (verdict class, headline, details) from its computed result."""
    f, n = res.facts, res.numbers
    deadline = f["deadline"]
    text_ratio = ""
    r = f["ratio"]
    if r and r["days"]:
        ok = abs(r["ratio"] / r["want"] - 1.0) <= 0.1
        claimed_t = f" ({r['claimed']:.2f}x from the claimed figures)" if r["claimed"] else ""
        text_ratio = (f"; it is {r['ratio']:.2f}x the {r['other']} job in 6ND FLOPs{claimed_t} and takes "
                      f"{r['days']:.2f}x as long on the same cluster, so the '{r['want']:g}x larger' figure "
                      f"{'holds' if ok else 'does not hold'}")
    if not f["fits"]:
        t = f"no plan of the model fits on {f['chips']:,} {f['chip']}"
        return "not supported", t + ".", f"{t}: {f['message']}"
    eff = n["effective_days"]
    stack = f" ({n['framework']})" if n.get("framework") else ""
    base_t = (f"{f['chips']:,} {f['chip']}{stack} train it in {n['days']['nominal']:.0f} days at MFU "
              f"{n['mfu']:.0%} ({eff['nominal']:.0f} days with failures, range {eff['low']:.0f}-"
              f"{eff['high']:.0f}); {n['memory_per_chip_gib']:.0f} of {n['hbm_gib']:.0f} GiB per chip")
    head = (f"{f['chips']:,} {f['chip']} train it in {eff['nominal']:.0f} days with failures ({eff['low']:.0f}-"
            f"{eff['high']:.0f}), against an assumed {deadline:g}-day window")
    if r and r["days"]:
        head += (f"; it is {r['ratio']:.2f}x the {r['other']} job, so '{r['want']:g}x larger' "
                 f"{'holds' if abs(r['ratio'] / r['want'] - 1.0) <= 0.1 else 'does not hold'}")
    res.facts["deciding"] = (f"the {deadline:g}-day window read from 'by late April 2026' (the start date is not "
                             f"public); days with failures {eff['low']:.0f}-{eff['high']:.0f}")
    if eff["high"] <= deadline:
        return "supported", head + ".", base_t + f", within the assumed {deadline:g}-day window" + text_ratio
    if eff["nominal"] <= deadline:
        return (f"depends on {f['dominant']}", head + f". Supported unless {f['dominant']} sits at its pessimistic "
                f"end.", base_t + f"; the pessimistic end exceeds the {deadline:g}-day window" + text_ratio)
    if eff["low"] <= deadline:
        return (f"depends on {f['dominant']}", head + f". Supported only if {f['dominant']} sits at its optimistic "
                f"end.", base_t + f"; only the optimistic end fits the {deadline:g}-day window" + text_ratio)
    return "not supported", head + ".", base_t + f"; longer than the assumed {deadline:g}-day window" + text_ratio


handle = register_kind("pretrain-feasibility", Inputs, compute, verdict)
