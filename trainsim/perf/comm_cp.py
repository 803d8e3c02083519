"""Context parallelism: ring exchange of K and V (Liu et al. 2023, Ring Attention; Megatron-Core CP).

With the sequence split over cp ranks (load-balanced causal chunks), each layer's forward passes every rank's
K/V block around the ring: (cp - 1) steps of ``tokens/cp x kv_heads/tp x (d_qk + d_v) x 2 bytes``; the backward
pass moves K/V and their gradients (2x). The exchange overlaps the attention computation of the previous block.
Each step runs at the slowest level the cp group crosses (:func:`trainsim.perf.collectives.ring_step_time`); its
launch and synchronisation (``comm_launch_s`` per step) cannot overlap: :func:`cp_ring_sync`.
"""
from __future__ import annotations

import numpy as np

from ..model.arch import LayerKind
from .collectives import ring_step_time
from .context import StepContext
from .arrays import Num
from ..parallel.plan import Plans


def cp_ring_fwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Forward K/V ring time of one layer per micro-batch (0 when cp = 1). ``tokens`` are per cp rank."""
    kv = sum(c.kv_heads * (c.qk_head_dim + c.v_head_dim) for c in lk.attention if c.kind != "linear")
    block = tokens * kv / p.tp * 2.0
    t = (p.cp - 1) * ring_step_time(block, p.cp, p.tp, ctx.system, ctx.calib.coll_eff)
    return np.where(p.cp > 1, t, 0.0)


def cp_ring_sync(lk: LayerKind, ctx: StepContext, p: Plans) -> Num:
    """The part of a layer's forward ring no overlap hides: a launch + synchronisation per step."""
    if not any(c.kind != "linear" for c in lk.attention):
        return 0.0
    return np.where(p.cp > 1, (p.cp - 1) * ctx.calib.comm_launch_s, 0.0)
