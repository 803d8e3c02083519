"""DeepSeek-V4's GEMMs as Megatron-Core runs them in an FP8 run (issue 14; Megatron-LM 43e45e1307, the dev pin of
Megatron-Bridge v0.6.0): the grouped output projection o_a runs all its groups, and the GEMMs kept outside
Transformer Engine's FP8 context run in BF16 with no FP8 cast.

Hand derivation, DeepSeek-V4-Flash (config.json: hidden 4,096, 64 heads of head_dim 512, o_groups 8, o_lora_rank
1,024, q_lora_rank 1,024, index_n_heads 64, index_head_dim 128, hc_mult 4, 256 experts of 2,048, top 6, one shared):

* o_a (experimental_attention_variant/deepseek_v4_hybrid_attention.py line 468, ``torch.einsum("...gd,grd->...gr")``
  on a plain parameter): 8 groups, each a (64 x 512 / 8 = 4,096) x 1,024 GEMM over every token: forward
  2 x 8 x 4,096 x 1,024 = 67.1 MFLOP per token, 274.9 GFLOP over a 4,096-token micro-batch; in BF16 (no Transformer
  Engine module) at most the dense BF16 peak x gemm_eff.
* FP8 casts per token of a CSA layer, over the Transformer Engine GEMMs only (q_a, q_b, kv, o_b, the indexer's
  q_b, the shared expert's fc1 / fc2, six routed experts' fc1 / fc2; the router, o_a, the compressors' wkv / wgate
  and the indexer's weights projection (csa.py ``get_fp8_disabled_context``) and the mHC mappings
  (hyper_connection.py ``mark_keep_in_fp32``) excluded):
  inputs K: 4,096 + 1,024 + 4,096 + 8,192 + 1,024 + 4,096 + 2,048 + 6 x (4,096 + 2,048) = 61,440;
  output gradients N: 1,024 + 32,768 + 512 + 4,096 + 8,192 + 4,096 + 4,096 + 6 x (4,096 + 4,096) = 103,936.
  A serving stack quantises the others too (vLLM's FP8 o_a einsum): + o_a 8 x 4,096, the compressors
  2 x 4,096 + 2 x 4,096, the weights projection 4,096, the mHC mappings 2 x 16,384 = 86,016 more inputs.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from trainsim.model.arch import Matrix
from trainsim.model.load import resolve_model
from trainsim.parallel.plan import Plans
from trainsim.perf.compute import fp8_cast_elems_per_token, gemm_matrices, layer_gemm_fwd

from conftest import ctx_for, make_system

BF16_PEAK, FP8_PEAK = 2.5e15, 5e15


def _setup():
    arch = resolve_model("deepseek-v4-flash")
    ctx = ctx_for(arch, make_system(bf16=BF16_PEAK, fp8=FP8_PEAK, hbm=186e9, hbm_bw=8e12, size=72), chips=64,
                  seq=4096, gbs=64, precision="fp8")
    p = Plans.from_columns(tp=1, pp=1, vpp=1, ep=64, etp=1, cp=1, dp=64, zero=1, recompute=0, mb=1, schedule=0,
                           node_limit=0)
    csa = next(lk for lk in arch.layers if lk.name == "csa/moe")
    return arch, ctx, p, csa


def _only(lk, mat: Matrix):
    return replace(lk, matrices=(mat,))


def test_o_a_prices_all_eight_groups_at_the_bf16_rate():
    _, ctx, p, csa = _setup()
    tokens = np.array([4096.0])
    o_a = next(m for m in csa.matrices if m.name == "o_a")
    assert (o_a.count, o_a.active, o_a.k, o_a.n, o_a.fp8) == (8, 8.0, 4096, 1024, False)
    t = float(layer_gemm_fwd(_only(csa, o_a), ctx, p, tokens)[0])
    flops = 2 * 8 * 4096 * 1024 * 4096   # 274.9 GFLOP
    # BF16: no faster than the BF16 peak x gemm_eff (the FP8 rate would take 128 us, under this bound)
    assert t - ctx.calib.gemm_latency_s >= flops / (BF16_PEAK * ctx.calib.gemm_eff)
    # the eight groups are eight GEMMs of one group's shape, in one launch
    one = float(layer_gemm_fwd(_only(csa, replace(o_a, count=1, active=1.0)), ctx, p, tokens)[0])
    lat = ctx.calib.gemm_latency_s
    assert np.isclose(t - lat, 8.0 * (one - lat), rtol=1e-12)
    # the same matrix in FP8 (a Transformer Engine module) is faster: the BF16 rate is what slows it
    assert float(layer_gemm_fwd(_only(csa, replace(o_a, fp8=True)), ctx, p, tokens)[0]) < t


def test_fp8_casts_cover_the_transformer_engine_gemms_only():
    _, ctx, _, csa = _setup()
    kept_bf16 = {m.name for m in gemm_matrices(csa, ctx.separate_gemms) if not m.fp8}
    assert kept_bf16 == {"o_a", "csa.kv", "csa.gate", "indexer.kv", "indexer.gate", "indexer.weights", "hc.attn",
                         "hc.ffn"}
    assert fp8_cast_elems_per_token(csa, ctx.separate_gemms) == (61_440.0, 103_936.0)
    fwd, _ = fp8_cast_elems_per_token(csa, ctx.separate_gemms, training=False)
    assert fwd == 61_440.0 + 86_016.0


def test_single_copy_fp8_matrices_unchanged():
    """A one-copy FP8 matrix (count = active = 1, fp8) prices exactly one GEMM of tokens rows: q_b's forward in
    this FP8 context is one (4,096 x 1,024) @ (1,024 x 32,768) GEMM, 2 x 4,096 x 1,024
    x 32,768 = 274.9 GFLOP at no more than the FP8 peak x gemm_eff."""
    _, ctx, p, csa = _setup()
    q_b = next(m for m in csa.matrices if m.name == "q_b")
    t = float(layer_gemm_fwd(_only(csa, q_b), ctx, p, np.array([4096.0]))[0])
    flops = 2 * 4096 * 1024 * 32768
    assert flops / (FP8_PEAK * ctx.gemm_eff) <= t - ctx.calib.gemm_latency_s < flops / (BF16_PEAK * ctx.calib.gemm_eff)
