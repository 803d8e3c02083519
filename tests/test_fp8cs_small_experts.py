"""Per-tensor FP8 (current scaling) against BF16 on a small-expert MoE, the same plan, both published (issue 14,
criterion 4; the q30 pass).

Megatron-Bridge v0.3.1 (scripts/performance/configs/qwen/qwen3_workload_base_configs.py, unchanged to v0.4.2)
runs Qwen3-30B-A3B on 16 H100 with two presets that differ only in precision and in the Transformer Engine CUDA
graphs of the router and the dispatcher's preprocessing: ``QWEN3_30B_A3B_PRETRAIN_CONFIG_H100_BF16_V1`` (EP 16,
HybridEP, no A2A overlap, ``cuda_graph_impl="transformer_engine"``, ``cuda_graph_scope=["moe_router",
"moe_preprocess"]``) and ``QWEN3_30B_A3B_PRETRAIN_CONFIG_H100_FP8_CS_V1`` (the same without the graphs), both
TP 1, PP 1, MBS 1, GBS 1,024, seq 4,096, forced balance.

* BF16: 24.7138 s per step (Megatron-Bridge PR #5094, the overlap-off baseline; skills/
  nemo-mbridge-perf-moe-optimization-workflow/card.yaml ``qwen3_30b_h100_case_study`` at 067f987d, validated
  2026-07-31).
* FP8 current scaling: 8,826 tokens/s/GPU in the NeMo 26.06 table (docs/performance-summary-archive.md at
  067f987d; validation/runs/megatron-bridge-2606-qwen3-30b-a3b-h100-16-fp8.yaml), i.e. 1,024 x 4,096 / 16 /
  8,826 = 29.70 s per step (26.02.01: 28.94 s, 26.04: 29.45 s).

FP8 is 29.70 / 24.71 = 1.20x *slower* than BF16 on this model although its expert GEMMs run at twice the peak.
The graphs are no explanation: the same scopes measured neutral on this model and these 16 H100 with the
all-to-all dispatcher (42.00 s with, 41.36 s without; Megatron-Bridge docs/training/cuda-graphs.md, PR #3868).
What FP8 current scaling adds per local expert is host work: Transformer Engine 2.9 ``GroupedLinear`` quantises
each expert's slice separately (``tex.split_quantize`` -> ``Float8CurrentScalingQuantizer::quantize_impl`` per
tensor: amax, scale, cast-transpose, and a separate allocation; bulk allocation only for blockwise / MXFP8) for
fc1 and fc2 inputs in the forward and their output gradients in the backward, and builds each expert's weight
workspace in Python (``get_weight_workspace`` per GEMM). The model charges the casts' HBM bytes (perf/compute.py
``fp8_cast_bytes_per_elem``) and the per-expert calls only as a floor (perf/step.py ``moe_launch_floor``: 8 x 18
calls per layer and micro-batch here, under the device path, which the model already puts at 9.8 ms per layer
and micro-batch against the 9.4 ms measured), so it predicts FP8 faster. At 8 local experts the model is too slow
on the BF16 side instead (33.8 s against 24.7 s; tests/test_ep_overlap_ab.py), so the pair is kept as a strict
xfail rather than fitted.
"""
from __future__ import annotations

import pytest
import yaml

from trainsim.api import estimate, parse_run

QWEN3_30B_16_H100_EP16 = """
name: qwen3-30b-a3b 16 H100 EP 16 HybridEP
framework: megatron-bridge-2026
model: qwen3-30b-a3b
system: dgx-h100
chips: 16
training: {{seq_len: 4096, global_batch_seqs: 1024, precision: {prec}, {recipe}moe_dispatcher: hybridep,
            cuda_graphs: {graphs}}}
plan: {{tp: 1, pp: 1, cp: 1, ep: 16, etp: 1, dp: 16, zero: 1, recompute: none, micro_batch: 1}}
"""

BF16_STEP_S = 24.7138                       # PR #5094 baseline (module docstring)
FP8CS_STEP_S = 1024 * 4096 / 16 / 8826      # NeMo 26.06 row: 29.70 s


def _step_s(prec: str, recipe: str, graphs: str) -> float:
    spec = QWEN3_30B_16_H100_EP16.format(prec=prec, recipe=recipe, graphs=graphs)
    return estimate(parse_run(yaml.safe_load(spec))).step_time_s


def test_published_pair_arithmetic():
    # hand figures from the two sources: 1,024 x 4,096 / 16 / 8,826 = 29.70 s; 29.70 / 24.71 = 1.20
    assert FP8CS_STEP_S == pytest.approx(29.70, abs=0.01)
    assert FP8CS_STEP_S / BF16_STEP_S == pytest.approx(1.20, abs=0.01)


def test_fp8_gemms_are_cheaper_in_the_model():
    # what the model does price: the same plan's compute is shorter in FP8 (twice the peak on the GEMMs), so the
    # published inversion can only come from a cost the model leaves out, not from a mis-set precision
    bf16 = estimate(parse_run(yaml.safe_load(QWEN3_30B_16_H100_EP16.format(
        prec="bf16", recipe="", graphs="partial"))))
    fp8 = estimate(parse_run(yaml.safe_load(QWEN3_30B_16_H100_EP16.format(
        prec="fp8", recipe="fp8_recipe: current, ", graphs="none"))))
    assert fp8.breakdown["compute_gemm"] < 0.75 * bf16.breakdown["compute_gemm"]


@pytest.mark.xfail(strict=True, reason="q30 pass: FP8 current scaling on 8 local experts of 768 is 1.20x slower than "
                   "BF16 on the same plan (module docstring); the model predicts it 0.89x (30.0 s against 33.8 s), "
                   "pricing the per-expert quantisation as HBM bytes and its host calls only as a floor that does "
                   "not bind at 8 local experts; the BF16 side is predicted 37% slow (module docstring)")
def test_fp8_current_scaling_not_faster_than_bf16_on_small_experts():
    ratio = _step_s("fp8", "fp8_recipe: current, ", "none") / _step_s("bf16", "", "partial")
    assert ratio >= 1.0
