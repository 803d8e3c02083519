"""Which plans are valid for a model, a cluster and a batch: every rule in one place, vectorised.

``check(plans, ...)`` returns a reason code per plan (0 = valid); ``REASONS`` says, per code, which field broke
which rule. The search counts rejections by reason; ``estimate`` turns the first failure into a one-line error.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import numpy as np

from ..errors import TrainsimError
from ..model.arch import Arch
from .batch import fit_batch, plan_batch, within
from .plan import Plans
from .schedules import (batch_multiple_of_pp, even_pp_min_m, mindspeed_dualpipev, names_where, needs_pp,
                        virtual_stages)

#: how a stack writes uneven pipeline stages (the profile's ``stage_flags``, :func:`stage_flags_ok`):
#: Megatron-Core's --decoder-first/last-pipeline-num-layers without (core 0.9, 0.10) or with (core 0.11, 0.12)
#: virtual stages, its --pipeline-model-parallel-layout (core 0.13 on; also the reading of a profile that states
#: none), MindSpeed-LLM's --num-layer-list
STAGE_FLAGS = ("decoder_no_vpp", "decoder_vpp_multiple", "layout", "num_layer_list")



def _or(names: tuple[str, ...]) -> str:
    return " or ".join(names)


REASONS = {
    1: ("chips", "chips must be a multiple of tp x pp x cp (dp = chips / (tp pp cp)); a plan may leave whole "
                 "scale-up domains idle (parallel/batch.py), never more chips than there are"),
    2: ("tp", "tp must divide the attention heads and the key/value heads"),
    3: ("pp", "each of a rank's vpp model chunks must hold at least one layer: pp x vpp <= the layers, counting "
              "the embedding and the loss (and MTP) as one each under the balanced split (Megatron-Core "
              "--account-for-embedding/loss-in-pipeline-split: get_num_layers_to_build asserts 'Not enough layers "
              "in the first virtual pipeline stage'), and each stated first / last stage at least vpp of them (the "
              "count a stack's flags need: rule 24)"),
    4: ("ep", "ep must divide the number of routed experts (and be 1 for a dense model)"),
    5: ("ep", "ep x etp must divide tp x cp x dp (the chips of one pipeline stage)"),
    6: ("etp", "etp must divide the expert intermediate size (and be 1 for a dense model)"),
    7: ("cp", "seq_len must be divisible by 2 x cp (load-balanced causal chunks)"),
    8: ("micro_batch", "global batch (sequences) must be a multiple of dp x micro_batch (within batch_tolerance)"),
    9: ("vpp", f"vpp > 1 needs the {_or(names_where('virtual_stages'))} schedule and pp > 1; "
               f"{_or(names_where('virtual_stages'))} needs vpp > 1"),
    10: ("schedule", f"{_or(names_where('batch_multiple_of_pp'))} needs the number of micro-batches to be a multiple "
                     "of pp (within batch_tolerance); a stack with Megatron-Core's micro-batch groups "
                     "(--microbatch-group-size-per-virtual-pipeline-stage, core 0.10 on) needs at least pp"),
    11: ("schedule", f"{_or(names_where('even_pp_min_m'))} needs an even pp and at least pp micro-batches"),
    12: ("node_limit", "node_limit needs ep > 1"),
    13: ("tp", "tp must divide the hidden size"),
    14: ("pp", f"pipeline schedules need pp > 1 for {' and '.join(names_where('needs_pp'))}"),
    15: ("vpp", "this software stack splits the layers evenly: pp must divide the layers and vpp the layers per "
                "pipeline stage (Megatron's --num-layers-per-virtual-pipeline-stage)"),
    16: ("zero", "this software stack shards weights (ZeRO-3) only in its FSDP2 backends, which have no pipeline "
                 "or expert tensor parallelism: zero 3 needs pp 1 and etp 1"),
    17: ("schedule", "this software stack runs {} as MindSpeed's dualpipev with --moe-fb-overlap, which refuse expert "
                     "tensor parallelism and context parallelism: it needs etp 1 and cp 1"
                     .format(_or(names_where("mindspeed_dualpipev")))),
    18: ("pp", f"this software stack runs {_or(names_where('virtual_stages'))} only with pp > 2 (Megatron-LM's "
               "'pipeline-model-parallel size should be greater than 2 with interleaved schedule', 2021 to May 2024)"),
    19: ("pp", "the stated first_stage_layers / last_stage_layers must leave the other pipeline ranks some layers "
               "when there are other ranks and none when there are not: pp > 1, at most the model's layers on the "
               "stated ranks, and layers left over exactly when pp exceeds the stated ranks (Megatron-Core's "
               "'Mismatch: N middle layers remaining but M middle PP stages available')"),
    20: ("cp", "context parallelism needs a fused attention kernel: the unfused core (training.attention unfused, "
               "or the stack's default) runs only at cp 1 (Megatron-Core's DotProductAttention: 'Context "
               "parallelism is only supported by TEDotProductAttention!')"),
    21: ("pp", "this stack splits the layers evenly: pp must divide the number of layers, pp x vpp when "
               "interleaved (Megatron-LM's 'Number of layers should be divisible by the pipeline-model-parallel "
               "size'; the profile's uneven_stages: false)"),
    22: ("dp", "dp x cp must be a multiple of training.zero_shard_group: the ZeRO sharding groups split the "
               "data-parallel ranks into whole groups (DeepSpeed's MiCS, deepspeed/runtime/zero/mics_utils.py "
               "_generate_mics_config: 'dp group size is not dividable by dp_shard_size')"),
    23: ("pp", "this stack's uneven stages are the first and the last (Megatron-Core's --decoder-first/last-pipeline-"
               "num-layers): the layers the stated first_stage_layers / last_stage_layers leave must split evenly over "
               "the other pipeline ranks ('With uneven pipelineing the left over layers must be divisible by left "
               "over stages', megatron/core/transformer/transformer_block.py)"),
    24: ("vpp", "this stack's flags cannot write the pipeline stages with virtual stages: Megatron-Core 0.9 and 0.10 "
                "refuse uneven stages with the interleaved schedule ('Uneven number of layer not compatible with "
                "interleaved pipeline schedule'); 0.11 and 0.12 need the first, the last and each middle rank's "
                "layers a multiple of vpp ('number of layers at first stage: ... must be divisible by virtual "
                "pipeline parallel degree'), or the balanced split of --account-for-embedding/loss-in-pipeline-split; "
                "MindSpeed-LLM refuses --num-layer-list beside virtual stages and dualpipev ('Dynamic pipeline model "
                "and virtual pipeline cannot be enabled at the same time')"),
}


def check(p: Plans, arch: Arch, chips: int, seq_len: int, batch_seqs: float, batch_tol: float = 0.0,
          use_all: bool = False, only: Collection[int] | None = None, even_vpp: bool = False,
          zero3_fsdp2: bool = False, dualpipev_fb_overlap: bool = False,
          microbatch_groups: bool = False, vpp_min_pp3: bool = False,
          first_stage_layers: int | None = None, last_stage_layers: int | None = None,
          unfused_attention: bool = False, even_pp: bool = False, zero_shard_group: int = 0,
          split_units: tuple[int, int] = (0, 0), stage_flags: str = "layout") -> np.ndarray:
    """Reason code per plan, 0 where the plan is valid; the first broken rule wins.

    ``batch_seqs`` is the stated batch; each plan uses the nearest batch its dp x micro-batch (x pp when
    interleaved) divides, valid within ``batch_tol`` (:mod:`trainsim.parallel.batch`). A plan may use fewer chips
    than ``chips`` (idle) unless ``use_all``. Fields a caller has not expanded yet may hold their most permissive
    values (ep = etp = vpp = micro_batch = 1, 1F1B), so the enumerator applies these rules stage by stage;
    ``only`` (a set of codes) checks just those rules, for rows known to pass the others. ``even_vpp``: the run's
    software stack builds interleaved stages only from an even split (the profile's ``vpp_divides_stage_layers``,
    :func:`even_vpp_ok`). ``zero3_fsdp2``: the stack runs ZeRO-3 only at pp 1 and etp 1 (the profile's flag
    of that name, :func:`zero3_fsdp2_ok`). ``dualpipev_fb_overlap``: the stack's DualPipe is MindSpeed's dualpipev
    with --moe-fb-overlap (the profile's flag of that name, :func:`dualpipev_fb_overlap_ok`). ``microbatch_groups``:
    the stack runs the interleaved schedule in micro-batch groups (the profile's ``vpp_microbatch_groups``), so
    rule 10 asks m >= pp instead of pp dividing m (:func:`trainsim.parallel.schedules.microbatch_group`).
    ``vpp_min_pp3``: the stack runs the interleaved schedule only with pp > 2 (the profile's flag of that name:
    Megatron-LM megatron/arguments.py asserted it from 182841f7df, 20 Mar 2021, until 3ee489d9ea, 31 May 2024).
    ``first_stage_layers`` / ``last_stage_layers``: the run's uneven pipeline stages (plan options), which every
    plan's pp must hold (rule 19, :func:`stage_layers_ok`). ``unfused_attention``: the run's attention kernel is
    the unfused core (scores materialised), which no stack runs under context parallelism (rule 20): Megatron-Core's
    local DotProductAttention asserts cp 1 (megatron/core/transformer/dot_product_attention.py, 'Context parallelism
    is only supported by TEDotProductAttention!', NVIDIA/Megatron-LM core_r0.6.0 to d98e8a6), Transformer Engine's
    ring runs only its flash and fused backends, and PyTorch's experimental ring only the flash / efficient SDPA
    kernels (torchtitan utils.get_train_context); ring attention merges partial softmax results, which needs the
    online-softmax kernels. ``even_pp``: the stack has no uneven pipeline stages (the profile's ``uneven_stages:
    false``), so pp x vpp must divide the layers, + 1 for the embedding and + 1 for the loss under the balanced split
    (rule 21, :func:`even_pp_ok`). ``zero_shard_group``: the run's stated
    ZeRO sharding group (``training.zero_shard_group``; 0: none), which must divide dp x cp (rule 22): MiCS
    reshapes the data-parallel ranks into rows of the group's size and asserts that they divide evenly (microsoft/
    DeepSpeed deepspeed/runtime/zero/mics_utils.py ``_generate_mics_config`` at 28aed966f7), so a group of 5 on
    dp 32 is not a smaller group of gcd(32, 5) = 1 but a job that does not start. ``split_units``: the units the
    first and the last rank hold besides decoder layers, (embedding, loss + MTP modules) under the balanced split
    (:func:`trainsim.frameworks.run_plan_rules`), (0, 0) otherwise: each model chunk holds at least one unit (rule
    3, :func:`chunks_filled_ok`). ``stage_flags``: how the stack writes uneven stages (the profile's ``stage_flags``,
    :data:`STAGE_FLAGS`): Megatron-Core's first / last flags need the middle ranks to split the rest evenly (rule
    23, :func:`middle_ranks_ok`) and each stack's flags have their own rule with virtual stages (rule 24,
    :func:`stage_flags_ok`)."""
    n = len(p)
    code = np.zeros(n, dtype=np.int64)

    def want(c: int) -> bool:
        return only is None or c in only

    def rule(bad: np.ndarray | bool, c: int) -> None:
        nonlocal code
        code = np.where((code == 0) & bad, c, code)

    split = [c for lk in arch.layers for c in lk.attention if not c.tp_replicated]  # replicated cores: any tp
    heads = [c.heads for c in split] or [1]
    kvh = [c.kv_heads for c in split] or [1]
    moe = [lk.moe for lk in arch.layers if lk.moe is not None]
    if want(1):
        used = p.tp * p.pp * p.cp * p.dp
        rule((used > chips) | (used < 1) | ((used != chips) if use_all else False), 1)
    if want(2):
        bad_tp = np.zeros(n, dtype=bool)
        for h in set(heads) | set(kvh):
            bad_tp |= (h % p.tp) != 0
        rule(bad_tp, 2)
    if want(13):
        rule((arch.hidden % p.tp != 0), 13)
    if want(3):
        rule(~chunks_filled_ok(arch.n_layers, p.pp, p.vpp, first_stage_layers, last_stage_layers, split_units), 3)
    if moe:
        bad_ep = np.zeros(n, dtype=bool)
        bad_etp = np.zeros(n, dtype=bool)
        for m in moe:
            bad_ep |= (m.experts % p.ep) != 0
            bad_etp |= (m.expert_ffn % p.etp) != 0
        if want(4):
            rule(bad_ep, 4)
        if want(5):
            rule(((p.tp * p.cp * p.dp) % (p.ep * p.etp)) != 0, 5)
        if want(6):
            rule(bad_etp, 6)
    else:
        if want(4):
            rule(p.ep != 1, 4)
        if want(6):
            rule(p.etp != 1, 6)
    if want(7):
        rule(((seq_len % (2 * p.cp)) != 0) & (p.cp > 1), 7)
    if want(8):
        rule(~within(fit_batch(batch_seqs, p.dp * p.mb), batch_seqs, batch_tol), 8)
    virt = virtual_stages(p.schedule)
    if want(9):
        rule(((p.vpp > 1) & ~virt) | (virt & ((p.vpp < 2) | (p.pp < 2))), 9)
    if want(10) or want(11):
        used_batch = plan_batch(batch_seqs, p.dp, p.mb, p.pp, p.schedule, microbatch_groups)
        m = used_batch // np.maximum(p.dp * p.mb, 1)     # micro-batches per step, for rules 10 and 11
    if want(10):
        short = (m < p.pp) if microbatch_groups else False
        rule(batch_multiple_of_pp(p.schedule) & (~within(used_batch, batch_seqs, batch_tol) | short), 10)
    if want(14):
        rule(needs_pp(p.schedule) & (p.pp < 2), 14)
    if want(11):
        rule(even_pp_min_m(p.schedule) & ((p.pp % 2 != 0) | (m < p.pp) | ~within(used_batch, batch_seqs, batch_tol)),
             11)
    if want(12):
        rule((p.node_limit > 0) & (p.ep < 2), 12)
    if even_vpp and want(15):
        rule(~even_vpp_ok(arch.n_layers, p.pp, p.vpp), 15)
    if vpp_min_pp3 and want(18):
        rule(virt & (p.pp < 3), 18)
    if (first_stage_layers is not None or last_stage_layers is not None) and want(19):
        rule(~stage_layers_ok(arch.n_layers, p.pp, first_stage_layers, last_stage_layers), 19)
    if even_pp and want(21) and first_stage_layers is None and last_stage_layers is None:
        # Megatron-Core's even split counts the embedding and the loss as one layer each under
        # --account-for-embedding/loss-in-pipeline-split (get_num_layers_to_build: num_layers += 1 per option)
        rule(~even_pp_ok(arch.n_layers + min(split_units[0], 1) + min(split_units[1], 1), p.pp, p.vpp), 21)
    if stage_flags.startswith("decoder") and want(23):
        rule(~middle_ranks_ok(arch.n_layers, p.pp, first_stage_layers, last_stage_layers), 23)
    if stage_flags != "layout" and want(24):
        rule(~stage_flags_ok(arch.n_layers, p.pp, p.vpp, p.schedule, first_stage_layers, last_stage_layers,
                             stage_flags, split_units), 24)
    if unfused_attention and want(20):
        rule(p.cp > 1, 20)
    if zero_shard_group and want(22):
        rule((p.dp * p.cp) % zero_shard_group != 0, 22)
    if dualpipev_fb_overlap and want(17):
        rule(~dualpipev_fb_overlap_ok(p.schedule, p.etp, p.cp), 17)
    # last: zero is the search's last axis (parallel/enumerate.py), so a plan both rules refuse counts as 17 there too
    if zero3_fsdp2 and want(16):
        rule(~zero3_fsdp2_ok(p.zero, p.pp, p.etp), 16)
    return code


def even_vpp_ok(layers: int, pp: np.ndarray, vpp: np.ndarray) -> np.ndarray:
    """Whether an interleaved plan (vpp > 1) splits ``layers`` evenly: pp divides the layers and vpp the layers per
    pipeline stage; plans without virtual stages pass. Megatron-LM sets vpp = (layers / pp) / N from
    ``--num-layers-per-virtual-pipeline-stage N`` and builds (layers / pp) / vpp layers per model chunk
    (NVIDIA/Megatron-LM v2.5 megatron/arguments.py and megatron/model/transformer.py ``_get_num_layers``, 2021);
    Megatron-Core asserts both divisions (megatron/training/arguments.py at core_r0.8.0 through core_r0.11.0:
    'number of layers should be divisible by the pipeline parallel size', 'number of layers per pipeline stage
    must be divisible number of layers per virtual pipeline stage')."""
    pp = np.maximum(np.asarray(pp), 1)
    v = np.maximum(np.asarray(vpp), 1)
    per_stage = layers // pp
    return (v <= 1) | (((layers % pp) == 0) & ((per_stage % v) == 0))


def even_pp_ok(layers: int, pp: np.ndarray, vpp: np.ndarray | int = 1) -> np.ndarray:
    """Whether ``pp`` pipeline ranks of ``vpp`` model chunks each split ``layers`` decoder layers evenly:
    layers mod (pp x vpp) = 0. Stacks without uneven stages assert it: Megatron-LM v2.5 / v3.0 / 23.08
    megatron/model/transformer.py ``_get_num_layers`` ('num_layers must be divisible by
    transformer_pipeline_model_parallel_size'; interleaved, megatron/arguments.py sets vpp = (layers / pp) / N and
    builds (layers / pp) / vpp layers per chunk), Megatron-Core megatron/training/arguments.py ('Number of layers
    should be divisible by the pipeline-model-parallel size', core_r0.10.0 line 333, d98e8a64 line 998: asserted
    unless --decoder-first/last-pipeline-num-layers are set) and megatron/core/transformer/transformer_block.py
    ``get_num_layers_to_build`` at d98e8a64dd (lines 156-178: num_layers % pp == 0, then 'num_layers_per_pipeline_rank
    ... should be divisible by vp_size'). ``layers`` is what that function divides: the decoder layers, + 1 with
    --account-for-embedding-in-pipeline-split and + 1 with --account-for-loss-in-pipeline-split (lines 148-154;
    options since ef490839e8, Feb 2025, core_r0.11.0; the balanced split of a run, :func:`check` rule 21). Example:
    Llama 3.1 8B's 32 layers at pp 4, vpp 2: 32 / 8 = 4 per chunk, valid; pp 4, vpp 3: 32 / 12, refused; balanced,
    34 units: pp 2 and pp 17 divide them, pp 4 does not."""
    stages = np.maximum(np.asarray(pp), 1) * np.maximum(np.asarray(vpp), 1)
    return (np.asarray(layers) % stages) == 0


def chunks_filled_ok(layers: int, pp: np.ndarray, vpp: np.ndarray, first: int | None = None,
                     last: int | None = None, split_units: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Whether every one of the pp x vpp model chunks of an interleaved pipeline can hold at least one unit:
    a decoder layer, or the embedding / the loss (and MTP modules) where the split counts them
    (``split_units`` = (units the first rank holds besides layers, units the last rank does): (1, 1 + MTP) under
    Megatron-Core's balanced split, --account-for-embedding/loss-in-pipeline-split, whose
    ``get_num_layers_to_build`` at d98e8a64dd lets the first chunk be the embedding alone, asserting only
    'num_layers_to_build >= 0', lines 189-200). Megatron-Core builds num_layers_per_pipeline_rank // vp_size layers
    per chunk (transformer_block.py lines 175-179), so a chunk with none is a rank short of layers; the engine's
    interleaved bubble (p - 1) / (v m + p - 1) and its per-rank layers ceil(L / (pp vpp)) x vpp
    (memory.even_rank_layers) assume every chunk holds work. This is the whole rule on a stack with
    --pipeline-model-parallel-layout, which places any count per chunk; what other stacks' flags need beside it
    (Megatron-Core 0.11 and 0.12: each count a multiple of vpp) is rule 24, :func:`stage_flags_ok`.

    No stated stages: the U = layers + both units spread over the ranks leave the least-loaded one floor(U / pp)
    units, so U >= pp x vpp. Stated ``first`` / ``last`` (rule 19 checks the rest): each of those ranks needs
    its count plus its units >= vpp, and the other ranks share the remaining layers (with the units of an unstated
    end): floor(rest / (pp - stated)) >= vpp. Example: Llama 3.1 8B, 32 layers, pp 6, vpp 6: 36 chunks for 32
    layers, refused; Llama 3.1 405B, 126 layers, pp 16, vpp 8 under the balanced split: 126 + 2 = 128 units, one
    per chunk, valid (the Llama 3 paper's plan)."""
    pp = np.maximum(np.asarray(pp), 1)
    v = np.maximum(np.asarray(vpp), 1)
    e_units, l_units = split_units
    if first is None and last is None:
        return (layers + e_units + l_units) >= pp * v
    n_stated = (first is not None) + (last is not None)
    rest = layers - (first or 0) - (last or 0) + (e_units if first is None else 0) + (l_units if last is None else 0)
    others = pp - n_stated
    ok = (others < 1) | ((rest // np.maximum(others, 1)) >= v)
    if first is not None:
        ok &= (first + e_units) >= v
    if last is not None:
        ok &= (pp < 2) | ((last + l_units) >= v)
    return ok


def middle_ranks(layers: int, pp: Any, first: int | None, last: int | None) -> tuple[Any, int]:
    """(other ranks, layers left for them) of stated ``first`` / ``last`` stage sizes (None: that rank is one of the
    others): pp minus the stated ranks, and the layers minus the stated counts. The one place this split is made
    (rules 19, 23 and 24 here; the emitters' per-rank lists, trainsim/emit.py ``stated_rank_layers``; the refusal
    of spec.check_plan_options). Example: 61 layers, pp 8, first 7, last 6: (6, 48)."""
    return pp - (first is not None) - (last is not None), layers - (first or 0) - (last or 0)


def stage_layers_ok(layers: int, pp: np.ndarray, first: int | None, last: int | None) -> np.ndarray:
    """Whether a pipeline of ``pp`` ranks can hold ``layers`` decoder layers with ``first`` on its first rank and
    ``last`` on its last (either None: that rank takes an even share of the rest, as the middle ranks do): pp > 1,
    the stated ranks hold at most ``layers``, and layers are left for the other ranks exactly when there are other
    ranks. Megatron-Core's TransformerConfig refuses the rest ('Mismatch: {num_layers} middle layers remaining but
    {pipeline_parallel_size} middle PP stages available', megatron/core/transformer/transformer_config.py
    ``__post_init__``, "Uneven PP", NVIDIA/Megatron-LM at d98e8a64); a pp-1 run has no first or last stage to size
    (spec.check_plan_options). Without the rule the engine's stage sizes (perf/memory.py ``rank_layers``) dropped
    or invented layers: first 1 and last 1 of a 32-layer model at pp 2 put 2 layers on the pipeline and predicted
    an MFU of 4.6. Even division of the rest is not required here: rank_layers rounds the middle ranks up, and the
    Megatron emitter notes an uneven rest (trainsim/emit.py)."""
    pp = np.asarray(pp)
    if first is None and last is None:
        return np.ones(np.shape(pp), dtype=bool)
    others, rest = middle_ranks(layers, pp, first, last)
    return (pp > 1) & (rest >= 0) & ((rest > 0) == (others > 0))


def middle_ranks_ok(layers: int, pp: np.ndarray, first: int | None, last: int | None) -> np.ndarray:
    """Whether the layers a stated ``first`` / ``last`` stage leaves split evenly over the other pipeline ranks, as
    Megatron-Core's --decoder-first/last-pipeline-num-layers need (rule 23; plans without stated stages, or with no
    other rank, pass): (layers - first - last) mod (pp - stated) = 0. Megatron-Core asserts it from the flags' first
    commit, NVIDIA/Megatron-LM fa8bb5921b (5 Sep 2024, core_r0.9.0) to d98e8a64dd: get_num_layers_to_build,
    megatron/core/transformer/transformer_block.py ('With uneven pipelineing the left over layers must be divisible
    by left over stages'), and from ef490839e8 (core_r0.11.0) also TransformerConfig.__post_init__ ('number of
    layers at middle stage: {num_layers} must be divisible by the middle pipeline model parallel size'). A stack with
    --pipeline-model-parallel-layout or --num-layer-list places an uneven rest (the emitter writes it so,
    trainsim/emit.py). Example: 61 layers, pp 8, first 7, last 6: 48 over 6 ranks, 8 each, valid; first 6, last 6:
    49 over 6, refused."""
    pp = np.asarray(pp)
    if first is None and last is None:
        return np.ones(np.shape(pp), dtype=bool)
    others, rest = middle_ranks(layers, pp, first, last)
    return (others < 1) | ((rest % np.maximum(others, 1)) == 0)


def stage_flags_ok(layers: int, pp: np.ndarray, vpp: np.ndarray, schedule: np.ndarray, first: int | None,
                   last: int | None, flags: str, split_units: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Whether a stack whose uneven stages are written as ``flags`` (:data:`STAGE_FLAGS`, the profile's
    ``stage_flags``) can write the plan's pipeline stages, the stated ``first`` / ``last`` or (both None) the
    split the emitter chooses where pp x vpp does not divide the layers (rule 24; the middle ranks' even share is
    rule 23).

    ``decoder_no_vpp``, Megatron-Core fa8bb5921b (5 Sep 2024) to ef490839e8 (core_r0.9.0, core_r0.10.0):
    get_num_layers_to_build asserts 'Uneven number of layer not compatible with interleaved pipeline schedule'
    (megatron/core/transformer/transformer_block.py at core_r0.10.0, lines 56-59): stated stages, or an uneven
    split, only at vpp 1. ``decoder_vpp_multiple``, ef490839e8 ('Uneven Virtual Pipeline Parallelism', 3 Feb 2025,
    core_r0.11.0) to 77732c3628 (core_r0.12.0 is 3cdfd613): TransformerConfig.__post_init__ raises 'number of layers
    at first stage: {n} must be divisible by virtual pipeline parallel degree {vpp}', the same at the last stage and
    'number of layers on each middle pipeline rank: {n} must be divisible by virtual pipeline parallel degree'
    (megatron/core/transformer/transformer_config.py at 3cdfd613, lines 779-842; unchanged at 847781764f and
    d98e8a64dd). Stated stages pass when the three counts are multiples of vpp, or when they are the balanced
    split that --account-for-embedding-in-pipeline-split --account-for-loss-in-pipeline-split build: the L + 2
    units divisible by pp, q = (L + 2) / pp a multiple of vpp, first = last = q - 1 (__post_init__ at 3cdfd613:
    'num_layers: ... after enable account_for_embedding_in_pipeline_split or account_for_loss_in_pipeline_split
    must be divisible by pipeline_model_parallel_size', 'number of layers on each pipeline rank ... must be
    divisible by virtual_pipeline_model_parallel_size'), which the NeMo 2.x Llama 3.1 405B recipe sets (pp 8, vpp 8:
    15 + 1, 6 x 16, 15 + 1). Unstated, an uneven split is writable when every rank's count can be a multiple of
    vpp with the first and last at most the M = ceil(L / (pp vpp)) x vpp layers priced per rank (perf/memory.py
    even_rank_layers): vpp divides L and the middle ranks' (pp - 2) M leave the ends at least vpp each,
    (pp - 2) M / vpp <= L / vpp - 2 (:func:`trainsim.emit.stage_split` then finds them); under the balanced split
    rule 21 decides. ``num_layer_list``, MindSpeed-LLM: --num-layer-list refuses virtual stages and dualpipev
    ('Dynamic pipeline model and virtual pipeline cannot be enabled at the same time', '... and dualpipev cannot be
    enabled at the same time': mindspeed_llm/features_manager/pipeline_parallel/num_layer_list.py validate_args at
    Ascend/MindSpeed-LLM c77308a1; the vpp refusal since 054b99e0, Jul 2024), so stated stages need vpp 1 and
    another schedule; an uneven split without them is padded with --noop-layers (trainsim/emit.py
    mindspeed_noop_layers). ``layout`` (Megatron-Core 77732c3628 on, --pipeline-model-parallel-layout: any layer
    count per model chunk, PipelineParallelLayerLayout.validate_layer_layout at d98e8a64dd asks only the decoder
    layer total, one embedding first and one loss last): every plan passes. Examples: 126 layers, pp 8, vpp 8,
    first = last = 15: not multiples of 8, but the balanced split (128 / 8 = 16 a multiple of 8): valid under
    ``decoder_vpp_multiple``, refused under ``decoder_no_vpp``; 61 layers, pp 2, vpp 8, first 31, last 30:
    refused under both."""
    pp = np.maximum(np.asarray(pp), 1)
    v = np.maximum(np.asarray(vpp), 1)
    ones = np.ones(np.broadcast(pp, v).shape, dtype=bool)
    stated = first is not None or last is not None
    if flags == "layout":
        return ones
    if flags == "num_layer_list":
        return ((v <= 1) & ~mindspeed_dualpipev(schedule)) if stated else ones
    if not stated and split_units != (0, 0):
        return ones                                          # the balanced split's own flags: rule 21
    if flags == "decoder_no_vpp":
        return (v <= 1) | ((layers % (pp * v) == 0) if not stated else False)
    if not stated:
        most = -(-layers // (pp * v))                        # M / vpp: ceil(L / (pp vpp))
        fits = (layers % v == 0) & ((pp - 2) * most <= layers // v - 2)
        return (v <= 1) | (layers % (pp * v) == 0) | fits
    return decoder_flags_ok(layers, pp, v, first, last) | balanced_flags_ok(layers, pp, v, first, last)


def decoder_flags_ok(layers: int, pp: np.ndarray, vpp: np.ndarray, first: int | None,
                     last: int | None) -> np.ndarray:
    """Whether Megatron-Core 0.11 on takes the stated ``first`` / ``last`` stage sizes as
    --decoder-first/last-pipeline-num-layers with ``vpp`` virtual stages: vpp 1, or each stated count and the middle
    ranks' share a multiple of vpp (TransformerConfig.__post_init__, 'must be divisible by virtual pipeline parallel
    degree', megatron/core/transformer/transformer_config.py at 3cdfd613 and d98e8a64dd; the even share itself is
    :func:`middle_ranks_ok`). Rule 24 (:func:`stage_flags_ok`) and the Megatron emitter (trainsim/emit.py) read it.
    Example: 61 layers, pp 8, vpp 2, first 8, last 5: 5 is odd, refused; pp 4, vpp 4, first 16, last 13: refused."""
    v = np.maximum(np.asarray(vpp), 1)
    others, rest = middle_ranks(layers, np.asarray(pp), first, last)
    per = rest // np.maximum(others, 1)
    return (v <= 1) | (((others < 1) | (per % v == 0)) & (first is None or first % v == 0)
                       & (last is None or last % v == 0))


def balanced_flags_ok(layers: int, pp: np.ndarray, vpp: np.ndarray, first: int | None,
                      last: int | None) -> np.ndarray:
    """Whether the stated ``first`` and ``last`` stage sizes are the split Megatron-Core's
    --account-for-embedding-in-pipeline-split --account-for-loss-in-pipeline-split build (core_r0.11.0 on,
    ef490839e8): the L + 2 units divisible by pp, q = (L + 2) / pp a multiple of vpp, first = last = q - 1
    (TransformerConfig.__post_init__ at 3cdfd613 lines 843-888, 'num_layers: {n} after enable
    account_for_embedding_in_pipeline_split or account_for_loss_in_pipeline_split must be divisible by
    pipeline_model_parallel_size', 'number of layers on each pipeline rank ... must be divisible by
    virtual_pipeline_model_parallel_size'). Megatron counts the loss, not the MTP modules, so the decoder layers per
    rank are these with or without MTP. Example: 126 layers (Llama 3.1 405B), pp 8, vpp 8, first = last = 15:
    128 / 8 = 16, a multiple of 8, valid (the NeMo 2.x and Megatron-Bridge recipes' split)."""
    pp = np.maximum(np.asarray(pp), 1)
    v = np.maximum(np.asarray(vpp), 1)
    if first is None or last is None:
        return np.zeros(np.broadcast(pp, v).shape, dtype=bool)
    q = (layers + 2) // pp
    return ((layers + 2) % pp == 0) & (first == q - 1) & (last == q - 1) & (q % v == 0)


def zero3_fsdp2_ok(zero: np.ndarray, pp: np.ndarray, etp: np.ndarray) -> np.ndarray:
    """Whether a plan passes the rule of stacks whose weight sharding (ZeRO-3) is an FSDP2 backend without pipeline
    or expert tensor parallelism: zero < 3, or pp = 1 and etp = 1. MindSpeed-LLM has two FSDP2 paths. Its Megatron
    path refuses ``--use-torch-fsdp2`` with ``--pipeline-model-parallel-size`` != 1 and with
    ``--expert-model-parallel-size`` != 1 (Ascend/MindSpeed-LLM
    mindspeed_llm/core/layerwise_disaggregated_training/initialize.py:583-586 at c77308a1; Megatron-LM's own pp
    check, megatron/training/arguments.py:513-514 at core_v0.12.1, the Megatron MindSpeed-LLM pins). Its FSDP2
    backend (train_fsdp2.py, mindspeed_llm/fsdp2) has no pipeline size and no expert tensor-parallel size:
    ParallelArguments offers tp_size, fsdp_size, ep_size, ep_fsdp_size and cp_size
    (mindspeed_llm/fsdp2/utils/arguments.py:371-384 at c77308a1); dp = world / (tp fsdp cp)
    (mindspeed_llm/fsdp2/models/model_factory.py:129) and the experts' groups span every rank without TP,
    world = ep x ep_fsdp x edp (model_factory.py:192). Zero is a grid axis of the search's spaces, not an expanded
    field, so the search applies this rule as a mask of that grid (:meth:`trainsim.parallel.enumerate.Parents.
    zero_ok`): a refused plan is neither counted, costed into an answer nor reported."""
    return (np.asarray(zero) < 3) | ((np.asarray(pp) <= 1) & (np.asarray(etp) <= 1))


def sharding_zeros(group: int, zeros: Iterable[int], how: str, advice: str = "state zero 1, 2 or 3",
                   where: str | None = None) -> list[int]:
    """The ZeRO stages of ``zeros`` that shard anything over a stated sharding group of ``group`` data-parallel
    ranks (``training.zero_shard_group``: MiCS, Megatron-Core's --num-distributed-optimizer-instances): the stages
    >= 1, since zero 0 keeps every state whole on every rank and a group beside it changes nothing. None left is
    refused: one line naming ``training.zero_shard_group``, ``how`` the zero stages came to be 0 only and
    ``advice``. The one rule behind a spec's stated plan, ``plan --fix`` / ``--against``
    (:func:`trainsim.spec.check_shard_group`) and the plan search's zero axis
    (:func:`trainsim.parallel.enumerate.enumerate_parents`)."""
    sharding = [int(z) for z in zeros if z > 0]
    if group and not sharding:
        raise TrainsimError(f"zero_shard_group {group} shards the ZeRO states over groups of data-parallel ranks, "
                            f"and {how} (nothing sharded: {advice}, or leave zero_shard_group out)",
                            field="training.zero_shard_group", where=where)
    return sharding


def dualpipev_fb_overlap_ok(schedule: np.ndarray, etp: np.ndarray, cp: np.ndarray) -> np.ndarray:
    """Whether a plan passes the rule of stacks whose DualPipe is MindSpeed's ``--schedules-method dualpipev`` run
    with ``--moe-fb-overlap`` (the forward-backward overlap that hides the expert all-to-all, which the engine's
    DualPipe models: parallel/schedules.py ``overlaps_ep_comm``): not DualPipe, or etp = 1 and cp = 1.
    fb-overlap needs ``--expert-tensor-parallel-size 1`` (Ascend/MindSpeed
    mindspeed/features_manager/moe/fb_overlap.py:91-94 at 028de58c, 'fb overlap only support
    expert-tensor-parallel-size=1'; in its first form, mindspeed/features_manager/pipeline_parallel/
    fb_overlap_feature.py at 788a2150, 28 Mar 2025, tp > 1 needed --moe-tp-extend-ep, which folds the tensor-parallel
    ranks into EP so the experts are not tensor-split either); dualpipev refuses ``--context-parallel-size`` > 1
    (Ascend/MindSpeed mindspeed/features_manager/pipeline_parallel/dualpipev_feature.py:34-36 at 028de58c, since
    7fbac648, 5 Jun 2025). MindSpeed-LLM required fb-overlap with dualpipev from ac5e0a66 (29 Mar 2025,
    mindspeed_llm/training/arguments.py _validate_dualpipe_args: 'dualpipev currently can only be used with 1f1b
    overlap') to 97328951 (4 Aug 2025); later its A3 MoE scripts still pair them
    (examples/mcore/deepseek3/pretrain_deepseek3_671b_4k_A3_ptd.sh from 7dd81733, 30 Mar 2025, and
    examples/mcore/glm5/pretrain_glm5_744b_4k_A3_ptd.sh: --moe-fb-overlap, --expert-tensor-parallel-size 1, CP=1).
    The same stacks' gradient sync under DualPipe: perf/step.py (no --overlap-grad-reduce)."""
    return ~mindspeed_dualpipev(schedule) | ((np.asarray(etp) <= 1) & (np.asarray(cp) <= 1))


def reason_field(code: int) -> str:
    """The run-spec field rejection code ``code`` concerns: ``chips`` or ``plan.<field>``."""
    field = REASONS[int(code)][0]
    return field if field == "chips" else "plan." + field


def reason(code: int) -> str:
    """The one-line text of rejection code ``code``: the plan field it concerns and why."""
    return f"{reason_field(code)}: {REASONS[int(code)][1]}"


#: the rules of :func:`check` that read one plan field and the model's shape (or the sequence length) alone: no
#: chip count, batch or other field makes a value they refuse valid
SHAPE_RULES = {"tp": (2, 13), "pp": (3,), "ep": (4,), "etp": (6,), "cp": (7,)}


def _shape_facts(field: str, arch: Arch, seq_len: int) -> str:
    """The model facts rule :data:`SHAPE_RULES` of ``field`` reads, in words (for the one-line error)."""
    split = [c for lk in arch.layers for c in lk.attention if not c.tp_replicated]
    moe = [lk.moe for lk in arch.layers if lk.moe is not None]

    def nums(xs: Iterable[int]) -> str:
        return "/".join(f"{x:,}" for x in sorted(set(xs)))

    if field == "tp":
        return (f"{nums(c.heads for c in split) or 1} attention heads, {nums(c.kv_heads for c in split) or 1} "
                f"key/value heads, hidden {arch.hidden:,}")
    if field == "pp":
        return f"{arch.n_layers:,} layers"
    if field == "ep":
        return f"{nums(m.experts for m in moe)} routed experts"
    if field == "etp":
        return f"expert intermediate size {nums(m.expert_ffn for m in moe)}"
    return f"seq_len {seq_len:,}"


def shape_refusal(field: str, values: list[int], arch: Arch, seq_len: int) -> str | None:
    """Why a stated value of plan ``field`` breaks a rule of :data:`SHAPE_RULES` (the rule's text, the model's
    facts and the first such value), or None when every value may be valid. A value those rules refuse is refused
    by the search for every chip count and batch, so a plan spec stating one is bad input, not a run without a
    plan; in a list (``tp: [8, 3]``) it is refused too, as alone, not silently dropped from the search (qa29).
    The rules are :func:`check`'s, applied to one-field plans (every other field 1)."""
    codes = SHAPE_RULES.get(field)
    if not codes or not values:
        return None
    cols: dict[str, int | list[int]] = {k: 1 for k in ("tp", "pp", "vpp", "ep", "etp", "cp", "dp", "mb")}
    cols.update({"zero": 0, "recompute": 0, "schedule": 0, "node_limit": 0, field: list(values)})
    code = check(Plans.from_columns(**cols), arch, chips=1, seq_len=seq_len, batch_seqs=1, only=set(codes))
    bad = np.flatnonzero(code)
    if not bad.size:
        return None
    return (f"{REASONS[int(code[bad[0]])][1]}; {arch.name} has {_shape_facts(field, arch, seq_len)}, "
            f"got {values[bad[0]]}" + (f" (in {'|'.join(str(v) for v in values)})" if len(values) > 1 else ""))
