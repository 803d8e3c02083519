"""The attention kernel a software stack runs (issue: Fidelity II, kernel efficiency per stack).

Hand derivations:
* FlashAttention-3 (Shah et al. 2024) abstract: FlashAttention-2 reaches 35% of the H100's dense BF16 peak; its
  causal sweep (Fig. 5) saturates with L0 384 and its forward / backward rate is 370 / 322 = 1.149
  (constants.yaml attn_eff_flash2, attn_block_l0_flash2, attn_bwd_rate_ratio_flash2). The native Hopper kernel
  (cuDNN, which Transformer Engine selects) runs at 0.743 with L0 1,135 and a 1.218 rate ratio (NVIDIA's H200
  cuDNN 9.19.1 sweep, tests/test_attention_rates.py). At 8,192 tokens the forward of a 'flash2' run takes
  (0.743 x 8192 / 9327) / (0.35 x 8192 / 8576) = 0.65258 / 0.33433 = 1.95189 times a 'flash' run's, the backward
  1.95189 x 1.149 / 1.218; the step's attention (forward + 2.5 x ratio backward) 1.95189 x (1 + 2.5 x 1.149) /
  (1 + 2.5 x 1.218) = 1.95189 x 3.8725 / 4.045 = 1.8687.
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


H100_FLASH2_OVER_CUDNN = ((0.743 * 8192 / (8192 + 1135)) / (0.35 * 8192 / (8192 + 384))
                          * (1 + 2.5 * 1.149) / (1 + 2.5 * 1.218))   # 1.8687


@pytest.mark.parametrize("system,ratio", [("dgx-h100", H100_FLASH2_OVER_CUDNN), ("dgx-a100", 1.0)])
def test_flash2_on_hopper_runs_at_35_percent(system, ratio):
    assert H100_FLASH2_OVER_CUDNN == pytest.approx(1.8687, abs=1e-4)
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
