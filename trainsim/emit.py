"""A plan as framework input: Megatron-LM / MindSpeed-LLM command-line arguments (a bash array that a launch
script expands: ``torchrun ... pretrain_gpt.py "${TRAINSIM_ARGS[@]}"``), Primus's overrides of the same arguments
(:func:`primus_args`), or torchtitan's TOML sections.

Argument names are Megatron-LM's own (``tests/data/megatron_lm_arguments.txt`` lists each with the file that
defines it); MindSpeed-LLM adds ``--schedules-method dualpipev`` and ``--num-layer-list``; a ZeRO-3 plan for
MindSpeed-LLM is its FSDP2 backend's arguments (``train_fsdp2.py --parallel.fsdp_size ...``,
:func:`mindspeed_fsdp2_args`). Comments sit on their own lines (never inside a continuation), so the fragment
passes ``bash -n`` and can be sourced.

Uneven pipeline stages: when the layers do not split evenly over pp x vpp (virtual) stages, Megatron-LM takes
``--decoder-first-pipeline-num-layers`` / ``--decoder-last-pipeline-num-layers``; the remaining layers split evenly
over the middle stages, and with virtual stages each of the three counts must be divisible by vpp
(``megatron/core/transformer/transformer_config.py``, "Uneven PP" checks) and vpp is given as
``--num-virtual-stages-per-pipeline-rank`` (``megatron/training/arguments.py``). Stated stage sizes those flags
cannot write are the balanced split's ``--account-for-embedding/loss-in-pipeline-split`` where they match it, else
a ``--pipeline-model-parallel-layout`` on a stack that has one (:func:`megatron_stage_args`); the rules per stack
are :func:`trainsim.parallel.validity.stage_flags_ok`, which the search applies, so a searched plan is writable.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import TrainsimError
from .frameworks import fp8_recipe_of, framework_of, plan_options, runtime_settings, stage_flags, stage_layout
from .parallel.schedules import REGISTRY, get as get_schedule, microbatch_group
from .parallel.validity import REASONS, balanced_flags_ok, decoder_flags_ok, middle_ranks, middle_ranks_ok
from .perf.memory import even_rank_layers, first_last_layers

EMITTERS = ("megatron", "mindspeed", "torchtitan", "primus")
#: the software each emitter writes flags for, as its header names it
EMITTER_TARGETS = {"megatron": "Megatron-LM", "mindspeed": "MindSpeed-LLM", "torchtitan": "torchtitan",
                   "primus": "Primus (Megatron-LM backend)"}
#: the emitters that write Megatron-LM's own argument set (Primus in its own spelling, :func:`primus_args`)
MEGATRON_ARGUMENT_SET = ("megatron", "primus")
#: schedule name -> torch.distributed.pipelining class name (from the schedule registry)
TORCHTITAN_SCHEDULES = {s.name: s.torchtitan for s in REGISTRY if s.torchtitan is not None}


def stage_split(n_layers: int, pp: int, vpp: int = 1) -> tuple[int, int, int] | None:
    """Layers on the (first, middle, last) pipeline ranks of the uneven layout the engine prices, as
    Megatron-Core's --decoder-first/last-pipeline-num-layers express it, or None when the layers split evenly
    (n_layers divisible by pp x vpp).

    Not interleaved (vpp 1): the engine's own layout, :func:`trainsim.perf.memory.first_last_layers` (the middle
    ranks take k = floor or ceil(L / pp) layers, the first and last share the rest, ceil and floor of half); pp 2:
    ceil(L / 2) on the first rank, floor(L / 2) on the last. Interleaved (vpp > 1): the engine prices
    m = ceil(L / (pp vpp)) vpp layers on every rank (memory.rank_layers); the middle ranks take m and the first and
    last share the rest (the first at least as many as the last, which also holds the output head), all three
    multiples of vpp and first, last <= m (transformer_config.py "Uneven PP" checks), smaller m tried when that
    fails. A layout these flags cannot express is an error naming plan.vpp.
    """
    v = max(vpp, 1)
    if n_layers % (pp * v) == 0:
        return None
    if pp < 2:
        raise TrainsimError(f"{n_layers} layers do not split into {v} virtual stages", field="plan.vpp")
    if v == 1:
        if pp == 2:
            return -(-n_layers // 2), -(-n_layers // 2), n_layers // 2
        f, m1, l1 = first_last_layers(float(n_layers), np.array([float(pp)]), np.array([1.0]),
                                      np.array([float(-(-n_layers // pp))]))
        return int(f[0]), int(m1[0]), int(l1[0])
    m = math.ceil(math.ceil(n_layers / pp) / v) * v
    while m >= v:
        rest = n_layers - (pp - 2) * m
        last = (rest // 2) // v * v
        first = rest - last
        if v <= last <= m and v <= first <= m and first % v == 0:
            return first, m, last
        m -= v
    raise TrainsimError(f"{n_layers} layers cannot be split over pp {pp} with vpp {v} (each stage a multiple of "
                        f"vpp)", field="plan.vpp")


def _plan_value(p: dict, name: str):
    v = p.get(name)
    return v if v not in (None, 0, "") else None


#: plan options the search does not enumerate: an estimate's ``plan`` row has none of them, the run's plan (the
#: spec's, with --fix over it) has them as stated
OPTION_FIELDS = ("recompute_modules", "recompute_method", "recompute_num_layers", "first_stage_layers",
                 "last_stage_layers", "offload_activation_layers")


def _plan_of(est) -> dict:
    """``est.plan`` with the run's stated plan options (:data:`OPTION_FIELDS`), which the estimate was computed
    with (plan_estimate.context) but its plan row does not carry: without them the flags fell back to Megatron's
    defaults (--recompute-method uniform --recompute-num-layers 1, no --recompute-modules, even stages)."""
    stated = getattr(est.run, "plan", None)   # an estimate-like object without a run plan states no options
    opts = {k: getattr(stated, k, None) for k in OPTION_FIELDS}
    return {**{k: v for k, v in opts.items() if v is not None}, **est.plan}


def _split(est) -> tuple[int | None, int | None]:
    """(first, last) stage layer counts: the plan's own (lead's plan fields, when present), else stage_split."""
    p = _plan_of(est)
    first, last = _plan_value(p, "first_stage_layers"), _plan_value(p, "last_stage_layers")
    if first is not None or last is not None:
        return first, last
    L, pp, vpp = est.run.arch.n_layers, p["pp"], p.get("vpp") or 1
    s = stage_split(L, pp, vpp)
    if s is None:
        return None, None
    if vpp > 1 and stage_flags(framework_of(est.run)) == "decoder_no_vpp":
        raise TrainsimError(f"{L} layers do not split evenly over pp {pp} x vpp {vpp}: {REASONS[24][1]}",
                            field="plan.vpp")
    priced = int(even_rank_layers(float(L), pp, vpp))   # what memory.rank_layers prices on an 'any' stack
    if stage_layout(framework_of(est.run)) != "first_last" and max(s) > priced:
        raise TrainsimError(f"{pp} pipeline ranks for {L} layers were priced at {priced} layers each (the stack "
                            f"takes any layout); Megatron-LM's --decoder-first/last-pipeline-num-layers give at best "
                            f"{s[0]} on the first rank, {s[1]} on each middle rank, {s[2]} on the last",
                            field="plan.pp")
    return s[0], s[2]


def megatron_layout(n_layers: int, pp: int, vpp: int, n_mtp: int = 0, balanced: bool = False) -> str:
    """Megatron-Core's ``--pipeline-model-parallel-layout`` (NVIDIA/Megatron-LM 77732c3628, 13 Jun 2025, first in
    core_v0.13.0; megatron/core/transformer/pipeline_parallel_layer_layout.py at d98e8a64dd): the pp x vpp model
    chunks in layer order (chunk c = virtual rank c // pp on pipeline rank c % pp) separated by ``|``, ``E`` the
    embedding (first chunk), ``t`` a decoder layer, ``m`` an MTP module and ``L`` the loss (last chunk), ``t*k``
    for k layers. The U units (the L decoder layers; balanced, also E, the MTP modules and L, as
    --account-for-embedding/loss-in-pipeline-split count them) go floor(U / (pp vpp)) to each chunk and the
    U mod (pp vpp) left over one to a chunk, spread over the pipeline ranks round by round, so that no rank holds
    more than ceil(U / pp) units (at most the ceil(L / (pp vpp)) x vpp layers the engine prices on a stack that
    takes any layout, perf/memory.py ``even_rank_layers``; balanced, the first and the last rank first, as
    ``rank_layers`` prices them at ceil(U / pp) - 1 layers). Example: 32 layers, pp 6, vpp 5: 30 chunks of one
    layer and chunks 1 and 2 (ranks 1 and 2) take the two left over, ``Et|t*2|t*2|t|t|...|t|tL``: 6 layers on
    ranks 1 and 2 and 5 on the others, against the 10 priced."""
    chunks = pp * vpp
    units = (["E"] if balanced else []) + ["t"] * n_layers + ((["m"] * n_mtp + ["L"]) if balanced else [])
    base, extra = divmod(len(units), chunks)
    order = [0, pp - 1, *range(1, pp - 1)] if balanced else [*range(1, pp - 1), 0, pp - 1]
    order = list(dict.fromkeys(order))           # pp 1 or 2: no middle ranks
    more = {j * pp + r for j in range(vpp) for r in order}
    more = set(sorted(more, key=lambda c: (c // pp, order.index(c % pp)))[:extra])
    out, i = [], 0
    for c in range(chunks):
        n = base + (c in more)
        out.append(units[i:i + n])
        i += n
    if not balanced:
        out[0] = ["E"] + out[0]
        out[-1] = out[-1] + ["m"] * n_mtp + ["L"]
    return _spell_layout(out)


def stated_rank_layers(n_layers: int, pp: int, first: int | None, last: int | None) -> list[int]:
    """Decoder layers per pipeline rank of stated ``first`` / ``last`` stage sizes (None: that rank is one of the
    others): the other ranks share the rest, the first rest mod k of them one more, so that none holds more than the
    ceil(rest / k) the engine prices (perf/memory.py rank_layers). Example: 61 layers, pp 4, first 16: 45 over 3,
    [16, 15, 15, 15]; pp 5, first 16, last 13: 32 over 3, [16, 11, 11, 10, 13]."""
    k, rest = middle_ranks(n_layers, pp, first, last)
    base, extra = divmod(rest, max(k, 1))
    others = [base + (i < extra) for i in range(k)]
    return ([first] if first is not None else []) + others + ([last] if last is not None else [])


def stated_layout(ranks: list[int], vpp: int, n_mtp: int = 0) -> str:
    """Megatron-Core's ``--pipeline-model-parallel-layout`` (:func:`megatron_layout`) putting ``ranks[r]`` decoder
    layers on pipeline rank r: each rank's layers over its vpp model chunks (chunk j x pp + r), floor(n / vpp) each
    and the n mod vpp left over one to a chunk, the first rank's last chunks and every other rank's first chunks,
    so that the chunks with the embedding (the first) and with the MTP modules and the loss (the last) are the
    lighter ones, as the recipes place them; the embedding before the first chunk's layers, the MTP modules and the
    loss after the last chunk's (the last virtual stage of the last rank, where validate_layer_layout wants the MTP
    modules). Examples: [16, 16, 16, 13] at vpp 4 (Kimi K2's 61 layers in the Megatron-Bridge 26.06 recipe):
    ``Et*4|t*4|...|t*4|t*3|t*4|t*4|t*4|t*3|t*4|t*4|t*4|t*3L``, the last rank's 13 as 4, 3, 3, 3 (the recipe: 4, 4,
    4, 1); [7, 8, 8, 8, 8, 8, 8, 6] at vpp 4 (DeepSeek-V3 in Megatron-Bridge 25.09): ``Et|t*2|...|t|...|tmL``, the
    first rank's 7 as 1, 2, 2, 2 and the last's 6 as 2, 2, 1, 1 (the recipe's 'Et|(tt|)*30mL': 2, 2, 2, 0)."""
    pp = len(ranks)
    out: list[list[str]] = [[] for _ in range(pp * vpp)]
    for r, n in enumerate(ranks):
        base, extra = divmod(n, vpp)
        for j in range(vpp):
            more = (j >= vpp - extra) if r == 0 else (j < extra)     # the embedding's and the loss's chunks lighter
            out[j * pp + r] = ["t"] * (base + more)
    out[0] = ["E"] + out[0]
    out[-1] = out[-1] + ["m"] * n_mtp + ["L"]
    return _spell_layout(out)


def _spell_layout(chunks: list[list[str]]) -> str:
    """Model chunks of units as Megatron-Core's layout string: chunks joined by ``|``, a run of k equal units
    ``u*k`` (PipelineParallelLayerLayout.parse_str_to_list reads it back)."""
    def spell(chunk: list[str]) -> str:
        runs: list[list] = []
        for u in chunk:
            if runs and runs[-1][0] == u:
                runs[-1][1] += 1
            else:
                runs.append([u, 1])
        return "".join(u if k == 1 else f"{u}*{k}" for u, k in runs)
    return "|".join(spell(c) for c in chunks)


def megatron_stage_args(est, p: dict) -> tuple[list[str], list[str]] | None:
    """Megatron-LM's pipeline-split flags for a plan whose layers Megatron-Core cannot split with the plain
    even / --decoder-first/last-pipeline-num-layers flags, or None where those serve (pp 1, stated stage sizes,
    pp x vpp dividing the layers, or an uneven split the first/last flags express at the layers priced).
    Balanced split (``pipeline_split: balanced`` without stated stage sizes, Megatron-Core
    megatron/core/transformer/transformer_block.py get_num_layers_to_build at d98e8a64dd: L + 1 + 1 units split
    evenly over pp x vpp chunks, the first chunk one layer short for the embedding and the last for the loss):
    --account-for-embedding-in-pipeline-split --account-for-loss-in-pipeline-split (with
    --num-virtual-stages-per-pipeline-rank, as arguments.py requires with them) where pp x vpp divides L + 2 and
    the model has no MTP module or the stack has no layout (Megatron counts only the loss and builds the MTP modules
    on the last stage on top, get_mtp_num_layers_to_build at 3cdfd613, as perf/memory.py rank_layers prices a
    first/last stack; on a layout stack the engine counts the MTP modules as units, which a layout places);
    otherwise, and for an uneven split the first/last flags cannot express, --pipeline-model-parallel-layout
    (:func:`megatron_layout`) on a stack that takes any layout (Megatron-Core 0.13 on: the profile's
    ``uneven_stages: true``); on any other stack the plan cannot be written as flags that stack accepts, an error
    naming plan.vpp or plan.pp.

    Stated stage sizes (``first_stage_layers`` / ``last_stage_layers``): None where the first/last flags write
    them (the middle ranks' even share, :func:`trainsim.parallel.validity.middle_ranks_ok`, and with virtual stages
    each count a multiple of vpp, :func:`~trainsim.parallel.validity.decoder_flags_ok`, on a stack whose Megatron-Core
    takes them beside vpp); else the account-for flags where the sizes are their balanced split
    (:func:`~trainsim.parallel.validity.balanced_flags_ok`: Llama 3.1 405B's 15 + 16 x 6 + 15 at pp 8, vpp 8, as the
    NeMo and Megatron-Bridge recipes set them); else a layout of the stated ranks (:func:`stated_layout`, the
    Megatron-Bridge DeepSeek-V3 and Kimi K2 recipes' kind) on a stack that takes any layout; else an error (the
    search refuses such plans: rules 23 and 24 of parallel/validity.py)."""
    run, pp, vpp = est.run, p["pp"], p.get("vpp") or 1
    L = run.arch.n_layers
    if pp < 2:
        return None
    fw = framework_of(run)
    mtp = sum(lk.n_layers for lk in getattr(run.arch, "mtp", ()))
    first, last = _plan_value(p, "first_stage_layers"), _plan_value(p, "last_stage_layers")
    if first is not None or last is not None:
        return _stated_stage_args(L, pp, vpp, first, last, mtp, fw)
    balanced = plan_options(getattr(run, "plan", None), fw)["pipeline_split"] == "balanced"
    if balanced and (not mtp or stage_layout(fw) != "any") and (L + 2) % (pp * vpp) == 0:
        q = (L + 2) // pp
        return (["--account-for-embedding-in-pipeline-split", "--account-for-loss-in-pipeline-split"]
                + ([f"--num-virtual-stages-per-pipeline-rank {vpp}"] if vpp > 1 else []),
                [f"balanced split: {L} layers + embedding + loss over {pp} pipeline ranks, {q - 1} layers on the "
                 f"first and the last rank, {q} on each other"
                 + (f", the {mtp} MTP module(s) on the last rank beyond the split" if mtp else "")])
    if not balanced:
        if L % (pp * vpp) == 0:
            return None
        try:
            _split(est)
            return None
        except TrainsimError as exc:
            why = str(exc)
    else:
        why = (f"the balanced split of {L} layers + embedding + loss" + (f" + {mtp} MTP modules" if mtp else "")
               + f" over pp {pp} x vpp {vpp} is not what --account-for-embedding/loss-in-pipeline-split build")
    if stage_layout(fw) != "any":
        raise TrainsimError(f"{why}; --pipeline-model-parallel-layout, which would place them, came with "
                            f"Megatron-Core 0.13 (NVIDIA/Megatron-LM 77732c3628) and {fw} has no such layout "
                            f"(its uneven_stages)", field="plan.vpp" if vpp > 1 else "plan.pp")
    layout = megatron_layout(L, pp, vpp, mtp, balanced)
    return ([f'--pipeline-model-parallel-layout "{layout}"'],
            [f"stages as --pipeline-model-parallel-layout (Megatron-Core 0.13 on): {L} layers over {pp} pipeline "
             f"ranks" + (f" x {vpp} virtual stages" if vpp > 1 else "")
             + (", embedding and loss counted as layers" if balanced else "")])


def _stated_stage_args(L: int, pp: int, vpp: int, first: int | None, last: int | None, mtp: int,
                       fw: str) -> tuple[list[str], list[str]] | None:
    """:func:`megatron_stage_args` for stated stage sizes (its docstring): None (the first/last flags), the
    account-for flags, a layout, or an error naming plan.vpp."""
    one = ([pp], [vpp])
    flags = stage_flags(fw)
    if (bool(middle_ranks_ok(L, one[0], first, last)[0]) and bool(decoder_flags_ok(L, *one, first, last)[0])
            and (vpp == 1 or flags != "decoder_no_vpp")):
        return None
    if bool(balanced_flags_ok(L, *one, first, last)[0]) and flags != "decoder_no_vpp":
        return (["--account-for-embedding-in-pipeline-split", "--account-for-loss-in-pipeline-split"]
                + ([f"--num-virtual-stages-per-pipeline-rank {vpp}"] if vpp > 1 else []),
                [f"stated stages as the balanced split: {L} layers + embedding + loss over {pp} pipeline ranks, "
                 f"{first} layers on the first and the last rank, {first + 1} on each other"])
    ranks = stated_rank_layers(L, pp, first, last)
    if stage_layout(fw) != "any":
        raise TrainsimError(f"{fw} cannot write {','.join(map(str, ranks))} layers per pipeline rank at vpp {vpp} "
                            f"as its flags: {REASONS[24 if vpp > 1 else 23][1]}",
                            field="plan.vpp" if vpp > 1 else "plan.pp")
    layout = stated_layout(ranks, vpp, mtp)
    return ([f'--pipeline-model-parallel-layout "{layout}"'],
            [f"stated stages as --pipeline-model-parallel-layout (Megatron-Core 0.13 on; --decoder-first/last-"
             f"pipeline-num-layers need each count a multiple of vpp and the other ranks an even share): "
             f"{','.join(map(str, ranks))} layers per pipeline rank" + (f" x {vpp} virtual stages" if vpp > 1 else "")])


def mindspeed_noop_layers(n_layers: int, pp: int, vpp: int, dualpipev: bool,
                          priced: int) -> tuple[int, list[int]] | None:
    """MindSpeed-LLM's padding of an uneven pipeline split with virtual stages or DualPipeV: (layer slots S,
    indices of the noop layers), or None where pp x chunks divides the layers. MindSpeed-LLM refuses its uneven
    stages (--num-layer-list) beside either ('Dynamic pipeline model and virtual pipeline cannot be enabled at the
    same time', '... and dualpipev ...': mindspeed_llm/features_manager/pipeline_parallel/num_layer_list.py
    validate_args at Ascend/MindSpeed-LLM c77308a1); its scripts pad the layers with identity layers instead
    (``--num-layers 64 --noop-layers 61,62,63`` for DeepSeek-V3's 61 layers on pp 8 with dualpipev:
    examples/mcore/deepseek3/pretrain_deepseek3_671b_4k_A3_ptd.sh). The S = ceil(L / (pp q)) pp q slots (q chunks
    per rank: vpp, 2 for DualPipeV) form pp q chunks of S / (pp q) layers, chunk c on rank c mod pp (interleaved)
    or c, then 2 pp - 1 - c (DualPipeV's V); each rank keeps at most ``priced`` real layers (the engine's
    :func:`trainsim.perf.memory.even_rank_layers`): a rank with more slots gets its surplus as noop layers, its
    last slots, and the rest of the S - L noop layers are the last layer indices, as the scripts place them."""
    q = 2 if dualpipev else max(vpp, 1)
    if n_layers % (pp * q) == 0:
        return None
    k = -(-n_layers // (pp * q))
    slots = k * pp * q

    def rank(layer: int) -> int:
        c = layer // k
        return c % pp if not dualpipev else (c if c < pp else 2 * pp - 1 - c)

    by_rank: dict[int, list[int]] = {r: [] for r in range(pp)}
    for i in range(slots):
        by_rank[rank(i)].append(i)
    noop = {i for r, idx in by_rank.items() for i in idx[len(idx) - max(len(idx) - priced, 0):]}
    for i in range(slots - 1, -1, -1):
        if len(noop) >= slots - n_layers:
            break
        noop.add(i)
    return slots, sorted(noop)


#: run-spec fp8_recipe -> Megatron-Core --fp8-recipe (megatron/core/transformer/transformer_config.py at d98e8a6)
MEGATRON_FP8_RECIPE = {"delayed": "delayed", "current": "tensorwise", "mxfp8": "mxfp8", "blockwise": "blockwise"}


#: the selective-recompute modules of trainsim's that Megatron-Core's --recompute-modules takes (TransformerConfig's
#: allowed_modules at NVIDIA/Megatron-LM d98e8a64dd, which also lists modules of architectures trainsim does not
#: price: gdn_*, gdp_*, mhc); trainsim's op_sac is torchtitan's op-level SAC (perf/recompute.py)
MEGATRON_RECOMPUTE_MODULES = ("core_attn", "moe_act", "layernorm", "mla_up_proj", "mlp", "moe", "shared_experts")


def megatron_args(est, framework: str = "megatron") -> tuple[list[str], list[str]]:
    """(arguments, comments) for Megatron-LM (``framework='megatron'``; ``'primus'``: the same argument set, which
    :func:`primus_args` spells as Primus takes it) or MindSpeed-LLM (``'mindspeed'``)."""
    p, run = _plan_of(est), est.run
    L = run.arch.n_layers
    notes: list[str] = []
    args = [f"--num-layers {L}",
            f"--tensor-model-parallel-size {p['tp']}",
            f"--pipeline-model-parallel-size {p['pp']}",
            f"--context-parallel-size {p['cp']}",
            f"--micro-batch-size {p['micro_batch']}",
            f"--global-batch-size {run.training.batch_seqs}",
            f"--seq-length {run.training.seq_len}",
            "--bf16"]
    if p["tp"] > 1:
        args.append("--sequence-parallel")
    vpp = p.get("vpp") or 1
    special = megatron_stage_args(est, p) if framework in MEGATRON_ARGUMENT_SET else None
    sched = get_schedule(p["schedule"])
    noop = None
    if framework == "mindspeed" and p["pp"] > 1 and (vpp > 1 or sched.mindspeed_dualpipev):
        if _plan_value(p, "first_stage_layers") is not None or _plan_value(p, "last_stage_layers") is not None:
            raise TrainsimError("MindSpeed-LLM writes stated stage sizes as --num-layer-list, which it refuses beside "
                                "virtual pipeline stages and dualpipev (num_layer_list.py validate_args): state vpp 1 "
                                "and another schedule (--fix vpp=1,schedule=1f1b), or leave first_stage_layers / "
                                "last_stage_layers out (noop layers then pad the split)",
                                field="plan.first_stage_layers")
        priced = int(even_rank_layers(float(L), p["pp"], vpp))    # the most layers a rank is priced with
        noop = mindspeed_noop_layers(L, p["pp"], vpp, sched.mindspeed_dualpipev, priced)
    first, last = _split(est) if p["pp"] > 1 and special is None and noop is None else (None, None)
    if noop is not None:
        slots, pad = noop
        q, what = (vpp, "virtual stages") if vpp > 1 else (2, "DualPipeV chunks")
        args[0] = f"--num-layers {slots}"
        args.append(f"--noop-layers {','.join(map(str, pad))}")
        notes.append(f"{L} layers padded with {len(pad)} noop layers to {slots} ({p['pp']} pipeline ranks x {q} "
                     f"{what} x {slots // (p['pp'] * q)}): MindSpeed-LLM refuses --num-layer-list with "
                     f"{'virtual stages' if vpp > 1 else 'dualpipev'}; at most {priced} real layers per rank, "
                     "as priced")
    if first is not None or last is not None:
        # a stage the plan leaves unstated takes an even share of the rest, as Megatron-Core's
        # get_num_layers_to_build does (and perf/memory.py rank_layers); only the stated flags are written. The
        # Megatron flags come here only with the rest split evenly (megatron_stage_args); MindSpeed's list spreads it
        stated = (first is not None) + (last is not None)
        ranks = stated_rank_layers(L, p["pp"], first, last)
        others = max(ranks[1 if first is not None else 0:p["pp"] - (last is not None)] or [0])
    if framework == "mindspeed" and (first is not None or last is not None):
        args.append(f"--num-layer-list {','.join(map(str, ranks))}")
    elif first is not None or last is not None:
        # Megatron-Core 0.11 and 0.12 divide by the middle ranks when both flags are given, 0 at pp 2
        # (transformer_config.py at 3cdfd613: ZeroDivisionError; guarded from 77732c3628): the first flag alone
        # leaves the last rank the rest, the same split
        drop_last = p["pp"] == 2 and first is not None and stage_flags(framework_of(run)) == "decoder_vpp_multiple"
        args += ([f"--decoder-first-pipeline-num-layers {first}"] if first is not None else []) + (
            [f"--decoder-last-pipeline-num-layers {last}"] if last is not None and not drop_last else [])
        if vpp > 1:
            args.append(f"--num-virtual-stages-per-pipeline-rank {vpp}")
        where = [f"{n} on the {r}" for n, r in ((first, "first"), (last, "last")) if n is not None]
        notes.append(f"uneven stages: {', '.join(where).replace(' on', ' layers on', 1)} pipeline rank"
                     + (f", {others} on each {'middle' if stated == 2 else 'other'} rank" if p["pp"] > stated else ""))
    elif special is not None:
        args += special[0]
        notes += special[1]
    elif vpp > 1:
        args.append(f"--num-layers-per-virtual-pipeline-stage {(noop[0] if noop else L) // (p['pp'] * vpp)}")
    m = getattr(est, "microbatches", None)
    if vpp > 1 and p["pp"] > 1 and m is not None:
        # the engine costs the smallest micro-batch group Megatron-Core accepts; its default (pp) only where pp
        # divides the micro-batches (parallel/schedules.py microbatch_group)
        group = int(microbatch_group(p["pp"], float(m)))
        if group != p["pp"]:
            args.append(f"--microbatch-group-size-per-virtual-pipeline-stage {group}")
            notes.append(f"{int(round(float(m)))} micro-batches per step are not a multiple of pp {p['pp']}: the "
                         f"interleaved schedule runs them in groups of {group} (Megatron-Core 0.10 on)")
    if run.arch.is_moe:
        args += [f"--expert-model-parallel-size {p['ep']}", f"--expert-tensor-parallel-size {p['etp']}"]
        if p.get("node_limit"):
            args.append(f"--moe-router-group-topk {p['node_limit']}")
            notes.append("--moe-router-group-topk needs --moe-router-num-groups (the model's routing groups)")
        args += moe_runtime_flags(run, framework)
    if p["zero"] in (1, 2):
        args.append("--use-distributed-optimizer")
        if _plan_value(p, "swap_optimizer") is True:
            # MindSpeed --swap-optimizer (default --swap-optimizer-times 16, the count the engine prices); a plan
            # only a MindSpeed profile offers (frameworks.swap_optimizer_zero)
            args.append("--swap-optimizer")
        if p["zero"] == 2:
            notes.append("ZeRO-2 (sharded gradients) is Megatron's distributed optimizer with grads reduce-scattered")
    elif p["zero"] >= 3:
        # Megatron-FSDP v1 (--megatron-fsdp-version defaults to 1) runs beside pipeline parallelism: validate_args at
        # NVIDIA/Megatron-LM d98e8a64dd refuses pp only for --use-torch-fsdp2, and Megatron-Bridge 067f987d
        # _validate_and_apply_megatron_fsdp_v1_configs asks nothing of pp; only v2 (mcore_fsdp_adapter.py: 'MFSDP
        # v2 does not currently support: ... pipeline_model_parallel_size') refuses it, so its flag is never written
        args += ["--use-megatron-fsdp", "--data-parallel-sharding-strategy optim_grads_params"]
    rc = p["recompute"]
    mods = _plan_value(p, "recompute_modules")
    if rc == "selective":
        args.append("--recompute-granularity selective")
        if mods:
            mods = list(mods) if isinstance(mods, (list, tuple)) else [mods]
            if "op_sac" in mods:
                raise TrainsimError(
                    f"op_sac is torchtitan's op-level selective checkpointing, not a module of Megatron-Core's "
                    f"--recompute-modules ({', '.join(MEGATRON_RECOMPUTE_MODULES)}: TransformerConfig asserts them, "
                    f"megatron/core/transformer/transformer_config.py at d98e8a64dd); expected those modules for "
                    f"--emit {framework}, or --emit torchtitan, got {', '.join(mods)}",
                    field="plan.recompute_modules")
            args.append("--recompute-modules " + " ".join(mods))
    elif rc == "full":
        method = _plan_value(p, "recompute_method") or "uniform"
        n = _plan_value(p, "recompute_num_layers") or 1
        args += ["--recompute-granularity full", f"--recompute-method {method}", f"--recompute-num-layers {n}"]
    spelled = sched.mindspeed if framework == "mindspeed" else sched.megatron
    if spelled is None:
        if sched.mindspeed is not None:
            raise TrainsimError(f"{sched.name} is not a Megatron-LM schedule; use --emit mindspeed, or search only "
                                "Megatron-LM's schedules with --framework megatron-bridge-2026",
                                field="plan.schedule")
        # the emitters that do spell it, from the registry (the Schedule fields are named as EMITTERS)
        others = [e for e in EMITTERS if e != framework and getattr(sched, e, None) is not None]
        hint = (f"use --emit {' or --emit '.join(others)} or another plan" if others else
                "no emitter of trainsim writes it: use another plan (e.g. --fix schedule=1f1b)")
        raise TrainsimError(f"{sched.name} is not a {framework} schedule; {hint}", field="plan.schedule")
    args += spelled
    if spelled and sched.emit_note:
        notes.append(sched.emit_note)
    if framework == "mindspeed" and sched.mindspeed_dualpipev and run.arch.is_moe:
        # the expert all-to-all overlap the engine's DualPipe models is MindSpeed's --moe-fb-overlap, which
        # MindSpeed-LLM required with dualpipev from ac5e0a66 to 97328951 (2025) and its A3 MoE scripts set
        # (parallel/validity.py dualpipev_fb_overlap_ok, with its sources)
        args.append("--moe-fb-overlap")
        notes.append("--moe-fb-overlap needs --moe-grouped-gemm and the alltoall dispatcher (written above), and "
                     "refuses --overlap-grad-reduce (mindspeed/features_manager/moe/fb_overlap.py)")
    if framework in MEGATRON_ARGUMENT_SET:
        args += megatron_runtime_flags(run, p)
    if run.training.precision == "fp8":
        if framework in MEGATRON_ARGUMENT_SET:
            # the run's recipe (stated, else its stack's), in Megatron-Core's spelling (TransformerConfig.fp8_recipe:
            # 'tensorwise' is per-tensor current scaling)
            recipe = fp8_recipe_of(run)
            args += ["--fp8-format hybrid", f"--fp8-recipe {MEGATRON_FP8_RECIPE[recipe]}"]
        else:
            notes.append("FP8: check that your MindSpeed release supports this chip's 8-bit format")
    if framework == "mindspeed":
        args += ["--use-fused-rmsnorm", "--use-flash-attn"]
    return args, notes


#: Megatron-LM flags whose argparse destination, the name Primus takes, is not the flag's own name with '-' -> '_'
#: (NVIDIA/Megatron-LM 847781764f, the third_party/Megatron-LM of AMD-AGI/Primus b3699abf,
#: megatron/training/arguments.py: --fp8-format dest='fp8', line 1292; --microbatch-group-size-per-virtual-
#: pipeline-stage dest='microbatch_group_size_per_vp_stage', line 2550)
PRIMUS_KEYS = {"--fp8-format": "fp8",
               "--microbatch-group-size-per-virtual-pipeline-stage": "microbatch_group_size_per_vp_stage"}
#: Megatron-LM flags of the megatron emitter that Primus b3699abf cannot take, and why: its config must hold every
#: override key (primus/core/launcher/parser.py load_primus_config: an unknown key becomes an extra argument,
#: which primus/modules/trainer/megatron/pre_trainer.py MegatronPretrainTrainer refuses: 'Megatron backend does
#: not support unregistered config keys'); keys read from primus/configs/modules/megatron/*.yaml and
#: primus/configs/models/megatron/language_model.yaml at b3699abf (tests/data/primus_megatron_keys.txt)
PRIMUS_UNWRITTEN = {
    "--recompute-modules": "Primus b3699abf's config has no recompute_modules key (Megatron-LM 847781764f has the "
                           "argument): set the modules in a Primus that has it, or recompute whole layers",
    "--cpu-offloading-num-layers": "neither Megatron-LM 847781764f's arguments.py nor Primus b3699abf's config has "
                                   "an activation-offload argument",
    "--moe-router-padding-for-quantization": "Megatron-LM 847781764f names it --moe-router-padding-for-fp8, a key "
                                             "Primus b3699abf's config lacks",
    "--moe-flex-dispatcher-num-sms": "HybridEP's SM count: no such argument in Megatron-LM 847781764f",
}


def primus_args(est) -> tuple[list[str], list[str]]:
    """(arguments, comments) of the plan for Primus's Megatron-LM backend (AMD-AGI/Primus b3699abf, the stack of
    primus-megatron-2025). Primus takes Megatron-LM's own argument set but not its command line: the experiment
    YAML and ``primus/cli/main.py train pretrain --config EXP --key value ...`` (examples/run_pretrain.sh passes its
    arguments on) override keys of Primus's module config (primus/core/launcher/parser.py _parse_kv_overrides:
    ``--key value``, ``true``/``false`` as booleans, other values through eval), which
    primus/modules/trainer/megatron/trainer.py initialize_megatron lays over Megatron-LM's argparse defaults by
    name (primus/backends/megatron/argument_builder.py _load_megatron_defaults: ``vars(parse_args([]))``, so
    the names are argparse destinations: ``tensor_model_parallel_size``, not ``--tensor-model-parallel-size``).
    A Megatron-LM flag is therefore written as ``--<dest> <value>`` (Primus's own scripts:
    examples/customer_package/run_llama3.1_70b_pretrain_mi355x.sh ``--tensor_model_parallel_size "$TP"``,
    ``--fp8 hybrid``, ``--mock_data True``): the megatron emitter's flags (:func:`megatron_args`, Megatron-Core's
    schedules and flags of the run's stack), each renamed to its destination (:data:`PRIMUS_KEYS`), a switch
    given the value True; a flag Primus cannot take (:data:`PRIMUS_UNWRITTEN`) is left out with a note, and the
    DeepEP dispatcher is Megatron-LM 847781764f's ``--moe-enable-deepep`` (its flex dispatcher has no backend
    choice; HybridEP is not in it). Megatron-LM's hyphenated flags given to Primus name no key of its config and
    stop the launch, so the megatron emitter's output is not Primus input."""
    args, notes = megatron_args(est, "primus")
    out = []
    for a in args:
        flag, _, value = a.partition(" ")
        if flag == "--moe-flex-dispatcher-backend":
            if value == "deepep":
                out.append("--moe_enable_deepep True")
            else:
                notes.append(f"{a}: not written: Megatron-LM 847781764f (Primus b3699abf) has only DeepEP "
                             "(--moe-enable-deepep) behind its flex dispatcher; the step was priced with HybridEP")
            continue
        if flag in PRIMUS_UNWRITTEN:
            notes.append(f"{a}: not written: {PRIMUS_UNWRITTEN[flag]}")
            continue
        out.append(f"--{PRIMUS_KEYS.get(flag, flag[2:].replace('-', '_'))} {value or 'True'}")
    return out, notes


def megatron_runtime_flags(run, p: dict) -> list[str]:
    """Megatron-LM flags for what the prediction of plan ``p`` assumed and Megatron-LM leaves off by default
    (megatron/training/arguments.py and core/model_parallel_config.py at d98e8a64dd; tests/data/
    megatron_lm_arguments.txt): the run's runtime settings (stated, else its stack's: frameworks.runtime_settings)
    ``grad_sync_overlap`` -> ``--overlap-grad-reduce`` (store_true, default False) where a data-parallel group
    syncs, with the distributed optimizer also ``--overlap-param-gather`` (the engine hides the parameter gather
    behind the forward: perf/step.py ``p_ov``; Megatron-LM requires --overlap-grad-reduce for it);
    ``tp_comm_overlap`` -> ``--tp-comm-overlap`` where tp > 1; the plan's ``offload_activation_layers`` N ->
    ``--cpu-offloading-num-layers N`` (N > 0 sets cpu_offloading, arguments.py). Without them the emitted job runs
    a different step from the one predicted."""
    rt = runtime_settings(run.training, framework_of(run))
    flags = []
    if rt["grad_sync_overlap"] and p["dp"] * p["cp"] > 1:
        flags.append("--overlap-grad-reduce")
        if p["zero"] in (1, 2):
            flags.append("--overlap-param-gather")
    if rt["tp_comm_overlap"] and p["tp"] > 1:
        flags.append("--tp-comm-overlap")
    off = _plan_value(p, "offload_activation_layers")
    if off:
        flags.append(f"--cpu-offloading-num-layers {off}")
    inst = optimizer_instances(run, p)
    if inst > 1:
        flags.append(f"--num-distributed-optimizer-instances {inst}")
    return flags


def moe_runtime_flags(run, framework: str = "megatron") -> list[str]:
    """Megatron-LM / MindSpeed-LLM flags for the MoE settings a prediction assumed (the run's, stated else its
    stack's: frameworks.runtime_settings) where Megatron-LM's argument default differs (TransformerConfig at
    NVIDIA/Megatron-LM d98e8a64dd, megatron/core/transformer/transformer_config.py: moe_grouped_gemm = False, line
    850; moe_token_dispatcher_type = "allgather", line 891; moe_flex_dispatcher_backend = "deepep", line 898;
    moe_flex_dispatcher_num_sms, line 964, which the deprecated moe_hybridep_num_sms routes to;
    moe_router_padding_for_quantization = False, line 771; model_parallel_config.py
    overlap_moe_expert_parallel_comm = False, line 343): ``--moe-grouped-gemm``, ``--moe-token-dispatcher-type
    alltoall``, or ``flex`` with ``--moe-flex-dispatcher-backend deepep|hybridep`` (HybridEP with the SMs priced,
    ``--moe-flex-dispatcher-num-sms``) and, Megatron-LM only, ``--moe-router-padding-for-quantization`` and
    ``--overlap-moe-expert-parallel-comm`` (MindSpeed-LLM's A3 MoE scripts write the first two flags, e.g.
    examples/mcore/glm5/pretrain_glm5_744b_4k_A3_ptd.sh at c77308a1; its DualPipe overlap is --moe-fb-overlap).
    The engine's defaults are the grouped GEMM and the all-to-all dispatcher, the MoE recipes' settings, not
    Megatron-LM's argument defaults: without these flags the emitted job ran the all-gather dispatcher and one GEMM
    per expert, another step than the one predicted."""
    rt = runtime_settings(run.training, framework_of(run))
    flags = ["--moe-grouped-gemm"] if rt["moe_grouped_gemm"] else []
    dispatcher = rt["moe_dispatcher"]
    if dispatcher == "alltoall":
        flags.append("--moe-token-dispatcher-type alltoall")
    elif dispatcher in ("deepep", "hybridep"):
        flags += ["--moe-token-dispatcher-type flex", f"--moe-flex-dispatcher-backend {dispatcher}"]
        if dispatcher == "hybridep":
            flags.append(f"--moe-flex-dispatcher-num-sms {int(rt['moe_hybridep_num_sms'])}")
    if framework in MEGATRON_ARGUMENT_SET and rt["moe_router_padding_for_quantization"]:
        flags.append("--moe-router-padding-for-quantization")
    if framework in MEGATRON_ARGUMENT_SET and rt["moe_a2a_overlap"]:
        flags.append("--overlap-moe-expert-parallel-comm")
    return flags


def optimizer_instances(run, p: dict) -> int:
    """How many copies of the sharded training states plan ``p`` keeps across its dp x cp ranks: dp x cp / the ZeRO
    sharding group (the run's ``training.zero_shard_group``, else the plan's searched one), 1 without a group or
    at zero 0. Megatron-LM writes it as ``--num-distributed-optimizer-instances N`` (megatron/training/arguments.py,
    core_r0.10.0 on: parallel_state cuts each dp x cp group into N consecutive groups that shard the optimizer and
    reduce-scatter the gradients, all-reducing across the N; with Megatron-FSDP the same setting is HSDP); without
    it the emitted job shards over the whole dp x cp group, not the group the step was priced with."""
    # an estimate-like object (the emitters' tests) may carry a training section without the field: no group
    group = getattr(getattr(run, "training", None), "zero_shard_group", None) or _plan_value(p, "zero_shard_group")
    if not group or p.get("zero", 0) < 1 or "dp" not in p:
        return 1
    dpc = int(p["dp"]) * int(p.get("cp", 1))
    if dpc <= group or dpc % group:
        return 1
    return dpc // int(group)


def mindspeed_fsdp2_args(est) -> tuple[list[str], list[str]]:
    """(arguments, comments) of a ZeRO-3 plan for MindSpeed-LLM's FSDP2 backend (``train_fsdp2.py``, whose
    command-line arguments override its YAML: examples/fsdp2/*/*.sh, Ascend/MindSpeed-LLM 4d7f33ab, Jul 2026).
    Names: ParallelArguments tp_size, fsdp_size, ep_size, ep_fsdp_size, cp_size, recompute and TrainingArguments
    per_device_train_batch_size, gradient_accumulation_steps (mindspeed_llm/fsdp2/utils/arguments.py at c77308a1).
    Full sharding over every data-parallel rank: fsdp_size = dp, so the replicate size world / (tp fsdp cp) is 1
    (mindspeed_llm/fsdp2/models/model_factory.py:129), and the experts shard over the ranks outside their EP group,
    ep_fsdp_size = world / ep (expert data parallel world / (ep ep_fsdp) = 1, model_factory.py:192). The backend has
    no pipeline parallelism (the stack's profile runs ZeRO-3 only at pp 1: parallel/validity.py zero3_fsdp2_ok)."""
    p, run = _plan_of(est), est.run
    if p["pp"] > 1 or p.get("etp", 1) > 1:
        raise TrainsimError(f"MindSpeed-LLM's FSDP2 backend (ZeRO-3) has no pipeline or expert tensor parallelism, "
                            f"got pp {p['pp']}, etp {p.get('etp', 1)}", field="plan.zero")
    world = p["tp"] * p["cp"] * p["dp"]
    args = [f"--parallel.tp_size {p['tp']}", f"--parallel.fsdp_size {p['dp']}", f"--parallel.cp_size {p['cp']}"]
    if run.arch.is_moe:
        args += [f"--parallel.ep_size {p['ep']}", f"--parallel.ep_fsdp_size {world // p['ep']}"]
    notes = []
    if p["recompute"] == "full":
        args.append("--parallel.recompute True")
    elif p["recompute"] == "selective":
        notes.append("selective recompute: name the modules to recompute in parallel.recompute_modules "
                     "(the backend recomputes whole modules)")
    acc = max(run.training.batch_seqs // (p["dp"] * p["micro_batch"]), 1)
    args += [f"--training.per_device_train_batch_size {p['micro_batch']}",
             f"--training.gradient_accumulation_steps {acc}"]
    if run.training.precision == "fp8":
        notes.append("FP8: set the backend's quantization recipe (model.quant_recipe_name) for this chip's 8-bit "
                     "format")
    return args, notes


def _bash(name: str, args: list[str], notes: list[str], header: str, launcher: str) -> str:
    lines = [f"# {header}", f"# usage: {launcher} \"${{{name}[@]}}\" <your model, data and optimizer arguments>"]
    lines += [f"# note: {n}" for n in notes]
    lines.append(f"{name}=(")
    lines += [f"  {a}" for a in args]
    lines.append(")")
    return "\n".join(lines)


def torchtitan_rank_layers(n_layers: int, pp: int, vpp: int, first_less: int, last_less: int) -> list[int] | None:
    """Decoder layers per pipeline rank of torchtitan's automatic split, or None where torchtitan refuses it.

    pytorch/torchtitan torchtitan/distributed/pipeline_parallel.py (b5bcd76c6; the same since 3c84ce095, Jul 2025,
    which added the keys): ``_get_pipeline_metadata`` takes ``pipeline_parallel_first_stage_less_layers`` and
    ``..._last_stage_less_layers`` as weights a, b of the embedding and the output head, and
    ``_generate_llm_fqn_per_model_part`` splits E = L + a + b effective layers over the S = pp x vpp stages:
    base = E // S each, the first E % S stages one more, then the first stage gives up a layers and the last b
    (refused when a or b exceeds base, or base is 0). Stage s runs on rank s mod pp (the looped layout of
    torch.distributed.pipelining's 1F1B, Interleaved1F1B and InterleavedZeroBubble)."""
    stages = pp * max(vpp, 1)
    base, extra = divmod(n_layers + first_less + last_less, stages)
    if base == 0 or first_less > base or last_less > base or min(first_less, last_less) < 0:
        return None
    eff = [base + (1 if i < extra else 0) for i in range(stages)]
    eff[0] -= first_less
    eff[-1] -= last_less
    return [sum(eff[r::pp]) for r in range(pp)]


def torchtitan_stage_weights(n_layers: int, pp: int, vpp: int, first: int | None,
                             last: int | None) -> tuple[int, int, int] | None:
    """(layers_per_stage, first_less, last_less) whose torchtitan split (:func:`torchtitan_rank_layers`) puts
    ``first`` layers on the first rank and ``last`` on the last (None: that end unstated) and splits the rest over
    the other ranks within one layer of each other; the smallest weights first. None when no weights do: the
    weights only take layers off the first and last stages, so a stated end heavier than the others (or, with
    vpp > 1, a split the looped layout cannot give) is not expressible. layers_per_stage = ceil(E / S) gives
    torchtitan's stage count ceil(E / layers_per_stage) = S when any value does."""
    stages = pp * max(vpp, 1)
    for total in range(0, 2 * n_layers + 1):
        for a in range(0, total + 1):
            b = total - a
            ranks = torchtitan_rank_layers(n_layers, pp, vpp, a, b)
            if ranks is None:
                continue
            ends_ok = (first is None or ranks[0] == first) and (last is None or ranks[-1] == last)
            others = ranks[1 if first is not None else 0:len(ranks) - (1 if last is not None else 0)]
            if not ends_ok or (others and max(others) - min(others) > 1):
                continue
            e = n_layers + a + b
            lps = math.ceil(e / stages)
            if math.ceil(e / lps) == stages:
                return lps, a, b
    return None


#: the torchtitan the TOML is written for: pytorch/torchtitan 24e91056a (26 Sep 2025), whose
#: torchtitan/config/job_config.py holds every key written here (pipeline_parallel_first/last_stage_less_layers
#: since 3c84ce095, Jul 2025) and whose config/manager.py ConfigManager._dict_to_dataclass refuses any other
#: ('Invalid field names', since eadca4835, Aug 2025); the last commit whose float8 converter is named "float8"
#: (5b5d46856 renamed it) and before 9810191bb (Feb 2026) replaced the TOML files with Python configs
TORCHTITAN_COMMIT = "24e91056a"


def torchtitan_toml(est) -> str:
    """torchtitan's ``[parallelism]``, ``[activation_checkpoint]``, ``[training]`` (and, for FP8, ``[model]``)
    sections: keys of ``torchtitan/config/job_config.py`` at :data:`TORCHTITAN_COMMIT`, schedule names of
    ``torch.distributed.pipelining``. Sequence parallelism comes with tp > 1 there (models/llama3/infra/
    parallelize.py apply_tp: the norms are SequenceParallel(); no key for it), and the pipeline's micro-batches
    are ``local_batch_size / pipeline_parallel_microbatch_size``."""
    p, run = _plan_of(est), est.run
    if p["schedule"] not in TORCHTITAN_SCHEDULES:
        raise TrainsimError(f"{p['schedule']} is not a torchtitan schedule (offers {', '.join(TORCHTITAN_SCHEDULES)})",
                            field="plan.schedule")
    if p["zero"] == 1:
        raise TrainsimError("torchtitan has no ZeRO-1 (it shards with FSDP2): use zero 0, 2 or 3", field="plan.zero")
    dp = p.get("dp") or max(run.chips // (p["tp"] * p["pp"] * p["cp"]), 1)
    shard = 1 if p["zero"] == 0 else dp
    lines = [f"# trainsim plan for torchtitan (pytorch/torchtitan {TORCHTITAN_COMMIT}, "
             "torchtitan/config/job_config.py)",
             "[parallelism]",
             f"data_parallel_replicate_degree = {dp if shard == 1 else 1}",
             f"data_parallel_shard_degree = {shard}",
             f"tensor_parallel_degree = {p['tp']}",
             f"pipeline_parallel_degree = {p['pp']}",
             f"pipeline_parallel_schedule = \"{TORCHTITAN_SCHEDULES[p['schedule']]}\"",
             f"context_parallel_degree = {p['cp']}",
             f"expert_parallel_degree = {p['ep'] if run.arch.is_moe else 1}"]
    if p["zero"] == 2:
        lines.append('fsdp_reshard_after_forward = "never"')
    if p["pp"] > 1:
        split = torchtitan_split(est)
        if split is None:   # no layers_per_stage gives pp x vpp stages: each stage's modules, listed
            fqns = torchtitan_fqns(run.arch.n_layers, p["pp"] * (p.get("vpp") or 1))
            lines.append("module_fqns_per_model_part = [" + ", ".join(
                "[" + ", ".join(f'"{m}"' for m in st) + "]" for st in fqns) + "]")
        else:
            lines.append(f"pipeline_parallel_layers_per_stage = {split[0]}")
        lines.append(f"pipeline_parallel_microbatch_size = {p['micro_batch']}")
        if split is not None:
            lines += [f"pipeline_parallel_first_stage_less_layers = {split[1]}",
                      f"pipeline_parallel_last_stage_less_layers = {split[2]}"]
        note = torchtitan_split_note(est)
        if note:
            lines.insert(1, f"# note: {note}")
    lines += ["", "[activation_checkpoint]", f"mode = \"{p['recompute']}\""]
    lines += ["", "[training]", f"seq_len = {run.training.seq_len}",
              f"local_batch_size = {max(run.training.batch_seqs // dp, 1)}",
              f"global_batch_size = {run.training.batch_seqs}"]
    if run.training.precision == "fp8":
        # the estimate assumes FP8 GEMMs: without this section the emitted config trains in BF16
        recipe = fp8_recipe_of(run)
        lines += ["", "# FP8 GEMMs: torchao Float8Linear, tensor-wise dynamic scaling "
                  "(pytorch/torchtitan docs/float8.md, 57387af0e, 2025-02-15: --model.converters=\"float8\")"]
        if recipe != "current":
            lines.append(f"# note: the run states fp8_recipe {recipe}; torchtitan's float8 converter scales each "
                         "tensor by its own amax (current scaling)")
        lines += ["[model]", 'converters = ["float8"]']
    return "\n".join(lines)


def _stated_ends(est) -> tuple[int | None, int | None]:
    p = _plan_of(est)
    return p.get("first_stage_layers"), p.get("last_stage_layers")


def torchtitan_split(est) -> tuple[int, int, int] | None:
    """(pipeline_parallel_layers_per_stage, first_stage_less_layers, last_stage_less_layers) for a pp > 1 plan:
    those reproducing the run's stated first / last stage sizes (:func:`torchtitan_stage_weights`) when
    expressible, else ceil(L / S) layers per stage with the S x ceil(L / S) - L spare layers taken off the first
    and last stages (the first one more) where torchtitan accepts those weights (:func:`torchtitan_rank_layers`),
    else the smallest weights it accepts; None where no layers_per_stage gives the S = pp x vpp stages (32 layers
    in 6 x 5 stages: k = 2 needs a + b = 27 or 28 with a, b <= 2): the config then lists each stage's modules
    (:func:`torchtitan_fqns`)."""
    p, L = _plan_of(est), est.run.arch.n_layers
    vpp = p.get("vpp") or 1
    first, last = _stated_ends(est)
    if first is not None or last is not None:
        got = torchtitan_stage_weights(L, p["pp"], vpp, first, last)
        if got is not None:
            return got
    stages = p["pp"] * vpp
    per = math.ceil(L / stages)
    spare = per * stages - L
    a, b = spare - spare // 2, spare // 2
    if torchtitan_rank_layers(L, p["pp"], vpp, a, b) is None:
        # torchtitan would refuse these weights ('input_weight ... exceeds minimum layers per stage'): the
        # smallest weights it accepts for this stage count, else None (the stages listed module by module)
        return torchtitan_stage_weights(L, p["pp"], vpp, None, None)
    return per, a, b


def torchtitan_fqns(n_layers: int, stages: int) -> list[list[str]]:
    """The modules of each of ``stages`` pipeline stages as torchtitan's ``module_fqns_per_model_part`` for a stage
    count no ``pipeline_parallel_layers_per_stage`` gives: torchtitan builds the stages from that list as given
    (pytorch/torchtitan torchtitan/models/llama3/infra/pipeline.py ``pipeline_llama`` at 24e91056a: the list
    replaces ``generate_llm_fqn_per_model_part``; distributed/pipeline_parallel.py ``pipeline_module_split``: stage
    s on rank s mod pp, looped). The list is torchtitan's own ``generate_llm_fqn_per_model_part(stages, n_layers,
    input_weight=0, output_weight=0)``: L // S decoder layers per stage, the first L % S stages one more,
    ``tok_embeddings`` on the first and ``norm``, ``output`` on the last. An error where S > L (a stage without a
    layer; torchtitan: 'Configuration would result in empty stages')."""
    base, extra = divmod(n_layers, stages)
    if base == 0:
        raise TrainsimError(f"torchtitan cannot split {n_layers} layers into {stages} pipeline stages (a stage "
                            f"without a layer: 'Configuration would result in empty stages')", field="plan.vpp")
    out, nxt = [], 0
    for s in range(stages):
        k = base + (1 if s < extra else 0)
        out.append((["tok_embeddings"] if s == 0 else []) + [f"layers.{i}" for i in range(nxt, nxt + k)]
                   + (["norm", "output"] if s == stages - 1 else []))
        nxt += k
    return out


def torchtitan_split_note(est) -> str | None:
    """One line when the run states first / last stage sizes torchtitan's weights cannot express: what was
    asked and the layers per rank the emitted config runs instead; None otherwise."""
    p = _plan_of(est)
    first, last = _stated_ends(est)
    if p["pp"] < 2 or (first is None and last is None):
        return None
    L, vpp = est.run.arch.n_layers, p.get("vpp") or 1
    if torchtitan_stage_weights(L, p["pp"], vpp, first, last) is not None:
        return None
    split = torchtitan_split(est)
    if split is None:
        per_stage = [len([m for m in st if m.startswith("layers.")]) for st in torchtitan_fqns(L, p["pp"] * vpp)]
        ranks: list[int] | None = [sum(per_stage[r::p["pp"]]) for r in range(p["pp"])]
    else:
        ranks = torchtitan_rank_layers(L, p["pp"], vpp, split[1], split[2])
    asked = ", ".join(f"{k} {v} layers" for k, v in (("first stage", first), ("last stage", last)) if v is not None)
    return (f"torchtitan cannot express the stated split ({asked} of {L}, pp {p['pp']}, vpp {vpp}): its "
            f"pipeline_parallel_first/last_stage_less_layers only take layers off the first and last stages; the "
            f"config runs {','.join(map(str, ranks))} layers per rank instead")


def emit_notes(est, framework: str) -> list[str]:
    """Lines for stderr that the emitted flags do not carry out the plan as stated (torchtitan: a stage split it
    cannot express; any emitter but Megatron-LM's: a stated activation offload or ZeRO sharding group, which it does
    not write)."""
    out = []
    if framework == "torchtitan":
        note = torchtitan_split_note(est)
        out += [f"note: --emit torchtitan: {note}"] if note else []
    inst = optimizer_instances(est.run, _plan_of(est))
    if inst > 1 and framework not in MEGATRON_ARGUMENT_SET:   # megatron_runtime_flags writes the instances
        out.append(f"note: --emit {framework}: the plan's ZeRO sharding group (training.zero_shard_group, "
                   f"{inst} copies of the sharded states across dp x cp) is not written; the emitted job shards "
                   "over every data-parallel rank")
    off = _plan_value(_plan_of(est), "offload_activation_layers")
    if off and framework != "megatron":   # megatron_runtime_flags writes --cpu-offloading-num-layers
        out.append(f"note: --emit {framework}: the plan's offload_activation_layers {off} is not written (this "
                   f"emitter has no activation-offload flag); the predicted step keeps {off} layers' activations "
                   f"per rank in host memory")
    return out


def emit_args(est, framework: str) -> str:
    """The plan of ``est`` (an :class:`~trainsim.estimate.Estimate`) as framework input (see module docstring)."""
    if framework not in EMITTERS:
        raise TrainsimError(f"expected one of {', '.join(EMITTERS)}, got {framework!r}", field="--emit")
    if framework == "torchtitan":
        return torchtitan_toml(est)
    if framework == "mindspeed" and _plan_of(est)["zero"] >= 3:
        args, notes = mindspeed_fsdp2_args(est)
        header = (f"trainsim plan for MindSpeed-LLM's FSDP2 backend: {est.run.arch.name} on {est.run.chips:,} x "
                  f"{est.run.system.chip.id}, step {est.step_time_s:.3g} s predicted")
        return _bash("TRAINSIM_ARGS", args, notes, header, "torchrun ... train_fsdp2.py <your YAML>")
    if framework == "primus":
        args, notes = primus_args(est)
        header = (f"trainsim plan for {EMITTER_TARGETS[framework]}: {est.run.arch.name} on {est.run.chips:,} x "
                  f"{est.run.system.chip.id}, step {est.step_time_s:.3g} s predicted")
        return _bash("TRAINSIM_ARGS", args, notes, header,
                     "EXP=<your experiment YAML> bash examples/run_pretrain.sh")
    args, notes = megatron_args(est, framework)
    who = EMITTER_TARGETS[framework]
    header = (f"trainsim plan for {who}: {est.run.arch.name} on {est.run.chips:,} x {est.run.system.chip.id}, "
              f"step {est.step_time_s:.3g} s predicted")
    script = "pretrain_gpt.py" if framework == "megatron" else "pretrain_gpt.py (MindSpeed-LLM)"
    return _bash("TRAINSIM_ARGS", args, notes, header, f"torchrun ... {script}")
