"""One complete plan of a run spec evaluated: the :class:`Estimate` (step time, memory, MFU, placement, days),
the step context of a run, a plan spec as plan columns, and one evaluated plan as an Estimate.

The layer under :mod:`trainsim.search` and :mod:`trainsim.estimate` (which completes a partial plan by the
search): both build their answers from these functions, so they share the same arithmetic.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .catalog.load import require_usable
from .cost import run_cost
from .errors import TrainsimError
from .frameworks import (check_swap, dsa_indexer_loss, fp8_recipe_of, framework_of, optimizer_precisions,
                         separate_gemms, plan_options, plan_rules, restrict_plan, run_plan_rules, runtime_settings,
                         stack_flags, stage_layout, swap_optimizer_times,
                         zero3_defaults)
from .parallel.batch import chip_counts, plan_batch
from .parallel.placement import describe
from .parallel.plan import RECOMPUTE, Plans
from .parallel.schedules import code as schedule_code, default_name
from .parallel.validity import REASONS, check, reason_field
from .perf.calibration import Calib, calib_for, validation_error_that_applies
from .perf.context import DEFAULT_SELECTIVE_MODULES, OptimizerStates, Recompute, StepContext, shard_group_ranks
from .perf.comm_ep import stack_node_limit
from .perf.step import BREAKDOWN_KEYS, evaluate
from .sanity import check_estimate, peak_ratio
from .spec import PlanSpec, Run

PLAN_FIELDS = ("tp", "pp", "vpp", "schedule", "ep", "etp", "cp", "zero", "recompute", "micro_batch", "node_limit")


def context(run: Run, calib: Calib | None = None) -> StepContext:
    """The engine's :class:`StepContext` for ``run``: its model, system, batch, precision, recompute and
    optimizer-state bytes, with ``calib`` or the calibration of its chip family and framework."""
    require_usable(run.system.chip)
    runtime = runtime_settings(run.training, framework_of(run))
    pl, o = run.plan, run.optimizer
    opts = plan_options(pl, framework_of(run))
    rc = Recompute(modules=tuple(opts["recompute_modules"]) if opts["recompute_modules"] else DEFAULT_SELECTIVE_MODULES,
                   method=pl.recompute_method or "uniform", num_layers=pl.recompute_num_layers or 1)
    prec = optimizer_precisions(o, framework_of(run))
    st = OptimizerStates.from_precisions(prec, o.offload, o.dense_grad_reduce)
    return StepContext(arch=run.arch, system=run.system, chips=run.chips, seq_len=run.training.seq_len,
                       global_batch_seqs=run.training.batch_seqs, precision=run.training.precision,
                       calib=calib or calib_for(run.system.chip.family, framework=framework_of(run),
                                                chip=run.system.chip.id),
                       attention_kernel=runtime.pop("attention"), recompute=rc, optimizer=st,
                       first_stage_layers=pl.first_stage_layers, last_stage_layers=pl.last_stage_layers,
                       pipeline_split=opts["pipeline_split"],
                       stage_layout=stage_layout(framework_of(run)),
                       local_batch_seqs=run.training.local_batch_seqs,
                       zero_shard_group=run.training.zero_shard_group or 0,
                       offload_activation_layers=pl.offload_activation_layers or 0,
                       swap_optimizer_times=swap_optimizer_times(framework_of(run)),
                       fp8_activations=run.training.fp8_activations,
                       dsa_indexer_loss=dsa_indexer_loss(framework_of(run), run.arch.family),
                       separate_gemms=separate_gemms(framework_of(run)),
                       **stack_flags(framework_of(run)), **runtime)


def is_complete(plan: PlanSpec) -> bool:
    """True when every field that matters is fixed to one value (lists and gaps are searched)."""
    needed = ("tp", "pp", "ep", "cp", "micro_batch", "zero", "recompute")
    optional = ("vpp", "schedule", "etp", "node_limit", "swap_optimizer")
    return (all(plan.scalar(f) is not None for f in needed)
            and all(getattr(plan, f) is None or plan.scalar(f) is not None for f in optional))


def plans_from_spec(plan: PlanSpec, chips: int, arch=None) -> Plans:
    """One plan from a spec; unnamed fields take Megatron-Core's defaults (tp = pp = ep = cp = 1, etp = tp,
    zero 1, no recompute, micro-batch 1, 1F1B, or interleaved when vpp > 1; the optimizer states in HBM, no
    ``swap_optimizer``)."""
    g = plan.scalar
    tp, pp, cp = g("tp") or 1, g("pp") or 1, g("cp") or 1
    vpp = g("vpp") or 1
    sched = g("schedule") or default_name(vpp)
    dp = chips // (tp * pp * cp)      # chips / (tp pp cp), leaving the remainder idle
    if plan.dp is not None:
        if plan.dp > dp:
            raise TrainsimError(f"dp {plan.dp} x tp {tp} x pp {pp} x cp {cp} needs more than the {chips} chips",
                                field="plan.dp")
        dp = plan.dp
    ep = g("ep") or 1
    # Megatron-Core's default expert tensor parallelism is the tensor-parallel size (arguments.py:
    # --expert-tensor-parallel-size defaults to --tensor-model-parallel-size), where the chips allow it
    moe = [lk.moe for lk in arch.layers if lk.moe is not None] if arch is not None else []
    etp = g("etp") or (tp if moe and all(m.expert_ffn % tp == 0 for m in moe)
                        and (tp * cp * max(dp, 1)) % (ep * tp) == 0 else 1)
    return Plans.from_columns(tp=tp, pp=pp, vpp=vpp, ep=ep, etp=etp, cp=cp, dp=max(dp, 1),
                              zero=1 if g("zero") is None else g("zero"),
                              recompute=RECOMPUTE.index(g("recompute") or "none"), mb=g("micro_batch") or 1,
                              schedule=schedule_code(sched), node_limit=g("node_limit") or 0,
                              swap=int(bool(g("swap_optimizer"))))


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
    chips_used: int | None = None          # tp x pp x cp x dp; the rest of run.chips is idle
    batch_requested_seqs: int | None = None  # the stated batch, when the plan uses another (run.training has it)
    cost_inputs: dict = field(default_factory=dict)   # overrides for :func:`trainsim.cost.run_cost`

    def cost(self, **overrides) -> dict | None:
        """Chip-hours, energy (MWh, with PUE) and cost (rental and capex) of the whole run
        (:func:`trainsim.cost.run_cost`; ``overrides`` such as ``price_per_chip_hour``, ``pue``,
        ``electricity_usd_per_kwh``, ``goodput`` take precedence over ``cost_inputs``)."""
        return run_cost(self, **{**self.cost_inputs, **overrides})

    @property
    def memory_per_chip_bytes(self) -> float:
        """Memory per chip of the chosen plan (bytes)."""
        return self.memory["total"]

    @property
    def used(self) -> int:
        """Chips the plan uses (fewer than the run's chips when some stay idle)."""
        return self.run.chips if self.chips_used is None else self.chips_used

    @property
    def idle_chips(self) -> int:
        """Chips of the run the plan leaves idle."""
        return self.run.chips - self.used

    @property
    def tokens_per_s(self) -> float:
        """The whole job's training tokens per second (tokens/s per working chip x working chips)."""
        return self.tokens_per_s_per_chip * self.used

    @property
    def mfu_at_precision(self) -> float:
        """MFU against the dense peak of the precision the run uses (= ``mfu`` for BF16; for FP8 ``mfu`` x
        peak(BF16) / peak(FP8)); see :mod:`trainsim.sanity`."""
        return self.mfu / peak_ratio(self.run.system.chip, self.run.training.precision)

    @property
    def precision_native(self) -> bool:
        """Whether the chip has a dense peak of its own for the run's precision (an FP8 run on a chip without FP8
        tensor cores is priced at the BF16 rate: catalog ``Chip.flops``)."""
        return bool(self.run.system.chip.peak_flops.get(self.run.training.precision))

    @property
    def hfu_at_precision(self) -> float:
        """HFU against the dense peak of the precision the run uses."""
        return self.hfu / peak_ratio(self.run.system.chip, self.run.training.precision)

    @property
    def days(self) -> float | None:
        """Days to train the run's tokens: tokens / (tokens/s) / 86400; ``None`` when tokens are not given."""
        t = self.run.training.tokens
        if t is None:
            return None
        return t / self.tokens_per_s / 86400.0

    @property
    def chip_hours(self) -> float | None:
        """Chip-hours paid for: idle chips count (they are held for the run)."""
        d = self.days
        return None if d is None else d * 24.0 * self.run.chips

    def to_dict(self) -> dict:
        """The estimate as JSON-ready data (``trainsim estimate --json``)."""
        out = {
            "name": self.run.name,
            "model": self.run.arch.name,
            "system": self.run.system.id,
            "chip": self.run.system.chip.id,
            "chips": self.run.chips,
            "chips_used": self.used,
            "idle_chips": self.idle_chips,
            "global_batch_seqs": self.run.training.batch_seqs,
            "global_batch_requested_seqs": (self.batch_requested_seqs if self.batch_requested_seqs is not None
                                            else self.run.training.batch_seqs),
            "step_time_s": self.step_time_s,
            "tokens_per_s_per_chip": self.tokens_per_s_per_chip,
            "mfu": self.mfu,
            "hfu": self.hfu,
            "mfu_definition": "model FLOPs (6 x active params incl. output head + causal attention) / BF16 dense peak",
            "precision": self.run.training.precision,
            "mfu_at_precision": self.mfu_at_precision,
            "hfu_at_precision": self.hfu_at_precision,
            "mfu_at_precision_definition": (
                f"the same model FLOPs / {self.run.training.precision.upper()} dense peak" if self.precision_native
                else f"the chip has no {self.run.training.precision.upper()} dense peak: the run is priced at its "
                     "BF16 rate, so this is the BF16 MFU"),
            "precision_native": self.precision_native,
            "memory_per_chip_bytes": self.memory["total"],
            "memory_breakdown_bytes": self.memory,
            "hbm_bytes": self.run.system.chip.hbm_bytes,
            "fits": self.fits,
            "plan": {**self.plan, "placement": self.placement},
            "breakdown": self.breakdown,
            "validation_error": validation_error_that_applies(self.run.system.chip.family, self.run.arch.is_moe),
            "microbatches_per_step": self.microbatches,
        }
        if self.run.training.precision == "fp8":   # the recipe stated, else the stack's
            out["fp8_recipe"] = fp8_recipe_of(self.run)
        if self.run.training.tokens is not None:
            out["days"] = self.days
            out["chip_hours"] = self.chip_hours
            out["cost"] = self.cost()
        out.update(self.extra)
        return out


def estimate_plans(run: Run, plans: Plans, calib: Calib | None = None):
    """Evaluate plans (all assumed valid) and return the raw vectorised result, each plan on the batch it uses
    (the stated one within ``batch_tolerance``) and its own chips (tp pp cp dp)."""
    tr = run.training
    batch = plan_batch(tr.batch_seqs, plans.dp, plans.mb, plans.pp, plans.schedule,
                       plan_rules(framework_of(run))["microbatch_groups"])
    used = plans.tp * plans.pp * plans.cp * plans.dp
    return evaluate(replace(context(run, calib), global_batch_seqs=batch, chips=used), plans)


def effective_node_limit(run: Run, node_limit, ep):
    """The node limit the engine applies to plans of ``run`` with ``node_limit`` and ``ep`` (scalars or arrays):
    the plan's own where it states one, else its stack's (HAI-LLM routes each token to at most topk_group nodes:
    :func:`trainsim.perf.comm_ep.stack_node_limit`, the rule the engine reads), the largest over the model's MoE
    layer kinds; the plan's (0, none) without expert parallelism, where no token leaves its rank's experts. What
    every printed plan shows (summary, runners-up, Pareto front, ``to_frame``, --json, scenario tables) instead of
    the search's unstated 0."""
    nl = np.asarray(node_limit, dtype=np.int64)
    flag = stack_flags(framework_of(run))["moe_node_limited_routing"]
    caps = [stack_node_limit(lk, flag, nl) for lk in run.arch.layers if lk.moe is not None]
    if not caps:
        return nl
    return np.where(np.asarray(ep) > 1, np.max(np.stack(caps), axis=0), nl).astype(np.int64)


def plan_row(run: Run, plans: Plans, i: int) -> dict:
    """Plan ``i`` as every printed plan shows it: :meth:`Plans.row` with the node limit the engine applies
    (:func:`effective_node_limit`)."""
    plan = plans.row(i)
    plan["node_limit"] = int(effective_node_limit(run, plan["node_limit"], plan["ep"]))
    if plan.pop("swap", 0):
        # a searched swapped optimizer, as the plan spec states one (plan.swap_optimizer)
        plan["swap_optimizer"] = True
    if plan.pop("zgroup", 0):
        # a searched ZeRO sharding group, as the run spec states one (training.zero_shard_group)
        plan["zero_shard_group"] = int(shard_group_ranks(plans.take([i]), run.system)[0])
    return plan


def result_row(run: Run, plans: Plans, res, i: int) -> Estimate:
    """Plan ``i`` of an evaluation as an Estimate; its ``run`` carries the batch the plan uses. The one boundary
    where a result leaves the engine, so the sanity invariants (:func:`trainsim.sanity.check_estimate`) are
    checked here."""
    mem = {k: float(v[i]) for k, v in res.memory.items()}
    dp, mb = int(plans.dp[i]), int(plans.mb[i])
    batch = int(round(float(res.microbatches[i]) * dp * mb))
    asked = run.training.batch_seqs
    if batch != asked:
        run = replace(run, training=run.training.model_copy(update={"global_batch_seqs": batch,
                                                                    "global_batch_tokens": None}))
    plan = plan_row(run, plans, i)
    est = Estimate(
        chips_used=int(plans.tp[i] * plans.pp[i] * plans.cp[i] * dp), batch_requested_seqs=asked,
        run=run, plan=plan, placement=describe(plans, i, run.system, moe=run.arch.is_moe),
        step_time_s=float(res.step_time_s[i]), tokens_per_s_per_chip=float(res.tokens_per_s_per_chip[i]),
        mfu=float(res.mfu[i]), hfu=float(res.hfu[i]), memory=mem,
        fits=bool(mem["total"] <= run.system.chip.hbm_bytes),
        breakdown={k: float(res.breakdown[k][i]) for k in BREAKDOWN_KEYS}, microbatches=float(res.microbatches[i]),
    )
    check_estimate(est)
    return est


def complete_plans(run: Run, plan: PlanSpec) -> tuple[Plans, dict]:
    """(plans, filled): the one plan a complete plan spec (:func:`is_complete`) of ``run`` is, and the fields its
    stack filled. The one reading of a complete plan, for ``estimate`` (:func:`estimate_complete`) and ``check``
    alike: the fields it leaves out take what the run's stack does at the stated ZeRO stage
    (:func:`trainsim.frameworks.zero3_defaults`: MindSpeed-LLM's FSDP2 backend has no expert tensor split), then
    Megatron-Core's defaults (:func:`plans_from_spec`). A plan the run's software stack cannot run, or one that
    breaks a plan rule, is an input error."""
    fw = framework_of(run)
    restrict_plan(plan, fw)   # a plan the run's software stack cannot run is an input error
    check_swap(run, plan)
    plan, filled = zero3_defaults(plan, fw)
    tr = run.training

    def rules(p: Plans) -> np.ndarray:
        return check(p, run.arch, run.chips, tr.seq_len, tr.batch_seqs, tr.batch_tol, run.use_all,
                     first_stage_layers=run.plan.first_stage_layers, last_stage_layers=run.plan.last_stage_layers,
                     **run_plan_rules(run, fw))

    plans = plans_from_spec(plan, run.chips, run.arch)
    code = rules(plans)
    if code[0] and plan.dp is None and not run.use_all:
        # dp unstated and chips // (tp pp cp) breaks a rule (the batch: dp 12 on 100 chips for 1,000 sequences):
        # the largest smaller count of whole domains the degrees divide that passes, as the search completes a
        # partial plan (parallel/batch.chip_counts; tp 8 on 100 H100: dp 10 on 80 chips, 20 idle)
        g = int(plans.tp[0] * plans.pp[0] * plans.cp[0])
        for n in sorted(set(chip_counts(run.chips, run.system.scale_up_size, False, g)), reverse=True):
            if n % g or n // g >= int(plans.dp[0]):
                continue
            alt = plans_from_spec(plan.model_copy(update={"dp": n // g}), run.chips, run.arch)
            if not rules(alt)[0]:
                plans, code = alt, rules(alt)
                break
    if code[0]:   # the field named as the error's field, so that a caller can say which of its inputs it was
        # the plan as the tables print it (tp=1 pp=16 ...), not a Python dict; zgroup is the search's own column
        row = " ".join(f"{k}={v}" for k, v in plans.row(0).items() if k not in ("zgroup", "swap"))
        raise TrainsimError(REASONS[int(code[0])][1] + f" (chips {run.chips:,}, global batch {tr.batch_seqs:,.0f} "
                            f"sequences, plan {row})", field=reason_field(code[0]))
    return plans, filled


def estimate_complete(run: Run, plan: PlanSpec, calib: Calib | None = None) -> Estimate:
    """One complete plan (:func:`is_complete`) of ``run`` evaluated as given (:func:`complete_plans`): a plan the
    run's software stack cannot run, or one that breaks a plan rule, is an input error."""
    plans, _ = complete_plans(run, plan)
    res = estimate_plans(run, plans, calib)
    return result_row(run, plans, res, 0)
