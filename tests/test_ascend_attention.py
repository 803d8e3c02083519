"""Flash-attention rate of the Ascend 910 family (issue 14 item 4: the MindSpeed rows with long sequences).

Hand derivation from the measurement constants.yaml cites (cann/pto-isa README, 'Ascend 910B2 (A2/A3) multi-core
comparison, using torch_npu as the baseline'): torch_npu's fused attention, BF16, head dim 128, one head, forward,
S0 = S1 = 32,768 takes 3,646.173 us. Its FLOPs, non-causal (the README's TFLOPS column: 4 x S0 x S1 x d):
4 x 32,768^2 x 128 = 549,755,813,888; / 3,646.173e-6 s = 150.78 TFLOP/s, i.e. 150.78 / 376 = 0.401 of the
910B2's BF16 peak (hardware.yaml ascend-910b2: 376 TFLOPS).

The engine prices a full causal core at attn_eff x peak x L / (L + L0), L = seq_len / cp, L0 = 384: at L = 32,768
the factor is 32,768 / 33,152 = 0.98842, so with attn_eff = 0.40 the rate is 0.40 x 0.98842 x 376e12 =
148.66 TFLOP/s, 1.4% under the measurement. The default stays 0.55 (FlashAttention-2/3 papers); Hopper and
Blackwell have their own cuDNN measurements (tests/test_attention_rates.py).
"""
from __future__ import annotations

import pytest

from trainsim.catalog.load import chips
from trainsim.model.arch import AttentionCore, LayerKind
from trainsim.model.counts import attention_fwd_flops_per_token
from trainsim.parallel.plan import Plans
from trainsim.perf.calibration import load_calibration
from trainsim.perf.compute import attention_fwd

from conftest import ctx_for, make_system

MEASURED_TFLOPS = 4.0 * 32768 ** 2 * 128 / 3646.173e-6 / 1e12   # 150.78


def test_measured_rate_is_what_the_readme_prints():
    assert MEASURED_TFLOPS == pytest.approx(150.78, abs=0.01)


def test_ascend_family_attention_rate_matches_the_torch_npu_measurement():
    calib = load_calibration()
    peak = 376e12
    assert chips()["ascend-910b2"].flops("bf16") == pytest.approx(peak)
    for key in ("ascend-910", "ascend-910b2", "ascend-910@mindspeed-2024"):
        c = calib[key]
        rate = c.attn_eff * peak * 32768 / (32768 + c.attn_block_l0)
        assert rate / 1e12 == pytest.approx(148.66, rel=1e-3)
        assert rate / 1e12 == pytest.approx(MEASURED_TFLOPS, rel=0.02)
    assert calib["nvidia-hopper"].attn_eff == pytest.approx(0.743)   # cuDNN on H200 (tests/test_attention_rates.py)
    assert calib["default"].attn_eff == pytest.approx(0.55)


def _one_core_on_the_910b2(heads, head_dim, kv_heads):
    """(calibration, context, core, layer, plan) of one causal full attention core over 32,768 tokens on a
    376-TFLOPS chip with the Ascend calibration, one chip."""
    c = load_calibration()["ascend-910"]
    ctx = ctx_for(None, make_system(bf16=376e12), seq=32768, calib=c)
    core = AttentionCore(heads=heads, qk_head_dim=head_dim, v_head_dim=head_dim, kv_heads=kv_heads, kind="full")
    layer = LayerKind(name="x", n_layers=1, matrices=(), attention=(core,))
    plan = Plans.from_columns(tp=1, pp=1, vpp=1, ep=1, etp=1, cp=1, dp=1, zero=0, recompute=0, mb=1, schedule=0,
                              node_limit=0)
    return c, ctx, core, layer, plan


def test_engine_attention_time_on_the_910b2_at_32k():
    """One causal full core (32 heads of 128, 8 KV heads) over 32,768 tokens on a 376-TFLOPS chip with the Ascend
    calibration: forward causal FLOPs / (0.40 x 376e12 x 0.98842)."""
    c, ctx, core, layer, plan = _one_core_on_the_910b2(heads=32, head_dim=128, kv_heads=8)
    t = float(attention_fwd(layer, ctx, plan, 32768.0)[0])
    flops = attention_fwd_flops_per_token(core, 32768) * 32768
    assert t == pytest.approx(flops / (0.40 * 376e12 * 32768 / 33152), rel=1e-9)
    # against the default (NVIDIA) calibration the same core takes 0.55 / 0.40 = 1.375 times as long here
    t_nv = float(attention_fwd(layer, ctx_for(None, make_system(bf16=376e12), seq=32768, calib=load_calibration()[
        "default"]), plan, 32768.0)[0])
    assert t / t_nv == pytest.approx(0.55 / 0.40, rel=1e-9)


def test_unmeasured_ascend_950_takes_the_measured_ascend_kernel_not_nvidias():
    """No attention measurement exists for the Ascend 950 (pto-isa: 'A5 numbers pending'): it takes the rate
    measured on the 910B2 (0.401 of the BF16 peak, above), not the 0.55 of the NVIDIA families, so a comparison of
    Ascend generations (S5) does not credit the unshipped chip with a kernel rate no Ascend chip has shown."""
    calib = load_calibration()
    assert calib["ascend-950"].attn_eff == pytest.approx(MEASURED_TFLOPS / 376.0, abs=0.002)
    assert calib["ascend-950"].attn_eff == calib["ascend-910"].attn_eff


# Head dim (issue 14 item 4: the MindSpeed Qwen2-0.5B 32K row, head dim 64, +46.8%). Hand derivation from the stage
# cycles of Huawei's PTO flash-attention cost model for the A2/A3 (cann/pto-isa kernels/manual/common/flash_atten/
# scripts/fa_cost_model.py FitConstants), per 128 x 256 score tile at head dim 128: cube Q K^T 2,487.479 and P V
# 1,617.252 cycles (both scale with the head dim), vector softmax 2,488.855 (independent of it) and output rescale
# 833.652 (scales with it); cube and vector run as a pipeline, so a tile takes the longer of the two.
CUBE_128 = 2487.479 + 1617.252                 # 4,104.731 cycles at head dim 128
SOFTMAX, RESCALE_128 = 2488.855, 833.652


def _tile_rate(d: float) -> float:
    """FLOPs per cycle of one tile at head dim d, up to a constant: d / max(cube(d), vector(d))."""
    return d / max(CUBE_128 * d / 128, SOFTMAX + RESCALE_128 * d / 128)


def test_head_dim_64_runs_at_0706_of_head_dim_128_on_the_910():
    """At d = 128 the cube stages (4,104.7 cycles) outlast the vector ones (3,322.5): cube-bound. At d = 64 the cube
    takes 2,052.4 and the vector 2,488.9 + 416.8 = 2,905.7: vector-bound, half the FLOPs in 0.708 of the time, so
    0.5 / 0.7079 = 0.706 of the d = 128 rate."""
    from trainsim.perf.compute import attention_head_dim_factor
    expected_64 = _tile_rate(64) / _tile_rate(128)
    assert expected_64 == pytest.approx(0.7063, abs=1e-4)
    c = load_calibration()["ascend-910"]
    ctx = ctx_for(None, make_system(bf16=376e12), seq=32768, calib=c)

    def core(d: int) -> AttentionCore:
        return AttentionCore(heads=14, qk_head_dim=d, v_head_dim=d, kv_heads=2, kind="full")
    assert attention_head_dim_factor(core(64), ctx) == pytest.approx(expected_64, rel=2e-3)
    assert attention_head_dim_factor(core(128), ctx) == 1.0      # cube-bound: the measured 0.40 stands
    assert attention_head_dim_factor(core(256), ctx) == 1.0
    # crossover where cube and vector times meet: 4,104.731 d / 128 = 2,488.855 + 833.652 d / 128 -> d = 97.4
    assert attention_head_dim_factor(core(96), ctx) == pytest.approx(_tile_rate(96) / _tile_rate(128), rel=2e-3)
    assert attention_head_dim_factor(core(96), ctx) < 1.0
    # only softmax flash cores: a score-only indexer (no values, replicated over tp), a DSA-kernel core, a linear
    # core keep the kernel's rate
    assert attention_head_dim_factor(AttentionCore(heads=32, qk_head_dim=128, v_head_dim=0, kv_heads=1,
                                                   tp_replicated=True), ctx) == 1.0
    assert attention_head_dim_factor(AttentionCore(heads=64, qk_head_dim=4, v_head_dim=4, kv_heads=1, dsa_keys=128),
                                     ctx) == 1.0
    assert attention_head_dim_factor(AttentionCore(heads=16, qk_head_dim=64, v_head_dim=64, kv_heads=16,
                                                   kind="linear"), ctx) == 1.0
    # families without a measured head-dim term keep their rate at every head dim
    nv = ctx_for(None, make_system(bf16=376e12), seq=32768, calib=load_calibration()["nvidia-hopper"])
    assert attention_head_dim_factor(core(64), nv) == 1.0


def test_engine_attention_time_of_a_head_dim_64_core_on_the_910b2():
    """Qwen2-0.5B's core (14 heads of 64, 2 KV heads) over 32,768 tokens: forward causal FLOPs / (0.40 x 376e12 x
    32,768 / 33,152 x 0.706), and the backward keeps its ratio to the forward."""
    from trainsim.perf.compute import attention_bwd
    c, ctx, core, layer, plan = _one_core_on_the_910b2(heads=14, head_dim=64, kv_heads=2)
    flops = attention_fwd_flops_per_token(core, 32768) * 32768
    assert flops == pytest.approx(2 * 14 * 128 * 32768 * (32768 + 1) / 2, rel=1e-3)   # 2 h (d_qk + d_v) s x s / 2
    t = float(attention_fwd(layer, ctx, plan, 32768.0)[0])
    assert t == pytest.approx(flops / (0.40 * 376e12 * 32768 / 33152 * _tile_rate(64) / _tile_rate(128)), rel=2e-3)
    tb = float(attention_bwd(layer, ctx, plan, 32768.0)[0])
    assert tb / t == pytest.approx(2.5 * c.attn_bwd_rate_ratio, rel=1e-9)


def test_readme_quotes_the_head_dim_64_share_and_the_128k_bound():
    """The README's Ascend prose: the head-dim-64 share the engine applies, and the 128K row's bound, by hand: 1,297
    tokens/s is 771.0 us a token; GEMMs 6 x 8.03e9 FLOPs at the 376 TFLOP/s peak take 128.1 us; the causal
    attention, 6 x 32 x 4096 x 131,072 = 103.1 GFLOP, must fit in the remaining 642.9 us: 0.426 of peak."""
    from pathlib import Path
    from trainsim.perf.compute import attention_head_dim_factor
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    ctx = ctx_for(None, make_system(bf16=376e12), seq=32768, calib=load_calibration()["ascend-910"])
    f64 = attention_head_dim_factor(AttentionCore(heads=14, qk_head_dim=64, v_head_dim=64, kv_heads=2), ctx)
    assert f"holds it to {f64:.3f} of that" in readme
    t_token = 1.0 / 1297
    need = 6 * 32 * 4096 * 131072 / (t_token - 6 * 8.03e9 / 376e12) / 376e12
    assert need == pytest.approx(0.426, abs=5e-4)
    assert need > 150.78 / 376              # above torch_npu's measured rate (attn_eff)
    assert f"attention at {need:.2f} of peak even with every GEMM at peak" in readme
