"""The attention kernel a software stack runs (issue: Fidelity II, kernel efficiency per stack).

Hand derivations:
* FlashAttention-3 (Shah et al. 2024) abstract: FlashAttention-2 reaches 35% of the H100's dense BF16 peak, the
  native Hopper kernels (FlashAttention-3, cuDNN fused attention) up to 75%; trainsim's native-kernel efficiency is
  0.55 of peak (constants.yaml attn_eff). So on an H100 the attention core of a 'flash2' run takes 0.55 / 0.35 =
  1.571 times a 'flash' run's, in the forward, the backward and the recomputed forward alike.
* On an A100 FlashAttention-2 is the native kernel: the same time.
* torchtitan (Dec 2024) calls F.scaled_dot_product_attention and, under context parallelism, restricts it to the
  flash / memory-efficient backends (utils.get_train_context): an unstated kernel is FlashAttention-2.
"""
from __future__ import annotations

import pytest

from trainsim.frameworks import runtime_settings
from trainsim.plan_estimate import estimate_complete
from trainsim.spec import TrainingSpec, parse_run


def _run(system="dgx-h100", **training):
    doc = {"model": "llama-3.1-8b", "system": system, "chips": 8,
           "training": {"seq_len": 8192, "global_batch_seqs": 64, "precision": "bf16", **training},
           "plan": {"tp": 1, "pp": 1, "cp": 1, "ep": 1, "etp": 1, "vpp": 1, "schedule": "1f1b", "zero": 1,
                    "micro_batch": 1, "recompute": "full"}}
    run = parse_run(doc)
    return estimate_complete(run, run.plan)


@pytest.mark.parametrize("system,ratio", [("dgx-h100", 0.55 / 0.35), ("dgx-a100", 1.0)])
def test_flash2_on_hopper_runs_at_35_percent(system, ratio):
    fa2, native = _run(system, attention="flash2"), _run(system, attention="flash")
    assert fa2.breakdown["attention"] / native.breakdown["attention"] == pytest.approx(ratio, rel=1e-6)
    # nothing else in the step changes
    assert fa2.breakdown["compute_gemm"] == pytest.approx(native.breakdown["compute_gemm"], rel=1e-9)
    assert fa2.memory_per_chip_bytes == pytest.approx(native.memory_per_chip_bytes, rel=1e-9)
    assert fa2.step_time_s > native.step_time_s if ratio > 1 else fa2.step_time_s == pytest.approx(native.step_time_s)


def test_unstated_kernel_is_the_stacks():
    tt = "torchtitan-2024"
    assert runtime_settings(TrainingSpec(global_batch_seqs=8), tt)["attention"] == "flash2"
    assert runtime_settings(TrainingSpec(global_batch_seqs=8, attention="flash"), tt)["attention"] == "flash"
    assert runtime_settings(TrainingSpec(global_batch_seqs=8), "megatron-bridge-2026")["attention"] == "flash"


def test_unknown_kernel_is_a_usage_error():
    with pytest.raises(Exception, match="attention"):
        parse_run({"model": "llama-3.1-8b", "system": "dgx-h100", "chips": 8,
                   "training": {"seq_len": 8192, "global_batch_seqs": 64, "attention": "flash9"}})
