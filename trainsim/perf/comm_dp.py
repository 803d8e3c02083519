"""Data-parallel gradient and parameter synchronisation (ZeRO, Rajbhandari et al. 2020; Megatron distributed
optimizer).

Per step: zero 0 all-reduces the gradients; zero 1 and 2 reduce-scatter them and all-gather the updated BF16
parameters; zero 3 (FSDP) all-gathers the parameters before the forward and the backward of every micro-batch
and reduce-scatters the gradients after each backward. Dense parameters sync over the dp x cp group (stride tp),
expert parameters over the expert-data-parallel group (stride etp x ep). Gradients travel at ``grad_bytes``
per parameter, parameters at ``ctx.param_gather_bytes`` (2; 1 with FP8 weights).
"""
from __future__ import annotations

import numpy as np

from .collectives import all_gather_time, all_reduce_time, reduce_scatter_time
from .context import StepContext
from .arrays import Num
from ..parallel.plan import Plans


def dp_sync_times(ctx: StepContext, p: Plans, dense_params: Num, expert_params: Num) -> tuple[Num, Num]:
    """(gradient sync time, parameter gather time) per step, zero 0-2; per micro-batch for zero 3."""
    c, sysm = ctx.calib, ctx.system
    edp = np.maximum((p.tp * p.cp * p.dp) // np.maximum(p.ep * p.etp, 1), 1)
    # Megatron-Core reduces dense gradients (and shards the distributed optimizer) over the dp x cp group:
    # cp ranks hold the same weights and see different tokens (parallel_state "data_parallel_group_with_cp")
    dgroup, dstride = p.dp * p.cp, p.tp
    estride = p.etp * p.ep
    gb = ctx.optimizer.grad_bytes
    g_dense, g_exp = dense_params * gb, expert_params * gb
    rs = (reduce_scatter_time(g_dense, dgroup, dstride, sysm, c.coll_eff)
          + reduce_scatter_time(g_exp, edp, estride, sysm, c.coll_eff))
    ar = (all_reduce_time(g_dense, dgroup, dstride, sysm, c.coll_eff)
          + all_reduce_time(g_exp, edp, estride, sysm, c.coll_eff))
    wb = ctx.param_gather_bytes
    ag = (all_gather_time(dense_params * wb, dgroup, dstride, sysm, c.coll_eff)
          + all_gather_time(expert_params * wb, edp, estride, sysm, c.coll_eff))
    grad = np.where(p.zero == 0, ar, rs)
    gather = np.where(p.zero == 0, 0.0, ag)
    return grad, gather
