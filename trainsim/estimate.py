"""``estimate``: predict one training step (and the whole run) for a run spec and one plan.

Architecture principle 1: estimate is a search over one plan. A plan that names every field is evaluated
as given; fields it leaves out are filled by the plan search (the fastest plan that fits, holding the named
fields fixed), so ``estimate`` and ``plan`` always share the same arithmetic.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import TrainsimError
from .parallel.placement import describe
from .parallel.plan import RECOMPUTE, SCHEDULES, Plans
from .parallel.validity import check, reason
from .perf.calibration import Calib, calib_for
from .perf.context import StepContext
from .perf.step import BREAKDOWN_KEYS, evaluate
from .spec import PlanSpec, Run

PLAN_FIELDS = ("tp", "pp", "vpp", "schedule", "ep", "etp", "cp", "zero", "recompute", "micro_batch", "node_limit")


def context(run: Run, calib: Calib | None = None) -> StepContext:
    from .catalog.load import require_usable

    require_usable(run.system.chip)
    return StepContext(arch=run.arch, system=run.system, chips=run.chips, seq_len=run.training.seq_len,
                       global_batch_seqs=run.training.batch_seqs, precision=run.training.precision,
                       calib=calib or calib_for(run.system.chip.family),
                       attention_kernel=run.training.attention)


def is_complete(plan: PlanSpec) -> bool:
    """True when every field that matters is fixed to one value (lists and gaps are searched)."""
    needed = ("tp", "pp", "ep", "cp", "micro_batch", "zero", "recompute")
    optional = ("vpp", "schedule", "etp", "node_limit")
    return (all(plan.scalar(f) is not None for f in needed)
            and all(getattr(plan, f) is None or plan.scalar(f) is not None for f in optional))


def plans_from_spec(plan: PlanSpec, chips: int) -> Plans:
    """One plan from a spec; unnamed fields take neutral defaults (tp = pp = ep = etp = cp = 1, zero 1,
    no recompute, micro-batch 1, 1F1B, or interleaved when vpp > 1)."""
    g = plan.scalar
    tp, pp, cp = g("tp") or 1, g("pp") or 1, g("cp") or 1
    vpp = g("vpp") or 1
    sched = g("schedule") or ("interleaved" if vpp > 1 else "1f1b")
    dp = chips // (tp * pp * cp) if chips % (tp * pp * cp) == 0 else 0
    if plan.dp is not None and plan.dp != dp:
        raise TrainsimError(f"dp {plan.dp} does not equal chips / (tp pp cp) = {chips} / {tp * pp * cp}",
                            field="plan.dp")
    return Plans.from_columns(tp=tp, pp=pp, vpp=vpp, ep=g("ep") or 1, etp=g("etp") or 1, cp=cp, dp=max(dp, 1),
                              zero=1 if g("zero") is None else g("zero"),
                              recompute=RECOMPUTE.index(g("recompute") or "none"), mb=g("micro_batch") or 1,
                              schedule=SCHEDULES.index(sched), node_limit=g("node_limit") or 0)


@dataclass
class Estimate:
    """The prediction for one plan; ``to_dict()`` is the JSON of run-spec.md."""

    run: Run
    plan: dict
    placement: dict
    step_time_s: float
    tokens_per_s_per_chip: float
    mfu: float
    hfu: float
    memory: dict
    fits: bool
    breakdown: dict
    microbatches: float
    extra: dict = field(default_factory=dict)

    @property
    def memory_per_chip_bytes(self) -> float:
        return self.memory["total"]

    @property
    def mfu_at_precision(self) -> float:
        """MFU against the dense peak of the precision the run uses (= ``mfu`` for BF16; for FP8 ``mfu`` x
        peak(BF16) / peak(FP8)); see :mod:`trainsim.sanity`."""
        from .sanity import peak_ratio

        return self.mfu / peak_ratio(self.run.system.chip, self.run.training.precision)

    @property
    def hfu_at_precision(self) -> float:
        """HFU against the dense peak of the precision the run uses."""
        from .sanity import peak_ratio

        return self.hfu / peak_ratio(self.run.system.chip, self.run.training.precision)

    @property
    def days(self) -> float | None:
        t = self.run.training.tokens
        if t is None:
            return None
        return t / (self.tokens_per_s_per_chip * self.run.chips) / 86400.0

    @property
    def chip_hours(self) -> float | None:
        d = self.days
        return None if d is None else d * 24.0 * self.run.chips

    def to_dict(self) -> dict:
        out = {
            "name": self.run.name,
            "model": self.run.arch.name,
            "system": self.run.system.id,
            "chip": self.run.system.chip.id,
            "chips": self.run.chips,
            "step_time_s": self.step_time_s,
            "tokens_per_s_per_chip": self.tokens_per_s_per_chip,
            "mfu": self.mfu,
            "hfu": self.hfu,
            "mfu_definition": "model FLOPs (6 x active params incl. output head + causal attention) / BF16 dense peak",
            "precision": self.run.training.precision,
            "mfu_at_precision": self.mfu_at_precision,
            "hfu_at_precision": self.hfu_at_precision,
            "mfu_at_precision_definition": f"the same model FLOPs / {self.run.training.precision.upper()} dense peak",
            "memory_per_chip_bytes": self.memory["total"],
            "memory_breakdown_bytes": self.memory,
            "hbm_bytes": self.run.system.chip.hbm_bytes,
            "fits": self.fits,
            "plan": {**self.plan, "placement": self.placement},
            "breakdown": self.breakdown,
            "microbatches_per_step": self.microbatches,
        }
        if self.run.training.tokens is not None:
            out["days"] = self.days
            out["chip_hours"] = self.chip_hours
        out.update(self.extra)
        return out


def estimate_plans(run: Run, plans: Plans, calib: Calib | None = None):
    """Evaluate plans (all assumed valid) and return the raw vectorised result."""
    return evaluate(context(run, calib), plans)


def result_row(run: Run, plans: Plans, res, i: int) -> Estimate:
    """The :class:`Estimate` of plan ``i``: the one boundary where a result leaves the engine, so the sanity
    invariants (:func:`trainsim.sanity.check_estimate`) are checked here."""
    from .sanity import check_estimate

    mem = {k: float(v[i]) for k, v in res.memory.items()}
    est = Estimate(
        run=run, plan=plans.row(i), placement=describe(plans, i, run.system),
        step_time_s=float(res.step_time_s[i]), tokens_per_s_per_chip=float(res.tokens_per_s_per_chip[i]),
        mfu=float(res.mfu[i]), hfu=float(res.hfu[i]), memory=mem,
        fits=bool(mem["total"] <= run.system.chip.hbm_bytes),
        breakdown={k: float(res.breakdown[k][i]) for k in BREAKDOWN_KEYS}, microbatches=float(res.microbatches[i]),
    )
    check_estimate(est)
    return est


def estimate(run: Run, plan: PlanSpec | None = None, *, calib: Calib | None = None) -> Estimate:
    """Predict one training step of ``run`` under ``plan`` (default: the run's own plan).

    A partial plan is completed by the plan search (fastest plan that fits with the named fields fixed).
    """
    plan = plan or run.plan
    if not is_complete(plan):
        from .search import search

        res = search(run, fixed=plan, calib=calib, top=1)
        if res.best is None:
            raise TrainsimError(res.no_plan_message(), field="plan")
        return res.best
    plans = plans_from_spec(plan, run.chips)
    code = check(plans, run.arch, run.chips, run.training.seq_len, run.training.batch_seqs)
    if code[0]:
        raise TrainsimError(reason(code[0]) + f" (chips {run.chips}, plan {plans.row(0)})")
    res = estimate_plans(run, plans, calib)
    return result_row(run, plans, res, 0)
