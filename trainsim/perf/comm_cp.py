"""Context parallelism: ring exchange of K and V (Liu et al. 2023, Ring Attention; Megatron-Core CP).

With the sequence split over cp ranks (load-balanced causal chunks), each layer's forward passes every rank's
K/V block around the ring: (cp - 1) steps of one block (:func:`cp_block_bytes`); the backward pass moves K/V and
their gradients (2x). The exchange overlaps the attention computation of the previous block. Each step runs at
the slowest level the cp group crosses (:func:`trainsim.perf.collectives.ring_step_time`); its launch and
synchronisation (``comm_launch_s`` per step) cannot overlap: :func:`cp_ring_sync`.

PyTorch's experimental CP (``torch.distributed.tensor.experimental._attention``; the stack's ``cp_torch_ring``
profile flag) exchanges the same blocks differently: :func:`torch_ring_exposed` (time) and
:func:`torch_ring_backward_bytes` (memory), and merges the partial results in eager fp32 PyTorch ops between the
sub-SDPAs: :func:`torch_ring_merge_bytes`. Every ring merges its per-step partial results between the attention
calls on the compute stream: :func:`ring_merge_time` (Transformer Engine's fused corrections
:func:`te_ring_merge_bytes`, MindSpeed's eager ones :func:`mindspeed_ring_merge_bytes`).
"""
from __future__ import annotations

import numpy as np

from ..model.arch import AttentionCore, LayerKind
from .collectives import exposed, ring_step_time
from .compute import hbm_time
from .context import StepContext
from .arrays import Num
from ..parallel.plan import Plans


def ring_heads(c: AttentionCore, ctx: StepContext) -> int:
    """Heads of K and V the ring carries for attention core ``c``: its ``kv_heads``, or its query ``heads`` where
    the stack repeats K/V to the query heads before SDPA (``cp_kv_repeated``): torchtitan's Attention calls
    ``repeat_kv(xk, self.n_rep)`` / ``repeat_kv(xv, ...)`` before ``F.scaled_dot_product_attention``
    (pytorch/torchtitan torchtitan/models/llama/model.py, 9dec370, Dec 2024), so the DTensor SDPA that CP
    dispatches sees n_heads / tp heads per rank."""
    return c.heads if ctx.cp_kv_repeated else c.kv_heads


def cp_block_bytes(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Bytes of one rank's K/V block of one layer (BF16): ``tokens/cp x heads/tp x (d_qk + d_v) x 2``, with the
    heads of :func:`ring_heads`. ``tokens`` are per cp rank."""
    kv = sum(ring_heads(c, ctx) * (c.qk_head_dim + c.v_head_dim) for c in lk.attention if c.kind != "linear")
    return tokens * kv / p.tp * 2.0


def cp_ring_fwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Forward K/V ring time of one layer per micro-batch (0 when cp = 1). ``tokens`` are per cp rank."""
    t = (p.cp - 1) * ring_step_time(cp_block_bytes(lk, ctx, p, tokens), p.cp, p.tp, ctx.system, ctx.calib.coll_eff)
    return np.where(p.cp > 1, t, 0.0)


def cp_dkv_step(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """One ring step of a layer's dK/dV in fp32 (twice a BF16 block's bytes) under PyTorch's experimental CP:
    ``_templated_ring_attention_backward`` accumulates ``grad_key`` / ``grad_value`` in float32
    (``accum_dtype = torch.float32 if _cp_options.convert_to_f32``, default True) and passes
    ``torch.cat([grad_key.flatten(), grad_value.flatten()])`` to the next rank through ``dkv_rotater``
    (``_RotateMethod.ALL_TO_ALL``: ``ft_c.permute_tensor``) at every one of the cp steps (pytorch/pytorch
    torch/distributed/tensor/experimental/_attention.py, late 2024 to 2026). 0 when cp = 1."""
    t = ring_step_time(2.0 * cp_block_bytes(lk, ctx, p, tokens), p.cp, p.tp, ctx.system, ctx.calib.coll_eff)
    return np.where(p.cp > 1, t, 0.0)


def cp_ring_sync(lk: LayerKind, ctx: StepContext, p: Plans) -> Num:
    """The part of a layer's forward ring no overlap hides: a launch + synchronisation per step."""
    if not any(c.kind != "linear" for c in lk.attention):
        return 0.0
    return np.where(p.cp > 1, (p.cp - 1) * ctx.calib.comm_launch_s, 0.0)


def torch_ring_exposed(kv: Num, dkv: Num, attn_f: Num, attn_b: Num, cp: Num, f: float,
                       traced: bool = False) -> tuple[Num, Num]:
    """(forward, backward) K/V exchange time left on the critical path under PyTorch's experimental CP.

    ``kv``: the K/V exchange of a forward, (cp - 1) block steps (:func:`cp_ring_fwd`); ``dkv``: one fp32 dK/dV
    step (:func:`cp_dkv_step`); ``attn_f`` / ``attn_b``: the forward / backward attention compute, which the
    load-balanced ring splits into cp sub-SDPAs of equal work (step 0: the 2 local chunks causally, (2c)^2 / 2;
    every later step 2c x c); ``f``: the fraction of the hideable part that hides (``cp_overlap``).
    Source: pytorch/pytorch torch/distributed/tensor/experimental/_attention.py ``_templated_ring_attention`` and
    ``_templated_ring_attention_backward`` (late 2024, unchanged in structure to 2026) with torchtitan's
    ``--experimental.context_parallel_rotate_method`` default ``allgather`` (config_manager.py, 9dec370) and NeMo
    AutoModel's ``cp_rotate_method="allgather"`` (nemo_automodel/components/distributed/cp_utils.py):

    * ``_AllGatherRotater.exchange_buffers`` issues one ``all_gather_tensor`` of all blocks at step 0 and
      ``next_buffer`` waits for it at step 1, so only step 0's sub-SDPA (attention / cp) hides it:
      forward ``exposed(kv, attn_f / cp)``;
    * the backward all-gathers K/V again the same way, ``exposed(kv, attn_b / cp)``, and sends the fp32 dK/dV at
      every step: the send of step i is awaited after step i + 1's sub-SDPA backward (hidden by attn_b / cp),
      and the last send (step cp - 1) is awaited after the loop, fully exposed:
      ``(cp - 1) exposed(dkv, attn_b / cp) + dkv``.

    That overlap holds only in eager mode, where ``ft_c.all_gather_tensor`` / ``ft_c.permute_tensor`` return an
    ``AsyncCollectiveTensor`` waited at its first use (``next_buffer``'s ``_maybe_wait``). ``traced``: the ring
    runs inside a torch.compile graph (the run's ``compiled`` setting, frameworks.runtime_settings; torchtitan's
    per-TransformerBlock ``torch.compile(..., fullgraph=True)``, parallelize_llama.py apply_compile at 9dec370,
    traces the DTensor SDPA dispatch and with it the ring). While
    tracing, ``_maybe_wrap_tensor`` returns ``wait_tensor(...)`` right after the collective ("wait_tensor() op is
    immediately called", pytorch/pytorch torch/distributed/_functional_collectives.py ``_are_we_tracing`` /
    ``_maybe_wrap_tensor``, 2024-2026), and Inductor leaves the wait there unless
    ``torch._inductor.config.reorder_for_compute_comm_overlap`` is set (default False; torchtitan 9dec370 sets
    only ``_micro_pipeline_tp``, which matches all-gather + matmul, not the CP all-gather): every all-gather and
    dK/dV send sits whole on the critical path, ``f`` = 0 for all of them: forward ``kv``, backward
    ``kv + cp dkv``."""
    cpf = np.maximum(np.asarray(cp, dtype=np.float64), 1.0)
    f = 0.0 if traced else f
    fwd = exposed(kv, attn_f / cpf, f)
    bwd = exposed(kv, attn_b / cpf, f) + (cpf - 1.0) * exposed(dkv, attn_b / cpf, f) + dkv
    return np.where(cpf > 1, fwd, 0.0), np.where(cpf > 1, bwd, 0.0)


def torch_ring_backward_bytes(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Bytes PyTorch's experimental CP adds while one layer's attention backward runs (0 when cp = 1):
    the all-gathered K/V of every rank, cp blocks (``_AllGatherRotater._aggregated_buffer``, kept by the rotater
    until the backward returns), and the fp32 dK/dV accumulators (``grad_key`` / ``grad_value``, 2 blocks' bytes)
    with the fp32 copy ``torch.cat`` makes of them for each send (2 blocks' bytes, live while the permute is in
    flight): (cp + 4) blocks (:func:`cp_block_bytes`). Source: as :func:`torch_ring_exposed`."""
    return np.where(p.cp > 1, (p.cp + 4.0) * cp_block_bytes(lk, ctx, p, tokens), 0.0)


def torch_ring_merge_bytes(cp: Num, q_bytes: Num, o_bytes: Num, kv_bytes: Num) -> tuple[Num, Num]:
    """(forward, backward) HBM bytes of the eager PyTorch ops PyTorch's experimental CP runs between its sub-SDPAs,
    per layer and micro-batch on one rank (0 when cp = 1). ``q_bytes`` / ``o_bytes``: the rank's BF16 query /
    attention output; ``kv_bytes``: its BF16 K and V block (:func:`cp_block_bytes`). Reads + writes, counted op by
    op from pytorch/pytorch torch/distributed/tensor/experimental/_attention.py (late 2024; torch 1963fc8 of the
    torchtitan benchmark), with ``_cp_options.convert_to_f32`` True (fp32 = 2 x the BF16 bytes) and the
    load-balanced (round-robin) ring, for the rank whose later steps all use the full query (rank cp - 1: steps
    ``i <= rank``), the one with the most work; per-query-row terms (the logsumexp) are left out:

    * forward, ``_templated_ring_attention``: ``key.contiguous()`` / ``value.contiguous()`` copy the K/V, which
      reach SDPA as transposed (batch, heads, seq, dim) views (2 kv); ``torch.cat([key.flatten(),
      value.flatten()])`` before every send, also under the all-gather rotater, which uses only the first
      (steps 0 .. cp - 2: 2 kv each);
      ``_SDPAMerger.step`` casts each sub-SDPA output to fp32 (o + 2o = 3o); each later step's ``_merge_one``
      runs ``out - block_out`` (2o + 2o read, 2o written), ``sigmoid(...) * (...)`` (2o + 2o) and
      ``out - ...`` (4o + 2o): 3o + 6o + 4o + 6o = 19o; ``results()`` casts back to BF16 (2o + o = 3o):
      ``2 cp kv + (6 + 19 (cp - 1)) o``;
    * backward, ``_templated_ring_attention_backward``: fp32 ``zeros_like`` accumulators (2q + 2kv written) and
      the same K/V ``contiguous()`` copies (2 kv);
      the K/V ``torch.cat`` before sends (2 (cp - 1) kv); step 0 ``grad_key += grad_key_`` and the value
      likewise (2 + 1 read, 2 written per BF16 byte: 5 kv); each later step ``_partial_update`` of the first
      key/value chunk (the chunk's += on half the bytes, 2.5 kv, and ``torch.cat`` of the whole fp32 tensors,
      4 kv: 6.5 kv); ``torch.cat([grad_key.flatten(), grad_value.flatten()])`` for the dK/dV send at every step
      (4 kv each); ``grad_query += grad_query_`` at every step (5 q each); the final casts of dQ and the received
      dK/dV to BF16 (3q + 3kv): ``(5 + 5 cp) q + (12 + 8.5 (cp - 1) + 4 cp) kv``.

    The collectives' own reads and writes (all-gather, dK/dV permute) run on the communication stream and are not
    counted. Example (test_cp_torch_ring_merge): Llama 3.1 405B, tp 8, cp 8, 262,144 tokens, K/V repeated to 16
    heads per rank: q = o = 32,768 x 16 x 128 x 2 = 134.2 MB, kv = 2q; forward 171 q = 23.0 GB, backward 252 q =
    33.8 GB."""
    cpf = np.maximum(np.asarray(cp, dtype=np.float64), 1.0)
    fwd = 2.0 * cpf * kv_bytes + (6.0 + 19.0 * (cpf - 1.0)) * o_bytes
    bwd = (5.0 + 5.0 * cpf) * q_bytes + (12.0 + 8.5 * (cpf - 1.0) + 4.0 * cpf) * kv_bytes
    return np.where(cpf > 1, fwd, 0.0), np.where(cpf > 1, bwd, 0.0)


def te_ring_merge_bytes(cp: Num, q_bytes: Num, o_bytes: Num, kv_bytes: Num) -> tuple[Num, Num]:
    """(forward, backward) HBM bytes of the kernels Transformer Engine's P2P ring runs beside its attention calls, per
    layer and micro-batch on one rank (0 when cp = 1): Megatron-Core's default CP (``cp_comm_type`` None -> "p2p",
    Megatron-LM megatron/core/extensions/transformer_engine.py TEDotProductAttention, d98e8a64), counted op by op
    from NVIDIA/TransformerEngine v2.9 transformer_engine/pytorch/attention/dot_product_attention/context_parallel.py
    ``AttnFuncWithCPAndKVP2P`` (BF16 attention, sbhd / bshd, causal; the same at v2.12) for the rank whose every
    later step uses its whole query (rank cp - 1), ``q_bytes`` / ``o_bytes`` the rank's BF16 query / attention
    output, ``kv_bytes`` its K and V block (:func:`cp_block_bytes`); per-query-row terms (the softmax LSE
    corrections, fp32 [b, h, s]) are left out:

    * forward: ``torch.cat((k.view(-1), v.view(-1)))`` into the first send buffer (2 kv);
      ``flash_attn_fwd_out_correction_init`` scales step 0's output into ``out`` (read o, write o: 2 o) and each later
      step's ``flash_attn_fwd_out_correction`` adds its rescaled output into ``out`` in place (read out, read the
      step's output, write out: 3 o); both are ``jit_fuser`` functions (torch.compile, transformer_engine/pytorch/
      jit.py ``lazy_compile``), one kernel each; ``out.to(fwd_nominal_dtype)`` is a no-op in BF16:
      ``2 kv + (2 + 3 (cp - 1)) o``;
    * backward: ``p2p_comm_buffers[0][0].copy_(kv)`` (2 kv); the step results land in ``dq_buffer`` and the
      travelling dK/dV buffer by ``copy_`` at the first step (2 q, 2 kv) and ``add_`` at every later one (3 q,
      3 kv; some of them on one half of the tensor, so this is the upper bound):
      ``2 kv + (2 + 3 (cp - 1)) (q + kv)``.

    Example (test_te_ring_merge_by_hand): Llama 3.1 405B, tp 8, cp 2, 8,192 tokens: q = o = 4,096 x 16 x 128 x 2 =
    16.8 MB, kv = 2.1 MB; forward 88.1 MB, backward 98.6 MB a layer, 70 us at 0.8 of an H100's 3.35 TB/s."""
    cpf = np.maximum(np.asarray(cp, dtype=np.float64), 1.0)
    steps = 2.0 + 3.0 * (cpf - 1.0)
    fwd = 2.0 * kv_bytes + steps * o_bytes
    bwd = 2.0 * kv_bytes + steps * (q_bytes + kv_bytes)
    return np.where(cpf > 1, fwd, 0.0), np.where(cpf > 1, bwd, 0.0)


#: bytes per query row and head of MindSpeed's ring softmax statistics: ``softmax_max`` / ``softmax_sum`` of
#: ``torch_npu.npu_fusion_attention`` are fp32 [b, n, s, 8] (8 copies of each row's value)
MINDSPEED_ROW_STAT_BYTES = 8 * 4


def mindspeed_ring_merge_bytes(cp: Num, q_bytes: Num, o_bytes: Num, kv_bytes: Num,
                               row_bytes: Num) -> tuple[Num, Num]:
    """(forward, backward) HBM bytes of the eager PyTorch ops MindSpeed's ring attention (``--context-parallel-algo
    megatron_cp_algo``) runs between its ``npu_fusion_attention`` calls, per layer and micro-batch on one rank (0
    when cp = 1); ``q_bytes`` / ``o_bytes`` / ``kv_bytes`` as in :func:`te_ring_merge_bytes`, ``row_bytes`` one
    softmax statistic tensor (:data:`MINDSPEED_ROW_STAT_BYTES` per query row and head). Counted op by op from
    Ascend/MindSpeed mindspeed/core/context_parallel/ring_context_parallel.py at 2b0edd2 (the MindSpeed that
    MindSpeed-LLM 1.0 pinned; ``forward_update_without_fused`` in mindspeed/core/context_parallel/utils.py at
    028de58c, 2026, is the same ops, used unless ``--use-fused-ring-attention-update``), causal, for rank cp - 1:

    * forward: ``torch.cat((k.unsqueeze(0), v.unsqueeze(0)))`` (2 kv); each later step's ``forward_update``:
      ten element-wise ops on the statistics (maximum, 2 subtractions, 2 exp, 3 products, a sum, 2 divisions:
      28 row), each output scale ``[..., 0].unsqueeze(3).repeat(1, 1, 1, d)`` to an fp32 tensor of the output's
      shape (2 o) and ``rearrange(...).contiguous()`` (4 o): 12 o for the two; ``prev_attn_out * prev_out_scale``
      and the current one (BF16 x fp32 -> fp32: 5 o each), their sum (6 o) and ``.to(origin_dtype)`` (3 o): 19 o;
      ``2 kv + (cp - 1) (31 o + 28 row)``;
    * backward: the K/V ``torch.cat`` (2 kv), ``torch.zeros_like`` of dq, dk, dv (q + kv), the received K/V copied
      into the K/V + dK/dV send buffer (2 kv), step 0's half-size ``dk[0].copy_`` / ``dv[0].copy_`` (kv); at every
      later step ``torch.cat`` of dK and dV (2 kv) copied into the send buffer (2 kv) and ``add_`` of the step's
      dQ, dK, dV (3 q + 3 kv): ``q + 6 kv + (cp - 1) (3 q + 7 kv)``.

    Example (test_mindspeed_ring_merge_by_hand): Mixtral 8x7B, tp 8, cp 2, 32,768 tokens: o = q = 16,384 x 4 x 128
    x 2 = 16.8 MB, kv = 8.4 MB, row = 2.1 MB: forward 596 MB, backward 176 MB a layer."""
    cpf = np.maximum(np.asarray(cp, dtype=np.float64), 1.0)
    fwd = 2.0 * kv_bytes + (cpf - 1.0) * (31.0 * o_bytes + 28.0 * row_bytes)
    bwd = q_bytes + 6.0 * kv_bytes + (cpf - 1.0) * (3.0 * q_bytes + 7.0 * kv_bytes)
    return np.where(cpf > 1, fwd, 0.0), np.where(cpf > 1, bwd, 0.0)


def ring_merge_time(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> tuple[Num, Num]:
    """(forward, backward) time of the ops a CP ring runs between its attention calls, for one layer and micro-batch
    at the HBM rate (:func:`trainsim.perf.compute.hbm_time`); ``tokens`` are per cp rank. By the stack's CP: PyTorch's
    experimental CP (``cp_torch_ring``) :func:`torch_ring_merge_bytes`; MindSpeed's eager ring (``cp_eager_merge``)
    :func:`mindspeed_ring_merge_bytes`; an all-gather CP (``cp_allgather``) none (one attention call over the gathered
    K/V); else Megatron-Core's Transformer Engine ring, :func:`te_ring_merge_bytes`. These ops run on the compute
    stream between the attention calls, so nothing hides them."""
    cores = [c for c in lk.attention if c.kind != "linear"]
    if ctx.cp_allgather or not cores:
        return 0.0, 0.0
    q = sum(c.heads * c.qk_head_dim for c in cores) * tokens / p.tp * 2.0
    o = sum(c.heads * c.v_head_dim for c in cores) * tokens / p.tp * 2.0
    kv = cp_block_bytes(lk, ctx, p, tokens)
    if ctx.cp_torch_ring:
        f, b = torch_ring_merge_bytes(p.cp, q, o, kv)
    elif ctx.cp_eager_merge:
        row = sum(c.heads for c in cores) * tokens / p.tp * MINDSPEED_ROW_STAT_BYTES
        f, b = mindspeed_ring_merge_bytes(p.cp, q, o, kv, row)
    else:
        f, b = te_ring_merge_bytes(p.cp, q, o, kv)
    return hbm_time(f, ctx), hbm_time(b, ctx)
