"""Which plans a training framework can run (``catalog/data/framework_schedules.yaml``, data with sources):
``--framework ID`` and ``--emit`` restrict the plan search to the schedules, ZeRO stages, recompute modes and
parallelisms that framework has."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

from .yamlload import load_data

from .errors import TrainsimError
from .parallel.schedules import SCHEDULES, code as schedule_code, get as get_schedule
from .parallel.validity import REASONS, STAGE_FLAGS, stage_flags_ok, zero3_fsdp2_ok
from .errors import unknown
from .catalog.load import vendor_names
from .perf.compute import GATED_FFN_GROUPS, QKV_GROUP


@lru_cache(maxsize=1)
def _doc() -> dict:
    """The profiles, each schedule name checked against the schedule registry (:mod:`trainsim.parallel.schedules`)."""
    text = resources.files("trainsim.catalog").joinpath("data/framework_schedules.yaml").read_text(encoding="utf-8")
    doc = load_data(text)   # libyaml, through the JSON cache of packaged data files
    for fw, prof in doc["frameworks"].items():
        for s in prof["schedules"]:
            if s not in SCHEDULES:
                raise TrainsimError(f"expected a schedule of trainsim.parallel.schedules ({', '.join(SCHEDULES)}), "
                                    f"got {s!r}", field=f"frameworks.{fw}.schedules",
                                    where="trainsim/catalog/data/framework_schedules.yaml")
        for pr in prof["precisions"]:
            if pr not in PRECISIONS:
                raise TrainsimError(f"expected a training precision ({', '.join(PRECISIONS)}), got {pr!r}",
                                    field=f"frameworks.{fw}.precisions",
                                    where="trainsim/catalog/data/framework_schedules.yaml")

    by_vendor = doc["default_framework_by_vendor"]
    for key, fw in [("default_framework", doc["default_framework"]),
                    *((f"default_framework_by_vendor.{v}", fw) for v, fw in by_vendor.items())]:
        if fw not in doc["frameworks"]:
            raise unknown("framework", fw, doc["frameworks"], field=key,
                          where="trainsim/catalog/data/framework_schedules.yaml")
    for v in by_vendor:
        if v not in vendor_names() or v not in doc.get("default_framework_by_vendor_source", {}):
            raise TrainsimError(f"expected a chip vendor as hardware.yaml spells it "
                                f"({', '.join(sorted(vendor_names()))}), with its "
                                f"default_framework_by_vendor_source line, got {v!r}",
                                field=f"default_framework_by_vendor.{v}",
                                where="trainsim/catalog/data/framework_schedules.yaml")
    return doc


#: the training precisions a run spec may state (``training.precision``; :class:`trainsim.spec.TrainingSpec`)
PRECISIONS = ("bf16", "fp8")


def offering_precision(precision: str) -> list[str]:
    """The framework profiles that offer training precision ``precision`` (their ``precisions`` list)."""
    return [fw for fw, prof in frameworks().items() if precision in prof["precisions"]]


def check_precision(precision: str, fw: str, field: str = "training.precision", where: str | None = None) -> None:
    """Refuse a training precision stack ``fw`` did not offer (FP8 before the stack had FP8 training: each
    profile's ``precisions``, with its ``precisions_source``), naming the profiles that offer it. The one place
    this rule lives (run specs, ``plan --framework`` / ``--emit``)."""
    allowed = profile(fw)["precisions"]
    if precision not in allowed:
        raise TrainsimError(f"{fw} offers precision {', '.join(allowed)}, not {precision} (offered by "
                            f"{', '.join(offering_precision(precision))})", field=field, where=where)


def offering(schedule: str) -> list[str]:
    """The framework profiles that offer pipeline schedule ``schedule`` (a name of the schedule registry)."""
    get_schedule(schedule)
    return [fw for fw, prof in frameworks().items() if schedule in prof["schedules"]]


def frameworks() -> dict[str, dict]:
    """Every framework profile, by id (a copy of the profiles file's ``frameworks`` mapping)."""
    return dict(_doc()["frameworks"])


def profile(fw: str, field: str = "--framework") -> dict:
    """The profile of framework ``fw``; an unknown id is an error naming ``field`` and the known ids."""
    fws = frameworks()
    if fw not in fws:
        raise unknown("framework", fw, fws, field=field)
    return fws[fw]


#: a profile's yes/no statements about how its stack behaves (each with its ``<flag>_source`` in
#: framework_schedules.yaml), passed as they are into the engine's :class:`~trainsim.perf.context.StepContext`
STACK_FLAGS = ("fsdp_pp_unsharded", "fsdp_sharded_master", "cp_allgather", "cp_torch_ring", "cp_eager_merge",
               "cp_kv_repeated", "pointwise_recompute",
               "sequential_mlp_slices", "moe_allgather_index_put", "mcore_ddp_buckets", "tp_gathered_gemm_inputs",
               "moe_fp8_dispatch",
               "pp_torch_stage", "pp_own_schedule", "pp_p2p_blocking", "pp_p2p_device_sync", "relu2_unfused",
               "moe_node_limited_routing",
               "dualpipev_fb_overlap",
               "grad_buffer_zeroed", "grad_nan_check", "grad_prescaled", "grad_prescaled_dp1", "tp_allreduce",
               "zero3_hierarchical_gather")


def even_vpp(fw: str) -> bool:
    """Whether stack ``fw`` builds interleaved pipeline stages only from an even split of the layers (its profile's
    ``vpp_divides_stage_layers``, with its source; :func:`trainsim.parallel.validity.even_vpp_ok`)."""
    return bool(profile(fw).get("vpp_divides_stage_layers", False))


def microbatch_groups(fw: str) -> bool:
    """Whether stack ``fw`` runs the interleaved schedule in micro-batch groups of N >= pp
    (``--microbatch-group-size-per-virtual-pipeline-stage``, NVIDIA/Megatron-LM 4295be1a6c, first in core_v0.10.0),
    so an interleaved plan needs m >= pp micro-batches rather than a multiple of pp: its profile's
    ``vpp_microbatch_groups``, with its source (:func:`trainsim.parallel.schedules.microbatch_group`); False, the
    multiple-of-pp rule, for a profile that does not state it."""
    return bool(profile(fw).get("vpp_microbatch_groups", False))


def plan_rules(fw: str) -> dict[str, bool]:
    """The plan rules stack ``fw`` adds to :func:`trainsim.parallel.validity.check`, as its keyword arguments (one
    place for every caller: the search's enumeration, ``estimate`` / ``check`` of a stated plan, calibration):
    ``even_vpp`` (:func:`even_vpp`), ``zero3_fsdp2`` (ZeRO-3 only at pp 1 and etp 1: the profile's flag with its
    ``zero3_fsdp2_source``; :func:`trainsim.parallel.validity.zero3_fsdp2_ok`) and ``dualpipev_fb_overlap``
    (DualPipe only at etp 1 and cp 1, :func:`trainsim.parallel.validity.dualpipev_fb_overlap_ok`; the engine reads
    that flag too, :data:`STACK_FLAGS`), ``microbatch_groups`` (interleaved micro-batch groups,
    :func:`microbatch_groups`), ``vpp_min_pp3`` (interleaved only at pp > 2: the profile's flag with its
    ``vpp_min_pp3_source``). A flag the profile leaves out is False (Megatron-Core's behaviour)."""
    return {"even_vpp": even_vpp(fw), "zero3_fsdp2": bool(profile(fw).get("zero3_fsdp2", False)),
            "dualpipev_fb_overlap": stack_flags(fw)["dualpipev_fb_overlap"],
            "microbatch_groups": microbatch_groups(fw), "vpp_min_pp3": bool(profile(fw).get("vpp_min_pp3", False)),
            "even_pp": stage_layout(fw) == "even"}


STAGE_LAYOUTS = {False: "even", "first_last": "first_last", True: "any"}


def stage_layout(fw: str) -> str:
    """How stack ``fw`` may spread the decoder layers over pipeline ranks when pp does not divide them, from its
    profile's ``uneven_stages`` (with its ``uneven_stages_source``): ``false`` -> 'even' (pp must divide the layers,
    :func:`trainsim.parallel.validity.even_pp_ok`, rule 21), ``first_last`` -> 'first_last' (only the first and last
    stage may differ and the middle stages divide the rest: Megatron-Core's --decoder-first/last-pipeline-num-layers,
    fa8bb5921b 'Uneven Pipeline Parallelism', 5 Sep 2024, in core_r0.9.0 on; priced by
    :func:`trainsim.perf.memory.rank_layers`), ``true`` -> 'any' (any layout: Megatron-Core's
    --pipeline-model-parallel-layout from 77732c3628, 13 Jun 2025, core_r0.13.0 on; MindSpeed's --num-layer-list;
    the engine prices ceil(L / pp) layers per rank). A profile that leaves it out is 'any'; another value is an
    error naming the profile."""
    v = profile(fw).get("uneven_stages", True)
    if v not in STAGE_LAYOUTS:
        raise TrainsimError(f"expected true, false or first_last, got {v!r}", field=f"frameworks.{fw}.uneven_stages",
                            where="trainsim/catalog/data/framework_schedules.yaml")
    return STAGE_LAYOUTS[v]


def local_batch_calls(fw: str) -> bool:
    """Whether stack ``fw`` calls its pipeline schedule once per local batch of a step (NeMo AutoModel's
    ``step_scheduler.local_batch_size``), so that a run's ``training.local_batch_seqs`` means something there: its
    profile's ``local_batch_calls``, with its source; False (one schedule call per step, Megatron-LM's
    ``train_step``) for a profile that does not state it."""
    return bool(profile(fw).get("local_batch_calls", False))


def attention_unfused(training, fw: str) -> bool:
    """Whether a run's attention kernel is the unfused core (scores materialised): ``training.attention`` if
    stated, else stack ``fw``'s default (:func:`runtime_settings`). Such a kernel runs only at cp 1 (rule 20 of
    :func:`trainsim.parallel.validity.check`); read by :func:`run_plan_rules` and the stated-plan check
    (trainsim/spec.py ``check_cp_attention``)."""
    return runtime_settings(training, fw)["attention"] == "unfused"


def run_plan_rules(run, fw: str | None = None) -> dict[str, bool | int | tuple[int, int]]:
    """The plan rules of :func:`trainsim.parallel.validity.check` for ``run`` under stack ``fw`` (default: the
    run's own, :func:`framework_of`): the stack's (:func:`plan_rules`), ``unfused_attention``, the run's attention
    kernel (``training.attention``, else the stack's default, :func:`runtime_settings`) being the unfused core, which
    runs only at cp 1 (rule 20), and ``split_units``, the units besides decoder layers on the first and the last
    rank under the run's pipeline split (:func:`plan_options`): (1, 1 + MTP modules) balanced (the embedding, the
    loss and the MTP modules counted as layers, as perf/memory.py rank_layers prices them; (1, 1) on a stack whose
    only uneven stages are the first and last, whose Megatron-Core does not count the MTP modules), (0, 0) even (rules 3
    and 21; under the balanced split a stack whose only uneven stages are the first and last splits the units
    evenly, rule 21), and ``zero_shard_group``, the run's stated ZeRO sharding group (0: none), which dp x cp must
    hold whole (rule 22), and ``stage_flags``, how the stack writes uneven stages (:func:`stage_flags`, rules 23 and
    24). The one place the search, ``estimate`` of a stated plan and calibration take them."""
    fw = fw or framework_of(run)
    balanced = plan_options(run.plan, fw)["pipeline_split"] == "balanced"
    rules = plan_rules(fw)
    # the MTP modules are units of the split only in a layout (Megatron-Core 0.13 on); the account-for flags of a
    # first/last stack count the embedding and the loss and build the MTP modules on the last stage on top
    # (perf/memory.py rank_layers)
    mtp = 0 if stage_layout(fw) == "first_last" else sum(lk.n_layers for lk in run.arch.mtp)
    if balanced and stage_layout(fw) == "first_last":
        # a stack whose only uneven stages are --decoder-first/last-pipeline-num-layers builds the balanced split
        # from the account-for flags alone, which Megatron-Core refuses beside those flags ('Does not support
        # standalone embedding stage and standalone loss stage with uneven pp') and splits evenly: L + 1 + 1 units
        # divisible by pp ('num_layers should be divisible by pipeline_model_parallel_size') and by vpp per rank
        # (megatron/core/transformer/transformer_block.py get_num_layers_to_build at core_v0.12.0): rule 21 on the
        # units (no --pipeline-model-parallel-layout before core_v0.13.0 to place them otherwise)
        rules["even_pp"] = True
    return {**rules, "unfused_attention": attention_unfused(run.training, fw),
            "split_units": (1, 1 + mtp) if balanced else (0, 0),
            "zero_shard_group": int(run.training.zero_shard_group or 0), "stage_flags": stage_flags(fw)}


def stage_flags(fw: str) -> str:
    """How stack ``fw`` writes uneven pipeline stages, its profile's ``stage_flags`` (with its
    ``stage_flags_source``; :data:`trainsim.parallel.validity.STAGE_FLAGS`, :func:`trainsim.parallel.validity.
    stage_flags_ok`): ``decoder_no_vpp`` (Megatron-Core 0.9, 0.10), ``decoder_vpp_multiple`` (0.11, 0.12),
    ``num_layer_list`` (MindSpeed-LLM) or ``layout`` (Megatron-Core 0.13 on, and a profile that leaves it out: no
    rule beyond every model chunk holding a unit). Another value is an error naming the profile.

    It refines the profile's ``uneven_stages`` (:func:`stage_layout`, which the engine prices stages by) and must
    agree with it: the decoder flags are the 'first_last' stacks', a layout or a layer list the 'any' ones'; an even
    split writes no uneven stage (stated stage sizes are refused there, :func:`restrict_plan`), so it takes the
    default. A 'first_last' profile must say which Megatron-Core flags it has."""
    v = profile(fw).get("stage_flags")
    layout = stage_layout(fw)
    if v is None and layout == "first_last":
        raise TrainsimError("expected decoder_no_vpp or decoder_vpp_multiple beside uneven_stages first_last, "
                            "got none", field=f"frameworks.{fw}.stage_flags",
                            where="trainsim/catalog/data/framework_schedules.yaml")
    v = "layout" if v is None else v
    if v not in STAGE_FLAGS:
        raise TrainsimError(f"expected one of {', '.join(STAGE_FLAGS)}, got {v!r}",
                            field=f"frameworks.{fw}.stage_flags",
                            where="trainsim/catalog/data/framework_schedules.yaml")
    if layout != "even" and v.startswith("decoder") != (layout == "first_last"):
        raise TrainsimError(f"expected stage flags that agree with uneven_stages ({layout}): the decoder flags "
                            f"exactly on first_last stacks, got {v!r}", field=f"frameworks.{fw}.stage_flags",
                            where="trainsim/catalog/data/framework_schedules.yaml")
    return v


def shard_group_zero(fw: str) -> tuple[int, ...]:
    """The ZeRO stages at which stack ``fw`` can shard over a group smaller than the whole dp x cp group, states
    replicated across groups (HSDP, MiCS; PyTorch FSDP's HYBRID_SHARD, MindSpeed-LLM's FSDP2 ``fsdp_size``): its
    profile's ``zero_shard_groups`` list, with its ``zero_shard_groups_source``; empty where the profile leaves it
    out: then every plan shards over the whole dp x cp group (the Megatron-Core profiles, although Megatron-Core has
    ``--num-distributed-optimizer-instances``: left out of the search for its cost, framework_schedules.yaml)."""
    return tuple(int(z) for z in profile(fw).get("zero_shard_groups", ()))


def shard_group_search(run) -> dict:
    """The keywords of :func:`trainsim.parallel.enumerate.enumerate_parents` that search the ZeRO sharding group of
    ``run`` (``shard_zero``: :func:`shard_group_zero`; ``shard_levels``: the network levels below the outermost, a
    group per level-(l-1) domain, Plans.zgroup). None where the run states its group
    (``training.zero_shard_group``: then that group, not a searched one)."""
    if run.training.zero_shard_group:
        return {}
    zs = shard_group_zero(framework_of(run))
    return {"shard_zero": zs, "shard_levels": len(run.system.levels) - 1} if zs else {}


def swap_optimizer_zero(fw: str) -> tuple[int, ...]:
    """The ZeRO stages at which stack ``fw`` can keep the optimizer's master weights and moments in host memory
    between steps and bring them back for the update (MindSpeed ``--swap-optimizer``): its profile's
    ``swap_optimizer.zero`` list, with its ``swap_optimizer_source``; empty where the profile leaves it out (the
    stack has no such feature)."""
    return tuple(int(z) for z in (profile(fw).get("swap_optimizer") or {}).get("zero", ()))


def swap_optimizer_times(fw: str) -> int:
    """The chunks stack ``fw``'s swapped optimizer brings its states back in per step (MindSpeed
    ``--swap-optimizer-times``, the profile's ``swap_optimizer.times``); 1 where the profile has no such feature."""
    return int((profile(fw).get("swap_optimizer") or {}).get("times", 1))


def swap_search(run) -> dict:
    """The keyword of :func:`trainsim.parallel.enumerate.enumerate_parents` that searches the swapped optimizer of
    ``run`` (``swap_zero``: :func:`swap_optimizer_zero`), as the search of a profile that offers it searches its
    recompute choices: empty where the stack has none, or where the run's optimizer states could not be swapped
    (MindSpeed refuses --swap-optimizer with --reuse-fp32-param, the engine's ``master_weights: fp32_remainder``:
    mindspeed/features_manager/optimizer/swap_optimizer_feature.py validate_args at Ascend/MindSpeed 028de58c;
    and states already offloaded to the host, ``optimizer.offload: [optimizer]``, have nothing to swap)."""
    zs = swap_optimizer_zero(framework_of(run))
    if not zs or swap_refusal(run):
        return {}
    return {"swap_zero": zs}


def swap_refusal(run) -> str | None:
    """Why ``run``'s optimizer states cannot be swapped to host memory (:func:`swap_search`), None when they can;
    ``check_swap`` raises it for a plan that states ``swap_optimizer: true``."""
    o = run.optimizer
    if "optimizer" in o.offload:
        return "optimizer.offload [optimizer] already keeps the states in host memory"
    if optimizer_precisions(o, framework_of(run))["master_weights"] == "fp32_remainder":
        return ("master_weights fp32_remainder is MindSpeed's --reuse-fp32-param, which --swap-optimizer refuses "
                "(Ascend/MindSpeed 028de58c swap_optimizer_feature.py validate_args)")
    return None


def check_swap(run, plan) -> None:
    """A one-line input error where ``plan`` (a PlanSpec) states ``swap_optimizer: true`` and ``run``'s optimizer
    states cannot be swapped (:func:`swap_refusal`)."""
    why = swap_refusal(run) if plan.values("swap_optimizer") == [True] else None
    if why:
        raise TrainsimError(f"swap_optimizer true with {why}: expected swap_optimizer false or left out",
                            field="plan.swap_optimizer")


def stack_flags(fw: str) -> dict[str, bool]:
    """Each of :data:`STACK_FLAGS` for framework ``fw``: as its profile states it, else False (Megatron-Core's
    behaviour)."""
    prof = profile(fw)
    return {f: bool(prof.get(f, False)) for f in STACK_FLAGS}


def gated_ffn_separate(fw: str) -> tuple[str, ...]:
    """The matrix groups (of :data:`GATED_FFN_GROUPS`) in which stack ``fw`` runs a gated FFN's gate and up
    projections as two GEMMs: its profile's ``gated_ffn_separate`` list, with its ``gated_ffn_separate_source``;
    empty where the profile leaves it out (Megatron-Core's one fc1 of width 2 x ffn,
    :func:`trainsim.perf.compute.gemm_matrices`). An unknown group is an error naming the profile."""
    groups = tuple(str(g) for g in (profile(fw).get("gated_ffn_separate") or ()))
    for g in groups:
        if g not in GATED_FFN_GROUPS:
            raise TrainsimError(f"expected a matrix group of {', '.join(GATED_FFN_GROUPS)}, got {g!r}",
                                field=f"frameworks.{fw}.gated_ffn_separate",
                                where="trainsim/catalog/data/framework_schedules.yaml")
    return groups


def qkv_separate(fw: str) -> bool:
    """Whether stack ``fw`` runs an attention block's q, k and v projections as three GEMMs (wq, wk, wv apart):
    its profile's ``qkv_separate`` with its ``qkv_separate_source``; False where the profile leaves it out
    (Megatron-Core's one ``linear_qkv``, :func:`trainsim.perf.compute.fused_qkv`). A value other than true /
    false is an error naming the profile."""
    v = profile(fw).get("qkv_separate", False)
    if not isinstance(v, bool):
        raise TrainsimError(f"expected true or false, got {v!r}", field=f"frameworks.{fw}.qkv_separate",
                            where="trainsim/catalog/data/framework_schedules.yaml")
    return v


def separate_gemms(fw: str) -> tuple[str, ...]:
    """The ``separate`` groups :func:`trainsim.perf.compute.gemm_matrices` takes for stack ``fw``: its
    :func:`gated_ffn_separate` groups, and :data:`trainsim.perf.compute.QKV_GROUP` where :func:`qkv_separate`."""
    return gated_ffn_separate(fw) + ((QKV_GROUP,) if qkv_separate(fw) else ())


#: the DSA indexer-loss paths an engine prices (:func:`trainsim.perf.compute.dsa_indexer_loss_fwd`)
DSA_INDEXER_LOSS = ("none", "sparse", "dense", "dense_local")


def dsa_indexer_loss(fw: str, family: str) -> str:
    """How stack ``fw`` trains the DSA indexer of a model of Hugging Face family ``family``: its profile's
    ``dsa_indexer_loss`` mapping (family -> ``sparse``: Megatron-Core's KL loss against the main attention
    recomputed over the top-k keys, cuDNN path; ``dense``: MindSpeed-LLM's unfused recompute over every key, its
    head sum all-reduced over tp; ``dense_local``: the same without the all-reduce), with
    its ``dsa_indexer_loss_source``; ``none`` for a family or profile that does not state it (Megatron-Core's
    ``dsa_indexer_loss_coeff`` defaults to None: no loss). An unknown path is an error naming the profile."""
    mode = str((profile(fw).get("dsa_indexer_loss") or {}).get(family, "none"))
    if mode not in DSA_INDEXER_LOSS:
        raise TrainsimError(f"expected one of {', '.join(DSA_INDEXER_LOSS)}, got {mode!r}",
                            field=f"frameworks.{fw}.dsa_indexer_loss",
                            where="trainsim/catalog/data/framework_schedules.yaml")
    return mode


def framework_of(run) -> str:
    """The profile id of a run: its ``framework:`` key, else the default of its system's chip vendor
    (:func:`default_framework`). A run whose system is not resolved yet (a spec file's id or mapping) reads as a
    chip of no known vendor: resolve the system first (spec.py parse_run does)."""
    return stack_of(getattr(run, "framework", None), getattr(run, "system", None))


def stack_of(framework: str | None, system) -> str:
    """The profile id a run is estimated with: the ``framework`` it states, else its chip vendor's default
    (:func:`default_framework`): the one rule for :func:`framework_of` and for a spec read before its Run exists."""
    return framework or default_framework(system)


def default_for_emit(emit: str) -> str:
    """The framework profile whose flags ``--emit emit`` writes by default; an unknown emitter is an error."""
    d = _doc()["emit_default"]
    if emit not in d:
        raise TrainsimError(f"expected one of {', '.join(d)}, got {emit!r}", field="--emit")
    return d[emit]


def restrict_plan(plan, fw: str):
    """``plan`` (a PlanSpec) with its schedule / zero / recompute limited to what ``fw`` offers, and ep = etp = 1
    or cp = 1 where the framework has no expert or context parallelism; where the stack runs ZeRO-3 only at pp 1
    and etp 1 (``zero3_fsdp2``), zero 3 only where the plan's fixed pp and etp values allow it. A field the plan
    fixes to a value the framework lacks is an error naming both, ``pipeline_split: balanced`` included on a stack
    from before Megatron-Core's balanced split (the profile's ``balanced_split: false``, with its source). Stated
    stage sizes on a stack that writes them as MindSpeed-LLM's --num-layer-list: vpp 1 and no interleaved or
    dualpipev schedule (check rule 24); on a stack that splits evenly (``uneven_stages: false``: Megatron-LM 2021-23,
    metaseq), none: no flag of theirs sizes a first or last stage."""
    p = profile(fw)
    data = plan.model_dump(exclude_none=True)
    for field, allowed in (("schedule", p["schedules"]), ("zero", p["zero"]), ("recompute", p["recompute"])):
        want = plan.values(field)
        keep = list(allowed) if want is None else [v for v in want if v in allowed]
        if not keep:
            raise TrainsimError(f"{fw} offers {field} {', '.join(map(str, allowed))}, not {', '.join(map(str, want))}",
                                field=f"plan.{field}")
        if field == "zero" and p.get("zero3_fsdp2"):
            # ZeRO-3 only at pp 1, etp 1 (parallel/validity.py zero3_fsdp2_ok): a zero every fixed pp / etp refuses
            pps, etps = (np.asarray(plan.values(f) or [1])[:, None] for f in ("pp", "etp"))
            keep = [z for z in keep if bool(zero3_fsdp2_ok(z, pps, etps.T).any())]
            if not keep:
                # the reason line of check()'s rule 16, as estimate gives it for a plan that breaks it
                raise TrainsimError(f"{REASONS[16][1]} ({fw}; got pp {plan.values('pp')}, etp {plan.values('etp')})",
                                    field="plan.zero")
        data[field] = keep[0] if len(keep) == 1 else keep
    first, last = getattr(plan, "first_stage_layers", None), getattr(plan, "last_stage_layers", None)
    if (first is not None or last is not None) and stage_layout(fw) == "even":
        # no flag of the stack sizes a first or last stage (the profile's uneven_stages_source): Megatron-LM before
        # Megatron-Core's --decoder-first/last-pipeline-num-layers (fa8bb5921b, core_r0.9.0) builds
        # num_layers // pp layers on every rank and asserts that pp divides them
        stated = ", ".join(f"{k} {v}" for k, v in (("first_stage_layers", first), ("last_stage_layers", last))
                           if v is not None)
        raise TrainsimError(f"{fw} splits the layers evenly, pp (x vpp) dividing them, and has no flag that sizes a "
                            f"first or last pipeline stage (its profile's uneven_stages: false): expected "
                            f"first_stage_layers / last_stage_layers left out, got {stated}",
                            field="plan.first_stage_layers" if first is not None else "plan.last_stage_layers")
    if (first is not None or last is not None) and stage_flags(fw) == "num_layer_list":
        # MindSpeed-LLM writes stated stage sizes as --num-layer-list, which refuses virtual stages and dualpipev
        # (check rule 24, parallel/validity.py stage_flags_ok): vpp 1 and the schedules without either, so that
        # the search of `plan --emit mindspeed` offers only plans the emitted flags can carry
        scheds = data["schedule"] if isinstance(data["schedule"], list) else [data["schedule"]]
        keep = [s for s in scheds if not get_schedule(s).virtual_stages
                and bool(stage_flags_ok(1, 2, 1, schedule_code(s), first, last, "num_layer_list"))]
        if not keep or 1 not in (plan.values("vpp") or [1]):
            raise TrainsimError(f"{fw} writes stated stage sizes as MindSpeed-LLM's --num-layer-list, which refuses "
                                f"virtual stages and dualpipev ('Dynamic pipeline model and virtual pipeline cannot "
                                f"be enabled at the same time'): state vpp 1 and another schedule, or leave "
                                f"first_stage_layers / last_stage_layers out; got vpp "
                                f"{plan.values('vpp') or 'unstated'}, schedule {', '.join(scheds)}", field="plan.vpp")
        data["schedule"] = keep[0] if len(keep) == 1 else keep
        data["vpp"] = 1
    if getattr(plan, "pipeline_split", None) == "balanced" and p.get("balanced_split") is False:
        # Megatron-Core's --account-for-embedding/loss-in-pipeline-split (NVIDIA/Megatron-LM ef490839e8, first in
        # core_v0.11.0): a stack from before it splits only the decoder layers (the profile's balanced_split_source)
        ends = "" if stage_layout(fw) == "even" else "state plan.first_stage_layers / last_stage_layers, or "
        raise TrainsimError(f"{fw} has no balanced pipeline split (Megatron-Core's --account-for-embedding/loss-in-"
                            f"pipeline-split came with core_v0.11.0, NVIDIA/Megatron-LM ef490839e8, Feb 2025): "
                            f"{ends}leave pipeline_split out", field="plan.pipeline_split")
    if True in (plan.values("swap_optimizer") or ()):
        # MindSpeed --swap-optimizer: only a stack whose profile offers it, at the stages it offers it at
        zs = swap_optimizer_zero(fw)
        if not zs:
            raise TrainsimError(f"{fw} has no swapped optimizer (MindSpeed --swap-optimizer; the profiles offering it "
                                f"name it in swap_optimizer): expected swap_optimizer false or left out, got true",
                                field="plan.swap_optimizer")
        zeros = data["zero"] if isinstance(data["zero"], list) else [data["zero"]]
        if plan.values("swap_optimizer") == [True] and not any(z in zs for z in zeros):
            raise TrainsimError(f"{fw} swaps the optimizer only at zero {', '.join(map(str, zs))} (the distributed "
                                f"optimizer; swap_optimizer_source), got zero {', '.join(map(str, zeros))}",
                                field="plan.swap_optimizer")
    for flag, fields in (("expert_parallel", ("ep", "etp")), ("context_parallel", ("cp",))):
        if not p[flag]:
            for f in fields:
                want = plan.values(f)
                if want is not None and 1 not in want:
                    raise TrainsimError(f"{fw} has no {flag.replace('_', ' ')}, so {f} must be 1, got {want}",
                                        field=f"plan.{f}")
                data[f] = 1
    return type(plan).model_validate(data)


def with_defaults(plan, fw: str, fields=("zero", "recompute", "micro_batch", "schedule", "tp", "pp",
                                         "swap_optimizer")):
    """(plan, filled): ``plan`` (a PlanSpec) with the fields its source leaves out set to what stack ``fw`` does by
    default (the profile's ``defaults`` in framework_schedules.yaml, each profile citing its source), and the
    fields so filled. "Unstated is not optimal": a field a source leaves out takes its stack's default, not the
    search's best. ``schedule`` is filled only where ``vpp`` is unstated too (a stated vpp > 1 means interleaved);
    a default schedule without virtual stages then also fixes vpp = 1. Stacks without defaults leave the plan as
    it is. ``fields`` limits which defaults are applied."""
    d = {k: v for k, v in (profile(fw).get("defaults") or {}).items() if k in fields}
    data = plan.model_dump(exclude_none=True)
    filled = {}
    for f in ("zero", "recompute", "micro_batch", "tp", "pp", "swap_optimizer"):
        if f in d and getattr(plan, f) is None:
            data[f] = filled[f] = d[f]
    if "schedule" in d and plan.schedule is None and plan.vpp is None:
        data["schedule"] = filled["schedule"] = d["schedule"]
        if not get_schedule(d["schedule"]).virtual_stages:
            data["vpp"] = 1
    return (type(plan).model_validate(data) if filled else plan), filled


def zero3_defaults(plan, fw: str):
    """(plan, filled): ``plan`` (a PlanSpec) that fixes ZeRO-3 with the fields it leaves out set to what stack
    ``fw`` does at ZeRO-3 (the profile's ``zero3_defaults``, with its ``zero3_defaults_source``), and the fields so
    filled. A stack whose ZeRO-3 is another backend with its own arguments fixes them there: MindSpeed-LLM's FSDP2
    backend has no expert tensor split, so an unstated etp is 1 there, not Megatron-Core's etp = tp
    (:func:`trainsim.plan_estimate.plans_from_spec`). A plan at another (or no fixed) ZeRO stage, and stacks
    without ``zero3_defaults``, are left as they are. Used by ``estimate`` of a complete plan and by ``check``
    (:func:`trainsim.plan_estimate.complete_plans`), so both read an unstated field alike."""
    d = profile(fw).get("zero3_defaults") or {}
    if not d or plan.scalar("zero") != 3:
        return plan, {}
    filled = {f: v for f, v in d.items() if getattr(plan, f) is None}
    return (type(plan).model_validate({**plan.model_dump(exclude_none=True), **filled}) if filled else plan), filled


#: the engine's fallback of each runtime setting (Megatron-Core's argument defaults, with the three exceptions
#: :func:`runtime_settings` names and sources: grad_sync_overlap, moe_dispatcher, moe_grouped_gemm)
RUNTIME_DEFAULTS = {"tp_comm_overlap": False, "moe_a2a_overlap": False, "grad_sync_overlap": True,
                    "grad_accumulation_fusion": True, "rope_fusion": True, "activation_fusion": True,
                    "moe_dispatcher": "alltoall",
                    "cuda_graphs": "none", "moe_token_drop": False, "fp8_param_gather": False,
                    "cross_entropy_fusion": "none", "attention": "flash", "elementwise_kernels": "fused",
                    "moe_fake_balanced_gate": False, "moe_grouped_gemm": True, "fp8_recipe": "delayed",
                    "compiled": False, "moe_hybridep_num_sms": 16, "moe_fused_grouped_mlp": False,
                    "vocab_divisible_by": 128, "moe_router_padding_for_quantization": False,
                    "head_precision": "bf16", "attention_dropout": 0.1, "hidden_dropout": 0.1}


def runtime_settings(training, fw: str) -> dict:
    """``tp_comm_overlap``, ``moe_a2a_overlap``, ``grad_sync_overlap``, ``grad_accumulation_fusion``,
    ``rope_fusion``, ``activation_fusion``, ``moe_dispatcher``, ``cuda_graphs``,
    ``moe_token_drop``, ``fp8_param_gather``, ``cross_entropy_fusion``, ``attention`` (kernel),
    ``elementwise_kernels`` and ``moe_fake_balanced_gate``, ``moe_grouped_gemm``, ``fp8_recipe``, ``compiled``,
    ``moe_hybridep_num_sms``, ``moe_fused_grouped_mlp``, ``moe_router_padding_for_quantization``,
    ``vocab_divisible_by``, ``head_precision``, ``attention_dropout`` and ``hidden_dropout``
    of a run: as its spec states them, else its stack's default (the profile's ``defaults``; for
    ``vocab_divisible_by`` its own key, with its source), else Megatron-Core's
    argument default (off, off, fused gradient accumulation: Megatron-LM's ``--no-gradient-accumulation-fusion`` is
    a store_false flag, megatron/training/arguments.py at 847781764f; fused rotary: ``--no-rope-fusion`` likewise;
    fused gated activation: ``--no-bias-swiglu-fusion`` / ``--no-bias-gelu-fusion`` likewise;
    none, dropless, off, unfused, Transformer
    Engine's fused attention: the
    chip's native flash kernel; fused norm / activation / rotary kernels; a learned router; FP8 delayed scaling:
    TransformerConfig.fp8_recipe = 'delayed', megatron/core/transformer/transformer_config.py at d98e8a6; the model
    not under torch.compile: Megatron-LM's training loop calls the model eagerly, its fusions are Transformer
    Engine / Apex kernels; 16 HybridEP SMs: TransformerConfig.moe_hybridep_num_sms = 16 at Megatron-LM cba6b0ed,
    transformer_config.py line 231; no routing-map padding: TransformerConfig.moe_router_padding_for_quantization =
    False, transformer_config.py line 510 at 0d8e0714cd; the vocabulary padded to a multiple of 128 x tp:
    --make-vocab-size-divisible-by default=128, megatron/training/arguments.py at d98e8a64dd, perf/context.py
    StepContext.vocab_per_tp; the output head in the run's BF16: Megatron-Core's output layer multiplies the BF16
    activations and weight, perf/compute.py head_gemm_fwd; attention dropout 0.1: Megatron-LM's --attention-dropout
    default=0.1, megatron/arguments.py _add_regularization_args from v2.x through 23.08, megatron/training/
    arguments.py since, and Megatron-Core TransformerConfig.attention_dropout = 0.1; priced only by the unfused
    core, perf/compute.py unfused_score_bytes_per_token; hidden dropout 0.1: Megatron-LM's --hidden-dropout
    default=0.1, megatron/arguments.py _add_regularization_args at v2.5 e269e20064, v3.0 d63c254 and 23.08
    375395c187, and Megatron-Core TransformerConfig.hidden_dropout = 0.1 at d98e8a64dd; the stacks whose model
    recipes set 0 say so in their profile's ``defaults``, with ``hidden_dropout_source``).
    ``compiled`` (the stack traces its layers with torch.compile) is what decides
    whether PyTorch's experimental CP ring is traced (perf/comm_cp.py torch_ring_exposed); a run that states only
    ``compiled: true`` gets fused elementwise kernels too (Inductor fuses the norms, rotary and activation that
    eager mode runs one op at a time; torchtitan 9dec370 parallelize_llama.py apply_compile), unless it states
    ``elementwise_kernels``. Three exceptions: the gradient sync overlaps the backward, the engine's standing
    assumption (bucketed DDP, as torch DDP and Megatron-Core's --overlap-grad-reduce do, and the stacks' recipes
    set); ``moe_grouped_gemm`` falls back
    to the grouped GEMM although Megatron-Core's ``--moe-grouped-gemm`` is off by default, because the MoE recipes
    of the stacks trainsim models set it (Megatron-Bridge / NeMo MoE recipes ``moe_grouped_gemm=True``); a stack
    whose runs leave it off says so in its profile's ``defaults`` (mindspeed-2024); and ``moe_dispatcher`` falls
    back to the all-to-all dispatcher although Megatron-Core's own default is the all-gather one
    (TransformerConfig.moe_token_dispatcher_type = "allgather", megatron/core/transformer/transformer_config.py at
    Megatron-LM d98e8a6, which --moe-token-dispatcher-type inherits), because the MoE models of the stacks trainsim
    models are built with "alltoall": Megatron-Bridge's model bridges set it (provider_bridge in
    src/megatron/bridge/models/deepseek/deepseek_v3_bridge.py and qwen/qwen3_moe_bridge.py:
    ``provider.moe_token_dispatcher_type = "alltoall"``, Megatron-Bridge 067f987df) and its MoE recipes do
    (``cfg.model.moe_token_dispatcher_type = "alltoall"`` in recipes/qwen/h100/qwen3_moe.py, deepseek/h100/
    deepseek_v3.py, gpt_oss/h100/gpt_oss.py and others, where no flex / DeepEP / HybridEP backend is chosen),
    as do MindSpeed-LLM's MoE scripts (--moe-token-dispatcher-type alltoall, e.g.
    examples/mcore/glm5/pretrain_glm5_744b_4k_A3_ptd.sh); a stack whose runs kept the all-gather default says so
    in its profile's ``defaults`` (mindspeed-2024, whose scripts left the flag unset)."""
    prof = profile(fw)
    stack = dict(prof.get("defaults") or {})
    if "vocab_divisible_by" in prof:
        stack["vocab_divisible_by"] = int(prof["vocab_divisible_by"])
    out = _stated_or_default(training, RUNTIME_DEFAULTS, stack)
    if getattr(training, "compiled", None) and getattr(training, "elementwise_kernels", None) is None:
        out["elementwise_kernels"] = "fused"
    return out



def fp8_recipe_of(run) -> str:
    """The FP8 scaling recipe a run's GEMMs use: the one it states, else its software stack's default
    (:func:`runtime_settings`); what estimate reports and the emitters write."""
    return runtime_settings(run.training, framework_of(run))["fp8_recipe"]

def _stated_or_default(stated, bases: dict, defaults: dict) -> dict:
    """Each key of ``bases``: the value ``stated`` has (an attribute, None when unstated), else the stack's
    ``defaults`` entry, else the base value. The one rule behind :func:`runtime_settings` and
    :func:`optimizer_precisions` ("unstated is not optimal": a field a source leaves out takes its stack's)."""
    out = {}
    for k, base in bases.items():
        v = getattr(stated, k, None)
        out[k] = defaults.get(k, base) if v is None else v
    return out


OPTIMIZER_DEFAULTS = {"moments": "fp32", "master_weights": "fp32", "grads": "fp32"}


#: plan options the search does not search, with Megatron-Core's behaviour where neither the plan nor the stack
#: states them: selective recompute of the core attention (TransformerConfig.recompute_modules default
#: ['core_attn'], perf/context.py DEFAULT_SELECTIVE_MODULES) and decoder layers split evenly over the stages
#: (no --account-for-embedding/loss-in-pipeline-split)
PLAN_OPTION_DEFAULTS = {"recompute_modules": None, "pipeline_split": "even"}


def plan_options(plan, fw: str) -> dict:
    """``recompute_modules`` and ``pipeline_split`` of a plan: as it states them, else its stack's default (the
    profile's ``defaults``, e.g. HAI-LLM's recompute of RMSNorm and MLA up-projections and its balanced DualPipe
    stages, DeepSeek-V3 report sec. 3.2.3), else Megatron-Core's (:data:`PLAN_OPTION_DEFAULTS`; None: the engine's
    default selective modules). The plan search does not search these options, so what a stack does with them
    decides which plans it can reach: the one rule :func:`trainsim.plan_estimate.context` reads for estimate and
    search alike."""
    return _stated_or_default(plan, PLAN_OPTION_DEFAULTS, profile(fw).get("defaults") or {})


def optimizer_precisions(optimizer, fw: str) -> dict:
    """``moments``, ``master_weights`` and ``grads`` precisions of a run: as its spec's ``optimizer:`` states them,
    else its stack's default (the profile's ``defaults.optimizer``, e.g. NeMo AutoModel keeps BF16 parameters,
    gradients and torch.optim.Adam states), else Megatron-Core mixed precision (fp32 each: Micikevicius et al.
    2018; Megatron-Core ``--main-grads-dtype`` / ``--exp-avg-dtype`` defaults)."""
    return _stated_or_default(optimizer, OPTIMIZER_DEFAULTS, (profile(fw).get("defaults") or {}).get("optimizer") or {})


def default_stages(plan, fw: str) -> list[tuple]:
    """The plans an estimate tries in turn, each as (plan, filled): every default of the stack; then the
    memory-saving fields (ZeRO stage, recompute) searched with the other defaults kept (what a user of that stack
    changes first when a run does not fit); then the plan as stated, every unstated field searched. Consecutive
    duplicates are dropped."""
    out = []
    for fields in (("zero", "recompute", "micro_batch", "schedule", "tp", "pp", "swap_optimizer"),
                   ("micro_batch", "schedule"), ()):
        p, filled = with_defaults(plan, fw, fields)
        if not out or out[-1][1] != filled:
            out.append((p, filled))
    return out


#: profile-id prefixes -> the flag emitter (``trainsim.emit``) whose argument names that stack reads
EMITTER_PREFIXES = (("megatron", "megatron"), ("nemo", "megatron"), ("mindspeed", "mindspeed"),
                    ("torchtitan", "torchtitan"), ("primus", "primus"))


def emitter_for(fw: str) -> str | None:
    """The flag emitter (``megatron`` | ``mindspeed`` | ``torchtitan`` | ``primus``) of profile ``fw``: the emitter
    whose default stack it is (``emit_default``), else by family (Megatron-LM, Megatron-Core, Megatron-Bridge and
    NeMo read Megatron-LM's argument names; MindSpeed-LLM its own; torchtitan its TOML; AMD's Primus Megatron-LM's
    argument set as its own config overrides, trainsim/emit.py primus_args); None for stacks with no emitter
    (DeepSeek's HAI-LLM, Meta's, GPT-NeoX, ...)."""
    profile(fw, field="framework")
    for emit, prof in _doc()["emit_default"].items():
        if prof == fw:
            return emit
    return next((emit for prefix, emit in EMITTER_PREFIXES if fw.startswith(prefix)), None)


def resolve_choice(choice: str, field: str = "framework") -> str:
    """A profile id from the explorer's framework input: a profile id as is, or an emitter name (``megatron``,
    ``mindspeed``, ``torchtitan``; links made before profiles existed) as that emitter's default stack."""
    if choice in _doc()["emit_default"]:
        return _doc()["emit_default"][choice]
    profile(choice, field=field)
    return choice


def chip_vendor(system) -> str | None:
    """The vendor of ``system``'s chip as hardware.yaml spells it (``NVIDIA``, ``Huawei (HiSilicon)``, ``AMD``, ...);
    None for no system or one not resolved to a :class:`~trainsim.catalog.types.System` (an id, a mapping)."""
    return getattr(getattr(system, "chip", None), "vendor", None)


def default_framework(system=None) -> str:
    """The framework profile a run that names none is estimated with: today's Megatron-Core stack of its chip's
    vendor (framework_schedules.yaml ``default_framework_by_vendor``, each with its source: Megatron-Bridge on
    NVIDIA, MindSpeed on Ascend, Primus on AMD), else ``default_framework`` (Megatron-Bridge) for a vendor not
    listed and for no system (the catalog's default)."""
    doc = _doc()
    return doc["default_framework_by_vendor"].get(chip_vendor(system), doc["default_framework"])


def default_for_vendors(fw: str) -> list[str]:
    """The chip vendors whose runs that name no framework get profile ``fw`` (``default_framework_by_vendor``)."""
    return [v for v, d in _doc()["default_framework_by_vendor"].items() if d == fw]


def default_framework_rule() -> str:
    """The vendor rule of :func:`default_framework` in words, for the inputs an answer lists."""
    doc = _doc()
    by = ", ".join(f"{fw} on {v}" for v, fw in doc["default_framework_by_vendor"].items())
    return f"the chip vendor's stack ({by}; {doc['default_framework']} elsewhere)"


def describe_framework(fw: str) -> dict:
    """``trainsim catalog show ID`` for a framework profile: every statement of the profile with its source (a
    key ``X`` and its ``X_source``, the profile's ``source`` for the rest), whether it is the default stack, and
    its flag emitter (None for stacks trainsim has none for); ``default`` is the fallback of a vendor not listed,
    ``default_for_vendors`` the chip vendors whose unstated stack it is."""
    prof = profile(fw, field="catalog show")
    fields = [{"field": key, "value": value,
               "source": prof.get(f"{key}_source") or prof.get("source", "")}
              for key, value in prof.items() if not key.endswith("_source") and key != "source"]
    return {"kind": "framework", "id": fw, "default": fw == default_framework(),
            "default_for_vendors": default_for_vendors(fw), "emitter": emitter_for(fw),
            "source": prof.get("source", ""), "fields": fields}
