"""Context parallelism: ring exchange of K and V (Liu et al. 2023, Ring Attention; Megatron-Core CP).

With the sequence split over cp ranks (load-balanced causal chunks), each layer's forward passes every rank's
K/V block around the ring: (cp - 1) steps of one block (:func:`cp_block_bytes`); the backward pass moves K/V and
their gradients (2x). The exchange overlaps the attention computation of the previous block. Each step runs at
the slowest level the cp group crosses (:func:`trainsim.perf.collectives.ring_step_time`); its launch and
synchronisation (``comm_launch_s`` per step) cannot overlap: :func:`cp_ring_sync`.

PyTorch's experimental CP (``torch.distributed.tensor.experimental._attention``; the stack's ``cp_torch_ring``
profile flag) exchanges the same blocks differently: :func:`torch_ring_exposed` (time) and
:func:`torch_ring_backward_bytes` (memory).
"""
from __future__ import annotations

import numpy as np

from ..model.arch import AttentionCore, LayerKind
from .collectives import exposed, ring_step_time
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


def torch_ring_exposed(kv: Num, dkv: Num, attn_f: Num, attn_b: Num, cp: Num, f: float) -> tuple[Num, Num]:
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
      ``(cp - 1) exposed(dkv, attn_b / cp) + dkv``."""
    cpf = np.maximum(np.asarray(cp, dtype=np.float64), 1.0)
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
