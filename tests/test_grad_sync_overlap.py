"""Megatron-LM's 'local' DDP (2019-2022) reduces the gradients after the whole forward-backward.

megatron/training.py ``train_step`` (v2.5, 2021; d63c254, 2022) calls ``allreduce_gradients()`` /
``optimizer.reduce_model_grads`` after ``forward_backward_func`` returns, and ``--DDP-impl`` defaults to 'local'; torch
DDP (SC21's scripts for models up to 18B: DDP=torch) reduces its buckets during the last micro-batch's backward.

Hand derivation: with zero 0 the step's exposed gradient sync is C - f min(C, W) (the engine's overlap rule,
f = dp_overlap = 0.8, W the last backward). When C < W a bucketed DDP leaves 0.2 C exposed and the local DDP all of
C: the dp_comm line is exactly 5 times larger and the step longer by 0.8 C.
"""
from __future__ import annotations

import pytest

from trainsim.frameworks import runtime_settings
from trainsim.plan_estimate import estimate_complete
from trainsim.spec import TrainingSpec, parse_run


def _est(fw, **training):
    run = parse_run({"model": {"name": "g", "layers": 4, "hidden": 1024, "heads": 16, "ffn": 4096, "ffn_act": "gelu",
                               "vocab": 32000},
                     "system": "dgx-a100", "chips": 16, "framework": fw,
                     "training": {"seq_len": 2048, "global_batch_seqs": 256, "precision": "bf16",
                                  "attention": "unfused", **training},
                     "plan": {"tp": 1, "pp": 1, "cp": 1, "micro_batch": 16, "zero": 0, "recompute": "none"}})
    return estimate_complete(run, run.plan)


def test_defaults_by_stack():
    for fw in ("megatron-lm-2021", "megatron-lm-2022"):
        assert runtime_settings(TrainingSpec(global_batch_seqs=8), fw)["grad_sync_overlap"] is False
        assert runtime_settings(TrainingSpec(global_batch_seqs=8, grad_sync_overlap=True), fw)["grad_sync_overlap"]
    assert runtime_settings(TrainingSpec(global_batch_seqs=8), "megatron-core-2024")["grad_sync_overlap"] is True


def test_local_ddp_exposes_the_whole_all_reduce():
    local = _est("megatron-lm-2021")
    torch_ddp = _est("megatron-lm-2021", grad_sync_overlap=True)
    c = local.breakdown["dp_comm"]
    assert c > 0
    # the all-reduce of 16 ranks over two DGX nodes is shorter than one micro-batch's backward here
    assert torch_ddp.breakdown["dp_comm"] == pytest.approx(0.2 * c, rel=1e-9)
    assert local.step_time_s - torch_ddp.step_time_s == pytest.approx(0.8 * c, rel=1e-9)
    # nothing else changes
    assert local.breakdown["compute_gemm"] == pytest.approx(torch_ddp.breakdown["compute_gemm"], rel=1e-12)


def test_bad_value_is_an_input_error():
    with pytest.raises(Exception, match="grad_sync_overlap"):
        parse_run({"model": "llama-3.1-8b", "system": "dgx-h100", "chips": 8,
                   "training": {"seq_len": 4096, "global_batch_seqs": 8, "grad_sync_overlap": "sometimes"}})
