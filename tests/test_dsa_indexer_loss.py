"""The DSA indexer's training loss (DeepSeek-V3.2-Exp report sec. 2.1: KL between the indexer's distribution and the
head-summed main attention distribution), priced as each stack computes it.

Sources (independent of this engine):

* Megatron-Bridge 067f987d models/glm_moe_dsa/glm5_bridge.py: GLM-5 sets dsa_indexer_loss_coeff = 0.001 and
  dsa_indexer_use_sparse_loss = True; no DeepSeek-V3.2 provider sets the coefficient (Megatron-Core default None).
* Megatron-LM d98e8a64 dsa_cudnn_kernels.py ``_compute_sparse_indexer_loss_and_grads``: the main attention's scores
  recomputed over the top-k keys (forward only), a [b, sq, topk] FP32 target all-reduced over the tp group.
  Megatron-Bridge training/utils/flop_utils.py ``indexer_teacher_term``: 2 x context x heads x absorbed_qk_dim
  (kv_lora_rank + rope dim) FLOPs per token and layer.
* MindSpeed-LLM dsa_indexer.py ``get_attn_scores`` (the GLM-5 A3 script's path from 8aaf6085, 14 Feb 2026:
  --indexer-loss-coeff 1.0, fused indexer loss flags removed): ``baddbmm`` over every key, FP32 softmax, head sum;
  at 8aaf6085 the [b, sq, sk] FP32 sum is all-reduced over tp, at c77308a1 not (allgather_q=True default).

Hand derivations (a small layer: 8 heads, absorbed key width 96, top-16 of s = 64, tp 2, 128 tokens per micro-batch):

* mean keys per query of the top-16 core: 16 - 16 x 15 / (2 x 64) = 14.125 (queries 1..16 see fewer keys);
* sparse FLOPs on one chip: 2 x (8 / 2) x 14.125 x 96 x 128 = 1,388,544;
  bytes: 64 x 16 x 128 = 131,072 (16 FP32 passes over [b, s, topk]); all-reduce payload 128 x 16 x 4 = 8,192 bytes;
* dense FLOPs: 2 x 4 x 64 x 96 x 128 = 6,291,456; bytes 16 x 4 x 64 x 128 = 524,288; all-reduce payload
  (``dense`` only) 128 x 64 x 4 = 32,768 bytes;
* GLM-5 dense working memory (tp 2, s 4,096, one sequence): (6 x 32 + 4) x 4096 x 4096 = 3,288,334,336 bytes.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from trainsim import frameworks
from trainsim.errors import TrainsimError
from trainsim.model.arch import AttentionCore, LayerKind
from trainsim.perf.collectives import all_reduce_time
from trainsim.perf.comm_tp import dsa_loss_allreduce_fwd
from trainsim.perf.compute import attention_fwd, dsa_indexer_loss_fwd, dsa_indexer_loss_work, dsa_indexer_score_grad
from trainsim.perf.memory import dsa_loss_working_bytes
from trainsim.plan_estimate import context, plans_from_spec
from trainsim.spec import parse_run

MAIN = AttentionCore(heads=8, qk_head_dim=64, v_head_dim=64, kv_heads=8, kind="sparse", window=16,
                     kv_elems_per_token=96)
INDEXER = AttentionCore(heads=4, qk_head_dim=32, v_head_dim=0, kv_heads=1, kind="full", kv_elems_per_token=32,
                        tp_replicated=True)
TOKENS = 128.0


def _run(framework: str | None = None, tp: int = 2, model: str = "glm-5"):
    d = {"model": model, "system": "hgx-h800", "chips": 64,
         "training": {"seq_len": 4096, "global_batch_seqs": 64, "precision": "bf16"},
         "plan": {"tp": tp, "pp": 1, "ep": 8, "micro_batch": 1}}
    if framework:
        d["framework"] = framework
    return parse_run(d)


def _small(mode: str):
    run = _run()
    ctx = replace(context(run), seq_len=64, dsa_indexer_loss=mode)
    return ctx, plans_from_spec(run.plan, run.chips, run.arch)


def test_hand_numbers():
    assert 16 - 16 * 15 / (2 * 64) == 14.125
    assert 2 * 4 * 14.125 * 96 * 128 == 1_388_544
    assert (6 * 32 + 4) * 4096 * 4096 == 3_288_334_336


def test_sparse_work_hand_derived():
    ctx, p = _small("sparse")
    fl, by = dsa_indexer_loss_work(LayerKind("x", 1, (), (MAIN, INDEXER)), ctx, p, TOKENS)
    assert float(np.ravel(fl)[0]) == pytest.approx(1_388_544)
    assert float(np.ravel(by)[0]) == pytest.approx(131_072)


@pytest.mark.parametrize("mode", ["dense", "dense_local"])
def test_dense_work_hand_derived(mode):
    ctx, p = _small(mode)
    fl, by = dsa_indexer_loss_work(LayerKind("x", 1, (), (MAIN, INDEXER)), ctx, p, TOKENS)
    assert float(np.ravel(fl)[0]) == pytest.approx(6_291_456)
    assert float(np.ravel(by)[0]) == pytest.approx(524_288)


def test_dense_allreduce_bytes_over_tp():
    ctx, p = _small("dense")
    t = dsa_loss_allreduce_fwd(LayerKind("x", 1, (), (MAIN, INDEXER)), ctx, p, TOKENS)
    want = all_reduce_time(32_768.0, p.tp, np.ones_like(p.tp), ctx.system, ctx.calib.coll_eff)
    assert np.allclose(t, want) and float(np.ravel(t)[0]) > 0


def test_sparse_allreduce_bytes_over_tp():
    ctx, p = _small("sparse")
    t = dsa_loss_allreduce_fwd(LayerKind("x", 1, (), (MAIN, INDEXER)), ctx, p, TOKENS)
    want = all_reduce_time(8_192.0, p.tp, np.ones_like(p.tp), ctx.system, ctx.calib.coll_eff)
    assert np.allclose(t, want) and float(np.ravel(t)[0]) > 0


@pytest.mark.parametrize("mode", ["none", "sparse", "dense", "dense_local"])
def test_zero_without_indexer_or_when_off(mode):
    ctx, p = _small(mode)
    no_indexer = LayerKind("x", 1, (), (MAIN,))   # a GLM-5.2 'shared' layer: reuses the top-k, no loss
    assert float(np.ravel(dsa_indexer_loss_fwd(no_indexer, ctx, p, TOKENS))[0]) == 0.0
    assert float(np.ravel(dsa_loss_allreduce_fwd(no_indexer, ctx, p, TOKENS))[0]) == 0.0
    lk = LayerKind("x", 1, (), (MAIN, INDEXER))
    on = float(np.ravel(dsa_indexer_loss_fwd(lk, ctx, p, TOKENS))[0])
    assert (on > 0) == (mode != "none")
    if mode in ("none", "dense_local"):   # MindSpeed-LLM c77308a1 sums its local heads only
        assert float(np.ravel(dsa_loss_allreduce_fwd(lk, ctx, p, TOKENS))[0]) == 0.0


def test_tp1_has_no_allreduce():
    run = _run(tp=1)
    ctx = replace(context(run), seq_len=64, dsa_indexer_loss="sparse")
    p = plans_from_spec(run.plan, run.chips, run.arch)
    assert float(np.ravel(dsa_loss_allreduce_fwd(LayerKind("x", 1, (), (MAIN, INDEXER)), ctx, p, TOKENS))[0]) == 0.0


def test_profiles_turn_the_loss_on_by_model():
    assert frameworks.dsa_indexer_loss("megatron-bridge-2026", "glm_moe_dsa") == "sparse"
    assert frameworks.dsa_indexer_loss("megatron-bridge-2026", "deepseek_v32") == "none"   # no coefficient set
    assert frameworks.dsa_indexer_loss("mindspeed-2025", "glm_moe_dsa") == "dense"
    assert frameworks.dsa_indexer_loss("mindspeed-2026", "glm_moe_dsa") == "dense_local"
    assert frameworks.dsa_indexer_loss("torchtitan-2024", "glm_moe_dsa") == "none"        # profile says nothing


def test_unknown_path_is_an_error(monkeypatch):
    prof = dict(frameworks.profile("megatron-bridge-2026"), dsa_indexer_loss={"glm_moe_dsa": "fused"})
    monkeypatch.setattr(frameworks, "profile", lambda fw, field="--framework": prof)
    with pytest.raises(TrainsimError, match="dsa_indexer_loss"):
        frameworks.dsa_indexer_loss("megatron-bridge-2026", "glm_moe_dsa")


def test_context_reads_the_profile_and_the_loss_adds_to_the_attention_forward():
    run = _run("megatron-bridge-2026")
    ctx, p = context(run), plans_from_spec(run.plan, run.chips, run.arch)
    assert ctx.dsa_indexer_loss == "sparse"
    lk = next(lk for lk in run.arch.layers if lk.moe is not None)
    tokens = np.full(len(p), 4096.0)
    off = attention_fwd(lk, replace(ctx, dsa_indexer_loss="none"), p, tokens)
    loss = dsa_indexer_loss_fwd(lk, ctx, p, tokens)
    # the fused cuDNN path also computes the indexer's score gradient in the forward (test_dsa_indexer_backward.py)
    grad = dsa_indexer_score_grad(lk, ctx, p, tokens)[0]
    assert np.allclose(attention_fwd(lk, ctx, p, tokens), off + loss + grad) and np.all(loss > 0) and np.all(grad > 0)


def test_glm5_dense_working_memory():
    run = _run("mindspeed-2025")
    ctx, p = context(run), plans_from_spec(run.plan, run.chips, run.arch)
    assert ctx.dsa_indexer_loss == "dense"
    w = dsa_loss_working_bytes(ctx, p, np.full(len(p), 4096.0))
    assert float(np.ravel(w)[0]) == pytest.approx(3_288_334_336)
    assert float(np.ravel(dsa_loss_working_bytes(replace(ctx, dsa_indexer_loss="none"), p, 4096.0))[0]) == 0.0
