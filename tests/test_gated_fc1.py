"""A gated FFN's gate and up projections as the stack runs them (perf/compute.py gemm_matrices; the profile key
``gated_ffn_separate``): one fc1 GEMM of width 2 x ffn in Megatron-Core (megatron/core/transformer/mlp.py
linear_fc1 with gated_linear_unit), two GEMMs of width ffn in torchtitan and Meta's Llama 3 code (w1, w3), the
routed experts fused and the dense MLP split in NeMo AutoModel. Figures derived by hand in each test."""
from __future__ import annotations

from dataclasses import replace as dreplace

import numpy as np
import pytest

from conftest import ctx_for, make_system
from trainsim.errors import TrainsimError
from trainsim.model.load import resolve_model
from trainsim.parallel.plan import Plans
from trainsim.perf.compute import fp8_cast_elems_per_token, gemm_matrices, layer_gemm_fwd


def _llama8b():
    arch = resolve_model("llama-3.1-8b")          # hidden 4,096, ffn 14,336, 32 heads, 8 KV heads
    lk = arch.layers[0]
    assert (arch.hidden, lk.ffn_dim) == (4096, 14336)
    return arch, lk


def _plan(tp: int) -> Plans:
    return Plans.from_columns(tp=tp, pp=1, vpp=1, ep=1, etp=1, cp=1, dp=8 // tp, zero=1, recompute=0, mb=1,
                              schedule=0, node_limit=0)


def test_one_fc1_unless_the_stack_splits_it():
    _, lk = _llama8b()
    fused = {m.name: (m.k, m.n) for m in gemm_matrices(lk)}
    assert fused["mlp.fc1"] == (4096, 2 * 14336)
    assert "mlp.gate" not in fused and "mlp.up" not in fused
    split = {m.name: (m.k, m.n) for m in gemm_matrices(lk, ("mlp",))}
    assert split["mlp.gate"] == split["mlp.up"] == (4096, 14336) and "mlp.fc1" not in split
    # same weights, same FLOPs: 4,096 x 28,672 = 2 x 4,096 x 14,336
    assert sum(m.k * m.n for m in gemm_matrices(lk)) == sum(m.k * m.n for m in lk.matrices)
    # a MoE layer: the expert group fused, the shared experts split (NeMo AutoModel's layout)
    dsv3 = next(x for x in resolve_model("deepseek-v3").layers if x.moe is not None)
    names = {m.name: m for m in gemm_matrices(dsv3, ("mlp", "shared_expert"))}
    assert names["expert.fc1"].n == 2 * 2048 and names["expert.fc1"].active == 8
    assert "shared.gate" in names and "shared.up" in names and "shared.fc1" not in names


def test_fc1_shape_fills_the_last_wave():
    # 4,096 tokens at tp 1, tiles 128 x 128 over 132 units (constants.yaml defaults): two GEMMs of N = 14,336 have
    # 32 x 112 = 3,584 tiles each, 27.15 waves -> 28, wave efficiency 3,584 / 3,696 = 0.96970; one of N = 28,672
    # has 7,168 tiles, 54.30 waves -> 55, 7,168 / 7,260 = 0.98733. Same FLOPs, tile fill and K loop, so the
    # compute times (launch latency removed: 2 launches against 1) stand 0.98733 / 0.96970 = 1.01818 apart.
    arch, lk = _llama8b()
    ctx = ctx_for(arch, make_system(), chips=8, seq=4096)
    up_gate = dreplace(lk, matrices=tuple(m for m in lk.matrices if m.name in ("mlp.gate", "mlp.up")))
    tok = np.array([4096.0])
    lat = ctx.calib.gemm_latency_s
    t_fused = float(layer_gemm_fwd(up_gate, ctx, _plan(1), tok)[0]) - lat
    t_split = float(layer_gemm_fwd(up_gate, dreplace(ctx, separate_gemms=("mlp",)), _plan(1), tok)[0]) - 2 * lat
    assert t_split / t_fused == pytest.approx((7168 / 7260) / (3584 / 3696), rel=1e-9)
    assert (7168 / 7260) / (3584 / 3696) == pytest.approx(1.01818, abs=1e-5)


def test_fp8_casts_follow_the_gemms():
    # forward casts, one per distinct GEMM input: q (k and v share it) 4,096, o 4,096, fc1 4,096, down 14,336 =
    # 26,624 elements; with gate and up apart each casts the norm output: 30,720. The output gradients are the
    # same either way: q 4,096 + k 1,024 + v 1,024 + o 4,096 + 2 x 14,336 + down 4,096 = 43,008
    _, lk = _llama8b()
    assert fp8_cast_elems_per_token(lk) == (26_624, 43_008)
    assert fp8_cast_elems_per_token(lk, ("mlp",)) == (30_720, 43_008)


def test_profiles_state_it_and_a_bad_group_is_refused(monkeypatch):
    import trainsim.frameworks as fw
    assert fw.gated_ffn_separate("megatron-bridge-2025") == ()
    assert fw.gated_ffn_separate("torchtitan-2024") == ("mlp", "shared_expert", "expert")
    assert fw.gated_ffn_separate("meta-llama3") == ("mlp",)
    assert fw.gated_ffn_separate("other-nemo-automodel") == ("mlp", "shared_expert")
    for f in ("torchtitan-2024", "meta-llama3", "other-nemo-automodel"):
        assert fw.profile(f)["gated_ffn_separate_source"]
    monkeypatch.setattr(fw, "profile", lambda f, field="--framework": {"gated_ffn_separate": ["attn"]})
    with pytest.raises(TrainsimError, match="gated_ffn_separate") as e:
        fw.gated_ffn_separate("torchtitan-2024")
    assert "'attn'" in str(e.value) and "expert" in str(e.value)
