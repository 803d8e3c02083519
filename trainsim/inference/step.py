"""One serving step -- prefill (compute-bound) or decode (memory-bound) -- vectorised over candidate plans.

A serving *instance* is one model replica on ``chips`` chips, split as ``tp x dp x pp`` for attention and the dense
parts (tensor parallel inside a scale-up domain, data-parallel attention, pipeline stages) and ``ep x etp`` per
pipeline stage for the routed experts (``etp = chips / (pp ep)``). Every quantity is a numpy array over candidates.

Per layer and micro-batch, on one chip (tokens ``t`` per tensor-parallel group, ``T`` per pipeline stage):

* GEMMs: :func:`trainsim.perf.compute.gemm_time` (roofline: ``max(2 M N K / (peak eff), bytes / (HBM mem_eff))``),
  weights sharded by ``Matrix.split`` over tp; W8A8 numerics use 1 byte per weight and GEMM input.
* Routed experts: a chip holds ``E / ep`` experts (split ``etp`` ways); of those, the fraction hit by the ``T``
  tokens is ``1 - (1 - k/E)^T`` (:mod:`.experts`), so decode reads only the hit experts' weights, each with
  ``T k / (E p_hit)`` tokens, streamed at the expert kernels' measured rate for the chip family and expert precision
  where one is stated (:attr:`.setup.ServeSetup.expert_mem_eff`: vLLM's Triton fused MoE, BF16 on Hopper and Ampere),
  else at ``mem_eff``. Shared experts are tensor-parallel like a dense MLP (every chip runs its own tokens).
* Attention core: decode reads the KV cache of its sequences (``context x kv_elems x bytes``, :mod:`.kv`) and
  does ``2 x heads x (d_qk + d_v) x context`` FLOPs per query (MLA, weights absorbed: scores and values over the
  latent, ``2 x heads x 2 x kv_elems x context``); the time is the roofline max of the two. Prefill attention is
  causal flash attention (:func:`trainsim.model.counts.attention_fwd_flops_per_token`) at ``attn_eff``.
* Memory-bound kernels: :func:`trainsim.perf.compute.elementwise_bytes_per_token`, plus a fixed launch cost
  (``gemm_latency_s``) for each GEMM and each non-GEMM kernel (:func:`non_gemm_kernels`); in decode over an
  expert-parallel all-to-all no permute, unpermute or per-copy cast kernel runs: DeepEP's low-latency dispatch /
  combine (:func:`ll_dispatch`) do that work, and their own HBM copies are charged instead
  (:func:`ll_kernel_bytes_per_token`).
* Communication: tp all-reduce x 2 per layer (:func:`tp_all_reduce_time`: the stacks' one-shot / two-shot
  peer-to-peer kernel where the setup's serving stack runs it -- its world sizes inside one node, under its
  buffer size (inference/data/serving_stacks.yaml), :func:`uses_custom_all_reduce` -- else the library's ring); MoE dispatch
  (8-bit or BF16) + combine (BF16) of ``k`` copies per token over ep: decode uses direct all-to-all
  (DeepEP low-latency kernels: every copy over the network, :func:`ll_dispatch_msg_bytes` per copy), prefill
  deduplicates per scale-up domain (DeepEP
  normal kernels: one copy per remote domain, fanned out inside); pipeline sends between stages.
* Overlap: two micro-batches hide ``comm_overlap x min(compute, communication)`` per layer.
* Expert-parallel all-to-all runs at ``a2a_eff`` x the collective efficiency of each level: dispatch and combine
  move many small messages to many peers and reach a fraction of line rate (CloudMatrix384 measures 54-131 GB/s
  per rank on UB, arXiv 2506.12708 sec. 4; DeepEP low-latency kernels report 46-77 GB/s on 50 GB/s RDMA).
* Host overhead: every forward round pays ``step_overhead_s`` (the fixed part: launching the step's CUDA graph and
  the gap between two graphs; vLLM and SGLang run decode as CUDA graphs to keep it small: vLLM docs "CUDA Graphs",
  SGLang "--cuda-graph-max-bs") plus ``seq_overhead_s`` per running sequence of each scheduler (one per
  data-parallel replica): the per-request host work -- scheduling, input preparation, sampling, output processing
  -- grows with the batch. vLLM's performance roadmap measured "sampling time, prepare input time,
  process_model_output time, and scheduler time. When BS is 200, all this together can be 20ms" (vllm-project/vllm
  issue #6801, 2024-08-08: V0's synchronous loop) and the multi-step RFC "5-13ms of GPU bubble" per decode step
  (issue #6854); vLLM V1 without overlap 5-6 ms at 256 running (issue #10634), 150-170 us with scheduling
  overlapped (pull request 11133). An engine that overlaps its host work (SGLang's overlap scheduler, vLLM V1,
  TensorRT-LLM) leaves a fitted ``seq_overhead_s`` exposed; a synchronous loop (``host_overlap: false``, vLLM V0)
  waits ``sync_host_s_per_seq`` per sequence.

A decode *round* pushes ``pp`` micro-batches through ``pp`` stages, so every sequence gains one step:
``TPOT = (pp x stage_time + step_overhead_s + seq_overhead_s x batch / dp) / tokens_per_step`` (setup.py) and decode tokens/s/chip =
``batch / TPOT / chips``.
A prefill round processes the batch's prompts; tokens/s/chip = prompt tokens / round / chips; TTFT = round.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.arch import LayerKind
from ..model.counts import attention_fwd_flops_per_token
from ..parallel.placement import members_within
from ..perf.collectives import all_gather_time, all_reduce_time, all_to_all_time, level_bytes_time, p2p_time
from ..parallel.sharding import layer_params, sharded_shape
from ..perf.compute import (FP8_SCALE_BYTES_PER_ELEM, copies_gemm_time, elementwise_bytes_per_token,
                             fp8_cast_bytes_per_elem, gemm_time, kernel_floor_time)
from ..perf.context import BF16_BYTES
from .calib import vendor_key
from .stacks import custom_all_reduce_max_bytes
from .experts import hit_probability, local_experts
from .kv import is_latent, kv_shards, read_tokens, cached_tokens, state_bytes
from .setup import ServeSetup

HEAD_BYTES = BF16_BYTES     # output head and router weights stay BF16 in FP8/INT8 deployments (DeepSeek-V3 sec. 3.3)
COMBINE_BYTES = BF16_BYTES  # MoE combine in BF16


@dataclass
class ServePlans:
    """Candidate serving plans as columns (numpy arrays of one length, or broadcastable scalars)."""

    chips: np.ndarray
    tp: np.ndarray
    pp: np.ndarray
    ep: np.ndarray

    def __post_init__(self):
        self.chips, self.tp, self.pp, self.ep = (np.asarray(x, dtype=np.float64)
                                                 for x in (self.chips, self.tp, self.pp, self.ep))

    @property
    def dp(self):
        """Data-parallel replicas: chips / (tp x pp)."""
        return self.chips / (self.tp * self.pp)

    @property
    def stage_chips(self):
        """Chips per pipeline stage: chips / pp."""
        return self.chips / self.pp

    @property
    def etp(self):
        """Expert tensor parallelism: chips of a stage / ep."""
        return self.stage_chips / self.ep

    def row(self, i: int) -> dict:
        """Plan ``i`` as a dict of integers (chips, tp, pp, dp, ep, etp)."""
        def g(a):
            a = np.broadcast_to(a, np.broadcast(self.chips, self.tp, self.pp, self.ep).shape)
            return int(round(float(a.flat[i])))
        return {"chips": g(self.chips), "tp": g(self.tp), "pp": g(self.pp), "dp": g(self.dp), "ep": g(self.ep),
                "etp": g(self.etp)}


def _dense_gemms(lk: LayerKind, s: ServeSetup, p: ServePlans, t):
    """GEMMs other than routed experts, per chip: tp-sharded, replicated ('none', 'other') and the router."""
    c = s.calib
    bw = s.chip.hbm_bw
    out = 0.0
    for mat in lk.matrices:
        if mat.group == "expert":
            continue
        if mat.group == "router":
            out = out + gemm_time(t / p.tp, mat.n, mat.k, s.gemm_peak, c.gemm_eff, bw, c.mem_eff, HEAD_BYTES,
                                  c.gemm_latency_s)
        else:   # every copy of a multi-copy matrix (DeepSeek-V4's o_a groups): compute.copies_gemm_time
            k, n = ((mat.k, mat.n) if mat.group == "other" or mat.split == "none" else sharded_shape(mat, p.tp))
            out = out + copies_gemm_time(mat, t, k, n, s.gemm_peak, c.gemm_eff, bw, c.mem_eff, s.w_bytes,
                                         c.gemm_latency_s)
    return out


def _expert_gemms(lk: LayerKind, s: ServeSetup, p: ServePlans, T):
    """Routed-expert GEMMs on one chip for ``T`` tokens in the stage (0 for dense layers)."""
    if lk.moe is None:
        return 0.0
    c = s.calib
    E, k = lk.moe.experts, float(lk.moe.active_experts)
    e_loc, copies = local_experts(p.ep, E)
    p_hit = hit_probability(T / copies, k, E)
    m_hit = T * k / (E * copies) / np.maximum(p_hit, 1e-30)
    per_expert = 0.0
    for mat in lk.matrices:
        if mat.group != "expert":
            continue
        kk, nn = sharded_shape(mat, p.etp)
        per_expert = per_expert + gemm_time(m_hit, nn, kk, s.expert_gemm_peak, c.gemm_eff, s.chip.hbm_bw,
                                            s.expert_mem_eff, s.expert_w_bytes, 0.0)
    n_mats = sum(1 for m in lk.matrices if m.group == "expert")
    return (e_loc * p_hit * per_expert * c.expert_imbalance + kernel_floor_time(n_mats, c.gemm_latency_s))


def decode_attention_flops_per_query(core, context):
    """FLOPs of one decode query against ``context`` cached tokens (MLA: absorbed form over the latent)."""
    ctx = read_tokens(core, context)
    if core.kind == "linear":
        return core.state_flops + 0.0 * ctx
    if is_latent(core):
        return 2.0 * core.heads * 2.0 * core.kv_elems_per_token * ctx
    return 2.0 * core.heads * (core.qk_head_dim + core.v_head_dim) * ctx


def _attention_decode(lk: LayerKind, s: ServeSetup, p: ServePlans, t, seqs, context):
    """Decode attention of ``t`` query tokens from ``seqs`` sequences per tp group: roofline of KV bytes and FLOPs."""
    c = s.calib
    out = 0.0
    for core in lk.attention:
        flops = decode_attention_flops_per_query(core, context) * t / p.tp
        by = seqs * (read_tokens(core, context) * core.kv_elems_per_token * s.kv_bytes + state_bytes(core))
        by = by / kv_shards(core, p.tp)
        out = out + np.maximum(flops / (s.attn_peak * c.attn_eff), by / (s.chip.hbm_bw * c.mem_eff))
    return out


def _attention_prefill(lk: LayerKind, s: ServeSetup, p: ServePlans, t, input_len):
    c = s.calib
    fl = sum(attention_fwd_flops_per_token(core, input_len) for core in lk.attention)
    return fl * t / p.tp / (s.attn_peak * c.attn_eff)


def non_gemm_kernels(lk: LayerKind, dispatch_fused: bool = False) -> int:
    """Kernels per layer besides GEMMs: 2 norms, 2 residual adds, rotary, activation, one per attention core,
    and for MoE the router top-k, permute and unpermute (``dispatch_fused``: the router top-k only; DeepEP's
    low-latency dispatch and combine do the permutation, :func:`ll_dispatch`); each at
    :func:`trainsim.perf.compute.kernel_floor_time`, the training engine's per-kernel cost. A layer's
    ``LayerKind.eager_kernels_fwd`` (a training stack's eager glue, counted from Megatron-Core's code) is not
    added: the serving stacks run their own kernels for those regions."""
    return 6 + len(lk.attention) + ((1 if dispatch_fused else 3) if lk.moe is not None else 0)


def ll_dispatch(lk: LayerKind, p: ServePlans, phase: str):
    """Where a MoE layer's tokens go to their experts through DeepEP's low-latency kernels (bool per plan): decode
    with an expert-parallel all-to-all (:func:`_ep_comm`'s direct path: not tensor-parallel experts, more than one
    chip per stage). Those kernels write the received tokens straight into the per-expert layout the grouped GEMM
    reads and reduce the top-k outputs in the combine (deepseek-ai/DeepEP csrc/kernels/internode_ll.cu at fbcf430),
    so no permute / unpermute kernels run (:func:`trainsim.perf.compute.elementwise_bytes_per_token`,
    ``dispatch_fused``); the kernels' own copies are :func:`ll_kernel_bytes_per_token`. The stacks of the
    expert-parallel decode points run them: DeepSeek's own system (DeepEP is its EP library, "low-latency kernels
    for inference decoding", deepseek-ai/open-infra-index README day 2; its decode profile draws dispatch feeding
    the MLP directly, deepseek-ai/profile-data assets/decode.jpg) and SGLang
    (decode: "Low-Latency Dispatch", GEMM on the "Masked Layout", lmsys.org/blog/2025-05-05-large-scale-ep).
    CloudMatrix-Infer and TensorRT-LLM points take the same path (the model's decode all-to-all is DeepEP's), not
    checked against their own kernels."""
    if lk.moe is None or phase != "decode":
        return np.zeros(np.shape(p.ep), dtype=bool)
    return ep_all_to_all(p)


def ep_all_to_all(p: ServePlans):
    """Where a MoE layer's tokens cross chips to reach their experts (bool per plan): experts not split like the
    dense layers' tensor parallelism (``ep`` 1 with ``etp`` = ``tp`` keeps every token's experts on its own tp
    group) and more than one chip per stage. The one statement of the condition: :func:`_ep_comm` charges the
    dispatch / combine there, :func:`ll_dispatch` their low-latency kernels in decode."""
    return ~((p.ep == 1) & (p.etp == p.tp)) & (p.stage_chips > 1)


def _elementwise(lk: LayerKind, s: ServeSetup, p: ServePlans, t, phase: str = "prefill"):
    """Memory-bound kernels (bytes over HBM) plus the fixed launch cost of every non-GEMM kernel."""
    # serving casts activations once, rowwise only, with a per-tensor scale (no columnwise copy for a backward)
    cast = fp8_cast_bytes_per_elem("delayed", columnwise_copy=False) if s.act_bytes == 1.0 else 0.0
    ll = ll_dispatch(lk, p, phase)
    h = s.arch.hidden
    fused = 0.0
    if np.any(ll):
        ni = p.stage_chips.astype(np.int64)
        f_rdma = 1.0 - members_within(ni, np.ones_like(ni), s.system)[0] / np.maximum(p.stage_chips, 1.0)
        fused = (elementwise_bytes_per_token(lk, h, cast, backward_casts=False, dispatch_fused=True)
                 + ll_kernel_bytes_per_token(h, float(lk.moe.active_experts) * p.etp, s.act_bytes, f_rdma))
    by = np.where(ll, fused, elementwise_bytes_per_token(lk, h, cast, backward_casts=False)) * t / p.tp
    kernels = np.where(ll, non_gemm_kernels(lk, True), non_gemm_kernels(lk))
    return by / (s.chip.hbm_bw * s.calib.mem_eff) + kernel_floor_time(kernels, s.calib.gemm_latency_s)


#: scale-up wirings on which every chip reaches every other directly (NVSwitch, xGMI's full mesh):
#: :class:`trainsim.catalog.topology.Topology` kinds
FULLY_CONNECTED_KINDS = ("switch", "fullmesh")


def uses_custom_all_reduce(stack: dict, vendor: str, size_bytes, n, system):
    """Whether serving stack ``stack`` (a profile of :mod:`trainsim.inference.stacks`) all-reduces ``size_bytes``
    over ``n`` tensor-parallel chips of ``vendor`` with its custom peer-to-peer kernel
    (:func:`custom_all_reduce_time`) rather than the library's ring (NCCL / RCCL / HCCL,
    :func:`trainsim.perf.collectives.all_reduce_time`); a bool array. All of:

    * the stack has one (its profile's ``custom_all_reduce`` is not null: vLLM, SGLang, TensorRT-LLM; not
      vllm-ascend or CloudMatrix-Infer, which all-reduce through HCCL);
    * ``n`` is one of its ``world_sizes`` (2, 4, 6 or 8 in all three) and inside one scale-up domain: any other
      size disables it at start-up (vLLM: "Custom allreduce is disabled due to an unsupported world size";
      TensorRT-LLM: "Custom all reduce only supported on {2, 4, 6, 8} GPUs per node"), a group across nodes too;
    * more than 2 ranks only where the domain is fully connected (:data:`FULLY_CONNECTED_KINDS`; vLLM: "not
      supported on more than two PCIe-only GPUs");
    * the message is under the kernel's buffer, ``size_bytes < max_bytes``
      (:func:`trainsim.inference.stacks.custom_all_reduce_max_bytes`): vLLM 8 MiB (8,388,608 B) on CUDA and ROCm,
      SGLang 8 MiB on CUDA and 16 MiB on ROCm, TensorRT-LLM 16,000,000 B at 2 ranks and 8,000,000 B above; larger
      messages go to the library. vLLM's ``should_custom_ar`` also wants a multiple of 16 bytes: ``t x hidden``
      BF16 activations are one for any hidden divisible by 8.

    Each number with its source in ``inference/data/serving_stacks.yaml``. Not modelled: newer vLLM's
    symmetric-memory all-reduce where ``VLLM_ALLREDUCE_USE_SYMM_MEM`` is on, ROCm's quick reduce (quantised, off by
    default) and TensorRT-LLM's AUTO strategy tables. Example: vLLM at tp 3, or tp 8 and 16 MiB, on H100: NCCL's
    ring; tp 8 and 1 MiB: the custom kernel; TensorRT-LLM at tp 2 and 12 MiB: the custom kernel (vLLM: NCCL)."""
    n = np.asarray(n, dtype=np.float64)
    car = stack["custom_all_reduce"]
    if car is None:
        return np.zeros(np.broadcast(n, np.asarray(size_bytes)).shape, dtype=bool)
    sizes_ok = np.isin(n, car["world_sizes"]) & (n <= system.scale_up_size)
    wired = (n <= 2) | (system.levels[0].topology.kind in FULLY_CONNECTED_KINDS)
    return sizes_ok & wired & (np.asarray(size_bytes, dtype=np.float64)
                               < custom_all_reduce_max_bytes(stack, vendor, n))


def custom_all_reduce_time(size_bytes, n, system, eff):
    """All-reduce of ``size_bytes`` over ``n`` chips of one scale-up domain by the serving stacks' custom
    peer-to-peer kernel (not NCCL's ring); where the stacks run it: :func:`uses_custom_all_reduce`.

    vLLM ``csrc/custom_all_reduce.cuh`` (commit 036bb685581dbedcd6cf7fc845fe87268c7d1191), ``CustomAllreduce::
    allreduce``: ``n = 2``, or ``n <= 4`` and under 512 KiB, or ``n <= 8`` and under 256 KiB, runs
    ``cross_device_reduce_1stage`` (*one-shot*): every rank reads the whole buffer from each of its ``n - 1`` peers
    and sums locally, i.e. receives ``(n - 1) S`` -- an all-to-all of ``n S`` bytes per chip
    (:func:`trainsim.perf.collectives.all_to_all_time`, one alpha) -- plus the end barrier (one more alpha:
    ``start_sync`` and ``end_sync`` are each "Latency = 1 p2p write"). Larger buffers run
    ``cross_device_reduce_2stage`` (*two-shot*): a reduce-scatter (each rank reads its ``1/n`` slice from every
    peer: an all-to-all of ``S``) and an all-gather (the same), with one barrier each: ``2 (n - 1)/n S / B`` like
    a ring, but 2 alphas instead of the ring's ``2 (n - 1)``. The same kernels serve SGLang (``sgl_kernel``
    ports them) and ROCm (ROCm/vllm PR #27 "Enable custom AR on ROCm", merged 2024-05-30, for GPUs on 1-hop
    xGMI); TensorRT-LLM's ``customAllReduceKernels.cu`` has the same one-shot / two-shot pair.
    """
    s = np.asarray(size_bytes, dtype=np.float64)
    nn = np.asarray(n, dtype=np.float64)
    ni = np.maximum(nn, 1.0).astype(np.int64)
    one = np.ones_like(ni)
    alpha = system.levels[0].latency_s
    one_shot = all_to_all_time(s * nn, ni, one, system, eff) + alpha
    two_shot = 2.0 * all_to_all_time(s, ni, one, system, eff)
    small = (nn <= 2) | ((nn <= 4) & (s < 512 * 1024)) | (s < 256 * 1024)
    return np.where(small, one_shot, two_shot)


def tp_all_reduce_time(s: ServeSetup, size_bytes, n):
    """One tensor-parallel all-reduce of ``size_bytes`` over ``n`` chips in serving: the custom kernel
    (:func:`custom_all_reduce_time`) where the setup's serving stack runs it (:func:`uses_custom_all_reduce`: the
    stack's world sizes inside one scale-up domain, under its buffer size), else the library's all-reduce
    (:func:`trainsim.perf.collectives.all_reduce_time`)."""
    n = np.asarray(n, dtype=np.float64)
    ni = n.astype(np.int64)
    ring = all_reduce_time(size_bytes, ni, np.ones_like(ni), s.system, s.calib.coll_eff)
    custom = uses_custom_all_reduce(s.stack_profile, vendor_key(s.chip), size_bytes, n, s.system)
    if not np.any(custom):
        return ring
    return np.where(custom, custom_all_reduce_time(size_bytes, n, s.system, s.calib.coll_eff), ring)


def _tp_comm(s: ServeSetup, p: ServePlans, t):
    """Two tensor-parallel all-reduces of the layer's ``t x hidden`` BF16 activations (after attention, after MLP)."""
    one = tp_all_reduce_time(s, t * s.arch.hidden * BF16_BYTES, p.tp)
    return np.where(p.tp > 1, 2.0 * one, 0.0)


LL_MSG_HEADER_BYTES = 16.0    # DeepEP low-latency dispatch: one int4 (source token index + 3 reserved ints)


def ll_dispatch_msg_bytes(hidden, act_bytes):
    """Bytes of one routed copy of a token in DeepEP's low-latency dispatch: a 16-byte header, then the hidden state
    (FP8: ``hidden`` bytes plus one 4-byte scale per 128 channels; BF16: ``2 hidden``). deepseek-ai/DeepEP
    csrc/kernels/internode_ll.cu at fbcf430, ``dispatch``: ``num_bytes_per_msg = sizeof(int4) + (kUseFP8 ? (kHidden
    + num_scales * sizeof(float)) : (kHidden * sizeof(nv_bfloat16)))`` with ``num_scales = kHidden / 128``
    (7,408 bytes per copy for DeepSeek-V3's 7,168 hidden in FP8). Combine sends bare BF16 rows (``num_bytes_per_slot
    = kHidden * sizeof(nv_bfloat16)``, same file). The FP8 scales are the 1 x 128 fp32 blocks of the blockwise
    recipe (:data:`trainsim.perf.compute.FP8_SCALE_BYTES_PER_ELEM`)."""
    scales = np.where(np.asarray(act_bytes) == 1.0, FP8_SCALE_BYTES_PER_ELEM["blockwise"] * hidden, 0.0)
    return LL_MSG_HEADER_BYTES + hidden * act_bytes + scales


def ll_kernel_bytes_per_token(hidden, k, act_bytes, f_rdma):
    """HBM bytes DeepEP's low-latency dispatch and combine kernels read and write themselves (not the network's
    DMA) per token of a chip, for ``k`` routed copies per token, a fraction ``f_rdma`` of them to peers outside the
    scale-up domain. deepseek-ai/DeepEP csrc/kernels/internode_ll.cu at fbcf430:

    * ``dispatch`` send: read the BF16 token (``2 h``), write its message once (``m`` =
      :func:`ll_dispatch_msg_bytes`, the FP8 cast with scales); to an NVLink peer a warp copies the message
      (``UNROLLED_WARP_COPY``, read ``m`` per copy; an RDMA peer's copy is read by the NIC);
      receive: every delivered row is copied from the receive buffer into ``packed_recv_x`` (read ``m``, write
      ``m``): ``2 h + m + k m (1 - f_rdma) + 2 k m``;
    * ``combine`` send: read each expert-output row (``2 h``) and, for an RDMA peer, write it into the send buffer
      first (``not zero_copy``; SGLang and vLLM call it with the default ``zero_copy=False``); receive: read a
      token's ``k`` rows and write their weighted sum: ``2 k h + 2 k h f_rdma + 2 k h + 2 h``.

    These replace the permute, unpermute and per-copy FP8 cast of the training kernels
    (:func:`trainsim.perf.compute.elementwise_bytes_per_token` with ``dispatch_fused``): for FP8 about
    ``7 k h`` (NVLink) to ``8 k h`` (RDMA) against ``11 k h``."""
    m = ll_dispatch_msg_bytes(hidden, act_bytes)
    dispatch = BF16_BYTES * hidden + m + k * m * (1.0 - f_rdma) + 2.0 * k * m
    combine = 2.0 * k * hidden * COMBINE_BYTES + k * hidden * COMBINE_BYTES * f_rdma + COMBINE_BYTES * hidden
    return dispatch + combine


def _ep_comm(lk: LayerKind, s: ServeSetup, p: ServePlans, t, dedup: bool):
    """Dispatch + combine of one MoE layer for the ``t / tp`` tokens each chip owns.

    The routed experts of a stage live on its ``ep x etp`` chips; each of a token's ``k`` copies goes to the ``etp``
    chips that hold a slice of its expert (and partial outputs come back from each), so a chip sends
    ``tokens x k x etp`` rows of ``hidden`` over the stage group (an all-to-all of ``ep x etp`` members).

    Tensor-parallel experts (``ep = 1`` and ``etp = tp``: every expert split over exactly the chips of the
    tensor-parallel group, which already hold every token after the attention all-reduce) have no dispatch or
    combine: each chip runs its slice of the hit experts on the replicated tokens and the partial outputs are summed
    by the layer's second tensor-parallel all-reduce (:func:`_tp_comm`). vLLM v0.17.1
    ``vllm/model_executor/models/deepseek_v2.py`` ``DeepseekV2MoE.forward``: ``SharedFusedMoE(reduce_results=False)``
    then one ``maybe_all_reduce_tensor_model_parallel`` of routed + shared output when ``tp_size > 1`` (the
    sequence-parallel chunking is only for data + expert parallelism).
    """
    if lk.moe is None:
        return 0.0
    a2a = ep_all_to_all(p)
    if not np.any(a2a):
        return 0.0
    h = s.arch.hidden
    k = float(lk.moe.active_experts) * p.etp
    tok = t / p.tp
    n = p.stage_chips
    ni = n.astype(np.int64)
    one = np.ones_like(ni)
    eff = tuple(e * s.calib.a2a_eff for e in s.calib.coll_eff)
    if not dedup:
        tt = (all_to_all_time(tok * k * ll_dispatch_msg_bytes(h, s.act_bytes), ni, one, s.system, eff)
              + all_to_all_time(tok * k * h * COMBINE_BYTES, ni, one, s.system, eff))
        return np.where(a2a, tt, 0.0)
    w = members_within(ni, one, s.system)[0].astype(np.float64)
    g = np.maximum(n / w, 1.0)
    remote = g * (1.0 - (1.0 - 1.0 / g) ** k) * (g - 1.0) / g
    inner = k * (w - 1.0) / w
    tt = 0.0
    n_lv = len(s.system.levels)
    for b in (s.act_bytes, COMBINE_BYTES):
        lv = [tok * h * inner * b, tok * h * remote * b] + [0.0] * (n_lv - 2)
        tt = tt + level_bytes_time(lv[:n_lv], s.system, eff)
    lat = sum(lv.latency_s for lv in s.system.levels[:2])
    tt = tt + 2.0 * np.where(g > 1, lat, s.system.levels[0].latency_s)
    return np.where(a2a, tt, 0.0)


def _head(s: ServeSetup, p: ServePlans, m, all_logits: bool):
    """Output head for ``m`` tokens per tp group (vocab split over tp), plus log-softmax when scoring all tokens."""
    c = s.calib
    a = s.arch
    t = gemm_time(m, a.vocab / p.tp, a.hidden, s.gemm_peak, c.gemm_eff, s.chip.hbm_bw, c.mem_eff, HEAD_BYTES,
                  c.gemm_latency_s)
    if all_logits:
        t = t + m * a.vocab / p.tp * 6.0 / (s.chip.hbm_bw * c.mem_eff)
    return t


def vocab_comm_time(s: ServeSetup, p: ServePlans, t, m):
    """Tensor-parallel collectives of the vocabulary-parallel embedding and output head in one forward pass of a tp
    group: ``t`` tokens embedded, logits for ``m`` of them (0 where ``tp`` is 1).

    * Embedding: every rank looks up only the tokens of its ``vocab / tp`` slice (zeros elsewhere), and one
      all-reduce of ``t x hidden`` BF16 sums the slices (vLLM v0.17.1
      ``vllm/model_executor/layers/vocab_parallel_embedding.py`` ``VocabParallelEmbedding.forward``:
      ``output_parallel.masked_fill_(...)``, then ``tensor_model_parallel_all_reduce`` when ``tp_size > 1``; SGLang's
      layer is the same port): :func:`tp_all_reduce_time`.
    * Logits: each rank's head GEMM gives ``m x vocab / tp`` logits in the model dtype and one all-gather assembles the
      ``m x vocab`` rows every rank samples from (vLLM ``vllm/model_executor/layers/logits_processor.py``
      ``LogitsProcessor._gather_logits``: ``tensor_model_parallel_all_gather`` where ``current_platform.use_all_gather()``,
      true for the V1 engine, ``vllm/platforms/interface.py``; vLLM's CUDA communicator has no custom all-gather, so
      NCCL's): :func:`trainsim.perf.collectives.all_gather_time` of ``m x vocab x 2`` bytes over ``tp``.

    Example (hand, DeepSeek-V3, hidden 7,168, vocab 129,280, 64 sequences on a TP32 server): an all-reduce of 64 x
    7,168 x 2 = 917,504 B and an all-gather of 64 x 129,280 x 2 = 16,547,840 B over 32 ranks."""
    a = s.arch
    ni = np.asarray(p.tp, dtype=np.float64).astype(np.int64)
    emb = tp_all_reduce_time(s, np.asarray(t, dtype=np.float64) * a.hidden * BF16_BYTES, p.tp)
    logits = all_gather_time(np.asarray(m, dtype=np.float64) * a.vocab * BF16_BYTES, ni, np.ones_like(ni), s.system,
                             s.calib.coll_eff)
    return np.where(p.tp > 1, emb + logits, 0.0)


def layer_time(lk: LayerKind, s: ServeSetup, p: ServePlans, t, seqs, context, phase: str):
    """Seconds of one layer for one micro-batch on one chip, and its parts (arrays)."""
    T = t * p.dp
    gem = _dense_gemms(lk, s, p, t)
    exp = _expert_gemms(lk, s, p, T)
    if phase == "decode":
        att = _attention_decode(lk, s, p, t, seqs, context)
    else:
        att = _attention_prefill(lk, s, p, t, context)
    elt = _elementwise(lk, s, p, t, phase)
    comp = gem + exp + att + elt
    tpc = _tp_comm(s, p, t)
    epc = _ep_comm(lk, s, p, t, dedup=(phase != "decode"))
    comm = tpc + epc
    hidden = s.calib.comm_overlap * np.minimum(comp, comm)
    return comp + comm - hidden, {"gemm": gem, "experts": exp, "attention": att, "elementwise": elt,
                                  "tp_comm": tpc, "ep_comm": epc, "overlap_hidden": -hidden}


def prefill_chunks(tokens, budget):
    """Steps a scheduler needs for ``tokens`` prompt tokens under a per-step token budget ``budget`` (chunked
    prefill): ``ceil(tokens / budget)``, at least 1; 1 where there is no budget (None). Each step is a forward pass
    of its own -- its kernel launches, its weight reads, its host step overhead -- over ``tokens / steps`` tokens.

    The stacks fill a step up to the budget and cut the prompt that does not fit: vLLM V1
    ``Scheduler.schedule`` (vllm-project/vllm 00024d3 vllm/v1/core/sched/scheduler.py) schedules a waiting
    request's ``min(num_new_tokens, token_budget)`` tokens and the rest in the following steps (``token_budget =
    max_num_scheduled_tokens``, ``max_num_batched_tokens``); SGLang's ``--chunked-prefill-size`` and TensorRT-LLM's
    ``max_num_tokens`` (enable_chunked_prefill) likewise; Sarathi-Serve (Agrawal et al., OSDI'24) for the method.
    The budgets are inference/data/serving_stacks.yaml ``max_batched_tokens``. The steps are priced as equal parts
    (``tokens / steps`` each, not ``budget, ..., remainder``): the linear terms are the same, the fixed ones counted
    once per step either way.

    Example (hand): a 32,768-token prompt on vLLM V1 with the API server's 8,192 -> 4 steps (4 step overheads);
    32,769 tokens -> 5; 8,000 -> 1."""
    t = np.asarray(tokens, dtype=np.float64)
    if budget is None:
        return np.ones_like(t)
    return np.maximum(np.ceil(t / float(budget) - 1e-9), 1.0)


def prefill_round_chunks(s: ServeSetup, p: ServePlans, batch, input_len):
    """Steps one prefill round of ``batch`` prompts of ``input_len`` tokens per instance takes: its tokens per
    scheduler (one per data-parallel replica) and pipeline micro-batch, ``batch / pp / dp x input_len``, under the
    stack's token budget (:func:`prefill_chunks`, :attr:`~trainsim.inference.setup.ServeSetup.token_budget`). The
    round's time (:func:`step_time`) and the activations it holds (one chunk's, search.evaluate_prefill) both
    use it."""
    return prefill_chunks(np.asarray(batch, dtype=np.float64) / p.pp / p.dp * float(input_len), s.token_budget)


def pipeline_fill_rounds(pp, chunks):
    """The fill and drain of a forward-only pipeline as a share of the prefill round it runs in steady state:
    ``(pp - 1) / (pp x chunks)``. A round of ``chunks`` budget steps (:func:`prefill_round_chunks`) is ``chunks x
    pp`` stage slots, one micro-batch chunk entering per slot, and the work's first chunk crosses ``pp - 1``
    stages before the last stage starts (the ``(p - 1) t`` bubble of a pipeline schedule, Narayanan et al. 2021
    sec. 2.2.1, forward only), once however many rounds follow: the chunks keep the pipeline full between
    rounds. Example (hand): pp 2, a round of 3 chunks -> 1 / 6 of a round; pp 16, one chunk -> 15 / 16."""
    pp = np.asarray(pp, dtype=np.float64)
    return (pp - 1.0) / (pp * np.asarray(chunks, dtype=np.float64))


def step_time(s: ServeSetup, p: ServePlans, batch, context, phase: str, *, input_len=None, all_logits=False):
    """One serving round for ``batch`` sequences per instance.

    decode: every sequence advances one step at ``context`` cached tokens; returns (round seconds, breakdown).
    prefill: ``batch`` prompts of ``input_len`` tokens (``context`` is ignored); ``all_logits`` computes the
    output head for every token (teacher scoring) instead of only the last one per prompt. The round's tokens per
    scheduler and micro-batch run in :func:`prefill_chunks` steps under the stack's token budget
    (:attr:`~trainsim.inference.setup.ServeSetup.token_budget`), each a forward pass of its share of the prompts
    with its own step overhead.
    """
    batch = np.asarray(batch, dtype=np.float64)
    chunks = 1.0
    if phase == "prefill":
        chunks = prefill_round_chunks(s, p, batch, input_len)
        batch = batch / chunks                  # one chunk's prompts (a share of each)
    q = (1.0 + s.mtp_draft) if phase == "decode" else float(input_len)
    seqs_g = batch / p.pp / p.dp            # sequences per tp group per micro-batch
    t = seqs_g * q                          # tokens per tp group per micro-batch
    ctx = context if phase == "decode" else input_len
    parts: dict[str, np.ndarray] = {}
    stage = 0.0
    for lk in s.arch.layers:
        lt, br = layer_time(lk, s, p, t, seqs_g, ctx, phase)
        stage = stage + lt * lk.n_layers / p.pp
        for k_, v in br.items():
            parts[k_] = parts.get(k_, 0.0) + v * lk.n_layers / p.pp
    head_tokens = t if (phase == "decode" or all_logits) else seqs_g
    head = _head(s, p, head_tokens, all_logits) / p.pp
    vocab = vocab_comm_time(s, p, t, head_tokens)
    mtp = 0.0
    if phase == "decode" and s.mtp_draft and s.arch.mtp:
        for lk in s.arch.mtp:
            lt, _ = layer_time(lk, s, p, seqs_g, seqs_g, ctx, phase)
            mtp = mtp + lt * lk.n_layers
        mtp = s.mtp_draft * (mtp + _head(s, p, seqs_g, False)) / p.pp
        vocab = vocab + s.mtp_draft * vocab_comm_time(s, p, seqs_g, seqs_g)  # the MTP module's own embedding / head
    vocab = vocab / p.pp
    ppc = np.where(p.pp > 1, p2p_time(t * s.arch.hidden * BF16_BYTES, p.pp, p.stage_chips.astype(np.int64), s.system,
                                      s.calib.coll_eff), 0.0)
    stage = stage + head + vocab + mtp + ppc
    parts.update({"head": head, "vocab_comm": vocab, "mtp": mtp, "pp_comm": ppc})
    host = s.calib.step_overhead_s + s.calib.seq_overhead_s * batch / p.dp   # one scheduler per dp replica
    rnd = chunks * (p.pp * stage + host)
    out = {k_: chunks * p.pp * np.asarray(v, dtype=np.float64) for k_, v in parts.items()}
    out["step_overhead"] = np.broadcast_to(np.asarray(chunks * host, dtype=np.float64), np.shape(rnd)).copy()
    return rnd, out


# ---------------------------------------------------------------- memory


def weight_bytes_per_chip(s: ServeSetup, p: ServePlans, *, include_mtp: bool = False):
    """Weights one chip holds (the most loaded pipeline stage: its layers plus the embedding or the head)."""
    a = s.arch
    per_layer_total = 0.0
    layers = list(a.layers) + (list(a.mtp) if include_mtp else [])
    for lk in layers:
        e = lk.moe.experts if lk.moe else 1
        e_loc, _ = local_experts(p.ep, e)
        per_layer_total = per_layer_total + _layer_weight_bytes(lk, s, p, e_loc / e) * lk.n_layers
    emb = (a.embedding_params + a.extra_embedding_params) / p.tp * HEAD_BYTES
    head = (a.head_params if not a.tied_embeddings else 0) / p.tp * HEAD_BYTES
    ends = np.where(p.pp > 1, np.maximum(emb, head), emb + head)
    return per_layer_total / p.pp + ends + a.final_params * BF16_BYTES


def _layer_weight_bytes(lk: LayerKind, s: ServeSetup, p: ServePlans, expert_share):
    """Weight bytes of one layer on one chip when a fraction ``expert_share`` of all routed-expert weights is
    counted (held or read), placement by :func:`trainsim.parallel.sharding.layer_params`."""
    lp = layer_params(lk)
    return (lp.tp_split / p.tp * s.w_bytes + lp.replicated * s.w_bytes + lp.router * HEAD_BYTES
            + lp.expert * expert_share / p.etp * s.expert_w_bytes + lp.vector * BF16_BYTES)


def weights_read_per_step(s: ServeSetup, p: ServePlans, batch):
    """Weight bytes one chip streams from HBM in one decode round (only the experts the batch hits)."""
    a = s.arch
    T = np.asarray(batch, dtype=np.float64) / p.pp * (1.0 + s.mtp_draft)
    tot = 0.0
    for lk in a.layers:
        share = 0.0
        if lk.moe is not None:
            E = lk.moe.experts
            e_loc, copies = local_experts(p.ep, E)
            share = e_loc / E * hit_probability(T / copies, lk.moe.active_experts, E)
        # vector params (norms) are not re-read as weights here: streamed bytes are the matrices only
        lp = layer_params(lk)
        tot = tot + (_layer_weight_bytes(lk, s, p, share) - lp.vector * BF16_BYTES) * lk.n_layers / p.pp
    head = a.vocab * a.hidden / p.tp * HEAD_BYTES
    return p.pp * (tot + head / p.pp)


def kv_bytes_per_chip(s: ServeSetup, p: ServePlans, batch, context):
    """KV cache one chip holds for ``batch`` sequences per instance of ``context`` tokens each."""
    seqs_g = np.asarray(batch, dtype=np.float64) / p.dp  # a tp group's sequences (all its micro-batches)
    tot = 0.0
    for lk in s.arch.layers:
        for core in lk.attention:
            per_seq = cached_tokens(core, context) * core.kv_elems_per_token * s.kv_bytes + state_bytes(core)
            tot = tot + per_seq / kv_shards(core, p.tp) * lk.n_layers / p.pp
    return seqs_g * tot


def prefill_activation_bytes(s: ServeSetup, p: ServePlans, batch, input_len):
    """Peak activations of one prefill micro-batch on a chip: ~ tokens x (hidden x 8 + widest layer output)."""
    t = np.asarray(batch, dtype=np.float64) / p.pp / p.dp * input_len
    widest = max(max(m.n for m in lk.matrices) for lk in s.arch.layers)
    return t * (8.0 * s.arch.hidden + 2.0 * widest / p.tp) * BF16_BYTES
