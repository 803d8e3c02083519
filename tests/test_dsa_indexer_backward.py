"""The DSA lightning indexer's backward: only what the indexer loss sends it, as each stack computes it.

Sources (independent of this engine):

* Megatron-LM d98e8a64 experimental_attention_variant/dsa.py: ``x = x.detach()``, ``qr = qr.detach()`` before the
  indexer, which runs under ``torch.no_grad()`` without the loss: no indexer backward at all for loss ``none``.
* Megatron-Bridge 067f987d training/utils/flop_utils.py: indexer projections ``4 if trains_indexer else 2`` x
  their size (forward + weight gradient, no input gradient); score term ``2 x dense_context x H_I (d_I + 1)``
  forward plus ``4 x score_grad_context x H_I (d_I + 1)`` with the loss, score_grad_context the top-k context
  for the sparse loss, the dense one for the dense loss.
* Megatron-LM dsa_cudnn_kernels.py ``FusedQKTopKWithSparseLossFunc`` / ``FusedIndexerSparseAttnFunc``: the indexer
  gradients are computed in the forward ("scale pre-computed indexer grads" in the backward).
* MindSpeed-LLM c77308a1 dsa_indexer.py ``bf16_index``: ``torch.matmul(query, key)`` over every key, autograd:
  dense backward GEMMs.

Hand derivations (indexer H_I 4 x d_I 32, no value; main attention top-16; s = 64; 128 tokens, one chip):

* indexer forward score FLOPs per token: dense 2 x 4 x 32 x (64 + 1) / 2 = 8,320; over the top-16:
  mean keys 16 - 16 x 15 / 128 = 14.125, 2 x 4 x 32 x 14.125 = 3,616;
* score gradient FLOPs (2 x forward over the touched entries): sparse 2 x 3,616 x 128 = 925,696,
  dense 2 x 8,320 x 128 = 2,129,920;
* each at the flash rate peak x attn_eff x L / (L + L0): L = min(2 x 14.125, 64) = 28.25 (top-k), L = 64 (dense).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from trainsim.model.arch import AttentionCore, LayerKind, Matrix
from trainsim.perf.compute import (DSA_INDEXER_PROJ_BWD, attention_bwd, dsa_indexer_score_grad, layer_gemm_bwd,
                                   layer_gemm_fwd)
from trainsim.plan_estimate import context, plans_from_spec
from trainsim.spec import parse_run

MAIN = AttentionCore(heads=8, qk_head_dim=64, v_head_dim=64, kv_heads=8, kind="sparse", window=16,
                     kv_elems_per_token=96)
INDEXER = AttentionCore(heads=4, qk_head_dim=32, v_head_dim=0, kv_heads=1, kind="full", kv_elems_per_token=32,
                        tp_replicated=True)
TOKENS = 128.0
MATS = (Matrix("q", 512, 1024, "attn", "col"), Matrix("o", 1024, 512, "attn", "row"),
        Matrix("indexer.wq", 256, 128, "other", "none"), Matrix("indexer.wk", 512, 32, "other", "none"),
        Matrix("indexer.weights", 512, 4, "other", "none"))
LAYER = LayerKind("x", 1, MATS, (MAIN, INDEXER))


def _small(mode: str, kernel: str | None = None):
    run = parse_run({"model": "glm-5", "system": "hgx-h800", "chips": 64,
                     "training": {"seq_len": 4096, "global_batch_seqs": 64, "precision": "bf16"},
                     "plan": {"tp": 1, "pp": 1, "ep": 8, "micro_batch": 1}})
    ctx = replace(context(run), seq_len=64, dsa_indexer_loss=mode)
    if kernel:
        ctx = replace(ctx, attention_kernel=kernel)
    return ctx, plans_from_spec(run.plan, run.chips, run.arch)


def _flash_s(ctx, flops: float, keys: float) -> float:
    c = ctx.calib
    return flops / (ctx.chip.flops("bf16") * c.attn_eff * keys / (keys + c.attn_block_l0))


def _f(x) -> float:
    return float(np.ravel(x)[0])


def test_hand_numbers():
    assert 2 * 4 * 32 * (64 + 1) / 2 == 8_320
    assert 2 * 4 * 32 * (16 - 16 * 15 / 128) == 3_616
    assert 2 * 3_616 * 128 == 925_696 and 2 * 8_320 * 128 == 2_129_920


def test_no_loss_no_indexer_backward():
    ctx, p = _small("none")
    f, b = dsa_indexer_score_grad(LAYER, ctx, p, TOKENS)
    assert _f(f) == 0.0 and _f(b) == 0.0
    # the layer's attention backward is the main core's alone
    alone = attention_bwd(replace(LAYER, attention=(MAIN,)), ctx, p, TOKENS)
    assert _f(attention_bwd(LAYER, ctx, p, TOKENS)) == pytest.approx(_f(alone))


def test_sparse_score_grad_in_forward_over_topk():
    ctx, p = _small("sparse")
    f, b = dsa_indexer_score_grad(LAYER, ctx, p, TOKENS)
    assert ctx.attention_kernel != "unfused"
    assert _f(f) == pytest.approx(_flash_s(ctx, 925_696, 28.25))
    assert _f(b) == 0.0


def test_sparse_score_grad_unfused_backend_in_backward():
    ctx, p = _small("sparse", kernel="unfused")
    f, b = dsa_indexer_score_grad(LAYER, ctx, p, TOKENS)
    assert _f(f) == 0.0
    assert _f(b) == pytest.approx(_flash_s(ctx, 925_696, 28.25))
    # the unfused backward of the main core is unchanged by the indexer beside it
    alone = attention_bwd(replace(LAYER, attention=(MAIN,)), ctx, p, TOKENS)
    assert _f(attention_bwd(LAYER, ctx, p, TOKENS)) == pytest.approx(_f(alone) + _f(b))


@pytest.mark.parametrize("mode", ["dense", "dense_local"])
def test_dense_score_grad_in_backward_over_every_key(mode):
    ctx, p = _small(mode)
    f, b = dsa_indexer_score_grad(LAYER, ctx, p, TOKENS)
    assert _f(f) == 0.0
    assert _f(b) == pytest.approx(_flash_s(ctx, 2_129_920, 64.0))
    alone = attention_bwd(replace(LAYER, attention=(MAIN,)), ctx, p, TOKENS)
    assert _f(attention_bwd(LAYER, ctx, p, TOKENS)) == pytest.approx(_f(alone) + _f(b))


def test_layer_without_indexer_or_teacher_has_no_score_grad():
    ctx, p = _small("sparse")
    for lk in (replace(LAYER, attention=(MAIN,)), replace(LAYER, attention=(INDEXER,))):
        f, b = dsa_indexer_score_grad(lk, ctx, p, TOKENS)
        assert _f(f) == 0.0 and _f(b) == 0.0


@pytest.mark.parametrize("mode,proj_bwd", [("none", 0.0), ("sparse", 1.0), ("dense", 1.0), ("dense_local", 1.0)])
def test_indexer_projection_backward(mode, proj_bwd):
    # detached inputs: never an input gradient; a weight gradient (1 x forward) only with the loss
    assert DSA_INDEXER_PROJ_BWD[mode] == proj_bwd
    ctx, p = _small(mode)
    rest = replace(LAYER, matrices=MATS[:2])
    idx = replace(LAYER, matrices=MATS[2:])
    want = 2.0 * _f(layer_gemm_fwd(rest, ctx, p, TOKENS)) + proj_bwd * _f(layer_gemm_fwd(idx, ctx, p, TOKENS))
    assert _f(layer_gemm_bwd(LAYER, ctx, p, TOKENS, layer_gemm_fwd(LAYER, ctx, p, TOKENS))) == pytest.approx(want)


def test_projection_backward_untouched_without_indexer_core():
    # ``indexer.*`` matrices of a layer with no replicated indexer core (DeepSeek-V4's, not this mechanism): 2 x
    ctx, p = _small("none")
    lk = replace(LAYER, attention=(MAIN,))
    fwd = layer_gemm_fwd(lk, ctx, p, TOKENS)
    assert _f(layer_gemm_bwd(lk, ctx, p, TOKENS, fwd)) == pytest.approx(2.0 * _f(fwd))

