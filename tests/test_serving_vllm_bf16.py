"""Issue 18: vLLM BF16 decode on NVIDIA against the serving model
(validation/inference/vllm-h100-qwen3-30b-a3b-bf16-c10.yaml).

vLLM's own serving benchmark of Qwen3-30B-A3B BF16 on one H100 (vllm-project/vllm pull request 23151, TP1, 10
concurrent, random 2,042 in / 1,016 out on average) measured a 13.18 ms mean TPOT. The bytes one decode step streams
are counted here by hand from the model's published config (Qwen/Qwen3-30B-A3B config.json: 48 layers, hidden
2,048, 32 query / 4 KV heads of 128, 128 experts, top-8, expert FFN 768, vocabulary 151,936, untied head), so the
step's HBM floor is known independently of the model: ~32.5 GB at the H100 SXM's 3.35 TB/s (NVIDIA H100 datasheet)
is 9.7 ms, i.e. the published step streams at >= 74% of peak even with no fixed cost at all. The serving fit's
NVIDIA constants (mem_eff 0.5, 5 ms per step; inference/data/inference.yaml) come from TensorRT-LLM and SGLang
8-bit / 4-bit deployments at 160-1,408 sequences per chip and put this step at 28 ms. The point is in validation/inference (moedecode), where the serving
table shows the gap (-53% leave-one-out; the fitted constants do not move with it: the fit is L1 on log errors).

Kernel-level streaming of vLLM's Triton fused MoE (benchmarks/kernels/benchmark_moe.py, CUDA-graph replay; expert
bytes counted from each model's config, all experts hit at these batches) differs by precision and shard shape:
BF16 Mixtral 8x7B TP2 (E=8, N=7,168, 1.41 GB per layer) 487-494 us at batch 32-128 on an H100 with the tuned config
(vllm-project/vllm pull request 24700, "Benchmarks on H100"): 85-86% of 3.35 TB/s; BF16 Qwen3-30B-A3B TP1 (E=128,
N=768, 1.21 GB) 917-943 us at batch 64-96 on an A100-PCIe-40GB (pull request 19049): 82-83% of 1.555 TB/s; FP8
w8a8 Qwen3-30B-A3B TP1 (0.60 GB) 248 us at batch 128 on the H100 (pull request 24700, the PR's default): 73%;
block-FP8 Qwen3-235B-A22B TP8 (E=128, N=192, 0.30 GB, ~87% hit at batch 32) 125 us at batch 32 on an H200 with
the untuned default (sgl-project/sglang pull request 11730): ~44% of 4.8 TB/s. So 0.5 is not one kernel's
efficiency; BF16 at wide shards streams near 0.85, block FP8 at narrow TP8 shards near 0.45. What-if (moedecode,
not applied): routed experts on NVIDIA at 0.85, everything else as fitted, moves no DeepSeek EP decode point (their
experts are compute-bound: 500+ tokens per expert) and only MLPerf v5.1 DeepSeek-R1 offline (+10 / +18% in
sample), so the serving set cannot pin it; it takes this point only from -53% to -30% because 5 ms of step
overhead and ~3.5 ms of per-kernel costs remain. A Hopper / Blackwell split of the NVIDIA fit puts Hopper mem_eff
at the grid's end (1.0) with 0 ms of step overhead and leaves this point at -57%: not the mechanism either.

What holds the NVIDIA mem_eff at 0.5 (moedecode, the fit's error matrix over the 25 NVIDIA points, a2a_eff 0.95,
1 ms per step, gemm_eff best per mem_eff): the NVIDIA L1 is flat in the step overhead (2.27-2.43 from 0 to 10 ms),
not in mem_eff: 2.38 at 0.40, 3.81 at 0.80. At mem_eff 0.9 (gemm_eff 0.5) every Hopper point -- MLPerf v4.1 Llama 2
70B H100 / H200, SGLang H100 and DeepSeek H800 decode and prefill -- and the Blackwell Llama 2 70B offline / server
points stay within 18%, and this point goes -54% -> -14%; what moves out is Blackwell decode only: MLPerf v5.1
Llama 2 70B interactive B200 / GB200 +50 / +60%, MLPerf v5.1 DeepSeek-R1 offline +37 / +48%, SGLang GB200 DeepSeek
decode +44 / +17 / +57%. The low NVIDIA efficiency is those points' missing physics (the interactive p99 TPOT bound
applied to the mean step; absorbed MLA decode compute-bound at attn_eff 0.65 on Blackwell), not Hopper streaming.

Where the two groups part (servstack, a coarse grid over the NVIDIA points only, in-sample, a2a_eff 0.95 kept):
at NVIDIA mem_eff 0.8, gemm_eff 0.6, 3 ms per step (inside the component references: FlashMLA ~90% and
CloudMatrix MLA 84% of HBM bandwidth, DeepGEMM FP8 68-78% of peak) every Hopper point -- MLPerf v4.1 Llama 2 70B
on H100 / H200, SGLang H100 and DeepSeek H800 decode and prefill -- and the Blackwell Llama 2 70B offline / server
points are within 20% (largest +19.9%, MLPerf v4.1 H100 server), and this point is at -29%. What stays far off is
only (a) MLPerf v5.1 Llama 2 70B interactive (+51 / +60%: the p99 TPOT bound of 40 ms, which the model applies to
the mean step) and (b) DeepSeek MLA decode on Blackwell (SGLang GB200 +46 / +59 / +18%, MLPerf v5.1 R1 offline
+23 / +33%: the model's absorbed MLA decode is compute-bound there at attn_eff 0.65 of 2.25-2.5 PFLOP/s). The
fitted NVIDIA mem_eff 0.5 is what those two groups need, not what weight streaming on Hopper needs.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from trainsim.inference.serve import infer, setup_for
from trainsim.inference.spec import load_serving
from trainsim.inference.step import ServePlans, kv_bytes_per_chip, weights_read_per_step

SPEC = Path(__file__).resolve().parents[1] / "validation" / "inference" / "vllm-h100-qwen3-30b-a3b-bf16-c10.yaml"

# Qwen/Qwen3-30B-A3B config.json
LAYERS, HIDDEN, Q_HEADS, KV_HEADS, HEAD_DIM = 48, 2048, 32, 4, 128
EXPERTS, TOP_K, EXPERT_FFN, VOCAB = 128, 8, 768, 151936
BF16 = 2
RUNNING = 10
CONTEXT = 2042 + 1016 // 2     # mean KV length over the decode steps of a 2,042-in / 1,016-out request
H100_HBM_BPS = 3.35e12          # NVIDIA H100 SXM5 datasheet: 3.35 TB/s
PUBLISHED_TPOT_S = 13.18e-3     # vLLM pull request 23151, mean TPOT


def _hand_weight_bytes() -> float:
    """Weights one decode step of 10 sequences reads: attention projections, router, the experts the 10 tokens hit
    (each expert is missed by all 10 tokens' top-8 with probability (1 - 8/128)^10), and the output head."""
    attn = HIDDEN * Q_HEADS * HEAD_DIM * 2 + HIDDEN * KV_HEADS * HEAD_DIM * 2   # q, o; k, v
    router = HIDDEN * EXPERTS
    hit = 1.0 - (1.0 - TOP_K / EXPERTS) ** RUNNING                              # 0.4755
    experts = EXPERTS * hit * 3 * HIDDEN * EXPERT_FFN                            # gate, up, down
    return (LAYERS * (attn + router + experts) + VOCAB * HIDDEN) * BF16


def _hand_kv_bytes() -> float:
    """K and V of every cached token of the 10 sequences, all layers."""
    return RUNNING * CONTEXT * LAYERS * 2 * KV_HEADS * HEAD_DIM * BF16


def test_step_bytes_match_the_hand_count():
    sv = load_serving(SPEC)
    s = setup_for(sv.arch, sv.system, "bf16", "bf16")
    p = ServePlans(1, 1, 1, 1)
    assert float(weights_read_per_step(s, p, RUNNING)) == pytest.approx(_hand_weight_bytes(), rel=0.01)
    assert float(kv_bytes_per_chip(s, p, RUNNING, CONTEXT)) == pytest.approx(_hand_kv_bytes(), rel=1e-6)
    # the published step streams its ~32.5 GB at >= 74% of the H100's peak, before any fixed cost
    floor_s = (_hand_weight_bytes() + _hand_kv_bytes()) / H100_HBM_BPS
    assert 0.72 < floor_s / PUBLISHED_TPOT_S < 0.76


@pytest.mark.xfail(strict=True, reason=(
    "servemax (issue 18): with the host time per step now the measured 0.15 ms plus 4 us per running sequence "
    "(inference.yaml step_overhead_s, seq_overhead_s; was a flat 5 ms) and the refit's NVIDIA mem_eff 0.45, the "
    "model gives 17.1 ms per step (585 tokens/s, -23%; leave-one-out -23%): experts 10.6 ms, attention 1.7 ms, "
    "per-kernel costs ~3.5 ms, host 0.19 ms. Before: "
    "servstack (issue 18): the serving model gives 21.6 ms per step (464 tokens/s, -39%) against vLLM's 13.18 ms: "
    "experts 10.6 ms at the Hopper BF16 fused-MoE rate 0.82 (decodekern, inference.yaml expert_stream_eff; 17.1 ms "
    "and -53% at mem_eff 0.5 before), attention 1.5 ms at NVIDIA mem_eff 0.5, 5 ms step overhead, 3.5 ms of "
    "per-kernel launch costs (865 kernels x 4 us). NVIDIA mem_eff 0.8 with 1 ms of step overhead leaves it at -21% while the "
    "TensorRT-LLM / SGLang points go +12 to +101% (MLPerf v5.1 Llama 2 70B interactive +90 / +101%, SGLang GB200 "
    "decode +28 to +75%, MLPerf R1 offline +32 / +43%). Raising only the weight-streaming efficiency (to 0.8 / 0.9; "
    "KV, activations and fixed costs unchanged) moves this point to -38 / -34% and MLPerf Llama 2 70B interactive "
    "to +35 / +41%, MLPerf R1 offline to +12 / +24%, the rest by a few points. The big deployments are slow in what "
    "scales with the batch (KV reads, activation traffic, the TPOT-bounded batch), vLLM's step is fast in what does "
    "not (weights, fixed costs); no sourced mechanism separating them is in the model yet. The model's 4 us per "
    "kernel (gemm_latency_s, the training engine's launch cost) alone takes the room: the 9.7 ms HBM floor plus "
    "865 x 4 us is 13.17 ms, the whole published step, so under vLLM's CUDA graphs the per-kernel cost must be "
    "smaller too."))
def test_vllm_bf16_decode_within_20_percent():
    sv = load_serving(SPEC)
    predicted = infer(sv)["decode"]["tokens_per_s_per_chip"]
    published = RUNNING / PUBLISHED_TPOT_S     # 758.7 tokens/s on the one chip
    assert predicted == pytest.approx(published, rel=0.20)
