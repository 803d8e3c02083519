"""Routed-expert decode kernels at their measured streaming rate per chip family and precision (issue 18, decodekern).

The serving model times a decode step's routed experts as the weights of the hit experts over HBM bandwidth
(inference/step.py ``_expert_gemms``). For BF16 experts on Hopper and Ampere that bandwidth is the measured rate of
vLLM's Triton fused MoE (inference/data/inference.yaml ``expert_stream_eff``), not the serving fit's ``mem_eff``.
Here the model's time for one MoE layer is checked against published kernel times of vLLM's
benchmarks/kernels/benchmark_moe.py (the fused_experts call: both grouped GEMMs of one layer), with the expert
bytes counted by hand from each model's config:

* Mixtral-8x7B (hidden 4,096, expert FFN 14,336, 8 experts, top-2) BF16 at tp 2 on an H100 with the tuned config:
  491.39 us at batch 128 (vllm-project/vllm pull request 24700, "Benchmarks on H100"); all 8 experts hit,
  8 x 3 x 4,096 x 7,168 x 2 B = 1.409 GB.
* Qwen3-30B-A3B (hidden 2,048, expert FFN 768, 128 experts, top-8) BF16 at tp 1 on an A100 40 GB (1.555 TB/s) with
  vLLM's default config: 917.45 us at batch 64 (pull request 19049, "Before this PR"); 128 (1 - (120/128)^64) =
  125.9 experts hit x 3 x 2,048 x 768 x 2 B = 1.188 GB.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from trainsim.catalog import get_system
from trainsim.inference.serve import setup_for
from trainsim.inference.step import ServePlans, _expert_gemms
from trainsim.model.load import resolve_model


def _moe_layer_s(model: str, system: str, tp: int, batch: int, precision: str = "bf16") -> float:
    arch = resolve_model(model, Path.cwd(), field="model")
    s = setup_for(arch, get_system(system), precision, "bf16")
    lk = next(lk for lk in arch.layers if lk.moe is not None)
    return float(_expert_gemms(lk, s, ServePlans(tp, tp, 1, 1), float(batch)))


def test_mixtral_bf16_h100_layer_near_the_published_kernel_time():
    # hand count: every expert hit at 128 tokens x top-2 of 8 ((6/8)^128 ~ 1e-16 missed)
    weight_bytes = 8 * 3 * 4096 * 7168 * 2
    assert weight_bytes == pytest.approx(1.409e9, rel=1e-3)
    assert _moe_layer_s("mixtral-8x7b", "dgx-h100", 2, 128) == pytest.approx(491.39e-6, rel=0.10)


def test_qwen3_30b_bf16_a100_layer_near_the_published_kernel_time():
    hit = 128 * (1.0 - (1.0 - 8 / 128) ** 64)
    assert hit == pytest.approx(125.9, abs=0.05)
    assert _moe_layer_s("qwen3-30b-a3b", "dgx-a100-320gb", 1, 64) == pytest.approx(917.45e-6, rel=0.10)


def test_unmeasured_family_or_precision_streams_at_the_fitted_rate():
    """No kernel rate is stated for Blackwell BF16 or Hopper FP8 experts: those stream at the fitted mem_eff, so the
    same layer's expert time scales with 1 / HBM bandwidth between the fitted-rate chips and with the 0.5 bytes of
    FP8 (compute stays far below the roofline at one token per expert)."""
    arch = resolve_model("qwen3-30b-a3b", Path.cwd(), field="model")
    for system, precision in (("gb200-nvl72", "bf16"), ("dgx-h100", "fp8")):
        s = setup_for(arch, get_system(system), precision, "bf16")
        assert s.expert_mem_eff == s.calib.mem_eff
    h100 = setup_for(arch, get_system("dgx-h100"), "bf16", "bf16")
    assert h100.expert_mem_eff != h100.calib.mem_eff
