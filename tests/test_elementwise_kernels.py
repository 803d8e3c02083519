"""Memory-bound kernels fused or run one PyTorch op at a time (issue: Fidelity II, frameworks as profiles).

Hand derivation for one Llama 3.1 8B layer (h 4,096, 32 query and 8 KV heads of 128, SwiGLU f 14,336), forward
HBM bytes per token, BF16:
* fused (Transformer Engine / torch.compile): 2 norms 8h + 2 residual adds 12h + rotary 4 (32 + 8) 128 + SwiGLU
  6f = 32,768 + 49,152 + 20,480 + 86,016 = 188,416.
* eager PyTorch ops as torchtitan 9dec370 runs them: RMSNorm with an fp32 upcast (x.float() 2+4, pow 4+4, mean 4,
  x * rsqrt 4+4, type_as 4+2, * weight 2+2 = 36 per element) twice 72h = 294,912; residual adds 49,152; complex
  rotary in fp32 (float() 2+4, multiply 4+4, type_as 4+2 = 20) 20 x 40 x 128 = 102,400; repeat_kv (read 8 heads,
  write 32, K and V, 2 bytes) 4 (32 + 8) 128 = 20,480; silu 2+2 and product 4+2 = 10f = 143,360: 610,304.
Published check: torchtitan's Table 1 (benchmarks/llama3_h100_202412_torchtitan.md; 8 H100, FSDP, local batch 2,
selective AC) gives 5,762 tokens/s/GPU eager and 6,667 with torch.compile: 1.157x from compiling alone.
"""
from __future__ import annotations

import pytest

from trainsim.frameworks import runtime_settings
from trainsim.model.load import resolve_model
from trainsim.perf.compute import elementwise_bytes_per_token
from trainsim.plan_estimate import estimate_complete
from trainsim.spec import TrainingSpec, parse_run


def _layer():
    arch = resolve_model("llama-3.1-8b")
    (lk,) = arch.layers
    return arch, lk


def test_fused_and_eager_bytes_per_token_by_hand():
    arch, lk = _layer()
    assert elementwise_bytes_per_token(lk, arch.hidden, fp8_cast_bytes=0.0) == 188_416
    assert elementwise_bytes_per_token(lk, arch.hidden, fp8_cast_bytes=0.0, eager=True) == 610_304


def test_unstated_kernels_are_the_stacks():
    tt, mb = "torchtitan-2024", "megatron-bridge-2026"
    assert runtime_settings(TrainingSpec(global_batch_seqs=8), tt)["elementwise_kernels"] == "eager"
    assert runtime_settings(TrainingSpec(global_batch_seqs=8, elementwise_kernels="fused"), tt)[
        "elementwise_kernels"] == "fused"
    assert runtime_settings(TrainingSpec(global_batch_seqs=8), mb)["elementwise_kernels"] == "fused"


def _tokens_per_s(kernels):
    doc = {"model": "llama-3.1-8b", "system": "dgx-h100", "chips": 8, "framework": "torchtitan-2024",
           "training": {"seq_len": 8192, "global_batch_seqs": 16, "precision": "bf16",
                        "elementwise_kernels": kernels},
           "plan": {"tp": 1, "pp": 1, "cp": 1, "zero": 3, "micro_batch": 2, "recompute": "selective",
                    "recompute_modules": ["op_sac"], "schedule": "1f1b"}}
    run = parse_run(doc)
    return estimate_complete(run, run.plan)


def test_compile_gain_matches_torchtitan_table_1():
    eager, fused = _tokens_per_s("eager"), _tokens_per_s("fused")
    assert eager.breakdown["memory_bound"] / fused.breakdown["memory_bound"] == pytest.approx(610_304 / 188_416)
    assert eager.breakdown["compute_gemm"] == pytest.approx(fused.breakdown["compute_gemm"], rel=1e-9)
    assert fused.tokens_per_s_per_chip / eager.tokens_per_s_per_chip == pytest.approx(6667 / 5762, rel=0.05)


def test_unknown_kernel_mode_is_a_usage_error():
    with pytest.raises(Exception, match="elementwise_kernels"):
        parse_run({"model": "llama-3.1-8b", "system": "dgx-h100", "chips": 8,
                   "training": {"seq_len": 8192, "global_batch_seqs": 64, "elementwise_kernels": "jit"}})


def test_sweeps_can_vary_the_kernel_mode():
    from trainsim.sweep.targets import canonical
    assert canonical("training.elementwise_kernels", "sweep.yaml") == "training.elementwise_kernels"


def test_recomputed_norms_and_swiglu_pay_the_stacks_kernels(gpt3, a100_system):
    """Selective recompute re-runs the norms with the kernels the forward used (compute.norm_rope_bytes): eager
    RMSNorm 36 bytes per element, fused 4. Hand: 2 norms x h = 12,288 x 2,048 tokens / tp 8 over the HBM rate
    (2.039 TB/s x mem_eff); before, the recompute charged the fused 4 bytes under eager kernels too."""
    from dataclasses import replace

    import numpy as np
    from conftest import ctx_for
    from trainsim.parallel.plan import Plans
    from trainsim.perf.recompute import selective_recompute_fwd

    ctx = ctx_for(gpt3, a100_system)
    p = Plans.from_columns(tp=8, pp=1, vpp=1, ep=1, etp=1, cp=1, dp=1, zero=0, recompute=1, mb=1, schedule=0,
                           node_limit=0)
    tok = np.array([2048.0])
    lk = gpt3.layers[0]
    rate = a100_system.chip.hbm_bw * ctx.calib.mem_eff
    fused = float(selective_recompute_fwd(lk, ctx, p, tok, ("layernorm",))[0])
    eager = float(selective_recompute_fwd(lk, replace(ctx, elementwise_kernels="eager"), p, tok, ("layernorm",))[0])
    assert fused == pytest.approx(2 * 4 * 12288 * 2048 / 8 / rate, rel=1e-12)
    assert eager == pytest.approx(2 * 36 * 12288 * 2048 / 8 / rate, rel=1e-12)
