"""Two GEMM / transfer facts of the training step (issue 14, criterion 1):

* q, k and v as the stack runs them (perf/compute.py fused_qkv / gemm_matrices; the profile key ``qkv_separate``):
  one ``linear_qkv`` of width (n_q + 2 n_kv) x head_dim in Megatron-Core (megatron/core/transformer/attention.py
  SelfAttention), a Gated DeltaNet's q, k, v, z, b, a as its one ``in_proj`` (megatron/core/ssm/gated_delta_net/
  common.py), three GEMMs wq / wk / wv in torchtitan, Meta's Llama 3 code and NeMo AutoModel;
* the MTP layer's backward tensor-parallel transfers by the decoder layers' rule (comm_tp.tp_comm_bwd): three
  transfers of the tokens x hidden buffer per block against the forward's two, not twice the forward.
Figures derived by hand in each test."""
from __future__ import annotations

from dataclasses import replace as dreplace

import numpy as np
import pytest

from conftest import ctx_for, make_system
from trainsim import frameworks as fw
from trainsim.model.load import resolve_model
from trainsim.parallel.plan import Plans
from trainsim.perf.compute import QKV_GROUP, fp8_cast_elems_per_token, gemm_matrices, layer_gemm_fwd
from trainsim.perf.step import _stage, layer_costs


def _plan(tp: int, dp: int = 1) -> Plans:
    return Plans.from_columns(tp=tp, pp=1, vpp=1, ep=1, etp=1, cp=1, dp=dp, zero=1, recompute=0, mb=1,
                              schedule=0, node_limit=0)


def _llama8b():
    arch = resolve_model("llama-3.1-8b")          # hidden 4,096, 32 heads, 8 KV heads, head_dim 128
    return arch, arch.layers[0]


def test_one_qkv_gemm_unless_the_stack_splits_it():
    _, lk = _llama8b()
    fused = {m.name: (m.k, m.n) for m in gemm_matrices(lk)}
    assert fused["qkv"] == (4096, (32 + 2 * 8) * 128) == (4096, 6144)
    assert not {"q", "k", "v"} & set(fused)
    # in q's place: first of the layer's GEMMs, the output projection after it
    assert [m.name for m in gemm_matrices(lk)][:2] == ["qkv", "o"]
    split = {m.name: (m.k, m.n) for m in gemm_matrices(lk, (QKV_GROUP,))}
    assert (split["q"], split["k"], split["v"]) == ((4096, 4096), (4096, 1024), (4096, 1024))
    assert "qkv" not in split
    # same weights, same FLOPs: 4,096 x 6,144 = 4,096 x (4,096 + 1,024 + 1,024)
    for sep in ((), (QKV_GROUP,), (QKV_GROUP, "mlp")):
        assert sum(m.k * m.n for m in gemm_matrices(lk, sep)) == sum(m.k * m.n for m in lk.matrices)


def test_gated_deltanet_in_proj_and_gated_attention():
    # Qwen3-Next 80B-A3B (config.json: hidden 2,048; linear attention 16 key heads x 128, 32 value heads x 128;
    # full attention 16 heads x 256 with an output gate, 2 KV heads): Megatron's GDN in_proj is
    # 2 qk_dim + 2 v_dim + 2 v_heads = 2 x 2,048 + 2 x 4,096 + 2 x 32 = 12,352 wide; the gated full attention's
    # linear_qkv (n_q + 2 n_kv) x 256 + n_q x 256 (attention_output_gate) = 4,096 + 1,024 + 4,096 = 9,216
    arch = resolve_model("qwen3-next-80b-a3b")
    gdn = next(lk for lk in arch.layers if any(m.name == "z" for m in lk.matrices))
    full = next(lk for lk in arch.layers if not any(m.name == "z" for m in lk.matrices))
    g = {m.name: (m.k, m.n) for m in gemm_matrices(gdn)}
    assert g["qkv"] == (2048, 12352) and not {"q", "k", "v", "z", "ba"} & set(g)
    assert {m.name: (m.k, m.n) for m in gemm_matrices(full)}["qkv"] == (2048, 9216)
    assert {"q", "k", "v", "z", "ba"} <= {m.name for m in gemm_matrices(gdn, (QKV_GROUP,))}


def test_mla_down_projections_stay_apart():
    # Megatron-Core's fused linear_qkv_down_proj is opt-in (mla_down_proj_fusion, default False): DeepSeek-V3's
    # q_a (7,168 x 1,536) and kv_a (7,168 x 512 + 64) stay two GEMMs, and no qkv appears
    dsv3 = resolve_model("deepseek-v3").layers[0]
    names = {m.name: (m.k, m.n) for m in gemm_matrices(dsv3)}
    assert names["q_a"] == (7168, 1536) and names["kv_a"] == (7168, 576) and "qkv" not in names


def test_qkv_shape_fills_the_last_wave():
    # 12,800 tokens at tp 1, tiles 128 x 128 over 132 units (constants.yaml defaults), K = 4,096 for all three:
    # M = 100 tiles. One qkv GEMM of N = 6,144: 100 x 48 = 4,800 tiles, 36.36 waves -> 37, wave efficiency
    # 4,800 / 4,884; q (N 4,096): 3,200 tiles, 24.24 -> 25 waves, 3,200 / 3,300; k and v (N 1,024): 800 tiles,
    # 6.06 -> 7 waves, 800 / 924. Same tile fill (exact tiles) and K loop, all compute-bound, so the compute times
    # (latency removed: 3 launches against 1) go as sum(N / wave efficiency):
    # (4,096 x 3,300 / 3,200 + 2 x 1,024 x 924 / 800) / (6,144 x 4,884 / 4,800) = 6,589.44 / 6,251.52 = 1.05405
    arch, lk = _llama8b()
    ctx = ctx_for(arch, make_system(), chips=8, seq=12800)
    attn = dreplace(lk, matrices=tuple(m for m in lk.matrices if m.name in ("q", "k", "v")))
    tok = np.array([12800.0])
    lat = ctx.calib.gemm_latency_s
    t_fused = float(layer_gemm_fwd(attn, ctx, _plan(1), tok)[0]) - lat
    t_split = float(layer_gemm_fwd(attn, dreplace(ctx, separate_gemms=(QKV_GROUP,)), _plan(1), tok)[0]) - 3 * lat
    hand = (4096 * 3300 / 3200 + 2 * 1024 * 924 / 800) / (6144 * 4884 / 4800)
    assert hand == pytest.approx(1.05405, abs=1e-5)
    assert t_split / t_fused == pytest.approx(hand, rel=1e-9)


def test_fp8_casts_follow_the_qkv_gemms():
    # Llama 3.1 8B (ffn 14,336): one qkv, o, fc1 and down GEMM cast inputs of 4,096 + 4,096 + 4,096 + 14,336 =
    # 26,624 elements per token; three q / k / v Linears cast the same input thrice: + 2 x 4,096 = 34,816. Output
    # gradients: 6,144 + 4,096 + 28,672 + 4,096 = 43,008 either way
    _, lk = _llama8b()
    assert fp8_cast_elems_per_token(lk) == (26624.0, 43008.0)
    assert fp8_cast_elems_per_token(lk, (QKV_GROUP,)) == (34816.0, 43008.0)


def test_profiles_state_qkv_layout():
    for f in ("torchtitan-2024", "meta-llama3", "other-nemo-automodel"):
        assert fw.qkv_separate(f) and fw.profile(f)["qkv_separate_source"]
        assert fw.separate_gemms(f) == fw.gated_ffn_separate(f) + (QKV_GROUP,)
    for f in ("megatron-bridge-2025", "megatron-lm-2021", "metaseq", "mindspeed-2025", "primus-megatron-2025"):
        assert not fw.qkv_separate(f) and fw.separate_gemms(f) == fw.gated_ffn_separate(f)


def _mtp_ctx(**kw):
    arch = resolve_model("deepseek-v3")
    assert len(arch.mtp) == 1
    return dreplace(ctx_for(arch, make_system(), chips=8, seq=4096), **kw)


@pytest.mark.parametrize("flags, ratio", [({}, 1.5), ({"tp_allreduce": True}, 1.0)])
def test_mtp_backward_tp_follows_the_decoder_rule(flags, ratio):
    # sequence parallel (Megatron-Core): forward all-gather + reduce-scatter per block; backward all-gather of the
    # output gradient, re-gather of the saved input shard, reduce-scatter of the input gradient: 3 / 2 of the
    # forward in BF16. Without sequence parallelism one all-reduce each way: 1. Was 2 before
    ctx = _mtp_ctx(**flags)
    lc = layer_costs(ctx, _plan(4, 2))
    assert float(lc["mtp_tp"][0]) > 0.0
    assert float(lc["mtp_tp_b"][0]) / float(lc["mtp_tp"][0]) == pytest.approx(ratio, rel=1e-12)
    # the same rule as the decoder layers' (sum over kinds of n_layers x per-layer times)
    assert float(lc["tp_b"][0]) / float(lc["tp"][0]) == pytest.approx(ratio, rel=1e-12)


def test_stage_charges_the_mtp_backward_transfers_once():
    # every cost zero but the MTP layer's transfers: the last stage's forward is its forward transfers, its
    # backward its backward transfers (not 2 x the forward's)
    ctx = _mtp_ctx()
    p = _plan(4, 2)
    lc = {k: np.zeros(1) for k in layer_costs(ctx, p)}
    lc["mtp_tp"], lc["mtp_tp_b"] = np.array([3e-3]), np.array([4.5e-3])
    st = _stage(ctx, p, lc, 0.0, True, np.array([4096.0]))
    assert float(st["t_f"][0]) == pytest.approx(3e-3, rel=1e-12)
    assert float(st["t_b"][0]) == pytest.approx(4.5e-3, rel=1e-12)
    assert float(st["mtp_tp"][0]) == pytest.approx(7.5e-3, rel=1e-12)


def test_qkv_separate_must_be_a_flag(monkeypatch):
    from trainsim.errors import TrainsimError
    monkeypatch.setattr(fw, "profile", lambda f, field="--framework": {"qkv_separate": "yes"})
    with pytest.raises(TrainsimError, match="qkv_separate") as e:
        fw.separate_gemms("torchtitan-2024")
    assert "framework_schedules.yaml" in str(e.value) and "'yes'" in str(e.value)
