"""The MoE permutation's HBM traffic by dispatcher (perf/compute.py permute_rows_in, alltoall_sort_fwd_bwd), checked
against hand derivations from Megatron-Core's all-to-all dispatcher and HybridEP's permute kernel, and against the
per-layer dispatcher A/B that Megatron-LM's MoE layer performance test measured on H100."""
from __future__ import annotations

import math
from dataclasses import replace as dreplace

import numpy as np
import pytest

from conftest import ctx_for, make_system, one_plan
from trainsim.api import estimate
from trainsim.model.load import resolve_model
from trainsim.perf.compute import (alltoall_sort_fwd_bwd, elementwise_bytes_per_token, elementwise_fwd, hbm_time,
                                   moe_permute_fwd_bwd, permute_rows_in)
from trainsim.perf.step import layer_costs


@pytest.fixture()
def qwen():
    arch = resolve_model("qwen3-30b-a3b")          # hidden 2048, 128 experts, top-8, 48 MoE layers
    lk = next(lk for lk in arch.layers if lk.moe is not None)
    assert (arch.hidden, lk.moe.experts, lk.moe.top_k) == (2048, 128, 8)
    return arch, lk


def test_alltoall_permutes_each_token_once_and_sorts_the_received_rows(qwen):
    # Megatron-Core MoEAlltoAllTokenDispatcher (token_dispatcher.py at Megatron-LM 0d8e0714): permute before the
    # all-to-all reads each of the layer's 4,096 tokens once and writes its 8 routed copies (and the unpermute
    # after the combine the reverse): r = 1. With 16 local experts (128 / ep 8) the received rows are sorted by
    # local expert and back (sort_chunks_by_idxs, twice): 4 x 4,096 x 8 x 2,048 x 2 bytes = 536,870,912 bytes in
    # the forward, as many in the backward.
    arch, lk = qwen
    ctx = ctx_for(arch, make_system(), chips=8)
    assert ctx.moe_dispatcher == "alltoall"
    p = one_plan(ep=8, dp=8, zero=1)
    tokens = np.array([4096.0])
    assert permute_rows_in(lk, ctx, p) == 1.0
    fwd, bwd = alltoall_sort_fwd_bwd(lk, ctx, p, tokens)
    assert float(fwd[0]) == pytest.approx(float(hbm_time(536_870_912.0, ctx)))
    assert float(bwd[0]) == pytest.approx(float(fwd[0]))
    # the permute + unpermute count 4 (1 + 8) h = 73,728 bytes per token, not the generic 4 (8 + 8) h = 131,072:
    # 73,728 x 4,096 = 301,989,888 bytes forward, and as many backward (TE's permute and unpermute are each
    # other's autograd backward), out of the element-wise kernels' "backward = 2 x forward"
    generic = elementwise_bytes_per_token(lk, 2048, 0.0)
    got = float(elementwise_fwd(lk, ctx, p, tokens)[0])
    assert got == pytest.approx(float(hbm_time((generic - 4 * 16 * 2048) * 4096.0, ctx)))
    pf, pb = moe_permute_fwd_bwd(lk, ctx, p, tokens)
    assert float(pf[0]) == pytest.approx(float(hbm_time(301_989_888.0, ctx)))
    assert float(pb[0]) == pytest.approx(float(pf[0]))
    # one local expert per rank (ep 128): no sort
    f1, b1 = alltoall_sort_fwd_bwd(lk, ctx, one_plan(ep=128, dp=128, zero=1), tokens)
    assert float(f1[0]) == 0.0 and float(b1[0]) == 0.0
    # the step charges the sort and the permute once forward, once backward (layer_costs' seq_f / seq_b), 48 MoE
    # layers
    lc = layer_costs(ctx, p)
    per_layer = float(hbm_time(536_870_912.0 + 301_989_888.0, ctx))
    assert float(lc["seq_f"][0]) == pytest.approx(48 * per_layer * ctx.seq_len / 4096.0)
    assert float(lc["seq_b"][0]) == pytest.approx(float(lc["seq_f"][0]))


def test_hybridep_permutes_the_delivered_rows(qwen):
    # HybridEP writes one row per (token, destination rank) into the receive buffer and its permute kernel reads
    # each once (deepseek-ai/DeepEP hybrid-ep csrc/hybrid_ep/extension/permute.cu permute_kernel): r = E[distinct
    # ranks] of 8 experts of 128 on 8 ranks of 16 = 8 (1 - C(112, 8) / C(128, 8)) = 5.339; no sort
    arch, lk = qwen
    ctx = dreplace(ctx_for(arch, make_system(), chips=8), moe_dispatcher="hybridep")
    p = one_plan(ep=8, dp=8, zero=1)
    r = 8 * (1 - math.comb(112, 8) / math.comb(128, 8))
    assert float(permute_rows_in(lk, ctx, p)[0]) == pytest.approx(r)
    assert float(permute_rows_in(lk, dreplace(ctx, moe_dispatcher="deepep"), p)[0]) == pytest.approx(r)
    fwd, bwd = alltoall_sort_fwd_bwd(lk, ctx, p, np.array([4096.0]))
    assert float(fwd[0]) == 0.0 and float(bwd[0]) == 0.0


def test_generic_count_where_the_dispatcher_is_not_sourced(qwen):
    arch, lk = qwen
    ctx = ctx_for(arch, make_system(), chips=8)
    p = one_plan(ep=8, dp=8, zero=1)
    # a stack that routes node-limited (DeepSeek's HAI-LLM): its dispatcher is not published, the generic k stays
    hai = dreplace(ctx, moe_node_limited_routing=True)
    assert permute_rows_in(lk, hai, p) is None
    fwd, _ = alltoall_sort_fwd_bwd(lk, hai, p, np.array([4096.0]))
    assert float(fwd[0]) == 0.0
    # the all-gather dispatcher keeps its own count; a dense layer has no permute
    assert permute_rows_in(lk, dreplace(ctx, moe_dispatcher="allgather"), p) is None
    dense = next(lk for lk in resolve_model("llama-3.1-8b").layers)
    assert permute_rows_in(dense, ctx, p) is None
    f0, b0 = alltoall_sort_fwd_bwd(dense, ctx, p, np.array([4096.0]))
    assert float(f0[0]) == 0.0 and float(b0[0]) == 0.0
    # where the permutation is not sourced it stays among the element-wise kernels at the generic k rows
    # (4 (8 + 8) x 2,048 = 131,072 bytes per token), under their backward rule, and has no fused price of its own
    tok = np.array([4096.0])
    for c in (hai, dreplace(ctx, moe_dispatcher="allgather")):
        hf, hb = moe_permute_fwd_bwd(lk, c, p, tok)
        assert float(hf[0]) == 0.0 and float(hb[0]) == 0.0
    fused = float(elementwise_fwd(lk, ctx, p, tok)[0])
    assert float(elementwise_fwd(lk, hai, p, tok)[0]) - fused == pytest.approx(
        float(hbm_time(131_072 * 4096.0, ctx)))
    df, db = moe_permute_fwd_bwd(dense, ctx, p, tok)
    assert float(df[0]) == 0.0 and float(db[0]) == 0.0


def test_permute_forward_and_backward_in_mtp_and_moe_recompute(monkeypatch):
    # DeepSeek-V3 (hidden 7,168, top-8, 256 experts) under DeepEP at ep 64 (4 local experts, no sort): the permute
    # of the MTP module's MoE layer is priced like a decoder layer's: forward B, backward B (layer_costs mtp_s / mtp_s_b), and
    # selective ``moe`` recompute reruns it (Megatron-Core moe_layer.py checkpoints the whole MoE forward,
    # dispatch included). B = 4 (r + 8) 7,168 x tokens, r the delivered rows of permute_rows_in.
    arch = resolve_model("deepseek-v3")
    ctx = dreplace(ctx_for(arch, make_system(), chips=64), moe_dispatcher="deepep")
    p = one_plan(ep=64, dp=64, zero=1)
    lk = arch.mtp[0]
    assert lk.moe is not None and arch.hidden == 7168 and lk.moe.top_k == 8
    tok = float(ctx.seq_len)
    r = float(np.asarray(permute_rows_in(lk, ctx, p))[0])
    b = float(hbm_time(4.0 * (r + 8.0) * 7168.0 * tok, ctx))
    lc = layer_costs(ctx, p)
    assert float(lc["mtp_s"][0]) == pytest.approx(b)
    assert float(lc["mtp_s_b"][0]) == pytest.approx(b)
    import trainsim.perf.recompute as rc
    moe = float(np.asarray(rc.selective_recompute_fwd(lk, ctx, p, np.array([tok]), ("moe",)))[0])
    monkeypatch.setattr(rc, "expert_copies_fwd_bwd", lambda *a: (0.0, 0.0))
    without = float(np.asarray(rc.selective_recompute_fwd(lk, ctx, p, np.array([tok]), ("moe",)))[0])
    assert moe - without == pytest.approx(b)


# Megatron-LM tests/functional_tests/test_cases/common/moe_perf (commit cf39a4ddcf, 2025-12-17, "Add moe layer perf
# UT"): one MoELayer on 8 H100, EP 8, TP 1, 4,096 tokens (seq 4096, mbs 1), force-balanced routing, permute and
# router fusion on, timed with CUDA events after a dummy GEMM; baseline.json forward + backward ms.
# DEEPSEEK_PROXY: hidden 7168, 32 experts, top-8, expert FFN 2048 (its shared-expert size is not passed to the
# TransformerConfig, so no shared expert); MIXTRAL_PROXY: hidden 4096, 8 experts, top-2, expert FFN 14336.
MOE_PERF_MS = {("ds", "alltoall", "bf16"): 7.119 + 10.483, ("ds", "hybridep", "bf16"): 5.391 + 8.795,
               ("ds", "alltoall", "fp8"): 7.609 + 10.126, ("ds", "hybridep", "fp8"): 5.143 + 7.687,
               ("mx", "alltoall", "bf16"): 4.327 + 7.684, ("mx", "hybridep", "bf16"): 4.343 + 7.741}

PROXY = {"ds": {"name": "dsproxy", "layers": 1, "hidden": 7168, "heads": 1, "head_dim": 8, "vocab": 8,
                "ffn_act": "swiglu", "norm": "rmsnorm", "moe": {"experts": 32, "top_k": 8, "expert_ffn": 2048}},
         "mx": {"name": "mxproxy", "layers": 1, "hidden": 4096, "heads": 1, "head_dim": 8, "vocab": 8,
                "ffn_act": "swiglu", "norm": "rmsnorm", "moe": {"experts": 8, "top_k": 2, "expert_ffn": 14336}}}


def _layer_s(model: str, dispatcher: str, precision: str) -> float:
    """The engine's step for a one-MoE-layer proxy (attention and head shrunk to nothing), without the optimizer
    and data-parallel sync the test does not time: the layer's forward + backward, one micro-batch."""
    training = {"seq_len": 4096, "global_batch_seqs": 8, "precision": precision, "moe_dispatcher": dispatcher}
    if precision == "fp8":
        training["fp8_recipe"] = "blockwise"
    spec = {"name": "moe-perf proxy", "framework": "megatron-bridge-2026", "model": PROXY[model],
            "system": "dgx-h100", "chips": 8, "training": training,
            "plan": {"tp": 1, "pp": 1, "ep": 8, "etp": 1, "cp": 1, "dp": 8, "zero": 1, "micro_batch": 1,
                     "recompute": "none"}}
    est = estimate(spec)
    return float(est.step_time_s) - sum(float(est.breakdown[k]) for k in ("optimizer", "dp_comm", "other"))


def test_moe_perf_dispatcher_ab_bf16():
    # measured: the all-to-all dispatcher's layer is 3.41 ms slower than HybridEP's at DeepSeek's shape (4 local
    # experts, top-8: it sends 8 copies per token, HybridEP 8 (1 - C(28, 8) / C(32, 8)) = 5.64, and sorts the
    # received rows), and no slower at Mixtral's (1 local expert, top-2: no sort, 2 against 1.75 copies)
    ds = _layer_s("ds", "alltoall", "bf16") - _layer_s("ds", "hybridep", "bf16")
    ds_meas = (MOE_PERF_MS[("ds", "alltoall", "bf16")] - MOE_PERF_MS[("ds", "hybridep", "bf16")]) / 1e3
    assert ds_meas == pytest.approx(3.416e-3, abs=1e-5)
    assert ds == pytest.approx(ds_meas, rel=0.5)
    mx = _layer_s("mx", "alltoall", "bf16") - _layer_s("mx", "hybridep", "bf16")
    mx_meas = (MOE_PERF_MS[("mx", "alltoall", "bf16")] - MOE_PERF_MS[("mx", "hybridep", "bf16")]) / 1e3
    assert abs(mx_meas) < 0.1e-3
    assert abs(mx) < 0.5e-3


def test_moe_perf_dispatcher_ab_fp8():
    # measured (Megatron-LM moe_perf, cf39a4ddcf): under blockwise FP8 the all-to-all dispatcher's DeepSeek-proxy
    # layer is 4.91 ms slower than HybridEP's, 1.49 ms more than in BF16 (3.41 ms). A strict xfail while the
    # engine gave ~2.1-2.3 ms in both: the FP8-only part is Megatron-Core TEGroupedMLP's Fp8Padding / Fp8Unpadding
    # of every routed row (perf/compute.py fp8_padding_fwd_bwd), which HybridEP's permute makes a no-op by padding
    # each expert's rows itself (pad_multiple); the engine now gives 3.69 ms (2.29 in BF16: +1.40 ms)
    ds = _layer_s("ds", "alltoall", "fp8") - _layer_s("ds", "hybridep", "fp8")
    meas = (MOE_PERF_MS[("ds", "alltoall", "fp8")] - MOE_PERF_MS[("ds", "hybridep", "fp8")]) / 1e3
    assert ds == pytest.approx(meas, rel=0.3)
