"""ZeRO sharding groups smaller than the data-parallel group (MiCS, arXiv 2205.00119; the SageMaker model
parallelism library's sharded_data_parallel_degree; BloombergGPT: 'We shard a model across 128 GPUs, and we have 4
copies of the model'), against hand derivations written here (training.zero_shard_group)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

from trainsim.api import estimate, parse_run
from trainsim.errors import TrainsimError
from trainsim.perf.comm_dp import replica_sync_time
from trainsim.plan_estimate import context, plans_from_spec

BB = "validation/runs/bloomberggpt-50b-512.yaml"
# BloombergGPT 50B: 12 L h^2 + V h with L 70, h 7680, V 131072 (tied embeddings) = 50,551,848,960, plus the
# BLOOM-style biases and layer norms (13 h per layer, 4 h outside: under 0.02%)
N_HAND = 12 * 70 * 7680 ** 2 + 131072 * 7680


def _bb(group=128):
    spec = yaml.safe_load(open(BB).read())
    if group is None:
        spec["training"].pop("zero_shard_group", None)
    else:
        spec["training"]["zero_shard_group"] = group
    return spec


def _fixed(spec):
    # the plan the estimate chooses (tp 1, pp 1, zero 3, full recompute, micro-batch 4), fixed
    spec["plan"].update(tp=1, pp=1, cp=1, zero=3, recompute="full", micro_batch=4, schedule="1f1b")
    return spec


def test_shard_ranks():
    run = parse_run(_fixed(_bb(128)))
    ctx = context(run)
    p = plans_from_spec(run.plan, run.chips, run.arch)
    assert int(ctx.shard_ranks(p)[0]) == 128
    assert int(context(parse_run(_fixed(_bb(None)))).shard_ranks(p)[0]) == 512     # the whole dp group
    assert int(context(parse_run(_fixed(_bb(96)))).shard_ranks(p)[0]) == 32        # gcd(512, 96)


def test_replica_all_reduce_by_hand():
    # the BF16 gradient shard of one 128-GPU group, 2 x N / 128 bytes (DeepSpeed ZeRO-3 before 0.9.0 keeps its grad
    # partitions in the parameters' dtype, stage3.py grad_partitions_flat_buffer, and MiCS all-reduces those:
    # mics.py allreduce_mics_shard_grads), all-reduced over the 4 copies, which sit on
    # 4 different p4d nodes (stride 128): 2 (r - 1) / r x shard / (50 Gb/s x 0.6) + 2 (r - 1) x 14 us, 0.6 being the
    # spec's scale-out fabric efa-v1 (EFA's nccl-tests ring busbw 29.6-31.8 of 50 GB/s on 3-4 p4d, NVIDIA/nccl #527),
    # under NCCL's Simple protocol (the full rate): 8.4 us a call and 14 us a network step (tuning.cc at 5067397c)
    run = parse_run(_fixed(_bb(128)))
    ctx = context(run)
    p = plans_from_spec(run.plan, run.chips, run.arch)
    dense = np.array([float(N_HAND)])
    shard = 2.0 * N_HAND / 128
    hand = 2 * 3 / 4 * shard / (50e9 / 8 * 0.6) + 2 * 3 * 14e-6 + 8.4e-6
    assert replica_sync_time(ctx, p, dense)[0] == pytest.approx(hand, rel=1e-9)
    assert hand == pytest.approx(0.316, abs=0.002)                                  # ~0.32 s once per step
    # one group over all 512: nothing to all-reduce
    ctx512 = context(parse_run(_fixed(_bb(None))))
    assert replica_sync_time(ctx512, p, dense)[0] == 0.0


def test_optimizer_states_shard_over_the_group():
    # fp32 master + Adam moments, 12 bytes per parameter, over 128 ranks instead of 512: 4x the bytes per GPU
    grp = estimate(parse_run(_fixed(_bb(128)))).to_dict()["memory_breakdown_bytes"]
    full = estimate(parse_run(_fixed(_bb(None)))).to_dict()["memory_breakdown_bytes"]
    assert grp["optimizer"] == pytest.approx(4.0 * full["optimizer"], rel=1e-9)
    assert grp["optimizer"] >= 12.0 * N_HAND / 128


def test_zero_shard_group_bad_value_is_one_line():
    for bad in (0, -128, "many"):
        with pytest.raises(TrainsimError) as e:
            parse_run(_bb(bad))
        assert "zero_shard_group" in str(e.value) and "\n" not in str(e.value)


def test_zero3_gradients_reduce_scatter_in_bf16():
    # SMP's sharded data parallelism is DeepSpeed ZeRO-3 with reduce_scatter true and no communication_data_type
    # (tkazusa/smdistributed_modelparallel b5e06a87 backend/ds_config_defaults.json); DeepSpeed before 0.9.0 then
    # reduce-scatters the BF16 gradients as they are (engine.py communication_data_type -> float16 under ZeRO;
    # stage3.py asserts float16 / bfloat16 and upcasts only for float32). So the reduce-scatter moves 2 bytes per
    # parameter, as each all-gather of the BF16 parameters does: over the same 128-rank ring (each member sends and
    # receives (n - 1) / n of the buffer either way) the two take the same time, where FP32 gradients took twice it
    from trainsim.perf.comm_dp import dp_sync_times
    run = parse_run(_fixed(_bb(128)))
    ctx = context(run)
    p = plans_from_spec(run.plan, run.chips, run.arch)
    assert ctx.optimizer.dense_reduce_bytes == 2.0 and ctx.param_gather_bytes == 2.0
    dense = np.array([float(N_HAND)])
    grad, gather = dp_sync_times(ctx, p, dense, np.zeros(1))
    # the reduce-scatter: NCCL's flat ring over the 128 ranks (16 p4d nodes), one call per unit (70 layers + the
    # embedding and head: 71), 2 N bytes in all: each node's egress (n - 1) / n x S over its 8 GPUs' 50 Gb/s EFA
    # share at 0.6 (fabric efa-v1), under Simple: 8.4 us a call, 15 network steps of 14 us and 112 NVLink steps of
    # 3.4 us (above the proxy's 3 x 1 us floor) a call. The BF16 parameters' all-gather moves the same 2 N bytes
    # (its own two-pass cost: test_mics_hierarchical_gather_by_hand)
    s = 2.0 * N_HAND
    hand = 127 / 128 * s / (8 * 50e9 / 8 * 0.6) + 71 * (8.4e-6 + 15 * 14e-6 + 112 * 3.4e-6)
    # (abs 1 ms: dp_sync_times also charges this dense model one empty expert-group call, ~0.6 ms of latency)
    assert grad[0] == pytest.approx(hand, abs=1e-3)
    assert gather[0] > grad[0]
    # a run that states FP32 gradients (optimizer.grads fp32) reduce-scatters twice the bytes: twice the time
    # less the latency terms, which do not grow with the bytes
    spec = _fixed(_bb(128))
    spec.setdefault("optimizer", {})["grads"] = "fp32"
    run32 = parse_run(spec)
    ctx32 = context(run32)
    grad32, _ = dp_sync_times(ctx32, p, dense, np.zeros(1))
    assert 1.95 * grad[0] < grad32[0] < 2.0 * grad[0]


def test_mics_hierarchical_gather_by_hand():
    """SMP's sharded data parallelism gathers the parameters hierarchically on multi-node jobs (backend/config.yaml
    sdp_hierarchical_allgather, tkazusa/smdistributed_modelparallel b5e06a87; the profile's
    zero3_hierarchical_gather): MiCS's two passes (microsoft/DeepSpeed 2e99f6edf mics.py
    _hierarchical_all_gather_params), first across the 16 nodes among the GPUs at the same local position (S / 8
    bytes out each, on its own 50 Gb/s EFA share), then inside each node over NVSwitch (S out), one after the
    other. Hand derivation for BloombergGPT's 128-GPU group, 2 N bytes in 71 calls (70 layers + the embedding and
    head), under NCCL's Simple protocol: across the nodes 15 / 16 x S / 8 / (6.25 GB/s x 0.6, fabric efa-v1) and per
    call 8.4 us + 15 network steps of 14 us (one GPU per node: the tree's step, fully exposed); inside the node
    7 / 8 x S / (300 GB/s x 0.8) and per call 8.4 us + 7 NVLink steps of 3.4 us."""
    from trainsim.perf.collectives import all_gather_time, hierarchical_all_gather_time
    from trainsim.perf.comm_dp import dp_sync_times
    run = parse_run(_fixed(_bb(128)))
    ctx = context(run)
    assert ctx.zero3_hierarchical_gather
    p = plans_from_spec(run.plan, run.chips, run.arch)
    s = 2.0 * N_HAND
    across = 15 / 16 * s / 8 / (50e9 / 8 * 0.6) + 71 * (8.4e-6 + 15 * 14e-6)
    inside = 7 / 8 * s / (300e9 * 0.8) + 71 * (8.4e-6 + 7 * 3.4e-6)
    _, gather = dp_sync_times(ctx, p, np.array([float(N_HAND)]), np.zeros(1))
    assert gather[0] == pytest.approx(across + inside, abs=1e-3)     # (the empty expert-group call, ~0.6 ms)
    assert across + inside == pytest.approx(3.546, abs=0.001)       # per gather; 3.386 s as one flat ring
    # the flat ring carries its NVLink and EFA bytes at once (the slowest bounds it): the two passes cost the
    # intra-node pass more, less the flat ring's longer latency (127 steps a call against 15 + 7)
    flat = 127 / 128 * s / (8 * 50e9 / 8 * 0.6) + 71 * (8.4e-6 + 15 * 14e-6 + 112 * 3.4e-6)
    assert (across + inside) - flat == pytest.approx(0.16, abs=0.005)
    # a group inside one node, or with one GPU per node, makes one call: the flat collective; so does one that the
    # 8-GPU nodes do not split evenly (12 = 8 + 4: DeepSpeed's mics_utils.py asserts an even split for the
    # hierarchy, and the two passes would leave the 4 unpriced)
    sysm, eff = ctx.system, ctx.calib.coll_eff
    for n, stride in ((8, 1), (16, 8), (12, 1)):
        one = all_gather_time(1e9, np.array([n]), np.array([stride]), sysm, eff)
        assert hierarchical_all_gather_time(1e9, np.array([n]), np.array([stride]), sysm, eff)[0] == \
            pytest.approx(float(np.ravel(one)[0]), rel=1e-12)
    # a stack without the flag (DeepSpeed's plain ZeRO-3, PyTorch FSDP: NCCL's flat ring) keeps the flat gather
    plain = dataclasses.replace(ctx, zero3_hierarchical_gather=False)
    _, gflat = dp_sync_times(plain, p, np.array([float(N_HAND)]), np.zeros(1))
    assert gflat[0] == pytest.approx(flat, abs=1e-3)
