"""One training step: compose compute, communication, pipeline and optimizer into a time and its breakdown.

For m = global batch / (dp x micro-batch) micro-batches, with t_f(r) and t_b(r) the forward and backward time of
one micro-batch on pipeline rank r (its layers, plus the output head and MTP modules on the last rank; each including
the communication the schedule cannot hide) and DP(r) the data-parallel sync that rank leaves exposed behind its own
backward:

    step = max_r [m (t_f(r) + t_b(r)) + DP(r)] + calls x bubble(schedule, p, v, max_r (t_f(r) + t_b(r)))
           + optimizer + overhead

(calls: the pipeline schedule's calls per step, each with its own fill and drain; parallel/schedules.py
``pipeline_calls``, 1 unless the run states ``training.local_batch_seqs``)

Backward = 2 x forward for GEMMs (input and weight gradients; the DSA indexer's detached projections: weight
gradients only, with the loss, :func:`trainsim.perf.compute.layer_gemm_bwd`), the attention core's own backward
(:func:`trainsim.perf.compute.attention_bwd`: :func:`~trainsim.perf.compute.attn_bwd_ratio` x for flash
attention, the measured sparse-attention backward rate for DeepSeek-V4's DSA cores), 2 x for
memory-bound kernels, except the MoE token copies whose backward is the inverse copy (fused permute / unpermute,
the all-to-all dispatcher's sort, experts run one after another: their own forward and backward,
:func:`trainsim.perf.compute.expert_copies_fwd_bwd`); recomputation adds the recomputed forward parts to the
backward (selective: attention core and activation functions; full: the whole layer forward, tp collectives
included). Overlap of a
communication C with compute W uses one rule everywhere: exposed = C - f min(C, W), f from the calibration.

MFU = model FLOPs (6 x active params incl. head + causal attention, per token; no recompute, no MTP) /
(step x chips x BF16 dense peak). HFU counts what the hardware executed (recompute and MTP included).
"""
from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields as dc_fields

from typing import Any

import numpy as np

from ..catalog.types import Chip
from ..model.arch import LayerKind
from ..model.counts import count, layer_attention_fwd_flops_per_token
from .comm_cp import cp_dkv_step, cp_ring_fwd, cp_ring_sync, ring_merge_time, torch_ring_exposed
from .comm_dp import ddp_overlap, dp_sync_times, grad_accumulation_bytes, grad_buffer_pass_bytes, replica_sync_time
from .comm_ep import (ep_alltoall_fwd, etp_comm_fwd, paired_overlap_exposed,
                      routing_map_allgather_fwd)
from .comm_tp import (dsa_loss_allreduce_fwd, replicated_gather_fwd, tp_comm_bwd, tp_comm_fwd,
                      tp_overlap_fraction)
from .compute import (attention_bwd, attention_fwd, eager_kernels_fwd_bwd, elementwise_fwd, expert_copies_fwd_bwd,
                      hbm_time, head_gemm_fwd, layer_gemm_bwd, layer_gemm_fwd, loss_time)
from .collectives import exposed, p2p_time
from .calibration import Calib
from .context import BF16_BYTES, StepContext
from .memory import (memory_breakdown, memory_total, model_state_params, offload_bytes_per_microbatch, optimizer_shards,
                     rank_layers, swap_chunks)
from .recompute import pointwise_recompute_fwd, selective_recompute_fwd
from .pipeline import bubble_time, dp_sync_window, mirrored_stages, overlaps_ep_comm, pipeline_calls, virtual_stages
from .arrays import Array, Num
from ..parallel.plan import Plans
from ..parallel.schedules import fill_drain_transfers, mindspeed_dualpipev

BREAKDOWN_KEYS = ("compute_gemm", "attention", "memory_bound", "recompute", "tp_comm", "ep_alltoall",
                  "cp_comm", "pp_p2p", "pipeline_bubble", "dp_comm", "optimizer", "host",
                  "activation_offload", "other")


@dataclass
class StepResult:
    """A training step of each plan: step time (s), tokens/s per chip, MFU and HFU, memory per chip by part
    (bytes), time breakdown by part (s) and microbatches."""

    step_time_s: np.ndarray
    tokens_per_s_per_chip: np.ndarray | None   # None from the search's bulk pass with rate=False
    mfu: np.ndarray | None
    hfu: np.ndarray | None
    memory: dict[str, Any]
    breakdown: dict[str, Any]
    microbatches: np.ndarray

    @property
    def memory_per_chip_bytes(self) -> np.ndarray:
        """Total memory per chip (bytes) of each plan."""
        return self.memory["total"]


LAYER_KEY = ("tp", "cp", "mb", "ep", "etp", "node_limit")


#: the plan fields the parameters per chip and their data-parallel sync read (:func:`shared_costs`): every field
#: :func:`perf.memory.model_state_params`, :func:`perf.comm_dp.dp_sync_times` and :func:`replica_sync_time` read.
#: The schedule is one: DualPipe holds two stages per rank (perf.memory.rank_state_params, DeepSeek-V3 Table 2:
#: 2x parameters); without it a search's DualPipe plan took the dp sync and optimizer time of a 1F1B plan of the
#: same layout costed in the same grid (half), so the grid's time depended on which plans shared it
STATE_KEY = ("tp", "cp", "dp", "pp", "vpp", "ep", "etp", "zero", "zgroup", "schedule")


def _unique_rows(p: Plans, fields: tuple[str, ...] = LAYER_KEY) -> tuple[Plans, Array]:
    """Representative plans (flat) for the fields a cost depends on, and the map back to every plan.

    Fields may be arrays of different broadcastable shapes (the plan search passes the fields that shape a stage
    as a column (n, 1, 1), zero as (1, Z, 1) and recompute as (1, 1, R)); the distinct rows are found per group
    of fields of one shape and combined, and the map has the broadcast shape of ``fields``."""
    names = [f.name for f in dc_fields(p)]
    full = np.broadcast_shapes(*(np.shape(getattr(p, f)) for f in names))
    groups: dict[tuple[int, ...], list[str]] = {}
    for f in fields:
        groups.setdefault(np.shape(getattr(p, f)), []).append(f)
    at_parts: list[Any] = []
    inv: np.ndarray | int = 0
    n_rep = 1
    for shape, fs in groups.items():
        shape = (1,) * (len(full) - len(shape)) + tuple(shape)
        key = np.zeros(shape, dtype=np.int64)
        for name in fs:
            col = np.reshape(getattr(p, name), shape)
            key = key * (int(col.max(initial=0)) + 1) + col
        _, first, g_inv = np.unique(key.ravel(), return_index=True, return_inverse=True)
        at_parts.append(np.unravel_index(first, shape))
        inv = inv * len(first) + g_inv.reshape(shape)
        n_rep *= len(first)
    # representatives: every combination of the groups' distinct rows (position = inv's mixed-radix code)
    at = [np.zeros(n_rep, dtype=np.int64) for _ in full]
    stride = n_rep
    for part in at_parts:
        u = len(part[0])
        stride //= u
        sel = (np.arange(n_rep) // stride) % u
        for d, coord in enumerate(part):
            at[d] = at[d] + coord[sel]     # groups vary along different axes; others are 0 there
    reps = type(p)(**{f: np.broadcast_to(getattr(p, f), full)[tuple(at)] for f in names})
    return reps, np.broadcast_to(inv, np.broadcast_shapes(*(np.shape(getattr(p, f)) for f in fields)))


def layer_costs(ctx: StepContext, p: Plans) -> dict[str, Any]:
    """Per micro-batch forward costs of all the model's layers (summed over layer kinds, before dividing among
    pipeline stages), the output head and the MTP modules, for plans ``p``. Depends only on LAYER_KEY fields."""
    a = ctx.arch
    n = len(p)
    tokens = np.full(n, ctx.seq_len, dtype=np.float64) * p.mb / p.cp   # tokens a tp group holds per micro-batch
    out: dict[str, Any] = {k: np.zeros(n) for k in ("gemm", "gemm_b", "attn", "attn_b", "elem", "seq_f", "seq_b",
                                    "tp", "tp_b", "ep", "ep_g",
                                    "tp_g", "cp", "cp_dkv", "cp_sync", "cp_merge_f", "cp_merge_b", "rec_sel", "rec_pw",
                                    "rec_pw_sel", "mtp_g",
                                    "mtp_g_b", "mtp_a", "mtp_a_b", "mtp_e", "mtp_s", "mtp_s_b", "mtp_tp", "mtp_tp_b",
                                    "mtp_ep", "mtp_tp_g", "mtp_ep_g", "moe_calls_f", "moe_calls_b")}
    calls_f, calls_b = expert_host_calls(ctx)
    for lk in a.layers:
        for k, v in _layer_terms(lk, ctx, p, tokens).items():
            out[k] += lk.n_layers * v
        out["cp"] += lk.n_layers * cp_ring_fwd(lk, ctx, p, tokens)
        out["cp_sync"] += lk.n_layers * cp_ring_sync(lk, ctx, p)
        if ctx.cp_torch_ring:
            out["cp_dkv"] += lk.n_layers * cp_dkv_step(lk, ctx, p, tokens)
        # the ring's merges of its per-step partial results, on the compute stream (comm_cp.ring_merge_time)
        merge_f, merge_b = ring_merge_time(lk, ctx, p, tokens)
        out["cp_merge_f"] += lk.n_layers * merge_f
        out["cp_merge_b"] += lk.n_layers * merge_b
        # selective recompute: the forward of the recomputed modules (perf/recompute.py)
        out["rec_sel"] += lk.n_layers * selective_recompute_fwd(lk, ctx, p, tokens, ctx.recompute.modules)
        # a stack's own rerun of the pointwise kernels it keeps no output of (perf/recompute.py), less the selective
        # modules' where the plan recomputes them
        out["rec_pw"] += lk.n_layers * pointwise_recompute_fwd(lk, ctx, p, tokens, ())
        out["rec_pw_sel"] += lk.n_layers * pointwise_recompute_fwd(lk, ctx, p, tokens, ctx.recompute.modules)
        if lk.moe is not None:   # per-expert host calls of the grouped GEMM (moe_launch_floor)
            local_experts = lk.moe.experts / p.ep
            out["moe_calls_f"] += lk.n_layers * local_experts * calls_f
            out["moe_calls_b"] += lk.n_layers * local_experts * calls_b
    head = head_gemm_fwd(ctx, p, tokens)
    out["head"] = head
    # the loss over the logits of the output head and of every MTP module
    loss_f, loss_b = loss_time(ctx, p, tokens)
    depth = 1.0 + sum(lk.n_layers for lk in a.mtp)
    out["loss_f"], out["loss_b"] = depth * loss_f, depth * loss_b
    # an MTP module's transformer layer is built and scheduled as the decoder layers' are (Megatron-LM d98e8a64
    # megatron/core/transformer/multi_token_prediction.py MultiTokenPredictionLayer.mtp_model_layer: a
    # TransformerLayer built from the transformer block spec), so its costs are theirs (_layer_terms; its
    # backward's TP transfers too: comm_tp.tp_comm_bwd, the re-gather of the saved input shard, FP8 gathers at
    # 1 byte + scales), plus its own output head forward and (2 x) backward
    for lk in a.mtp:
        t = _layer_terms(lk, ctx, p, tokens)
        out["mtp_g"] += lk.n_layers * (t.pop("gemm") + head)
        out["mtp_g_b"] += lk.n_layers * (t.pop("gemm_b") + 2.0 * head)
        for k, v in t.items():
            out[_MTP_KEY[k]] += lk.n_layers * v
    return out


#: the key of an MTP module's cost in :func:`layer_costs` for each per-layer term of :func:`_layer_terms` but the
#: GEMMs (``mtp_g``, ``mtp_g_b``: with the module's output head)
_MTP_KEY = {"attn": "mtp_a", "attn_b": "mtp_a_b", "elem": "mtp_e", "seq_f": "mtp_s", "seq_b": "mtp_s_b",
            "tp": "mtp_tp", "tp_b": "mtp_tp_b", "tp_g": "mtp_tp_g", "ep": "mtp_ep", "ep_g": "mtp_ep_g"}


def _layer_terms(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Array) -> dict[str, Any]:
    """Per-layer, per-micro-batch costs of one layer kind that decoder layers and MTP modules both have (s):
    GEMM forward and backward, attention core forward and backward, memory-bound kernels, the expert-buffer
    copies with their own forward / backward counts (the fused permute / unpermute, the all-to-all dispatcher's
    sort by local expert, experts one after another (SequentialMLP), plus the eager glue kernels' fixed time,
    counted per direction: compute.eager_kernels_fwd_bwd), TP collectives forward and backward, the forward-only
    replicated-core gather and DSA loss all-reduce, the expert all-to-all with the expert-TP collectives, and the
    forward dispatch's routing-map all-gather."""
    g = layer_gemm_fwd(lk, ctx, p, tokens)
    seq_f, seq_b = expert_copies_fwd_bwd(lk, ctx, p, tokens)
    eag_f, eag_b = eager_kernels_fwd_bwd(lk, ctx)
    return {"gemm": g,
            "gemm_b": layer_gemm_bwd(lk, ctx, p, tokens, g),
            "attn": attention_fwd(lk, ctx, p, tokens),
            "attn_b": attention_bwd(lk, ctx, p, tokens),
            "elem": elementwise_fwd(lk, ctx, p, tokens),
            "seq_f": seq_f + eag_f,
            "seq_b": seq_b + eag_b,
            "tp": tp_comm_fwd(lk, ctx, p, tokens),
            "tp_b": tp_comm_bwd(lk, ctx, p, tokens),
            "tp_g": replicated_gather_fwd(lk, ctx, p, tokens) + dsa_loss_allreduce_fwd(lk, ctx, p, tokens),
            "ep": ep_alltoall_fwd(lk, ctx, p, tokens) + etp_comm_fwd(lk, ctx, p, tokens),
            "ep_g": routing_map_allgather_fwd(lk, ctx, p, tokens)}


def cp_overlap_for(ctx: StepContext) -> float:
    """Fraction of the context-parallel K/V traffic that overlaps attention.

    Ring attention (Megatron-Core / Transformer Engine CP, PyTorch's ring attention) sends the next K/V block
    while the current one is computed: ``cp_overlap``. An all-gather CP (the stack's ``cp_allgather`` profile
    flag) first all-gathers K and V over the CP ranks and then computes the local queries' attention, so the
    all-gather (and the backward's reduce-scatter of dK/dV) sits on the critical path: 0. Source: the Llama 3
    report (arXiv 2407.21783) sec. 3.3.2, "our CP implementation adopts an all-gather based method where we first
    all-gather the key (K) and value (V) tensors, and then compute attention output for the local query (Q) tensor
    chunk ... the all-gather communication latency is exposed in the critical path". The bytes are the same as
    the ring's ((cp - 1) K/V blocks received per rank, perf/comm_cp.py). PyTorch's experimental CP (the stack's
    ``cp_torch_ring`` flag) keeps ``cp_overlap`` but hides its all-gather behind the first sub-SDPA only, and
    nothing when torch.compile traces the ring (:func:`trainsim.perf.comm_cp.torch_ring_exposed`)."""
    return 0.0 if ctx.cp_allgather else ctx.calib.cp_overlap


def dp_syncs_per_step(p: Plans, calls: Num) -> Num:
    """Data-parallel synchronisations per step of a plan whose gradients sync once behind the last backward (ZeRO
    0-1, and FSDP kept gathered under pipeline parallelism, ``ctx.pp_defers_sync``): ``calls``, the pipeline
    schedule's calls per step (parallel/schedules.py ``pipeline_calls``), where pp > 1; else 1.

    torch.distributed.pipelining decides "last backward" per call of ``schedule.step``: ``_step_microbatches``
    starts a fresh ``backward_counter`` on every call and passes ``last_backward = backward_counter[stage_idx] ==
    self._n_microbatches`` (the micro-batches of that call) to ``backward_one_chunk``; on it
    ``PipelineStage.backward_maybe_with_nosync`` runs FSDP's post-backward for the stage with
    ``set_requires_gradient_sync(True)`` and ``set_reshard_after_backward(True)`` (the gradient reduce-scatter, the
    parameters freed), and a DDP stage its all-reduce (pytorch/pytorch torch/distributed/pipelining/schedules.py and
    stage.py as of v2.10, the version MindSpeed's copy of stage.py names). NeMo AutoModel calls ``schedule.step``
    once per local batch (nemo_automodel/recipes/llm/benchmark.py ``for ga_step_idx in range(ga_steps)`` ->
    train_ft.py ``_forward_backward_step``, Automodel 89e3a9fdd .. 809f1993; 89e3a9fdd does not patch the stage's
    backward, 809f1993 only under the opt-in ``patch_stage_backward_maybe_with_nosync``), so each call
    reduce-scatters the gradients and the next call gathers the parameters again. Where pp = 1 there is no
    schedule to call: 1 (the per-micro-batch syncs of ZeRO 2 / 3 are counted where they are charged)."""
    return np.where(p.pp > 1, calls, 1.0)


#: Share of :func:`moe_host_sync_time` that falls in the forward pass: all of it. The dropless dispatcher's only
#: device-to-host synchronisation is in its forward: Megatron-Core ``MoEAlltoAllTokenDispatcher`` calls
#: ``_maybe_dtoh_and_synchronize`` (the D2H copy of the token counts and splits, and the ``d2h_event.synchronize()``
#: at ``cuda_sync_point``) from ``dispatch_preprocess``, ``token_dispatch``, ``dispatch_postprocess`` and
#: ``combine_preprocess`` only, all forward methods (megatron/core/transformer/moe/token_dispatcher.py at Megatron-LM
#: 0d8e0714, the Megatron-Core of Megatron-Bridge v0.2.0); the backward's all-to-all and grouped GEMM reuse the
#: split sizes the forward left on the host, so the backward launches behind a full queue. The one constant the
#: training step (forward / backward split and the recompute rerun, :func:`_stage`) and the post-training
#: forward-only pass (:func:`trainsim.posttrain.phases.forward_only_s`) read.
MOE_HOST_SYNC_FORWARD_SHARE = 1.0


def host_time_factor(chip: Chip, calib: Calib) -> float:
    """Host (CPU) time of launch work on ``chip``'s host / the same work on the x86 hosts the fitted host terms
    stand for (``moe_layer_host_s``, ``moe_expert_call_host_s``: DGX / HGX hosts, Xeon or EPYC).

    The host is the chip's where the chip fixes it (catalog ``host_cpu``: the Grace-Blackwell superchips carry a
    Grace CPU, 72 Arm Neoverse V2 cores, per two GPUs): ``calib.host_time_factor_grace`` there, else 1. The
    factor and its evidence: perf/data/constants.yaml ``host_time_factor_grace``. Exposed for the serving and
    post-training engines' host terms (a serving step's ``step_overhead_s`` is host work of the same kind)."""
    return calib.host_time_factor_grace if chip.host_cpu == "grace" else 1.0


def launch_work_factor(calib: Calib) -> float:
    """A chip family's measured launch work of a host-bound MoE layer / what the fitted x86 terms give it:

        factor = host_bound_layer_s / (moe_layer_host_s + host_bound_layer_calls x moe_expert_call_host_s)

    where the family has a measurement (``calib.host_bound_layer_s`` > 0: a published micro-batch that takes as
    long as one of twice the tokens, so that its time is the host's launch work), else 1. The denominator is
    :func:`moe_launch_floor`'s work for one MoE layer and micro-batch. CDNA 4 (MI355X) under ROCm 7.1: 14.68 ms
    per DeepSeek-V2-Lite layer at 48 per-expert calls (AMD's Primus MoE blog, Figure 5: micro-batch 1 and 2 take
    0.382 and 0.390 s per micro-batch; perf/data/constants.yaml families.amd-cdna4) against 3.26 ms + 48 x
    44.4 us = 5.39 ms at calibration.yaml's values: 2.72.

    It scales the launch floor only (:func:`host_time` with ``launch``), not the host time a token-count
    synchronisation exposes (:func:`moe_host_sync_time`), which the same figure bounds: its device-bound bars,
    micro-batch 4, 8 and 12, take 0.584, 1.079 and 1.614 s, 0.13 s per sequence and about 0.05 s per micro-batch
    besides (under 2 ms per layer), and with the exposed host time x 2.72 too the engine gives the micro-batch 2
    and 4 bars 0.56 and 0.76 of the micro-batch 12 rate against the published 0.69 and 0.92
    (tests/test_primus_amd_moe.py)."""
    x86_s = calib.moe_layer_host_s + calib.host_bound_layer_calls * calib.moe_expert_call_host_s
    if calib.host_bound_layer_s > 0.0 and x86_s > 0.0:
        return calib.host_bound_layer_s / x86_s
    return 1.0


def host_time(ctx: StepContext, x86_s: Num, launch: bool = False) -> Num:
    """Host time of launch work that takes ``x86_s`` on an x86 host, on the host of ``ctx``'s chip:
    ``x86_s`` x :func:`host_time_factor`, and x :func:`launch_work_factor` where ``launch`` (the launch floor,
    :func:`moe_launch_floor`). The one place the training engine scales its host-bound terms
    (:func:`moe_host_sync_time`, :func:`moe_launch_floor`, the per-step ``step_overhead_s`` here and in
    perf/bound.py)."""
    f = host_time_factor(ctx.system.chip, ctx.calib)
    return x86_s * (f * launch_work_factor(ctx.calib) if launch else f)


def moe_host_sync_time(ctx: StepContext, moe_layers: Num) -> Num:
    """Host time exposed per micro-batch (forward + backward) by ``moe_layers`` MoE layers outside CUDA graphs.

    A dropless MoE layer learns how many tokens each expert receives only on the device; the dispatcher copies the
    counts to the host to size the all-to-all and the grouped GEMM (Megatron-Core ``tokens_per_expert`` and the
    alltoall dispatcher's output splits; the flex dispatchers likewise), a device-to-host synchronisation that
    empties the launch queue, so the host's launch work after it (routing, permutation, dispatch set-up: hundreds of
    small kernels) is no longer hidden behind the GPU. Per MoE layer and micro-batch that costs ``moe_layer_host_s``
    (fitted by scripts/calibrate.py on the MoE runs, the one per-layer constant). Capturing the whole iteration in
    a CUDA graph with sync-free dispatch (Megatron-Core ``cuda_graph_impl=full_iteration``; run spec
    ``training.cuda_graphs: full``) removes it: 0. So does token drop with padding to capacity (run spec
    ``training.moe_token_drop``: Megatron-Core ``moe_pad_expert_input_to_capacity``): every expert's token count
    is the capacity, known on the host, and MoEAlltoAllTokenDispatcher keeps ``cuda_sync_point = "no_sync"``
    (megatron/core/transformer/moe/token_dispatcher.py: ``preprocess``'s ``drop_and_pad`` branch returns before
    any sync point is set, core_v0.11.0 / core_v0.12.0; at Megatron-LM cba6b0ed, the Megatron-Core of
    Megatron-Bridge v0.2.2, ``_maybe_dtoh_and_synchronize`` also does nothing under ``drop_and_pad``, and
    ``_HybridEPManager.setup_metadata`` gives HybridEP the token counts on the host, where it would otherwise
    copy them back): 0. DeepEP's dispatch always waits on the host for the received counts (fused_a2a.py: "the
    CPU will wait for GPU's signal to arrive") and Megatron-Core rejects padding to capacity with it
    (transformer_config.py), as the run spec does. Under
    DualPipe and Megatron-Core's EP all-to-all overlap the caller hides it under the window that hides the pair's
    all-to-alls, sharing that window with them (the other micro-batch's compute is queued meanwhile:
    :func:`trainsim.perf.comm_ep.paired_overlap_exposed`). Measured (Megatron-Bridge PR #5094,
    skills/nemo-mbridge-perf-moe-comm-overlap/SKILL.md at 067f987d; Qwen3-30B-A3B on 16 H100, HybridEP, only the
    overlap switched): the GPU-active interval union is 22.821 s of the 24.714 s step without the overlap (1.89 s
    idle) and 21.221 s of the 20.992 s step with it (none idle), and the HybridEP metadata-preprocess range (its
    host sync) falls from 3.109 s to 0.670 s."""
    if ctx.cuda_graphs == "full" or ctx.moe_token_drop:
        return 0.0 * moe_layers
    return host_time(ctx, moe_layers * ctx.calib.moe_layer_host_s)


def moe_host_recompute_time(ctx: StepContext, p: Plans, frac: Num, host_f: Num) -> Num:
    """Host time a recompute adds per micro-batch by running MoE layers' forward again: ``host_f`` (the forward's
    share of :func:`moe_host_sync_time`, exposed: :data:`MOE_HOST_SYNC_FORWARD_SHARE` of it) once more for the share
    ``frac`` of layers recomputed.

    Full recompute reruns the whole layer forward in the backward (Megatron-Core transformer_block.py
    ``_checkpointed_forward`` wraps the layers in ``tensor_parallel.checkpoint``, whose ``CheckpointFunction.backward``
    calls ``run_function`` again; PyTorch's ``checkpoint`` likewise), and so does selective recompute of the
    ``moe`` module (transformer/moe/moe_layer.py: ``moe_layer_recompute`` checkpoints the router, dispatch, experts
    and combine, Megatron-LM d98e8a6). The rerun routes the tokens again and its dispatcher makes the same
    device-to-host token-count synchronisation as the first forward (token_dispatcher.py ``preprocess`` /
    ``_maybe_dtoh_and_synchronize``; DeepEP's dispatch waits on the host for the received counts), so the forward's
    host stall recurs: plan recompute 2 (full) ``frac`` x ``host_f``; selective with ``moe`` in the modules
    ``host_f``; otherwise 0. Where :func:`moe_host_sync_time` is 0 (whole-iteration CUDA graphs, drop and pad) this
    is 0 too."""
    return moe_rerun_share(ctx, p, frac) * host_f


def moe_rerun_share(ctx: StepContext, p: Plans, frac: Num) -> Num:
    """Share of the MoE layers' forward a recompute runs again in the backward: ``frac`` (the recomputed share of
    layers) under full recompute (plan recompute 2), 1 under selective recompute with ``moe`` among its modules,
    else 0 (the reasons: :func:`moe_host_recompute_time`). Read by the host stall's rerun and by the launch floor's
    (:func:`moe_launch_floor`)."""
    sel_moe = 1.0 if "moe" in ctx.recompute.modules else 0.0
    return np.where(p.recompute == 2, frac, np.where(p.recompute == 1, sel_moe, 0.0))


#: Launches Transformer Engine makes per expert to quantise one grouped-GEMM operand (an expert's slice of the
#: input or of the output gradient), by FP8 recipe (TE v2.9, the TE of NeMo 25.11: pytorch/csrc/extensions/cast.cpp
#: ``split_quantize`` -> ``multi_tensor_quantize_impl``): per-tensor current scaling quantises each slice on its
#: own, ``Float8CurrentScalingQuantizer::quantize_impl`` (pytorch/csrc/quantizer.cpp) = ``nvte_compute_amax`` +
#: ``nvte_compute_scale_from_amax`` + ``nvte_quantize_v2``: 3; MXFP8 and blockwise one ``quantize`` each: 1;
#: delayed scaling casts all slices in one fused ``nvte_multi_cast_transpose`` ("Currently only have fused kernel
#: for FP8 delayed scaling"): 0 per expert; BF16 splits the input with views: 0.
EXPERT_QUANT_LAUNCHES = {"current": 3.0, "mxfp8": 1.0, "blockwise": 1.0, "delayed": 0.0}


def expert_host_calls(ctx: StepContext) -> tuple[float, float]:
    """(forward, backward) host calls per local expert per MoE layer and micro-batch: the experts' GEMMs and the
    quantisation of their operands, each issued per expert.

    Transformer Engine's grouped linear (``GroupedLinear``, Megatron-Core ``TEGroupedMLP`` for
    ``moe_grouped_gemm``) runs one cuBLAS GEMM per expert (``general_grouped_gemm`` ->
    ``nvte_multi_stream_cublas_gemm``; 105 ``nvte_cublas_gemm`` calls per layer and micro-batch for Qwen3-30B-A3B
    at 16 local experts in the nsys profile of yanring/Megatron-MoE-ModelZoo issue #7: 6 per expert + the
    attention's) and quantises each expert's
    slice of its FP8 operands (:data:`EXPERT_QUANT_LAUNCHES`, q per slice; TE v2.9
    pytorch/module/grouped_linear.py: ``tex.split_quantize`` of the input in the forward, of the output gradient
    in the backward). fc1 and fc2: forward 2 GEMMs (fprop) + 2 q, backward 4 GEMMs (dgrad, wgrad) + 2 q. The
    weights are quantised on the first micro-batch only (``get_weight_workspace`` caches them,
    ``is_first_microbatch``), so not counted. Megatron-Core's SequentialMLP issues the same calls expert by
    expert."""
    q = EXPERT_QUANT_LAUNCHES.get(ctx.fp8_recipe, 0.0) if ctx.fp8_gemm else 0.0
    return 2.0 + 2.0 * q, 4.0 + 2.0 * q


def moe_launch_floor(ctx: StepContext, moe_layers: Num, calls_f: Num, calls_b: Num, rerun: Num) -> tuple[Num, Num]:
    """(forward, backward) host time per micro-batch of ``moe_layers`` MoE layers issuing ``calls_f`` /
    ``calls_b`` per-expert calls (:func:`expert_host_calls` x local experts x layers), ``rerun`` the share of
    the forward a recompute repeats in the backward: the time under which the host cannot issue a micro-batch.

    Outside CUDA graphs every kernel is launched from Python on the host, which runs ahead of the GPU while it is
    faster; a layer whose launch work is longer than its device work is host-bound and takes the launch work
    ("CPU Overhead Bottleneck ... gaps between GPU kernels where CPU cannot launch kernels fast enough",
    Megatron-Core MoE README at Megatron-LM b0cc2706; "FP8 shifts bottleneck from memory/compute to CPU
    overhead", Megatron-Bridge skills/nemo-mbridge-perf-moe-optimization-workflow/card.yaml at 067f987d). Per MoE
    layer and micro-batch that work is the layer's own (routing, permutation, dispatch set-up:
    ``moe_layer_host_s``, the part a token-count synchronisation exposes) plus ``moe_expert_call_host_s`` per
    per-expert call; the latter is fitted by scripts/calibrate.py, as each call carries PyTorch work beyond its
    launch (per-expert ``torch.split`` views and ``torch.empty`` outputs, "the CPU overheads of PyTorch ops",
    TransformerEngine issue #1499, a maintainer's answer; 20.3 us is the mean of the cuBLAS call alone, issue #7
    above). On a family with a measured host-bound layer (ROCm on CDNA 4) the work is x
    :func:`launch_work_factor`. The step takes max(device, this) per micro-batch (:func:`_stage`). Whole-iteration
    CUDA graphs replay without launches: 0."""
    if ctx.cuda_graphs == "full":
        z = 0.0 * (moe_layers + calls_f)
        return z, z
    c = ctx.calib
    h_f = host_time(ctx, moe_layers * c.moe_layer_host_s + calls_f * c.moe_expert_call_host_s, launch=True)
    return h_f, host_time(ctx, calls_b * c.moe_expert_call_host_s, launch=True) + rerun * h_f


def layer_launch_floor(ctx: StepContext, layers: Num, rerun: Num) -> tuple[Num, Num]:
    """(forward, backward) host time per micro-batch of issuing ``layers`` transformer layers' operators one by one
    from eager PyTorch, ``rerun`` the share of the forward a full recompute repeats in the backward:

        h_f = layers x eager_layer_ops_fwd x eager_op_host_s,  h_b = layers x eager_layer_ops_bwd x eager_op_host_s
              + rerun x h_f   (each x :func:`host_time_factor`)

    The host issues ahead of the device and the device waits only where the host is slower (Ascend MindStudio
    performance guide, 'Host Bound' classification, toolsample6_052: the device idles waiting for new tasks when the
    host's issuing takes longer than the device's execution), so the micro-batch takes max(device, host)
    (:func:`_stage`, the floor it shares with :func:`moe_launch_floor`), not their sum. ``eager_op_host_s`` is the
    family's measured issue interval of one operator (constants.yaml: ascend-910 21.5 us, torch_npu at its default
    task-queue level; 0 where none is measured, so no floor); the operator counts are those of a Megatron-Core
    layer with fused norm / rotary / SwiGLU / flash attention (constants.yaml eager_layer_ops_fwd / _bwd, with the
    count). Whole-iteration CUDA graphs replay without launches: 0."""
    c = ctx.calib
    per_op = 0.0 if ctx.cuda_graphs == "full" else c.eager_op_host_s
    h_f = host_time(ctx, layers * c.eager_layer_ops_fwd * per_op)
    return h_f, host_time(ctx, layers * c.eager_layer_ops_bwd * per_op) + rerun * h_f


def launch_floor_extra(t_f: Num, t_b: Num, fl_f: Num, fl_b: Num, synced: Any) -> tuple[Num, Num]:
    """(forward, backward) host time a micro-batch adds to its device path ``t_f`` / ``t_b`` (s) where the host's
    launch work ``fl_f`` / ``fl_b`` (:func:`moe_launch_floor`) is longer.

    The host runs ahead of the device across the micro-batch, so its forward and backward share one floor:
    extra = max(0, fl_f + fl_b - t_f - t_b), split between the passes as the launch work is. Where a device
    synchronisation separates the forward step from the backward step (``synced``: Megatron-Core's 1F1B with batched
    p2p and ``batch_p2p_sync``, torch.cuda.synchronize() after each exchange, megatron/core/pipeline_parallel/
    p2p_communication.py _communicate at Megatron-LM 847781764f; the profile flag ``pp_p2p_device_sync``) the host
    cannot launch the backward while the device still runs the forward, nor the device run the backward's kernels
    before the host has launched them, so each pass takes its own maximum: extra_f = max(0, fl_f - t_f),
    extra_b = max(0, fl_b - t_b), never less than the shared floor's.

    The MoE forward's own token-count synchronisations (:func:`moe_host_sync_time`) are not read as such a
    separation: AMD's Primus blog, Figure 5 (DeepSeek-V2-Lite, 8 MI355X, pp 1, the 1F1B baseline recipe with four
    such syncs per layer forward) has micro-batch 2 take 0.3896 s, as long as micro-batch 1 (0.3816 s, the launch
    work itself: constants.yaml host_bound_layer_s); per-pass floors at :func:`moe_launch_floor`'s forward /
    backward split of that work give micro-batch 2 0.445 s (the forward launch-bound, the backward device-bound),
    the shared floor 0.388 s (tests/test_primus_amd_moe.py)."""
    floor = fl_f + fl_b
    extra = np.maximum(0.0, floor - (t_f + t_b))
    shared_f = extra * np.where(floor > 0.0, fl_f / np.where(floor > 0.0, floor, 1.0), 0.0)
    sep_f, sep_b = np.maximum(0.0, fl_f - t_f), np.maximum(0.0, fl_b - t_b)
    return np.where(synced, sep_f, shared_f), np.where(synced, sep_b, extra - shared_f)


def host_offload_time(ctx: StepContext, opt_params: Num, local_params: Num, compute_s: Num) -> Num:
    """Exposed host-link (PCIe) time per step of states kept in host memory.

    Optimizer offload (Megatron-Core ``--optimizer-cpu-offload``, ZeRO-Offload, Ren et al. 2021 sec. 4): the
    gradient shard goes to the host and the updated BF16 parameters come back, on the critical path between steps:
    (grad_bytes + 2) x shard / host-link bandwidth. EMA in host memory (DeepSeek-V3 sec. 3.3.1): the BF16
    parameters go to the host once per step, asynchronously, exposed only beyond the step's compute."""
    o, bw = ctx.optimizer, ctx.host_link_bw
    t = np.zeros_like(np.asarray(opt_params, dtype=np.float64))
    if o.offload_optimizer:
        t = t + opt_params * (o.grad_bytes + BF16_BYTES) / bw
    if o.offload_ema:
        t = t + np.maximum(0.0, local_params * BF16_BYTES / bw - compute_s)
    return t


def swap_optimizer_time(ctx: StepContext, p: Plans, dense: Num, expert: Num, adam_s: Num) -> Num:
    """The optimizer step of plans whose optimizer states are swapped to host memory (``p.swap``, MindSpeed
    ``--swap-optimizer``; ``adam_s``, the HBM-bound Adam of the chip's whole shard, where not), on a chip holding
    ``dense`` and ``expert`` parameters. Per distributed optimizer, its shard in C chunks of k pieces of q
    parameters (:func:`trainsim.perf.memory.swap_chunks`, P = n / q pieces), each piece's load h, update a and
    store h (h = opt_bytes x q / host_link_bw, opt_bytes the fp32 master + moments, 12; a = adam_s x q / shard):

        t = sum over (dense, expert) of [ (P - C) x max(h, a) + C x (2h + a) ]  -  h of the last one stepped

    Ascend/MindSpeed 028de58c mindspeed/core/optimizer/swap_optimizer/swap_optimizer.py ``swap_adamw_step``: at a
    chunk's first parameter (``swap_count == 0``) the compute stream and ``swap_to_device_stream`` both wait for
    every store issued so far (``wait_stream(swap_to_host_stream)``), then the chunk's host-to-device copies of
    master, ``exp_avg`` and ``exp_avg_sq`` are all issued on ``swap_to_device_stream``; each parameter's fused
    AdamW (``npu_apply_fused_adamw_v2``) waits only for its own copy (``wait_swap_to_device_event``), and its
    states go back on ``swap_to_host_stream`` right after its update. So a chunk is a three-stage pipeline
    (load, update, store; the two directions of the link at once, ``host_link_bw`` being one direction's) of
    makespan h + a + h + (k - 1) x max(h, a): its first load is exposed before any update, its last update and
    store after the loads end. The next chunk's loads wait for that last store, so chunks do not overlap one
    another (nor the forward or backward: the update is called after the backward and the gradient sync); the
    dense optimizer's last store is waited for by the expert optimizer's first chunk (Megatron-Core's
    ChainedOptimizer steps them one after the other, ``swap_count`` back to 0), and only the last one's last
    store, waited for by the next step's update, runs behind the next forward. Many pieces per chunk: one
    direction's bytes, max(adam_s, 12 x shard / host_link_bw); one piece per chunk (a piece larger than
    shard / ``--swap-optimizer-times``, loaded alone): both directions and the update in series. Per-parameter
    kernel launches (one fused AdamW and one copy to the BF16 weight per parameter) are not counted."""
    if not np.any(p.swap):
        return adam_s
    o_rate = ctx.optimizer.optimizer_bytes / ctx.host_link_bw    # seconds per parameter, one direction
    parts = swap_chunks(ctx, p, dense, expert)
    shard = parts[0][0] + parts[1][0]
    a_rate = adam_s / np.where(shard > 0.0, shard, 1.0)
    t: Num = 0.0
    last: Num = 0.0
    for n, q, _, chunks in parts:
        h, a = o_rate * q, a_rate * q
        pieces = np.where(q > 0.0, n / np.where(q > 0.0, q, 1.0), 0.0)
        t = t + (pieces - chunks) * np.maximum(h, a) + chunks * (2.0 * h + a)
        last = np.where(n > 0.0, h, last)
    return np.where(p.swap > 0, t - last, adam_s)


def p2p_hop_time(ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Time of one pipeline transfer across a stage boundary: the activation (or its gradient) of the ``tokens`` a
    tp group holds, split over tp (sequence parallelism), in BF16 also under FP8 (Megatron-Core sends in
    config.pipeline_dtype, the params dtype; FP8 is GEMM inputs only), over the level the pipeline chain crosses
    (collectives.p2p_time)."""
    return p2p_time(tokens / p.tp * ctx.arch.hidden * BF16_BYTES, p.pp, p.tp * p.cp * p.dp, ctx.system,
                    ctx.calib.coll_eff)


def _stage(ctx: StepContext, p: Plans, lc: dict[str, Any], share: Num, with_last: bool,
           tokens: Num, acc: Num = 0.0) -> dict[str, Any]:
    """Forward / backward time of one micro-batch on a pipeline rank holding ``share`` of the layers (and, when
    ``with_last``, the output head and MTP modules), each with the communication the schedule cannot hide.

    ``acc``: the device time of the backward's main-grad accumulation on this rank (``evaluate``: the HBM time of
    comm_dp.grad_accumulation_bytes). It is device work like the rest of the backward: the DDP's backward hook
    launches ``param.main_grad.add_(param.grad.data)`` from the host (Megatron-LM core_r0.6.0
    megatron/core/distributed/distributed_data_parallel.py ``_make_param_hook``), one more kernel in the queue the
    host fills ahead of the device, so it joins the device path before the launch floor's max:
    t_b = max(launch floor, device + acc), not launch floor + acc (:func:`launch_floor_extra`)."""
    a, c = ctx.arch, ctx.calib
    gemm, attn, elem = share * lc["gemm"], share * lc["attn"], share * lc["elem"]
    gemm_b = share * lc["gemm_b"]
    seq_f, seq_b = share * lc["seq_f"], share * lc["seq_b"]
    attn_b = share * lc["attn_b"]
    tp_f, ep_f, cp_f, rec_sel = share * lc["tp"], share * lc["ep"], share * lc["cp"], share * lc["rec_sel"]
    w = 1.0 if with_last else 0.0
    gemm_last = w * (lc["head"] + lc["mtp_g"])
    gemm_last_b = w * (2.0 * lc["head"] + lc["mtp_g_b"])
    loss_f, loss_b = w * lc["loss_f"], w * lc["loss_b"]
    mtp_a, mtp_e, mtp_tp, mtp_ep = w * lc["mtp_a"], w * lc["mtp_e"], w * lc["mtp_tp"], w * lc["mtp_ep"]
    mtp_tp_b = w * lc["mtp_tp_b"]
    mtp_a_b, mtp_tp_g, mtp_ep_g = w * lc["mtp_a_b"], w * lc["mtp_tp_g"], w * lc["mtp_ep_g"]
    mtp_s, mtp_s_b = w * lc["mtp_s"], w * lc["mtp_s_b"]
    comp_f = gemm + attn + elem + seq_f
    comp_b = gemm_b + attn_b + 2.0 * elem + seq_b
    tp_ov = tp_overlap_fraction(ctx)
    tp_exp_f = exposed(tp_f, gemm, tp_ov)
    # the backward's three transfers per block (comm_tp.tp_comm_bwd) beside its dgrad / wgrad GEMMs
    tp_exp_b = exposed(share * lc["tp_b"], gemm_b, tp_ov)
    tp_g_exp = exposed(share * lc["tp_g"], gemm, c.tp_overlap)   # forward-only gathers (comm_tp, no userbuffers)
    ep_ov = np.where(overlaps_ep_comm(p.schedule), c.ep_overlap_dualpipe,
                     c.ep_overlap_a2a if ctx.moe_a2a_overlap else c.ep_overlap)
    # ring steps: bandwidth overlaps the attention of the previous block, the per-step launch/sync does not;
    # an all-gather CP (cp_overlap_for) has it all on the critical path
    cp_sync = share * lc["cp_sync"]
    cp_ov = cp_overlap_for(ctx)
    if ctx.cp_torch_ring:   # PyTorch's experimental CP: the first sub-SDPA at most hides the K/V all-gather
        # traced where the stack compiles its layers (runtime setting ``compiled``): no overlap (comm_cp.py)
        cp_exp_f, cp_exp_b = torch_ring_exposed(cp_f, share * lc["cp_dkv"], attn, attn_b, p.cp,
                                                cp_ov, traced=ctx.compiled)
        cp_hid_f, cp_hid_b = cp_f - cp_exp_f, cp_f + p.cp * share * lc["cp_dkv"] - cp_exp_b
        # + its eager fp32 merges between the sub-SDPAs (compute stream, never hidden)
        cp_exp_f = cp_exp_f + cp_sync + share * lc["cp_merge_f"]
        cp_exp_b = cp_exp_b + 2.0 * cp_sync + share * lc["cp_merge_b"]
    else:   # + the ring's merges between its attention calls (compute stream, never hidden; comm_cp.py)
        cp_exp_f, cp_exp_b = exposed(cp_f, attn, cp_ov), exposed(2.0 * cp_f, attn_b, cp_ov)
        cp_hid_f, cp_hid_b = cp_f - cp_exp_f, 2.0 * cp_f - cp_exp_b
        cp_exp_f = cp_exp_f + cp_sync + share * lc["cp_merge_f"]
        cp_exp_b = cp_exp_b + 2.0 * cp_sync + share * lc["cp_merge_b"]
    # an MTP module's transformer layer is scheduled as the decoder's are (Megatron-Core builds a
    # TransformerLayerSchedulePlan for it, model_chunk_schedule_plan.py ``is_mtp``): its dispatch + combine hide
    # under the window of its own layer and head (and its forward gathers HybridEP's routing map) by the rule of the
    # decoder layers above; its backward runs the same two transfers once, as theirs do (comm_ep module docstring)
    (mtp_ep_f, mtp_ep_b), _ = paired_overlap_exposed(
        [(mtp_ep, mtp_ep_g), (mtp_ep, 0.0)], [],
        w * (lc["mtp_g"] + lc["mtp_a"] + lc["mtp_e"] + lc["mtp_g_b"] + lc["mtp_a_b"] + 2.0 * lc["mtp_e"]), ep_ov, ctx)
    last_f = gemm_last + loss_f + mtp_a + mtp_e + mtp_s + mtp_tp + mtp_tp_g + mtp_ep_f
    last_b = gemm_last_b + loss_b + mtp_a_b + 2.0 * mtp_e + mtp_s_b + mtp_tp_b + mtp_ep_b
    # recompute: selective modules, or full (uniform: every layer; block: num_layers of each virtual stage)
    layers = share * a.n_layers
    v = np.maximum(p.vpp, 1).astype(np.float64)
    chunk = np.maximum(layers / v, 1.0)
    if ctx.recompute.method == "block":
        frac = np.minimum(float(ctx.recompute.num_layers), chunk) / chunk
    else:
        frac = 1.0
    # pipeline p2p per micro-batch: activation forward, gradient backward, per virtual-stage boundary, in BF16
    # also under FP8 (Megatron-Core sends in config.pipeline_dtype, the params dtype; FP8 is GEMM inputs only)
    sends = 2.0 * np.maximum(p.vpp, 1)
    p2p = sends * p2p_hop_time(ctx, p, tokens)
    # interleaved: Megatron's overlap_p2p_comm posts the next chunk's receive before this chunk's compute, so the
    # transfers hide behind the micro-batch's compute (pp_overlap_interleaved); 1F1B waits for each transfer between
    # compute steps (pp_overlap), and so does the interleaved schedule of a stack without that overlap
    # (ctx.pp_p2p_blocking: Megatron-LM v2.5 / v3.0 / 23.x megatron/p2p_communication.py _communicate, a
    # batch_isend_irecv whose requests it waits on, then torch.cuda.synchronize(), called between the chunks'
    # forward and backward steps); each send's launch and synchronisation is never hidden
    overlapped = virtual_stages(p.schedule) & (p.vpp > 1) & (not ctx.pp_p2p_blocking)
    p2p_ov = np.where(overlapped, c.pp_overlap_interleaved, c.pp_overlap)
    p2p = np.where(p.pp > 1, exposed(p2p, comp_f + comp_b, p2p_ov) + sends * c.comm_launch_s, 0.0)
    # recompute: the rerun's compute, and the share of the forward's dispatch + combine it repeats (full recompute)
    rec_comp = np.where(p.recompute == 2, frac * comp_f, np.where(p.recompute == 1, rec_sel, 0.0))
    # the stack's pointwise reruns (pointwise_recompute stacks; 0 elsewhere), on the layers a full recompute does not
    rec_comp = rec_comp + share * np.where(p.recompute == 2, (1.0 - frac) * lc["rec_pw"],
                                           np.where(p.recompute == 1, lc["rec_pw_sel"], lc["rec_pw"]))
    ep_rerun = np.where(p.recompute == 2, frac, 0.0)
    # the overlapping schedules pair a forward with another micro-batch's backward and hide both directions'
    # dispatch + combine, the dispatcher's host stall and a recompute's rerun of them under one window, the pair's
    # compute with the rerun's (comm_ep.paired_overlap_exposed); elsewhere ep_ov = 0 and all of them are exposed.
    # A second of compute is booked once: the window is the compute the layers' own TP and CP transfers have not
    # already hidden behind (forward, backward and a full recompute's rerun of the forward's), else each rule
    # would hide up to its f per second of compute and a faster chip could expose more than it saves (qa18:
    # Qwen3-30B-A3B cp 16 ep 8 on 16 H100, 2x FLOP/s was 3.5% slower with f_cp + f_ep = 0.9 + 0.8 > 1)
    tp_cp_hid = ((tp_f - tp_exp_f) + (share * lc["tp_b"] - tp_exp_b) + (share * lc["tp_g"] - tp_g_exp)
                 + cp_hid_f + cp_hid_b
                 + np.where(p.recompute == 2, frac * ((tp_f - tp_exp_f) + (share * lc["tp_g"] - tp_g_exp)
                                                      + cp_hid_f), 0.0))
    ep_window = np.maximum(comp_f + comp_b + rec_comp - tp_cp_hid, 0.0)
    # The forward's dispatch also gathers HybridEP's routing map (comm_ep.routing_map_allgather_fwd), the backward
    # not; the host stall is the forward's (MOE_HOST_SYNC_FORWARD_SHARE), rerun as moe_host_recompute_time says
    moe_layers = share * a.n_moe_layers   # this stage's MoE layers
    host_raw = moe_host_sync_time(ctx, moe_layers)
    ep_g = share * lc["ep_g"]
    (ep_exp_f, ep_exp_b, ep_exp_r), (host, host_r) = paired_overlap_exposed(
        [(ep_f, ep_g), (ep_f, 0.0 * ep_f), (ep_rerun * ep_f, ep_rerun * ep_g)],
        [host_raw, moe_host_recompute_time(ctx, p, frac, MOE_HOST_SYNC_FORWARD_SHARE * host_raw)],
        ep_window, ep_ov, ctx)
    rec = np.where(p.recompute == 2, frac * (comp_f + tp_exp_f + tp_g_exp + cp_exp_f), rec_comp) + ep_exp_r + host_r
    host_f = MOE_HOST_SYNC_FORWARD_SHARE * host
    t_f = comp_f + tp_exp_f + tp_g_exp + ep_exp_f + cp_exp_f + last_f + host_f
    t_b = comp_b + tp_exp_b + ep_exp_b + cp_exp_b + last_b + rec + (host - host_f) + acc
    # host-bound layers: the micro-batch takes at least the host's launch work (moe_launch_floor), the excess
    # over the device path charged as host time, split as the launch work is between forward and backward
    fl_f, fl_b = moe_launch_floor(ctx, moe_layers, share * lc["moe_calls_f"], share * lc["moe_calls_b"],
                                  moe_rerun_share(ctx, p, frac))
    # + every layer's own operators issued one by one (layer_launch_floor; 0 where the family has no measured
    # per-operator host time)
    dl_f, dl_b = layer_launch_floor(ctx, layers, np.where(p.recompute == 2, frac, 0.0))
    fl_f, fl_b = fl_f + dl_f, fl_b + dl_b
    # forward and backward each take their own launch floor where 1F1B's synchronised p2p exchange separates them
    # (launch_floor_extra)
    synced = (p.pp > 1) & ~overlapped & ctx.pp_p2p_device_sync
    extra_f, extra_b = launch_floor_extra(t_f, t_b, fl_f, fl_b, synced)
    t_f, t_b, host = t_f + extra_f, t_b + extra_b, host + extra_f + extra_b
    return dict(t_f=t_f, t_b=t_b, t_mb=t_f + t_b + p2p, gemm=gemm + gemm_b, attn=attn + attn_b, elem=elem,
                seq=seq_f + seq_b + mtp_s + mtp_s_b,
                rec=rec, p2p=p2p, host=host,
                tp_exp_f=tp_exp_f, tp_exp_b=tp_exp_b, tp_g_exp=tp_g_exp + mtp_tp_g,
                ep_exp=ep_exp_f + ep_exp_b + mtp_ep_f + mtp_ep_b, cp_exp_f=cp_exp_f,
                cp_exp_b=cp_exp_b,
                gemm_last=gemm_last + gemm_last_b, loss=loss_f + loss_b, mtp_a=mtp_a + mtp_a_b, mtp_e=mtp_e,
                mtp_tp=mtp_tp + mtp_tp_b)


@dataclass
class SharedCosts:
    """The costs :func:`evaluate` takes from few plan fields, once per distinct combination: per-layer costs
    (``LAYER_KEY``) and parameters per chip with their data-parallel sync (``STATE_KEY``), with the maps back to
    every plan. The plan search builds them once for all its plans and evaluates them chunk by chunk
    (:meth:`rows`); they do not depend on the batch or the chip count of ``ctx``."""

    lc: dict[str, Any]
    inv: np.ndarray
    states: tuple[Any, ...]  # dense params, expert params, gradient sync s, parameter gather s, replica sync s
    inv2: np.ndarray

    def rows(self, sl: Any = slice(None)) -> tuple[dict[str, Any], tuple[Any, ...]]:
        """(per-layer costs, states) of the plans ``sl`` (an index into the plans' arrays: a slice of the first
        axis, or a tuple such as ``(..., slice)`` for the last)."""
        i, i2 = self.inv[sl], self.inv2[sl]
        return {k: v[i] for k, v in self.lc.items()}, tuple(x[i2] for x in self.states)


def shared_costs(ctx: StepContext, p: Plans, layer_table: Any = None) -> SharedCosts:
    """:class:`SharedCosts` of the plans ``p``; ``layer_table(reps)``, when given, returns :func:`layer_costs` of
    ``reps`` from costs already computed (the plan search's :class:`trainsim.perf.bound.LayerTable`)."""
    reps, inv = _unique_rows(p)
    reps2, inv2 = _unique_rows(p, STATE_KEY)
    d_u, e_u = model_state_params(ctx, reps2)
    g_u, a_u = dp_sync_times(ctx, reps2, d_u, e_u)
    r_u = replica_sync_time(ctx, reps2, d_u) * np.ones_like(g_u)
    lc = layer_table(reps) if layer_table is not None else layer_costs(ctx, reps)
    return SharedCosts(lc, inv, (d_u, e_u, g_u, a_u, r_u), inv2)


def _edge_rank_stage(ctx: StepContext, p: Plans, lc: dict[str, Any], first_layers: Num, last_layers: Num,
                     tokens: Num, keys: tuple[str, ...] | None, acc: Num = 0.0) -> dict[str, Any]:
    """Per-micro-batch times of the rank holding the last stage (its layers, the output head and MTP modules).

    Under a mirrored schedule (DualPipe) rank 0 holds stage 0 of one direction and stage pp - 1 of the other:
    "we deploy the shallowest layers (including the embedding layer) and deepest layers (including the output
    head) of the model on the same PP rank" (DeepSeek-V3 technical report, arXiv 2412.19437, sec. 3.2.3), and
    each direction carries half the micro-batches (sec. 3.2.1, Fig. 5). Per micro-batch that rank therefore
    spends the mean of the first stage's and the last stage's time:
        t_edge = (t(first layers) + t(last layers + head + MTP)) / 2
    (its middle ranks hold stages i and pp - 1 - i, middle-sized both). Other schedules: the last stage's time."""
    L = float(ctx.arch.n_layers)
    st_last = _stage(ctx, p, lc, last_layers / L, True, tokens, acc)
    dual = mirrored_stages(p.schedule)
    if not np.any(dual):
        return st_last
    st_first = _stage(ctx, p, lc, first_layers / L, False, tokens, acc)
    return {k: np.where(dual, 0.5 * (st_first[k] + st_last[k]), st_last[k])
            for k in (st_last if keys is None else keys)}


def evaluate(ctx: StepContext, p: Plans, detail: bool = True, shared: SharedCosts | None = None,
             rows: Any = slice(None), rate: bool = True) -> StepResult:
    """Vectorised step time, MFU/HFU, memory and breakdown for every plan in ``p``.

    ``detail=False`` (the plan search's bulk pass) returns only step time, tokens/s and total memory; the same
    arithmetic, without assembling the breakdown and utilisation figures. ``shared``: the :func:`shared_costs`
    of a larger set of plans of which ``p`` are the ``rows`` (the plan search's chunks); ``rate=False`` (with
    ``detail=False``) leaves ``tokens_per_s_per_chip`` out (None): the search ranks by step time per sequence."""
    a, c = ctx.arch, ctx.calib
    tokens = float(ctx.seq_len) * p.mb / p.cp   # tokens a tp group holds per micro-batch
    m = ctx.global_batch_seqs / (p.dp * p.mb)
    L = a.n_layers
    # per-layer costs, parameters per chip and their sync depend on few fields: computed once per distinct
    # combination (shared_costs)
    lc, (dense, expert, grad_t, gather_t, repl_t) = (shared.rows(rows) if shared is not None else
                                                      shared_costs(ctx, p).rows())
    # the pipeline ranks that can be the slowest: the last (its layers + output head + MTP) or the fuller of the
    # first and a middle
    f_l, m_l, l_l = rank_layers(ctx, p)
    keys = None if detail else ("t_f", "t_b", "t_mb")
    # the main-grad accumulation each micro-batch's backward adds where the GEMMs do not accumulate into the buffer
    # (comm_dp.grad_accumulation_bytes; 0 with gradient-accumulation fusion): device work of the backward, inside
    # the launch floor's max (_stage)
    acc = hbm_time(grad_accumulation_bytes(ctx, p, dense, expert), ctx)
    st_last = _edge_rank_stage(ctx, p, lc, f_l, l_l, tokens, keys, acc)
    st_other = _stage(ctx, p, lc, np.where(mirrored_stages(p.schedule), m_l, np.maximum(f_l, m_l)) / L, False,
                      tokens, acc)
    # per pipeline rank (the edge rank ``st_last``, the other ``st_other``): the activation offload to host memory
    # (the copies overlap the compute; what exceeds it is exposed, the breakdown's activation_offload)
    off = offload_bytes_per_microbatch(ctx, p, tokens, np.maximum(f_l, m_l))
    for r in (st_last, st_other):
        r["off_exp"] = 0.0 * r["t_mb"]   # per micro-batch
        if np.any(off):
            r["off_exp"] = np.maximum(0.0, 2.0 * off / ctx.host_link_bw - r["t_f"] - r["t_b"])
        r["t_mb"] = r["t_mb"] + r["off_exp"]
    # one fill and drain per call of the pipeline schedule (NeMo AutoModel: one per gradient-accumulation pass),
    # paced by the slowest rank's micro-batch
    t_mb_slow = np.where(p.pp == 1, st_last["t_mb"], np.maximum(st_last["t_mb"], st_other["t_mb"]))
    calls = pipeline_calls(ctx.global_batch_seqs, p.dp, ctx.local_batch_seqs)
    bubble = bubble_time(p.schedule, p.pp, p.vpp, t_mb_slow) * calls
    # Megatron-Core's interleaved warm-up and cool-down wait for each of their transfers in turn (the steady state
    # hides them, _stage): 2 W per call, each a transfer plus its launch (parallel/schedules.py fill_drain_transfers).
    # None where the steady state already waits for every transfer (ctx.pp_p2p_blocking): then, as in 1F1B, each
    # micro-batch's t_mb holds all 2 v of its chunks' transfers, the warm-up and cool-down ones among them
    fill = 0.0 if (ctx.pp_own_schedule or ctx.pp_p2p_blocking) else (
        fill_drain_transfers(p.schedule, p.pp, p.vpp, m) * calls * (p2p_hop_time(ctx, p, tokens) + c.comm_launch_s))

    # data-parallel synchronisation and optimizer
    z3 = p.zero >= 3
    # zero 0-1: gradients sync behind the last micro-batch's backward, parameters gather behind the first forward;
    # zero 2 (DeepSpeed stage 2, FSDP SHARD_GRAD_OP) keeps only its gradient shard, so it reduce-scatters after
    # every micro-batch's backward: on its own stream, behind the next micro-batch's forward and backward, the last
    # one's behind its own backward only
    # (FSDP under pipeline parallelism that keeps the stage gathered, ctx.pp_defers_sync: once per schedule call)
    once = ctx.pp_defers_sync(p)
    # a pipelined step syncs once per call of the schedule (dp_syncs_per_step)
    syncs = dp_syncs_per_step(p, calls)
    # under the interleaved schedule each model chunk syncs as soon as its last backward (first forward) is done
    win = dp_sync_window(p.schedule, p.pp, p.vpp, m / syncs)
    # zero 0-1: the DDP's buckets hide all but the last (comm_dp.ddp_overlap); a stack that reduces the gradients only
    # after the whole forward-backward (Megatron-LM's 'local' DDP, ctx.grad_sync_overlap False) hides none of them
    b_ov = ddp_overlap(ctx, p, dense + expert)
    g_ov = b_ov if ctx.grad_sync_overlap else 0.0
    # MindSpeed's dualpipev (and its --moe-fb-overlap) refuse --overlap-grad-reduce (Ascend/MindSpeed
    # mindspeed/features_manager/pipeline_parallel/dualpipev_feature.py:25-27 and features_manager/moe/fb_overlap.py:77
    # at 028de58c; fb_overlap_feature.py:20 at 788a2150, Mar 2025): the DDP keeps one bucket of infinite size
    # (dualpipev/dualpipev_chunks.py:454-456) and finalize_model_grads reduces it after the schedule
    # (dualpipev_schedules.py:1589), so a DualPipe plan of such a stack hides none of its gradient sync; nor of its
    # parameter gather, since Megatron-LM refuses --overlap-param-gather without --overlap-grad-reduce
    # (megatron/training/arguments.py:505-506 at core_v0.12.1)
    p_ov = b_ov
    if ctx.dualpipev_fb_overlap:
        no_ov = mindspeed_dualpipev(p.schedule)
        g_ov, p_ov = np.where(no_ov, 0.0, g_ov), np.where(no_ov, 0.0, b_ov)

    def dp_exposed(t_f: Num, t_b: Num) -> Num:
        """Exposed data-parallel sync per step of a rank whose micro-batch takes ``t_f`` forward, ``t_b`` backward.

        FSDP kept gathered under PP (once) hides none of its reduce-scatter: PipelineStage.backward_maybe_with_nosync
        runs the last micro-batch's backward with gradient sync off like the others and only then, in
        run_post_backward, calls post_backward on every FSDP parameter group of the stage (each issuing its
        reduce-scatter) and _root_post_backward_final_callback, whose finalize_backward makes the compute stream
        wait on the reduce-scatters' event (pytorch/pytorch torch/distributed/pipelining/stage.py; torch/distributed/
        fsdp/_fully_shard/_fsdp_state.py, _fsdp_param_group.py); under the interleaved schedule each model chunk
        waits on its own share, which add up to grad_t. Zero 3: per micro-batch 2 gathers + 1 reduce-scatter,
        prefetched behind that micro-batch's compute. Sharding groups smaller than dp x cp (MiCS): the gradient
        shards all-reduced across the replicas once per step, behind the last micro-batch's backward as a zero 0-1
        gradient sync is."""
        e = (np.where((p.zero == 2) & ~once,
                      (m - 1.0) * exposed(grad_t, t_f + t_b, c.dp_overlap) + exposed(grad_t, t_b, c.dp_overlap),
                      syncs * np.where(once, grad_t, exposed(grad_t, win * t_b, g_ov)))
             + syncs * exposed(gather_t, win * t_f, p_ov))
        e = np.where(z3 & ~once, m * exposed(2.0 * gather_t + grad_t, t_f + t_b, c.dp_overlap), e)
        return e + exposed(repl_t, win * t_b, c.dp_overlap)

    # each rank syncs its gradients behind its own backward (its buckets are ready when its own last backward is),
    # so the step ends when the rank whose micro-batches plus its own exposed sync take longest is done (the
    # bubble above is paced by the slowest micro-batch, the same on every rank); with pp = 1 the one rank is the
    # edge rank (st_other is then its layers without the head, no rank of its own)
    for r in (st_last, st_other):
        r["dp_exp"] = dp_exposed(r["t_f"], r["t_b"])
    sel_last = (p.pp == 1) | (m * st_last["t_mb"] + st_last["dp_exp"] >= m * st_other["t_mb"] + st_other["dp_exp"])
    st = {k: np.where(sel_last, st_last[k], st_other[k]) for k in st_last}
    t_mb, off_exp, dp_exp = st["t_mb"], st["off_exp"], st["dp_exp"]
    # sharded where ZeRO >= 1 (memory.optimizer_shards)
    d1, e1 = optimizer_shards(ctx, p, dense, expert)
    opt_params = d1 + e1
    optimizer = swap_optimizer_time(ctx, p, dense, expert, hbm_time(opt_params * c.optimizer_step_bytes, ctx))
    # the DDP's per-step passes over the whole local gradient buffer (zero, NaN check, 1/dp scaling; comm_dp)
    optimizer = optimizer + hbm_time(grad_buffer_pass_bytes(ctx, p, dense, expert), ctx)
    optimizer = optimizer + host_offload_time(ctx, opt_params, dense + expert, m * t_mb_slow)

    overhead = host_time(ctx, c.step_overhead_s)   # per-step host work (data loader, logging)
    step = m * t_mb + bubble + fill + dp_exp + optimizer + overhead
    tokens_step = ctx.global_batch_seqs * ctx.seq_len
    if not detail:
        rate_s = tokens_step / (step * ctx.chips) if rate else None
        return StepResult(step_time_s=step, tokens_per_s_per_chip=rate_s, mfu=None, hfu=None,
                          memory={"total": memory_total(ctx, p, tokens, m)}, breakdown={}, microbatches=m)
    mem = memory_breakdown(ctx, p, tokens, m, (dense, expert))

    gemm, attn, elem, rec, p2p = st["gemm"], st["attn"], st["elem"], st["rec"], st["p2p"]
    host = st["host"] * np.ones_like(t_mb)
    tp_exp_f, cp_exp_f, cp_exp_b = st["tp_exp_f"], st["cp_exp_f"], st["cp_exp_b"]
    gemm_last, mtp_a, mtp_e, mtp_tp = st["gemm_last"], st["mtp_a"], st["mtp_e"], st["mtp_tp"]
    # breakdown: every part of `step`, in seconds
    bd = {
        "compute_gemm": m * (gemm + gemm_last + st["loss"]),   # forward + backward; the loss with its head GEMM
        "attention": m * (attn + mtp_a),   # forward + backward of the attention cores
        "memory_bound": m * (3.0 * (elem + mtp_e) + st["seq"] + acc),
        "recompute": m * rec,
        "tp_comm": m * (tp_exp_f + st["tp_exp_b"] + st["tp_g_exp"] + mtp_tp),   # with the MTP layers' (exposed)
        "ep_alltoall": m * st["ep_exp"],   # both directions, with the routing-map gathers and the MTP layers
        "cp_comm": m * (cp_exp_f + cp_exp_b),
        "pp_p2p": m * p2p + fill,   # with the interleaved fill and drain's waits
        "pipeline_bubble": bubble,
        "dp_comm": dp_exp,
        "optimizer": optimizer,
        "host": m * host,   # host syncs (MoE token counts) and launch floors (MoE, eager layers) left exposed
        "activation_offload": m * off_exp,   # the host-link copies of offloaded activations the compute leaves exposed
        "other": np.full(np.shape(step), overhead),
    }
    counts = count(a, ctx.seq_len)
    peak = ctx.chip.flops("bf16")
    model_flops = counts.flops_per_token * tokens_step
    hw_extra = counts.mtp_flops_per_token * tokens_step
    # recompute FLOPs: selective = attention forward again; full = one more forward of the layers
    attn_fl = 3.0 * sum(layer_attention_fwd_flops_per_token(lk, ctx.seq_len) * lk.n_layers for lk in a.layers)
    rec_attn = "core_attn" in ctx.recompute.modules
    rec_fl = np.where((p.recompute == 1) & rec_attn, attn_fl / 3.0 * tokens_step, 0.0)
    rec_fl = np.where(p.recompute == 2, (counts.flops_per_token - 6.0 * a.vocab * a.hidden) / 3.0 * tokens_step,
                      rec_fl)
    mfu = model_flops / (step * ctx.chips * peak)
    hfu = (model_flops + hw_extra + rec_fl) / (step * ctx.chips * peak)
    return StepResult(step_time_s=step, tokens_per_s_per_chip=tokens_step / (step * ctx.chips), mfu=mfu,
                      hfu=hfu, memory=mem, breakdown=bd, microbatches=m)
