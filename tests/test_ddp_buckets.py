"""Megatron-Core DDP buckets: only the last gradient bucket (first parameter bucket) waits on the critical path.

megatron/core/distributed/distributed_data_parallel.py (core_r0.8.0; unchanged at d98e8a6): without --ddp-bucket-size
a bucket holds max(40,000,000, 1,000,000 x dp) parameters, and with --overlap-grad-reduce each bucket reduces as soon
as its gradients are ready. Hand derivations of the hidden fraction f = 1 - min(1, bucket / params):

* 4,000,000,000 parameters per rank, dp 48: bucket 48,000,000 -> f = 1 - 0.012 = 0.988;
* 1,000,000,000 parameters, dp 8: bucket 40,000,000 -> f = 0.96;
* 20,000,000 parameters (one bucket holds them all): f = 0, nothing hides;
* a stack without Megatron-Core's DDP keeps constants.yaml dp_overlap (0.8).
"""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.frameworks import stack_flags
from trainsim.perf.comm_dp import ddp_overlap
from trainsim.plan_estimate import context, estimate_complete, plans_from_spec
from trainsim.spec import parse_run


def _run(fw, chips=16, zero=1, cp=1):
    return parse_run({"model": {"name": "g", "layers": 4, "hidden": 1024, "heads": 16, "ffn": 4096,
                                "ffn_act": "gelu", "vocab": 32000},
                      "system": "dgx-h100", "chips": chips, "framework": fw,
                      "training": {"seq_len": 2048, "global_batch_seqs": 256, "precision": "bf16"},
                      "plan": {"tp": 1, "pp": 1, "cp": cp, "micro_batch": 16, "zero": zero, "recompute": "none"}})


def _f(fw, chips, params, zero=1, cp=1):
    run = _run(fw, chips, zero, cp)
    ctx = context(run)
    p = plans_from_spec(run.plan, run.chips, run.arch)
    return float(np.asarray(ddp_overlap(ctx, p, np.array([params], dtype=float))).ravel()[0])


def test_bucket_fraction_by_hand():
    assert _f("megatron-core-2024", 48, 4.0e9) == pytest.approx(0.988, abs=1e-12)
    assert _f("megatron-core-2024", 8, 1.0e9) == pytest.approx(0.96, abs=1e-12)
    assert _f("megatron-core-2024", 8, 2.0e7) == 0.0
    assert _f("torchtitan-2024", 8, 1.0e9, zero=2) == pytest.approx(0.8)   # torchtitan offers zero 0, 2, 3


def test_bucket_sized_by_dp_without_cp():
    """The default bucket counts the data-parallel group without context parallelism: core_r0.8.0
    ``parallel_state.get_data_parallel_world_size()`` (with_context_parallel=False by default) and d98e8a64dd
    ``process_group_dict['dp_group']``, built by ProcessGroupCollection.setup_process_groups_for_ddp as
    get_data_parallel_group(with_context_parallel=False) (megatron/core/process_groups_config.py), the dp x cp
    group being the separate 'dp_cp_group'. 64 chips at cp 4: dp 16, bucket max(40,000,000, 16 x 1,000,000) =
    40,000,000, f(1e9) = 0.96 (dp x cp = 64 would give 64,000,000 and 0.936); 192 chips at cp 4, dp 48: 48,000,000,
    f(4e9) = 0.988 (not 192,000,000 and 0.952)."""
    assert _f("megatron-core-2024", 64, 1.0e9, cp=4) == pytest.approx(0.96, abs=1e-12)
    assert _f("megatron-core-2024", 192, 4.0e9, cp=4) == pytest.approx(0.988, abs=1e-12)


def test_which_stacks_bucket_like_megatron_core():
    for fw in ("megatron-core-2024", "megatron-bridge-2025", "megatron-bridge-2026", "nemo-2024", "mindspeed-2024"):
        assert stack_flags(fw)["mcore_ddp_buckets"]
    for fw in ("megatron-lm-2021", "torchtitan-2024", "deepspeed-megatron", "meta-llama3"):
        assert not stack_flags(fw)["mcore_ddp_buckets"]


def test_step_exposes_the_last_bucket():
    """16 ranks, zero 1, one micro-batch of 16 sequences: the reduce-scatter C and the gather G are shorter than the
    backward and the forward, so the step exposes (1 - f) (C + G) = (bucket / P) (C + G). The rank holds the whole
    model, P = 4 layers x (12 x 1024^2 + biases and norms) + 2 x 32,000 x 1,024 (untied embedding and head) ~ 116M
    parameters, and the bucket is max(40,000,000, 16 x 1,000,000) = 40,000,000."""
    from trainsim.perf.step import shared_costs
    run = _run("megatron-core-2024")
    est = estimate_complete(run, run.plan)
    ctx = context(run)
    p = plans_from_spec(run.plan, run.chips, run.arch)
    _, (dense, expert, grad_t, gather_t, _repl) = shared_costs(ctx, p).rows()
    params = float(dense[0] + expert[0])
    assert 4 * 12 * 1024**2 + 2 * 32000 * 1024 <= params < 1.02 * (4 * 12 * 1024**2 + 2 * 32000 * 1024)
    assert est.breakdown["dp_comm"] == pytest.approx(4.0e7 / params * float(grad_t[0] + gather_t[0]), rel=1e-9)
