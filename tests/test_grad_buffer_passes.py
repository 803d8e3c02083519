"""Megatron-Core DDP's per-step passes over the whole local gradient buffer (perf/comm_dp.py grad_buffer_pass_bytes).

Read from the code (megatron/core/distributed/param_and_grad_buffer.py and megatron/training/training.py):

* every step, zero_grad_buffer -> grad_data.zero_(): one write of the buffer (core_r0.6.0, core_r0.8.0, v0.12.1);
* Bucket.start_grad_sync with check_for_nan_in_grad: grad_data.norm(p=2), one read (Megatron-LM turns it on by
  default; the Megatron-Bridge performance scripts turn it off);
* without average_in_collective: grad_data *= 1/dp, one read and one write; core_r0.8.0 skips it when the factor is
  1.0 (dp 1), core_r0.6.0 (MindSpeed-LLM 1.0) runs it always; Megatron-Bridge's recipes average in the collective.

Hand derivations for a rank holding P = 1e9 parameters with an fp32 buffer (4 B each):

* Megatron-Core r0.8.0 at dp 2: zero 4 + norm 4 + scale 8 = 16 B x 1e9 = 1.6e10 bytes; at dp 1: 8e9 (no scale);
* core_r0.6.0 (mindspeed-2024) at dp 1: 1.6e10 (the scale runs with factor 1.0);
* Megatron-Bridge, bf16 buffer (2 B): the zero only, 2e9 bytes, whatever dp;
* ZeRO-3 (Megatron FSDP) and stacks without Megatron-Core's DDP (torchtitan): 0.
"""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.frameworks import stack_flags
from trainsim.perf.comm_dp import grad_buffer_pass_bytes
from trainsim.perf.compute import hbm_time
from trainsim.plan_estimate import context, estimate_complete, plans_from_spec
from trainsim.spec import parse_run


def _run(fw, chips=16, tp=8, zero=1, optimizer=None):
    spec = {"model": {"name": "g", "layers": 4, "hidden": 1024, "heads": 16, "ffn": 4096,
                      "ffn_act": "gelu", "vocab": 32000},
            "system": "dgx-h100", "chips": chips, "framework": fw,
            "training": {"seq_len": 2048, "global_batch_seqs": 256, "precision": "bf16"},
            "plan": {"tp": tp, "pp": 1, "cp": 1, "micro_batch": 16, "zero": zero, "recompute": "none"}}
    if optimizer:
        spec["optimizer"] = optimizer
    return parse_run(spec)


def _bytes(fw, chips, params=1.0e9, zero=1, tp=8, optimizer=None):
    run = _run(fw, chips, tp, zero, optimizer)
    ctx = context(run)
    p = plans_from_spec(run.plan, run.chips, run.arch)
    return ctx, float(np.asarray(grad_buffer_pass_bytes(ctx, p, np.array([params]), np.array([0.0]))).ravel()[0])


def test_bytes_by_hand():
    ctx, b = _bytes("megatron-core-2024", 16)          # tp 8 -> dp 2
    assert ctx.optimizer.grad_bytes == 4
    assert b == pytest.approx(1.6e10, rel=1e-12)
    assert _bytes("megatron-core-2024", 8)[1] == pytest.approx(8.0e9, rel=1e-12)       # dp 1: no scaling
    assert _bytes("mindspeed-2024", 8)[1] == pytest.approx(1.6e10, rel=1e-12)          # core_r0.6.0: scales at dp 1
    ctx, b = _bytes("megatron-bridge-2026", 16, optimizer={"grads": "bf16"})
    assert ctx.optimizer.grad_bytes == 2 and b == pytest.approx(2.0e9, rel=1e-12)
    assert _bytes("megatron-bridge-2026", 16, zero=3, tp=1)[1] == 0.0
    assert _bytes("torchtitan-2024", 16, zero=2, tp=1)[1] == 0.0


def test_profiles_state_what_the_code_does():
    core, bridge = stack_flags("megatron-core-2024"), stack_flags("megatron-bridge-2025")
    assert core["grad_buffer_zeroed"] and core["grad_nan_check"] and core["grad_prescaled"]
    assert not core["grad_prescaled_dp1"]
    assert bridge["grad_buffer_zeroed"] and not bridge["grad_nan_check"] and not bridge["grad_prescaled"]
    assert stack_flags("mindspeed-2024")["grad_prescaled_dp1"]
    assert not any(v for k, v in stack_flags("torchtitan-2024").items() if k.startswith("grad_"))


def test_step_pays_the_passes_at_hbm_speed():
    """The optimizer term grows by exactly bytes / (HBM bandwidth x mem_eff): 16 B per local parameter on dp 2."""
    from trainsim.perf.step import shared_costs
    run = _run("megatron-core-2024", 16)
    ctx = context(run)
    p = plans_from_spec(run.plan, run.chips, run.arch)
    _, (dense, expert, *_rest) = shared_costs(ctx, p).rows()
    est = estimate_complete(run, run.plan)
    params = float(dense[0] + expert[0])
    adam = hbm_time(params / 2 * ctx.calib.optimizer_step_bytes, ctx)           # zero 1 shards Adam over dp 2
    assert est.breakdown["optimizer"] == pytest.approx(float(adam) + 16.0 * params / (
        ctx.chip.hbm_bw * ctx.calib.mem_eff), rel=1e-9)
