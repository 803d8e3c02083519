"""Memory per chip: weights, gradients, optimizer states, activations, logits, buffers.

* Model states: :func:`_state_bytes` (mixed precision and ZeRO; precisions and offload from the run's
  ``optimizer:`` section); a stack whose FSDP2 frees the sharded gradients every step counts them only beyond the
  activations they replace (:func:`_gradients_at_peak`).
* Activations: tensor by tensor in :mod:`trainsim.perf.activations` (Korthikanti et al. 2022, generalised), with
  the recompute modules that drop each; full recompute by method and group size (:func:`stage_activation_bytes`).
* Pipeline ranks hold different layers and micro-batches in flight (:func:`trainsim.perf.pipeline.
  microbatches_in_flight`); the first, a middle and the last rank are all costed and the largest is reported
  (under Megatron-Core's balanced split with interleaving, the light first / last model chunk holds its own
  number of micro-batches: :func:`activation_layers`).
* A stack that pipelines with ``torch.distributed.pipelining`` adds its per-micro-batch receive buffers and cached
  stage outputs (:func:`pipeline_stage_buffers`).
* The last rank adds the logits at the loss's peak (:func:`logit_peak_bytes` per token x vocab / tp entry: 6 for
  BF16 logits + fp32 loss terms, 2 with TE's in-place cross entropy, 12-18 for an fp32-upcast PyTorch loss) and
  the MTP modules.
"""
from __future__ import annotations

import numpy as np

from ..model.arch import LayerKind
from ..parallel.sharding import layer_params
from .activations import (ActTensor, activation_tensors, kept_bytes_per_token, layer_input_bytes_per_token,
                          op_sac_bytes_per_token)
from .comm_cp import torch_ring_backward_bytes
from .comm_dp import mcore_bucket_params
from .compute import dsa_loss_keys, dsa_loss_teacher
from .context import FP32_BYTES, StepContext
from .pipeline import microbatches_in_flight, mirrored_stages
from ..parallel.schedules import interleaved_chunk_in_flight, virtual_stages
from .arrays import Array, Num
from ..parallel.plan import Plans
from typing import Any


def _tensors(lk: LayerKind, ctx: StepContext) -> list[ActTensor]:
    return activation_tensors(lk, ctx.arch.hidden, ctx.seq_len, gemm_bytes=ctx.stored_gemm_input_bytes,
                              act_fn_bytes=ctx.stored_act_fn_input_bytes, imbalance=ctx.calib.expert_imbalance,
                              unfused=ctx.attention_kernel == "unfused", attention_dropout=ctx.attention_dropout,
                              hidden_dropout=ctx.hidden_dropout, parallel_block=ctx.arch.parallel_block,
                              gathered_gemm_inputs=ctx.tp_gathered_gemm_inputs, kv_repeated=ctx.cp_kv_repeated,
                              allgather_dispatch=ctx.moe_dispatcher == "allgather",
                              sequence_parallel=not ctx.tp_allreduce, pointwise_recompute=ctx.pointwise_recompute)


def _input_split(ctx: StepContext, p: Plans) -> Num:
    """Ranks a layer's input (the residual stream between layers) is split over: tp under sequence parallelism,
    1 without it (``ctx.tp_allreduce``; :mod:`trainsim.perf.activations`, Korthikanti et al. 2022 Table 2)."""
    return np.ones_like(p.tp) if ctx.tp_allreduce else p.tp


def layer_activation_bytes(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> tuple[Num, Num]:
    """(kept, full) bytes of activations one layer keeps per micro-batch per chip.

    ``kept`` by the plan's recompute code: none keeps every tensor of :mod:`trainsim.perf.activations`,
    selective drops those of ``ctx.recompute.modules``, full keeps the layer input only (the group structure of
    full recompute is applied per stage by :func:`stage_activation_bytes`). ``full`` is the no-recompute size."""
    ts = _tensors(lk, ctx)
    full = kept_bytes_per_token(ts, tp=p.tp, etp=p.etp) * tokens
    if "op_sac" in ctx.recompute.modules:
        sel = op_sac_bytes_per_token(lk, ctx.arch.hidden) * tokens / p.tp
    else:
        sel = kept_bytes_per_token(ts, ctx.recompute.modules, p.tp, p.etp) * tokens
    only_input = layer_input_bytes_per_token(ctx.arch.hidden) * tokens / _input_split(ctx, p)
    return np.where(p.recompute == 2, only_input, np.where(p.recompute == 1, sel, full)), full


def params_per_chip(lk: LayerKind, p: Plans) -> tuple[Num, Num]:
    """(dense, expert) parameters of one layer held by one chip (:mod:`trainsim.parallel.sharding`)."""
    lp = layer_params(lk)
    return lp.tp_split / p.tp + lp.replicated + lp.router + lp.vector, lp.expert / (p.ep * p.etp)


def rank_layers(ctx: StepContext, p: Plans) -> tuple[Num, Num, Num]:
    """Decoder layers held by the first, a middle and the last pipeline rank: (first, mid, last) arrays.

    Even split: ceil(L / (pp vpp)) x vpp on every rank, or for a stack whose only uneven stages are the first and
    last (``ctx.stage_layout`` 'first_last') the slowest such layout (:func:`first_last_layers`). Uneven
    (``first_stage_layers`` / ``last_stage_layers``,
    Megatron-Core --decoder-first/last-pipeline-num-layers; Llama 3 sec. 3.3.2 removes one layer from each): the
    stated ranks take their count, the others split the rest evenly (rounded up). Balanced (Megatron-Core
    --account-for-embedding/loss-in-pipeline-split): with U = L + 2 + MTP modules units and q = ceil(U / pp) per
    rank, the first rank takes q - 1 layers and the last q - 1 - MTP (a layout, Megatron-Core 0.13 on, places the
    MTP modules as units of the last stage); on a stack whose only uneven stages are the first and last (Megatron-Core
    0.12 and before) the MTP modules are not units: U = L + 2 and the last rank takes q - 1 layers with the MTP
    modules on top (get_num_layers_to_build counts the embedding and the loss only, get_mtp_num_layers_to_build
    builds every MTP module on the last pipeline stage: megatron/core/transformer/transformer_block.py and
    multi_token_prediction.py at NVIDIA/Megatron-LM 3cdfd613, core_r0.12.0). pp = 1: all layers."""
    L = float(ctx.arch.n_layers)
    v = np.maximum(p.vpp, 1)
    pp = p.pp.astype(np.float64)
    even = np.asarray(even_rank_layers(L, pp, v))
    f_in, l_in = ctx.first_stage_layers, ctx.last_stage_layers
    if ctx.pipeline_split == "balanced" and f_in is None and l_in is None:
        n_mtp = 0.0 if ctx.stage_layout == "first_last" else float(sum(lk.n_layers for lk in ctx.arch.mtp))
        q = np.ceil((L + 2.0 + n_mtp) / pp)
        first = np.maximum(q - 1.0, 0.0)
        last = np.maximum(q - 1.0 - n_mtp, 0.0)
        mid = np.ceil(np.maximum(L - first - last, 0.0) / np.maximum(pp - 2.0, 1.0))
        last = np.where(pp == 2, L - first, last)
        mid = np.where(pp > 2, mid, np.maximum(first, last))
        one = p.pp == 1
        return (np.where(one, L, first), np.where(one, L, mid), np.where(one, L, last))
    if f_in is None and l_in is None:
        first = mid = last = even
        if ctx.stage_layout == "first_last":
            fl = first_last_layers(L, pp, v, even)
            first, mid, last = np.asarray(fl[0]), np.asarray(fl[1]), np.asarray(fl[2])
    else:
        stated = (f_in is not None) + (l_in is not None)
        rest = L - (f_in or 0) - (l_in or 0)
        mid = np.ceil(rest / np.maximum(pp - stated, 1.0))
        first = mid * 0.0 + float(f_in) if f_in is not None else mid
        last = mid * 0.0 + float(l_in) if l_in is not None else mid
        mid = np.where(pp > 2, mid, np.where(pp == 2, np.maximum(first, last), mid))
    one = p.pp == 1
    return (np.where(one, L, first), np.where(one, L, mid), np.where(one, L, last))


def even_rank_layers(L: float, pp: Num, v: Num) -> Num:
    """Decoder layers per pipeline rank of the even split the engine prices where the stack takes any layout:
    ceil(L / (pp vpp)) x vpp (the busiest rank of ``pp`` ranks with ``v`` virtual stages each; Megatron-Core's
    --pipeline-model-parallel-layout, core_r0.13.0 on, can place them so). Read by :func:`rank_layers` and by the
    flag emitter (trainsim/emit.py), which must describe the layout priced here."""
    return np.ceil(L / (np.asarray(pp, dtype=np.float64) * v)) * v


def first_last_layers(L: float, pp: Num, v: Num, even: Num) -> tuple[Num, Num, Num]:
    """(first, mid, last) decoder layers per rank of a stack whose only uneven stages are the first and last
    (Megatron-Core's --decoder-first/last-pipeline-num-layers, the profile's ``uneven_stages: first_last``), for a
    pp that does not divide the L layers: the pp - 2 middle ranks take k layers each, which must divide what the
    first and last leave, and the first and last take the rest r = L - (pp - 2) k, each at least one
    (megatron/core/transformer/transformer_config.py ``__post_init__`` at d98e8a64: 'num_layers_in_first_pipeline_stage
    must be larger than 0', 'Mismatch: N middle layers remaining but M middle PP stages available'), split
    ceil(r / 2) and floor(r / 2). The slowest rank is max(k, ceil(r / 2)), smallest at k = floor(L / pp) or
    ceil(L / pp) (where k = r / 2, i.e. pp k = L; k at most floor((L - 2) / (pp - 2))): e.g. Llama 3 8B, 32 layers
    at pp 25, k = 1, r = 9, a 5-layer first rank against ceil(32 / 25) = 2. Where pp divides L, pp < 3 or the plan
    is interleaved (vpp > 1, whose uneven layout the even ``vpp_divides_stage_layers`` rule covers), ``even``."""
    mid_n = np.maximum(pp - 2.0, 1.0)
    k_max = np.maximum(np.floor((L - 2.0) / mid_n), 1.0)
    ks = [np.clip(k, 1.0, k_max) for k in (np.floor(L / pp), np.ceil(L / pp))]   # the two candidates, arrays
    slow = [np.maximum(k, np.ceil((L - mid_n * k) / 2.0)) for k in ks]
    best_k = np.where(slow[1] < slow[0], ks[1], ks[0])
    rest = L - mid_n * best_k
    apply = (pp > 2) & (np.mod(L, np.maximum(pp, 1.0)) != 0) & (v <= 1)
    first = np.where(apply, np.ceil(rest / 2.0), even)
    last = np.where(apply, rest - np.ceil(rest / 2.0), even)
    return first, np.where(apply, best_k, even), last


def stage_layers(ctx: StepContext, p: Plans) -> Num:
    """Layers on the rank with the most layers."""
    f, m, l_ = rank_layers(ctx, p)
    return np.maximum(np.maximum(f, m), l_)


def _per_layer_params(ctx: StepContext, p: Plans) -> tuple[Num, Num]:
    """(dense, expert) parameters of an average decoder layer on one chip."""
    L = ctx.arch.n_layers
    dense: Num = 0.0
    expert: Num = 0.0
    for lk in ctx.arch.layers:
        d, e = params_per_chip(lk, p)
        dense = dense + d * lk.n_layers / L
        expert = expert + e * lk.n_layers / L
    return dense, expert


def _extras(ctx: StepContext, p: Plans) -> tuple[Num, Num, Num]:
    """(embedding, last-stage dense, last-stage expert) parameters on one chip: input embedding; final norm,
    output head and MTP modules.

    Tied embeddings: one pipeline stage holds one vocab x hidden matrix, used as embedding and output head; with
    pp > 1 the last stage keeps its own copy of it as the output layer, its gradient all-reduced with the first
    stage's (Megatron-Core ``LanguageModule.setup_embeddings_and_output_layer`` / ``shared_embedding_or_output_weight``,
    megatron/core/models/common/language_module/language_module.py), so the head counts there."""
    a = ctx.arch
    rows = ctx.vocab_per_tp(p)   # the padded vocabulary's rows on one chip
    emb = rows * a.hidden + a.extra_embedding_params
    head = rows * a.hidden
    if a.tied_embeddings:
        head = np.where(p.pp == 1, 0.0, head)
    mtp_d: Num = 0.0
    mtp_e: Num = 0.0
    for lk in a.mtp:
        d, e = params_per_chip(lk, p)
        mtp_d = mtp_d + d * lk.n_layers
        mtp_e = mtp_e + e * lk.n_layers
    return emb, head + a.final_params + mtp_d + a.mtp_extra_params / p.tp, mtp_e


def rank_state_params(ctx: StepContext, p: Plans) -> tuple[Any, Any, Any]:
    """(dense, expert) parameters on the first, a middle and the last rank, as three pairs.

    DualPipe puts stages i and p - 1 - i on rank i (DeepSeek-V3 Table 2: 2x parameters), so rank 0 holds the
    first and the last stage (embedding, head, MTP) and a middle rank two middle stages."""
    d1, e1 = _per_layer_params(ctx, p)
    f, m, l_ = rank_layers(ctx, p)
    emb, last_d, last_e = _extras(ctx, p)
    single = p.pp == 1
    first = (d1 * f + emb + np.where(single, last_d, 0.0), e1 * f + np.where(single, last_e, 0.0))
    mid = (d1 * m, e1 * m)
    last = (d1 * l_ + last_d, e1 * l_ + last_e)
    dual = mirrored_stages(p.schedule)
    first = (np.where(dual, first[0] + last[0], first[0]), np.where(dual, first[1] + last[1], first[1]))
    mid = (np.where(dual, 2.0 * mid[0], mid[0]), np.where(dual, 2.0 * mid[1], mid[1]))
    last = (np.where(dual, first[0], last[0]), np.where(dual, first[1], last[1]))
    return first, mid, last


def model_state_params(ctx: StepContext, p: Plans) -> tuple[Num, Num]:
    """(dense, expert) parameters on the chip of the heaviest rank (layers + embedding or head/MTP)."""
    ranks = rank_state_params(ctx, p)
    tot = [d + e for d, e in ranks]
    best_d, best_e, best_t = ranks[0][0], ranks[0][1], tot[0]
    for (d, e), t in zip(ranks[1:], tot[1:]):
        pick = t > best_t
        best_d, best_e, best_t = np.where(pick, d, best_d), np.where(pick, e, best_e), np.maximum(t, best_t)
    return best_d, best_e


def _state_bytes(ctx: StepContext, p: Plans, dense: Num, expert: Num,
                 groups: tuple[Num, Num] | None = None) -> tuple[Num, Num, Num]:
    """(weights, gradients, optimizer) bytes of the given parameters under the plan's ZeRO stage; ``groups``: the
    plans' (:func:`_shard_groups`) when the caller has them (they do not depend on the parameters).

    Mixed precision (Micikevicius et al. 2018; ZeRO, Rajbhandari et al. 2020 sec. 3): weights ``ctx.weight_bytes``
    per param (BF16: 2; FP8 weights 1, 2 on Hopper; none sharded under ZeRO-3 where the stack's FSDP2 shards the
    fp32 master itself, ``ctx.fsdp_sharded_master``),
    main gradients ``grad_bytes`` (fp32: 4), optimizer master + Adam moments (fp32: 4 + 8 = 12; BF16 moments 8;
    Apex DistributedFusedAdam's int16 master remainder 2 + 8 = 10: :data:`trainsim.perf.context.MASTER_WEIGHT_BYTES`).
    ZeRO-1 shards the optimizer over data parallel, ZeRO-2 also gradients, ZeRO-3 also weights; expert weights
    shard over the expert-data-parallel group. Offloaded optimizer states live in host memory."""
    o = ctx.optimizer
    dpc, edp = groups if groups is not None else _shard_groups(ctx, p)
    d_sh, e_sh = dense / dpc, expert / edp

    # x / (group size) where ZeRO shards it, else x (= x / 1 exactly); at the plans' shape. The dense and expert
    # parts are added before the choice (the same sum either way, each element's two terms the same): one choice
    # at the full shape per stage instead of two and a sum
    sharded, unsharded = d_sh + e_sh, dense + expert

    def by_stage(stage: Num) -> Num:
        return np.where(p.zero >= stage, sharded, unsharded)

    w = ctx.weight_bytes * by_stage(3)
    g = o.grad_bytes * by_stage(2)
    whole = ctx.pp_defers_sync(p)   # FSDP under PP keeping the stage gathered: weights and gradients whole
    if ctx.fsdp_sharded_master:
        # FSDP2 shards the fp32 parameters themselves (the optimizer's master, in ``optimizer_bytes``); the
        # low-precision weights exist only as the per-unit all-gathers of :func:`_zero_unit_buffers`
        w = np.where((p.zero >= 3) & ~whole, 0.0, w)
    if np.any(whole):
        w = np.where(whole, ctx.weight_bytes * unsharded, w)
        g = np.where(whole, o.grad_bytes * unsharded, g)
    opt = 0.0 if o.offload_optimizer else o.optimizer_bytes
    op = opt * by_stage(1)
    if np.any(p.swap):
        op = np.where(p.swap > 0, swap_buffer_bytes(ctx, p, opt, dense, expert), op)
    return w, g, op


def _shard_groups(ctx: StepContext, p: Plans) -> tuple[Num, Num]:
    """(ranks the dense states shard over, ranks the expert states shard over) of each plan: dp x cp (Megatron-Core's
    distributed optimizer) or a MiCS sharding group (``ctx.shard_ranks``), and the expert-data-parallel group."""
    return ctx.shard_ranks(p), p.expert_dp


def optimizer_shards(ctx: StepContext, p: Plans, dense: Num, expert: Num) -> tuple[Num, Num]:
    """(dense, expert) parameters whose optimizer states one chip holds: each part's shard where ZeRO >= 1 (the
    distributed optimizer: dense over :func:`_shard_groups`' dense group, experts over the expert-data-parallel
    group), the whole part elsewhere (x / 1 = x exactly), at the plans' shape. The one place this selection is made
    part by part (:func:`_state_bytes` makes it on the sum, one choice per ZeRO stage)."""
    dpc, edp = _shard_groups(ctx, p)
    return np.where(p.zero >= 1, dense / dpc, dense), np.where(p.zero >= 1, expert / edp, expert)


def swap_chunks(ctx: StepContext, p: Plans, dense: Num, expert: Num) -> list[tuple[Num, Num, Num, Num]]:
    """How a swapped optimizer (``p.swap``, MindSpeed ``--swap-optimizer``) cuts the optimizer shards of a chip
    holding ``dense`` and ``expert`` parameters into chunks: per distributed optimizer (dense, then expert:
    Megatron-Core's ChainedOptimizer steps them in that order) ``(n, q, k, C)``, the shard's parameters n in P = n / q
    pieces of q, k pieces per chunk, C chunks:

        P = ceil(n / min(B / ranks, n)),   q = n / P,   k = max(1, floor((n / times) / q)),   C = ceil(P / k)

    ``n`` the shard (:func:`optimizer_shards`). Pieces: the optimizer steps parameter by parameter, and a rank's
    parameters are the pieces of the model's tensors that fall in its contiguous 1 / ranks range of each
    gradient-buffer bucket (Megatron-Core distributed optimizer; ``ranks`` the shard group: dp x cp dense,
    expert-dp for experts), so no piece exceeds B / ranks, B = max(40,000,000, 1,000,000 x dp) the default bucket
    (:func:`trainsim.perf.comm_dp.mcore_bucket_params`); where the weight matrices, which hold nearly all elements,
    are larger than such a range, a range lies inside one or two of them, so the shard is taken as equal pieces of
    that size (an upper bound where the matrices are smaller: the engine keeps no tensor sizes). A stage past
    the first (Megatron-Core sets bucket_size None at pp_rank > 0, distributed_data_parallel.py at core_r0.8.0 and
    d98e8a6) has one bucket, its pieces whole tensors, larger: not modelled, so there q is a lower bound.
    Chunks: ``swap_adamw_step`` (Ascend/MindSpeed 028de58c mindspeed/core/optimizer/swap_optimizer/
    swap_optimizer.py) loads parameters while ``swap_count + numel <= swap_numel or swap_count <= 0``,
    ``swap_numel`` = n // ``--swap-optimizer-times``: k whole pieces per chunk, or one piece alone where a piece is
    larger than that."""
    T = float(ctx.swap_optimizer_times)
    bucket = mcore_bucket_params(p.dp)
    out: list[tuple[Num, Num, Num, Num]] = []
    for n, ranks in zip(optimizer_shards(ctx, p, dense, expert), _shard_groups(ctx, p)):
        n = np.asarray(n, dtype=np.float64)
        some = n > 0.0
        pieces = np.where(some, np.ceil(n / np.where(some, np.minimum(bucket / ranks, n), 1.0) - 1e-9), 0.0)
        q = np.where(some, n / np.maximum(pieces, 1.0), 0.0)
        k = np.maximum(1.0, np.floor(n / T / np.where(some, q, 1.0) + 1e-9))
        out.append((n, q, k, np.ceil(pieces / k - 1e-9)))
    return out


def swap_buffer_bytes(ctx: StepContext, p: Plans, opt_bytes: float, dense: Num, expert: Num) -> Num:
    """HBM bytes of the optimizer states of a plan whose optimizer is swapped (``p.swap``, MindSpeed
    ``--swap-optimizer``): the one chunk the update holds on the device,

        buffer = opt_bytes x max over (dense, expert) of k x q          (:func:`swap_chunks`)

    Ascend/MindSpeed 028de58c mindspeed/core/optimizer/swap_optimizer/swap_optimizer.py: each fp32 master shard and
    its ``exp_avg`` / ``exp_avg_sq`` get pinned host copies and their device storage resized to 0
    (``init_param_opt_state``, ``swap_tensors_to_host``): "device侧仅保留逻辑视图" (docs/zh/features/
    swap-optimizer.md), so between steps the device holds none of them. ``swap_adamw_step`` loads a chunk of
    k pieces (at most ``swap_numel`` = shard // ``--swap-optimizer-times`` elements, or one larger piece alone) and
    sends each parameter's states back after its update; the next chunk's load waits for the previous chunk's
    stores, so at most one chunk is on the device. Megatron-Core's ChainedOptimizer steps the dense and the expert
    distributed optimizers one after the other, each with its own ``swap_numel``: the larger one's chunk. The chunk
    is counted with the resident states (it lives only during the update, after the activations are freed: an
    upper bound of the step's share)."""
    (_, qd, kd, _), (_, qe, ke, _) = swap_chunks(ctx, p, dense, expert)
    return opt_bytes * np.maximum(kd * qd, ke * qe)


def _mean_layer_activations(ctx: StepContext, p: Plans, tokens: Num) -> tuple[Num, Num, Num]:
    """(kept, full, widest) activation bytes per micro-batch of an average decoder layer (kept by the plan's
    recompute code, full without recompute) and of the largest layer kind."""
    L = ctx.arch.n_layers
    kept: Num = 0.0
    full: Num = 0.0
    widest: Num = 0.0
    for lk in ctx.arch.layers:
        k, f = layer_activation_bytes(lk, ctx, p, tokens)
        kept = kept + k * lk.n_layers / L
        full = full + f * lk.n_layers / L
        widest = np.maximum(widest, f)
    return kept, full, widest


def _offloaded_layers(ctx: StepContext, layers: Num) -> Num:
    """Layers of a rank whose activations live in host memory: the stated count, leaving the one being copied."""
    return np.minimum(float(ctx.offload_activation_layers), np.maximum(layers - 1.0, 0.0))


def stage_activation_bytes(ctx: StepContext, p: Plans, tokens: Num, layers: Num,
                           mean: tuple[Num, Num, Num] | None = None) -> tuple[Num, Num]:
    """Activation bytes one micro-batch leaves on a rank holding ``layers`` decoder layers, and the extra working
    set while it is rebuilt (full recompute). Full ``uniform``: one layer input per group of ``num_layers`` per
    virtual stage, one group rebuilt at a time; ``block``: ``num_layers`` layers per virtual stage keep only their
    input, the rest keep everything (Megatron-Core ``--recompute-method``). ``mean``: the result of
    :func:`_mean_layer_activations` for these plans when the caller has it (it does not depend on ``layers``)."""
    kept, full, widest = mean if mean is not None else _mean_layer_activations(ctx, p, tokens)
    inp = layer_input_bytes_per_token(ctx.arch.hidden) * tokens / _input_split(ctx, p)
    v = np.maximum(p.vpp, 1).astype(np.float64)
    chunk = np.maximum(layers / v, 1.0)
    n = float(ctx.recompute.num_layers)
    if ctx.recompute.method == "block":
        rec = np.minimum(n, chunk)
        full_rc = v * (rec * inp + (chunk - rec) * full)
    else:
        full_rc = v * np.ceil(chunk / n) * inp
    # activation offload: the offloaded layers keep nothing in HBM but the one being copied (Megatron-Core
    # cpu_offload: a layer's tensors stream to the host after its forward and back before its backward)
    off = _offloaded_layers(ctx, layers)
    acts = np.where(p.recompute == 2, full_rc, kept * (layers - off))
    work = np.where(p.recompute == 2, np.minimum(n, chunk) * widest, 0.0)
    return acts, work


def offload_bytes_per_microbatch(ctx: StepContext, p: Plans, tokens: Num, layers: Num) -> Num:
    """Host-link bytes per micro-batch of activation offload, each way (forward out, backward in)."""
    if not ctx.offload_activation_layers:
        return 0.0
    kept, _, _ = _mean_layer_activations(ctx, p, tokens)
    return kept * _offloaded_layers(ctx, layers)


def logit_peak_bytes(ctx: StepContext, p: Plans) -> Num:
    """Bytes per logit (token x vocab entry on one chip) live at the loss's peak, per plan.

    Megatron-Core and the default: ``ctx.logit_bytes`` (6: BF16 logits + the fp32 softmax its vocab-parallel cross
    entropy keeps; 2 with TE's in-place fused loss). A stack whose loss upcasts the logits and calls PyTorch's
    cross entropy (``cross_entropy_fusion: fp32_upcast``; torchtitan train.py ``loss_fn``:
    ``cross_entropy(pred.flatten(0, 1).float(), labels)``) holds more at the loss backward, the peak:

    * tp = 1 (aten kernels): the saved fp32 log-softmax output (4), the fp32 gradient ``nll_loss_backward`` writes
      (4) and the fp32 gradient ``_log_softmax_backward_data`` returns (4): 12 B. The forward holds less (BF16
      pred 2 + its fp32 copy 4 + the fp32 output 4 = 10).
    * tp > 1 (torchtitan's default loss parallel, vocab sharded over tp): torch/distributed/tensor/parallel/
      loss.py ``_nll_loss_and_log_softmax_backward`` returns ``(grad_input + torch.exp(x)) * grad_output`` with
      ``grad_input = torch.zeros_like(x)``: the saved output x, grad_input, their sum and the product are live at
      once, 4 fp32 tensors: 16 B (its forward ``_log_softmax``: BF16 pred 2 + fp32 x, shifted, exp(shifted) = 14).
    * pp > 1 adds the BF16 stage output (2 B): torch.distributed.pipelining keeps each stage's output in its
      ``fwd_cache`` until that micro-batch's backward, where the non-pipelined loop deletes ``pred`` before
      ``loss.backward()``.

    The same kernels on the BF16 logits (``cross_entropy_fusion: torch_bf16``, NeMo AutoModel's
    ``MaskedCrossEntropy(fp32_upcast=False)``) hold the same three tensors in BF16 at the backward: 6 B, + 2 under
    pipelining (counted at tp = 1, the only tp AutoModel's MoE models run)."""
    if ctx.cross_entropy_fusion == "torch_bf16":
        return np.where(p.pp > 1, 8.0, 6.0) + 0.0 * p.tp
    if ctx.cross_entropy_fusion != "fp32_upcast":
        return np.full(np.shape(p.tp), ctx.logit_bytes)
    return np.where(p.tp > 1, 16.0, 12.0) + np.where(p.pp > 1, 2.0, 0.0)


#: bytes per logit an FP32 output head's logits add to :func:`logit_peak_bytes`' count, by loss kernel
#: (``cross_entropy_fusion``); derivation in :func:`fp32_head_bytes`
FP32_HEAD_LOGIT_BYTES = {"none": 2.0, "native": 2.0, "te": 2.0, "fp32_upcast": 0.0, "torch_bf16": 6.0}


def fp32_head_bytes(ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Bytes an output head computed in FP32 (``head_precision: fp32``; BloombergGPT, arXiv 2303.17564 App. C.2:
    'Use FP32 precision in LM-head') adds at the loss on the rank holding the head, for one micro-batch, over the
    BF16 head the rest of this module counts (0 for a BF16 head).

    The stack holds its parameters in BF16 (SMP's bf16 mode, the gathered ZeRO-3 unit counted by
    :func:`_zero_unit_buffers`), so the FP32 GEMM multiplies FP32 copies, and autograd's matmul keeps both operands
    for its two backward GEMMs (dX = dY W, dW = dY^T X) from the head's forward to its backward, which spans the
    loss: the weight copy, 4 x (vocab / tp) x h, and the input copy, 4 x tokens x h. The logits come out in FP32,
    4 bytes where the loss counts of :func:`logit_peak_bytes` hold BF16 ones (:data:`FP32_HEAD_LOGIT_BYTES`): 2 more
    for the counts that keep the BF16 logits beside the loss's FP32 tensors (``none`` / ``native``, 6 -> 8; ``te``,
    2 -> 4), none for ``fp32_upcast`` (its three backward tensors are FP32 already; the upcast of FP32 logits
    returns them), 6 for ``torch_bf16`` (its three BF16 tensors become FP32).

    BloombergGPT per micro-batch (4 x 2,048 tokens, vocabulary 131,072, h 7,680, loss ``none``): 4.03 GB + 0.25 GB
    + 2 x 1.074e9 logits = 6.43 GB. The head's backward, where the FP32 weight gradient (another 4.03 GB) is
    written while the FP32 logit gradient (4.3 GB) is read, holds about as much as the loss (the softmax and
    saved logits freed by then): not counted separately."""
    if ctx.head_precision != "fp32":
        return 0.0
    rows = ctx.vocab_per_tp(p)
    h = float(ctx.arch.hidden)
    per_logit = FP32_HEAD_LOGIT_BYTES[ctx.cross_entropy_fusion]
    return FP32_BYTES * rows * h + FP32_BYTES * tokens * h + per_logit * tokens * rows


def _last_stage_extra_bytes(ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Logits (:func:`logit_peak_bytes` per vocab entry per token; vocab split over tp) of the output head and of
    every MTP module, the FP32 head's copies (:func:`fp32_head_bytes`), plus the MTP layers' activations, for one
    micro-batch."""
    a = ctx.arch
    depth = sum(lk.n_layers for lk in a.mtp)
    logits = tokens * ctx.vocab_per_tp(p) * logit_peak_bytes(ctx, p) * (1.0 + depth) + fp32_head_bytes(ctx, p, tokens)
    mtp: Num = 0.0
    for lk in a.mtp:
        k, _ = layer_activation_bytes(lk, ctx, p, tokens)
        mtp = mtp + k * lk.n_layers
    return logits + mtp


def activation_layers(ctx: StepContext, p: Plans, m: Array, layers: Num, mid: Num, rank: Num, last: bool) -> Num:
    """Layers to cost the first (``last`` False, rank 0) or last rank's in-flight activations with.

    ``layers`` unless the split is Megatron-Core's balanced one (``--account-for-embedding-in-pipeline-split`` /
    ``--account-for-loss-in-pipeline-split``) under the interleaved schedule: there the embedding takes one
    layer's place in the first model chunk of the first rank and the loss in the last chunk of the last rank
    (megatron/core/transformer/transformer_block.py ``get_num_layers_to_build``: every chunk builds
    layers-per-rank / v, less one in those two chunks; Llama 3 report sec. 3.3.2: "the first model chunk on the
    first stage has only the embedding, and the last model chunk on the last stage has only output projection and
    loss calculation"), not one layer fewer spread over all chunks. With c = mid / v layers per chunk, the light
    chunk holds c - (mid - layers); with W = v x :func:`microbatches_in_flight` chunk-forwards in flight and n of
    them in the light chunk (:func:`interleaved_chunk_in_flight`, in the schedule registry), the rank keeps
    c W - (mid - layers) n layer-micro-batches, returned as the layer count that gives the same at W / v
    micro-batches. Rank 0's light chunk 0 holds the most
    micro-batches (2p - 1 of W = (v + 1) p - 1 with m >= 2p and groups of N = p; N + max(2p - 1 - N, 0) of
    W = 2p - 1 + (v - 1) N with micro-batch groups of N > p, :func:`trainsim.parallel.schedules.microbatch_group`),
    so its layers weigh less than 1/v; the last rank's holds one, so its layers weigh more."""
    if ctx.pipeline_split != "balanced" or ctx.first_stage_layers is not None or ctx.last_stage_layers is not None:
        return layers
    use = virtual_stages(p.schedule) & (p.vpp > 1) & (p.pp > 2)
    if not np.any(use):
        return layers
    v = np.maximum(p.vpp, 1).astype(np.float64)
    pp = p.pp.astype(np.float64)
    W = microbatches_in_flight(p.schedule, p.pp, p.vpp, m, rank) * v
    c = mid / v
    deficit = np.minimum(np.maximum(mid - layers, 0.0), c)
    n_light = interleaved_chunk_in_flight(W, pp, v, v - 1.0 if last else 0.0, m)
    eff = (c * W - deficit * n_light) / np.maximum(W / v, 1e-30)
    return np.where(use, eff, layers)


def _rank_kind_parts(ctx: StepContext, p: Plans, tokens: Num, m: Array) -> list[tuple[Num, Num, Num, Num]]:
    """(weights, gradients, optimizer, activations) bytes per chip on the first, a middle and the last pipeline
    rank (first: embedding, most micro-batches in flight; middle; last: head, logits, MTP), before the ZeRO
    working buffers of :func:`_zero_unit_buffers`. States vary with the plan's zero stage, activations with its
    recompute code; each part keeps the shape of the fields it depends on."""
    ranks = rank_state_params(ctx, p)
    f_l, m_l, l_l = rank_layers(ctx, p)
    dual = mirrored_stages(p.schedule)
    extra_last = _last_stage_extra_bytes(ctx, p, tokens)
    mean = _mean_layer_activations(ctx, p, tokens)
    cp_work = cp_backward_working_bytes(ctx, p, tokens) + dsa_loss_working_bytes(ctx, p, tokens)
    zero = np.zeros_like(p.pp, dtype=np.float64)
    groups = _shard_groups(ctx, p)       # the same for the three rank kinds
    out: list[tuple[Num, Num, Num, Num]] = []
    for kind, (dense, expert), layers, rank in (("first", ranks[0], f_l, zero), ("mid", ranks[1], m_l, zero + 1),
                                                 ("last", ranks[2], l_l, p.pp - 1.0)):
        w, g, o = _state_bytes(ctx, p, dense, expert, groups)
        if kind != "mid":
            layers = activation_layers(ctx, p, m, layers, m_l, rank, kind == "last")
        acts, work = stage_activation_bytes(ctx, p, tokens, layers, mean)
        a = (acts * microbatches_in_flight(p.schedule, p.pp, p.vpp, m, rank) + work + cp_work
             + pipeline_stage_buffers(ctx, p, tokens, m, kind))
        on_last = {"first": (p.pp == 1) | dual, "mid": False, "last": True}[kind]
        a = a + np.where(on_last, extra_last, 0.0)
        g = _gradients_at_peak(ctx, p, g, a)
        out.append((w, g, o, a))
    return out


def pipeline_stage_buffers(ctx: StepContext, p: Plans, tokens: Num, m: Array, kind: str) -> Num:
    """Bytes the stack's pipeline runtime holds on the first, a middle or the last rank (``kind``) beyond the
    tensors the layers save, when the stack pipelines with ``torch.distributed.pipelining`` (``ctx.pp_torch_stage``;
    0 otherwise, and where pp = 1).

    pytorch/pytorch torch/distributed/pipelining/stage.py (read at 0138610; torchtitan 9dec370 builds its stages as
    ``PipelineStage``): ``_prepare_forward_infra`` allocates one activation receive buffer per micro-batch for every
    non-first stage and ``_prepare_backward_infra`` one gradient receive buffer per micro-batch for every non-last
    stage, all kept for the run; ``forward_one_chunk`` keeps each micro-batch's stage output in ``fwd_cache`` until
    ``backward_one_chunk`` pops it (Megatron-Core frees the output's data once sent, ``deallocate_output_tensor``;
    Llama 3 sec. 3.3.2 says Meta's stack deallocates "the input and output tensors of each pipeline stage"). Each is
    one stage-boundary tensor B = 2 h bytes per token / tp (BF16, sequence-parallel: torchtitan's blocks end in
    ``RowwiseParallel(output_layouts=Shard(1))``), i.e. :func:`layer_input_bytes_per_token` x tokens / tp.

    With M micro-batches per step, v stages per rank (vpp under a virtual-stage schedule, else 1) and W =
    v x :func:`microbatches_in_flight` chunk-forwards in flight, a rank holding stages that are all non-first and
    non-last keeps v M activation and v M gradient buffers, its in-flight activation buffers being the first layers'
    saved inputs (already counted): 2 v M B. Rank 0 has no activation buffers for stage 0 (its input is the token
    ids), so (v - 1) M - (W - n0) + v M + W = (2 v - 1) M + n0 with n0 the chunk-forwards of stage 0 in flight; the
    last rank has no gradient buffers for the last stage and that stage's output is the logits (counted by
    :func:`logit_peak_bytes`): v M - W + (v - 1) M + (W - nL) = (2 v - 1) M - nL, nL those of the last stage
    (n0 = nL = W when v = 1; :func:`interleaved_chunk_in_flight` otherwise). pp = 2 has no middle rank: the larger
    of the two ends."""
    if not ctx.pp_torch_stage:
        return 0.0
    v = np.where(virtual_stages(p.schedule) & (p.vpp > 1), np.maximum(p.vpp, 1), 1).astype(np.float64)
    pp = p.pp.astype(np.float64)
    M = np.asarray(m, dtype=np.float64)

    def in_flight(rank: Num) -> Num:
        return microbatches_in_flight(p.schedule, p.pp, p.vpp, m, rank) * v

    w0 = in_flight(np.zeros_like(pp))
    wl = in_flight(pp - 1.0)
    n0 = np.where(v > 1, interleaved_chunk_in_flight(w0, pp, v, 0.0, M), w0)
    nl = np.where(v > 1, interleaved_chunk_in_flight(wl, pp, v, v - 1.0, M), wl)
    first = (2.0 * v - 1.0) * M + n0
    last = (2.0 * v - 1.0) * M - nl
    count = {"first": first, "mid": np.where(pp > 2, 2.0 * v * M, np.maximum(first, last)), "last": last}[kind]
    boundary = layer_input_bytes_per_token(ctx.arch.hidden) * tokens / p.tp
    return np.where(p.pp > 1, count * boundary, 0.0)


def dsa_loss_working_bytes(ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Bytes the DSA indexer loss (:func:`trainsim.perf.compute.dsa_indexer_loss_work`) holds while it runs, for
    the widest layer kind (one layer's loss at a time), per chip:

    * ``sparse`` (Megatron-LM d98e8a64 ``_compute_sparse_indexer_loss_and_grads``): the FP32 [b, sq, topk]
      target, log-probabilities and probabilities live together at the KL: 12 x min(top-k, s) bytes per token;
    * ``dense`` / ``dense_local`` (MindSpeed-LLM ``get_attn_scores``): the BF16 [b x H/tp, sq, sk] score buffer (2) and
      its FP32 softmax (4) live together, then the FP32 [b, sq, sk] head sum: (6 H / tp + 4) x s bytes per token.

    0 for ``none`` or a model without an indexer. Example (GLM-5, dense, tp 2, s 4,096, 4,096 tokens):
    (6 x 32 + 4) x 4096 x 4096 = 3.29 GB."""
    out: Num = 0.0
    if ctx.dsa_indexer_loss == "none":
        return out
    for lk in ctx.arch.layers:
        core = dsa_loss_teacher(lk)
        if core is None:
            continue
        keys = dsa_loss_keys(core, ctx)
        if ctx.dsa_indexer_loss == "sparse":
            per = 12.0 * keys + 0.0 * p.tp
        else:
            per = (6.0 * core.heads / p.tp + 4.0) * keys
        out = np.maximum(out, per * tokens)
    return out


def cp_backward_working_bytes(ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Bytes the stack's context parallelism adds while a layer's attention backward runs, for the widest layer
    kind: PyTorch's experimental CP (``ctx.cp_torch_ring``) keeps the all-gathered K/V and fp32 dK/dV buffers
    (:func:`trainsim.perf.comm_cp.torch_ring_backward_bytes`); other stacks' rings hold two blocks in flight,
    not counted. One layer's backward runs at a time, so the largest layer kind counts once per rank."""
    if not ctx.cp_torch_ring:
        return 0.0
    out: Num = 0.0
    for lk in ctx.arch.layers:
        out = np.maximum(out, torch_ring_backward_bytes(lk, ctx, p, tokens))
    return out


def _gradients_at_peak(ctx: StepContext, p: Plans, grads: Num, acts: Num) -> Num:
    """Sharded gradient bytes counted at the peak: ``grads`` unless the stack frees them every step
    (``ctx.fsdp_sharded_master``; torchtitan: ``optimizers.zero_grad()`` is torch.optim's ``set_to_none=True``
    before each forward, and FSDP2 assigns each layer's sharded gradient after its reduce-scatter in the
    backward). Then they are absent while the activations peak (the backward's start) and fill the memory the
    activations free layer by layer: the peak is states + max(activations, gradients), i.e. gradients counted as
    max(grads - acts, 0). Not where FSDP under pipeline parallelism accumulates whole-stage gradients across
    micro-batches (``ctx.pp_defers_sync``): those live through the later micro-batches' activations."""
    if not ctx.fsdp_sharded_master:
        return grads
    freed = (p.zero >= 2) & ~ctx.pp_defers_sync(p)
    return np.where(freed, np.maximum(grads - acts, 0.0), grads)


def _zero_unit_buffers(ctx: StepContext, p: Plans) -> tuple[Num, Num] | None:
    """(extra weights, extra gradients) bytes of ZeRO's per-unit working buffers, or None when no plan uses
    ZeRO >= 2. ZeRO-2 / FSDP reduce-scatter one unit's full gradients at a time; ZeRO-3 also gathers one unit (a
    layer, the embedding or the head) at a time, plus the prefetched next (PyTorch FSDP, DeepSpeed stage 3)."""
    if p.zero.max(initial=0) < 2:
        return None
    unit = ctx.vocab_per_tp(p) * ctx.arch.hidden
    for lk in ctx.arch.layers:
        d, e = params_per_chip(lk, p)
        unit = np.maximum(unit, d + e)
    sharded = ~ctx.pp_defers_sync(p)   # a stage kept whole (FSDP under PP) needs no per-unit buffers
    weights = np.where((p.zero >= 3) & sharded, 2.0 * ctx.weight_bytes * unit, 0.0)
    return weights, np.where((p.zero >= 2) & sharded, ctx.optimizer.grad_bytes * unit, 0.0)


def memory_breakdown(ctx: StepContext, p: Plans, tokens: Num, m: Array, states: object = None) -> dict[str, Any]:
    """Bytes per chip by part on the rank that needs the most, and the total with buffers and allocator margin.

    Every rank kind is costed (first: embedding, most micro-batches in flight; middle; last: head, logits, MTP)
    and the largest total is reported. ``states`` is ignored (kept for callers that pass it)."""
    c = ctx.calib
    best = None
    for w, g, o, a in _rank_kind_parts(ctx, p, tokens, m):
        tot = w + g + o + a
        if best is None:
            best = dict(weights=w, gradients=g, optimizer=o, activations=a, _t=tot)
        else:
            pick = tot > best["_t"]
            for k, val in (("weights", w), ("gradients", g), ("optimizer", o), ("activations", a), ("_t", tot)):
                best[k] = np.where(pick, val, best[k])
    assert best is not None   # three rank kinds were costed
    weights, grads, optim, acts = best["weights"], best["gradients"], best["optimizer"], best["activations"]
    subtotal = best["_t"]
    buf = _zero_unit_buffers(ctx, p)
    if buf is not None:
        grads = grads + buf[1]
        weights = weights + buf[0]
        subtotal = subtotal + (buf[0] + buf[1])
    total = subtotal * (1.0 + c.alloc_margin) + c.buffer_bytes
    return {"weights": weights, "gradients": grads, "optimizer": optim, "activations": acts,
            "buffers_and_margin": total - subtotal, "total": total}


def memory_total(ctx: StepContext, p: Plans, tokens: Num, m: Array) -> Num:
    """``memory_breakdown(...)["total"]`` with the same arithmetic in the same order, for the plan search's bulk
    pass: the largest of the rank kinds' sums (the rank :func:`memory_breakdown` picks) plus the ZeRO working
    buffers (the same for every rank kind), the parts never selected one by one at the full shape (plans x zero x
    recompute). :func:`memory_total_parts` then :func:`memory_total_sum`."""
    return memory_total_sum(ctx, memory_total_parts(ctx, p, tokens, m))


#: what :func:`memory_total` sums: each rank kind's (weights, gradients, optimizer, activations) and the ZeRO
#: working buffers (None: none), each at the shape of the plan fields it reads
TotalParts = tuple[list[tuple[Num, Num, Num, Num]], "tuple[Num, Num] | None"]


def memory_total_parts(ctx: StepContext, p: Plans, tokens: Num, m: Array) -> TotalParts:
    """The parts :func:`memory_total` adds up, before anything is computed at the full shape of the plans."""
    return _rank_kind_parts(ctx, p, tokens, m), _zero_unit_buffers(ctx, p)


def memory_total_sum(ctx: StepContext, parts: TotalParts, rows: slice | None = None) -> Num:
    """:func:`memory_total` of its ``parts``: max over rank kinds of w + g + o + a, plus the ZeRO buffers, times
    (1 + allocator margin), plus the fixed buffers. ``rows``: only the plans of this slice of the last axis (each
    part's last axis is that of the plans or of length 1), the same numbers as the whole sum's slice (every step
    is elementwise): the plan search's memory pass costs the parts once for many plan rows and sums them a slice
    at a time, so that the full-shape temporaries stay in a core's cache."""
    c = ctx.calib

    def at(x: Num) -> Num:
        if rows is None or np.ndim(x) == 0 or np.shape(x)[-1] == 1:
            return x
        return np.asarray(x)[..., rows]

    kinds, buf = parts
    best_t: Num | None = None
    for w, g, o, a in kinds:
        tot = at(w) + at(g) + at(o) + at(a)
        best_t = tot if best_t is None else np.maximum(best_t, tot)
    assert best_t is not None   # three rank kinds were costed
    sub = best_t if buf is None else best_t + (at(buf[0]) + at(buf[1]))
    return sub * (1.0 + c.alloc_margin) + c.buffer_bytes
