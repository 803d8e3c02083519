"""Data-parallel gradient and parameter synchronisation (ZeRO, Rajbhandari et al. 2020; Megatron distributed
optimizer).

Per step: zero 0 all-reduces the gradients; zero 1 and 2 reduce-scatter them and all-gather the updated BF16
parameters; zero 3 (FSDP) all-gathers the parameters before the forward and the backward of every micro-batch
and reduce-scatters the gradients after each backward. Dense parameters sync over the dp x cp group (stride tp),
expert parameters over the expert-data-parallel group (stride etp x ep). Gradients travel at ``grad_bytes``
per parameter (dense ones at ``dense_reduce_bytes``: FSDP2's reduce dtype, perf/context.py OptimizerStates),
parameters at ``ctx.param_gather_bytes`` (2; 1 with FP8 weights).

Sharding groups smaller than dp x cp (MiCS, Zhang et al., arXiv 2205.00119 sec. 3-4; ``ctx.zero_shard_group``):
the dense states shard over ``ctx.shard_ranks`` consecutive dp ranks, so the reduce-scatters and all-gathers above
run inside one group, and the groups' gradient shards are all-reduced across the r = dp x cp / group replicas once
per step, before the optimizer (MiCS's 2-hop gradient synchronisation: reduce-scatter in the partition group at
every micro-step, all-reduce across replicas at the gradient-accumulation boundary; SageMaker model parallelism
docs, sharded data parallelism: 'an AllReduce operation across sharding groups must be performed ... in addition
to the ReduceScatter operation performed within the sharding group'): :func:`replica_sync_time`.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .collectives import all_gather_time, all_reduce_time, hierarchical_all_gather_time, reduce_scatter_time
from .context import BF16_BYTES, StepContext
from .arrays import Num
from ..parallel.plan import Plans


#: Megatron-Core DDP's default bucket: max(MCORE_BUCKET_MIN_PARAMS, MCORE_BUCKET_PARAMS_PER_DP_RANK x dp) parameters
MCORE_BUCKET_MIN_PARAMS = 40_000_000
MCORE_BUCKET_PARAMS_PER_DP_RANK = 1_000_000


def mcore_bucket_params(dp: Num) -> Num:
    """Parameters per gradient-buffer bucket of Megatron-Core's DistributedDataParallel when no --ddp-bucket-size
    is given: B = max(40,000,000, 1,000,000 x dp) (megatron/core/distributed/distributed_data_parallel.py at
    core_r0.8.0, ``parallel_state.get_data_parallel_world_size()``, and at d98e8a6, ``dp_group.size()``). ``dp`` is
    the data-parallel group without context parallelism, though the buffer reduces over dp x cp: at core_r0.8.0
    get_data_parallel_world_size defaults to with_context_parallel=False, and at d98e8a6 'dp_group' is
    get_data_parallel_group(with_context_parallel=False) (megatron/core/process_groups_config.py
    setup_process_groups_for_ddp), the dp x cp group being 'dp_cp_group'."""
    return np.maximum(float(MCORE_BUCKET_MIN_PARAMS),
                      MCORE_BUCKET_PARAMS_PER_DP_RANK * np.asarray(dp, dtype=np.float64))


def ddp_overlap(ctx: StepContext, p: Plans, params: Num) -> Num:
    """Fraction of the zero 0-1 gradient reduce (and parameter gather) that can hide behind the backward (forward)
    of a rank holding ``params`` parameters, for :func:`trainsim.perf.collectives.exposed`.

    Megatron-Core's DistributedDataParallel (the stack's ``mcore_ddp_buckets``) cuts the gradient buffer into buckets
    of B = max(40,000,000, 1,000,000 x dp) parameters (dp without cp: :func:`mcore_bucket_params`) when no
    --ddp-bucket-size is given
    (megatron/core/distributed/distributed_data_parallel.py at core_r0.8.0 and at d98e8a6); with
    --overlap-grad-reduce each bucket's reduce-scatter starts when its last gradient is ready, behind the rest of the
    backward, so only the last bucket's share waits after it: f = 1 - min(1, B / params) (with
    --overlap-param-gather the first bucket's gather, by symmetry). Other stacks: ``dp_overlap``
    (perf/data/constants.yaml)."""
    if not ctx.mcore_ddp_buckets:
        return ctx.calib.dp_overlap + 0.0 * np.asarray(params, dtype=np.float64)
    bucket = mcore_bucket_params(p.dp)          # dp without cp (mcore_bucket_params)
    return 1.0 - np.minimum(1.0, bucket / np.maximum(np.asarray(params, dtype=np.float64), 1.0))


def zero3_units(ctx: StepContext, p: Plans) -> tuple[Num, Num]:
    """(dense, expert) ZeRO-3 communication units a pipeline rank holds: each is all-gathered (forward and
    backward) and reduce-scattered as its own collective, so each pays its own latency (:func:`dp_sync_times`).

        dense = (L + L_mtp) / pp + 1        expert = (MoE layers + MoE MTP layers) / pp

    Megatron-FSDP (ZeRO-3, ``data_parallel_sharding_strategy`` "optim_grads_params") makes every
    ``TransformerLayer`` an FSDP unit (megatron/core/distributed/fsdp/mcore_fsdp_adapter.py lines 91-97 at
    Megatron-LM core_r0.14.0) and groups its buckets by (FSDP unit, expert or not): "buckets pertaining to the same
    FSDP unit module and are either expert or non-expert parameters should end up in the same bucket group for
    NCCL" (megatron_fsdp/param_and_grad_buffer.py lines 1440-1466, same tag); the expert group syncs over the
    expert-data-parallel group. The parameters outside any unit (embedding, output head, final norm) form one more
    dense group (the + 1). FSDP2 likewise shards each transformer block with its own ``fully_shard`` (one
    all-gather per block). Per rank the layers of its pipeline stage (the mean, L / pp)."""
    a = ctx.arch
    layers = float(a.n_layers + sum(lk.n_layers for lk in a.mtp))
    moe = float(sum(lk.n_layers for lk in a.layers + a.mtp if lk.moe is not None))
    pp = p.pp.astype(np.float64)
    return layers / pp + 1.0, moe / pp


def dp_sync_times(ctx: StepContext, p: Plans, dense_params: Num, expert_params: Num) -> tuple[Num, Num]:
    """(gradient sync time, parameter gather time) per step, zero 0-2; per micro-batch for zero 3.

    Zero 3 runs one collective per communication unit (:func:`zero3_units`), each of 1 / units of the whole-model
    bytes, at the algorithm the library picks for that size and group (collectives.reduce_scatter_time: NCCL's
    ring, n - 1 hops, or PAT; HCCL's logarithmic NB / NHR): units x that collective's time; a stack that gathers
    its ZeRO-3 parameters hierarchically (``ctx.zero3_hierarchical_gather``, MiCS) pays its two passes
    (collectives.hierarchical_all_gather_time). Zero 0-2 sync bucketed buffers whose latency the whole-model
    figure keeps."""
    c, sysm = ctx.calib, ctx.system
    edp = p.expert_dp
    # Megatron-Core reduces dense gradients (and shards the distributed optimizer) over the dp x cp group:
    # cp ranks hold the same weights and see different tokens (parallel_state "data_parallel_group_with_cp")
    dgroup, dstride = p.dp * p.cp, p.tp
    # ZeRO >= 1 shards (and so reduce-scatters / gathers) inside the sharding group; zero 0 all-reduces over all
    sgroup = np.where(p.zero >= 1, ctx.shard_ranks(p), dgroup)
    estride = p.etp * p.ep
    # zero 3: one collective per unit, dense over the sharding group, expert over edp; zero 0-2: one
    u_d, u_e = zero3_units(ctx, p)
    k_d = np.where(p.zero >= 3, u_d, 1.0)
    k_e = np.where(p.zero >= 3, np.maximum(u_e, 1.0), 1.0)

    def units(fn: Callable[..., Num], size_d: Num, size_e: Num) -> Num:
        return (k_d * fn(size_d / k_d, sgroup, dstride, sysm, c.coll_eff)
                + k_e * fn(size_e / k_e, edp, estride, sysm, c.coll_eff))

    g_dense = dense_params * ctx.optimizer.dense_reduce_bytes
    g_exp = expert_params * ctx.optimizer.grad_bytes
    rs = units(reduce_scatter_time, g_dense, g_exp)
    ar = (all_reduce_time(g_dense, dgroup, dstride, sysm, c.coll_eff)
          + all_reduce_time(g_exp, edp, estride, sysm, c.coll_eff))
    wb = ctx.param_gather_bytes
    ag = units(all_gather_time, dense_params * wb, expert_params * wb)
    if ctx.zero3_hierarchical_gather:
        # MiCS: the ZeRO-3 parameter gathers in two passes, across the nodes then inside each
        # (collectives.hierarchical_all_gather_time); its other collectives stay flat rings
        ag = np.where(p.zero >= 3, units(hierarchical_all_gather_time, dense_params * wb, expert_params * wb), ag)
    grad = np.where(p.zero == 0, ar, rs)
    gather = np.where(p.zero == 0, 0.0, ag)
    return grad, gather


def replica_sync_time(ctx: StepContext, p: Plans, dense_params: Num) -> Num:
    """Once per step (ZeRO >= 1 with a sharding group smaller than dp x cp): all-reduce of each sharding group's
    dense gradient shard, ``grad_bytes`` x dense / group, across the r = dp x cp / group replicas, which sit
    ``group`` dp ranks apart (stride tp x group): 2 (r - 1) / r x shard / B on the level they cross (module
    docstring). 0 when one group spans dp x cp."""
    c = ctx.calib
    group = ctx.shard_ranks(p)
    r = (p.dp * p.cp) // group
    shard = dense_params * ctx.optimizer.grad_bytes / group
    t = all_reduce_time(shard, r, p.tp * group, ctx.system, c.coll_eff)
    return np.where((p.zero >= 1) & (r > 1), t, 0.0)


def grad_buffer_pass_bytes(ctx: StepContext, p: Plans, dense_params: Num, expert_params: Num) -> Num:
    """HBM bytes per step of the element-wise passes a Megatron-Core DDP makes over the whole local gradient buffer
    of a rank holding ``dense_params`` + ``expert_params`` parameters (unsharded: the distributed optimizer shards
    the optimizer states, not this buffer), at the buffer's ``grad_bytes`` per parameter (fp32 with Megatron-LM's
    --accumulate-allreduce-grads-in-fp32, which bf16 forces: megatron/training/arguments.py at core_r0.6.0 and
    core_r0.8.0; bf16 where a recipe sets grad_reduce_in_fp32 False):

        bytes = grad_bytes x (zeroed + nan_check + 2 x prescaled) x params

    * ``grad_buffer_zeroed`` (write once): megatron/training/training.py train_step calls
      model_chunk.zero_grad_buffer() before every step, ParamAndGradBuffer.reset -> self.grad_data.zero_()
      (megatron/core/distributed/param_and_grad_buffer.py at core_r0.6.0 and core_r0.8.0);
    * ``grad_nan_check`` (read once): Bucket.start_grad_sync with ddp_config.check_for_nan_in_grad computes
      self.grad_data.norm(p=2) of every bucket before its collective (Megatron-LM passes
      --check-for-nan-in-loss-and-grad, on unless --no-check-for-nan-in-loss-and-grad);
    * ``grad_prescaled`` (read + write): without average_in_collective the same start_grad_sync scales the bucket
      in place, self.grad_data *= gradient_scaling_factor (1 / data-parallel size) before a SUM reduce; core_r0.8.0
      skips it when the factor is 1.0 (dp 1), core_r0.6.0 runs it unconditionally (``grad_prescaled_dp1``). Expert
      buckets scale by their expert-data-parallel size (edp).

    The passes run on the compute stream inside the backward (start_grad_sync from the gradient hooks) or before the
    step, so none hides behind compute. ZeRO-3 (Megatron FSDP) keeps no such whole buffer: 0."""
    g = ctx.optimizer.grad_bytes
    once = float(ctx.grad_buffer_zeroed) + float(ctx.grad_nan_check)
    edp = p.expert_dp

    def passes(group: Num) -> Num:
        scaled = ctx.grad_prescaled & ((np.asarray(group) > 1) | ctx.grad_prescaled_dp1)
        return once + 2.0 * np.where(scaled, 1.0, 0.0)

    b = g * (passes(p.dp) * dense_params + passes(edp) * expert_params)
    return np.where(p.zero >= 3, 0.0, b)


def grad_accumulation_bytes(ctx: StepContext, p: Plans, dense_params: Num, expert_params: Num) -> Num:
    """HBM bytes per micro-batch that adding the weight gradients into the main-grad buffer moves on a rank holding
    ``dense_params`` + ``expert_params`` parameters, where the weight-gradient GEMMs do not accumulate into it
    themselves (``ctx.grad_accumulation_fusion`` False: Megatron-LM ``--no-gradient-accumulation-fusion``):

        bytes = (2 + 2 x grad_bytes) x params      (10 B per parameter with the fp32 buffer)

    Without the fusion Megatron-Core's linear layers return each micro-batch's weight gradient as a BF16 ``.grad``
    (megatron/core/tensor_parallel/layers.py ``LinearWithGradAccumulationAndAsyncCommunication.backward``:
    ``grad_weight = grad_output.t().matmul(total_input)``, the GEMM's own output write), and the DDP's backward hook
    adds it to the buffer in a separate kernel, ``param.main_grad.add_(param.grad.data)`` (megatron/core/distributed/
    distributed_data_parallel.py line 461 at Megatron-LM 847781764f): read the BF16 gradient (2), read and write the
    buffer (``grad_bytes`` each). With the fusion the GEMM accumulates into the buffer in its epilogue
    (``fused_weight_gradient_mlp_cuda.wgrad_gemm_accum_fp32``): 0 here. Every micro-batch's backward runs it once
    for every local parameter, on the compute stream. ZeRO-3 keeps no whole local buffer: 0."""
    if ctx.grad_accumulation_fusion:
        return 0.0 * np.asarray(dense_params, dtype=np.float64)
    b = (BF16_BYTES + 2.0 * ctx.optimizer.grad_bytes) * (dense_params + expert_params)
    return np.where(p.zero >= 3, 0.0, b)
