"""The DSA lightning indexer under tensor parallelism: replicated, not split.

Sources (independent of this engine):

* Megatron-LM megatron/core/transformer/experimental_attention_variant/dsa.py (382eeea395 "DeepSeek V3.2 support",
  as at d98e8a64): ``DSAIndexer`` builds ``linear_wq_b`` / ``linear_wk`` / ``linear_weights_proj`` with
  ``parallel_mode="duplicated"`` and, under sequence parallelism, ``forward_before_topk`` all-gathers ``x`` and ``qr``
  first, so every tp rank scores all H_I heads over the whole sequence; the main MLA heads split over tp as usual.
* MindSpeed-LLM (c77308a1) builds the same projections as ``LinearNoTP`` (tasks/models/transformer/dsa_indexer.py)
  and its GLM-5 744B recipe trains at TP=2 (examples/mcore/glm5/pretrain_glm5_744b_4k_A3_ptd.sh: TP=2 PP=8 EP=64).
* GLM-5 config (catalog glm-5, zai-org GLM-5 config.json): index_n_heads 32, index_head_dim 128, index_topk 2048;
  64 attention heads, qk_nope 192 + qk_rope 64 = 256 query/key dims, v_head_dim 256, hidden 6144, q_lora_rank 2048.
* DeepSeek-V3.2-Exp report sec. 2.1: the indexer has H_I = 64 heads of d_I = 128 (catalog deepseek-v3.2).

Hand derivations at s = 4096, one sequence per micro-batch (4096 tokens per tp group):

* indexer forward FLOPs per token: Q K^T over H_I heads of d_I, no value: 2 x 32 x 128 x (4096 + 1) / 2
  = 16,781,312 (causal mean context 2048.5); DeepSeek-V3.2: 2 x 64 x 128 x 2048.5 = 33,562,624;
* main MLA core (top-2048 keys): mean keys per query 2048 - 2048 x 2047 / (2 x 4096) = 1536.25
  (queries 1..2048 see all earlier keys, the rest 2048), so 2 x 64 x (256 + 256) x 1536.25 = 100,679,680 per token.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from trainsim.perf.activations import activation_tensors, kept_bytes_per_token
from trainsim.perf.collectives import reduce_scatter_time
from trainsim.perf.comm_tp import replicated_gather_fwd
from trainsim.perf.compute import attention_fwd_flops, core_tp_ranks
from trainsim.errors import TrainsimError
from trainsim.parallel.validity import REASONS, check
from trainsim.plan_estimate import context, plans_from_spec
from trainsim.spec import parse_run

S = 4096
INDEXER_FLOPS_PER_TOKEN = 2 * 32 * 128 * (S + 1) / 2          # 16,781,312
MAIN_FLOPS_PER_TOKEN = 2 * 64 * (256 + 256) * 1536.25         # 100,679,680


def _run(tp: int, model: str = "glm-5", chips: int = 64):
    return parse_run({"model": model, "system": "hgx-h800", "chips": chips,
                      "training": {"seq_len": S, "global_batch_seqs": 64, "precision": "bf16"},
                      "plan": {"tp": tp, "pp": 1, "ep": 8, "micro_batch": 1}})


def _moe_layer(run):
    return next(lk for lk in run.arch.layers if lk.moe is not None)


def test_hand_numbers():
    assert INDEXER_FLOPS_PER_TOKEN == 16_781_312
    assert MAIN_FLOPS_PER_TOKEN == 100_679_680


@pytest.mark.parametrize("tp", [1, 4])
def test_indexer_flops_per_rank_not_divided_by_tp(tp):
    run = _run(tp)
    ctx, p = context(run), plans_from_spec(run.plan, run.chips, run.arch)
    lk = _moe_layer(run)
    main, idx = lk.attention
    assert not main.tp_replicated and idx.tp_replicated
    assert (idx.heads, idx.qk_head_dim, idx.v_head_dim) == (32, 128, 0)
    tokens = np.array([float(S)])
    got = attention_fwd_flops(lk, ctx, p, tokens)[0]
    # main attention heads split over tp; the replicated indexer charged whole on every rank
    assert got == pytest.approx(S * (MAIN_FLOPS_PER_TOKEN / tp + INDEXER_FLOPS_PER_TOKEN), rel=1e-12)
    assert float(core_tp_ranks(idx, p)) == 1.0
    assert int(core_tp_ranks(main, p)[0]) == tp


def test_tp4_against_tp1():
    ctx1, ctx4 = context(_run(1)), context(_run(4))
    r1, r4 = _run(1), _run(4)
    p1, p4 = plans_from_spec(r1.plan, 64, r1.arch), plans_from_spec(r4.plan, 64, r4.arch)
    lk = _moe_layer(r1)
    t = np.array([float(S)])
    f1, f4 = attention_fwd_flops(lk, ctx1, p1, t)[0], attention_fwd_flops(lk, ctx4, p4, t)[0]
    # going from tp 1 to 4 saves 3/4 of the main core only
    assert f1 - f4 == pytest.approx(S * MAIN_FLOPS_PER_TOKEN * 3 / 4, rel=1e-12)


def test_deepseek_v32_indexer_matches_the_report():
    lk = _moe_layer(_run(1, "deepseek-v3.2"))
    idx = next(c for c in lk.attention if c.tp_replicated)
    assert (idx.heads, idx.qk_head_dim) == (64, 128)
    from trainsim.model.counts import attention_fwd_flops_per_token
    assert attention_fwd_flops_per_token(idx, S) == 2 * 64 * 128 * 2048.5 == 33_562_624


def test_indexer_activations_kept_whole():
    lk = _moe_layer(_run(1))
    ts = activation_tensors(lk, 6144, S, gemm_bytes=2.0, act_fn_bytes=2.0)
    rep = [t for t in ts if not t.tp_split and "indexer" in t.name]
    # q: 32 heads x 128, k: 1 x 128, BF16: (4096 + 128) x 2 = 8448 bytes per token, not divided by tp
    assert [t.bytes_per_token for t in rep] == [8448.0]
    only = [t for t in ts if t.tp_split]
    assert kept_bytes_per_token(ts, tp=4) - kept_bytes_per_token(ts, tp=1) == pytest.approx(
        -0.75 * sum(t.bytes_per_token for t in only))


def test_indexer_input_gather_only_under_tp():
    r1, r4 = _run(1), _run(4)
    ctx4 = context(r4)
    p1, p4 = plans_from_spec(r1.plan, 64, r1.arch), plans_from_spec(r4.plan, 64, r4.arch)
    lk = _moe_layer(r4)
    t = np.array([float(S)])
    assert replicated_gather_fwd(lk, context(r1), p1, t)[0] == 0.0
    # hidden 6144 + q latent 2048 BF16 elements per token: 4096 x 8192 x 2 = 67,108,864 bytes all-gathered
    want = reduce_scatter_time(np.array([67_108_864.0]), p4.tp, np.ones_like(p4.tp), ctx4.system,
                               ctx4.calib.coll_eff)
    assert replicated_gather_fwd(lk, ctx4, p4, t)[0] == pytest.approx(want[0], rel=1e-12)
    assert want[0] > 0.0


def test_tp4_valid_for_dsa_but_heads_still_rule():
    r = _run(4)
    assert check(plans_from_spec(r.plan, 64, r.arch), r.arch, 64, S, 64, only={2, 13})[0] == 0
    # tp must still divide the 64 main attention heads: tp 128 does not (code 2: tp / heads); since qa16 a
    # stated tp the shape rules out is refused when the spec is read, with rule 2's text (validity.shape_refusal)
    rule2 = re.escape(f"plan.tp: {REASONS[2][1]}")
    with pytest.raises(TrainsimError, match=rule2):
        parse_run({"model": "glm-5", "system": "hgx-h800", "chips": 128,
                   "training": {"seq_len": S, "global_batch_seqs": 64, "precision": "bf16"},
                   "plan": {"tp": 128, "pp": 1, "ep": 1, "micro_batch": 1}})
    # a model without a replicated core keeps the kv-heads rule: Llama-3.1-8B has 8 KV heads, tp 16 fails
    with pytest.raises(TrainsimError, match=rule2):
        parse_run({"model": "llama-3.1-8b", "system": "hgx-h800", "chips": 16,
                   "training": {"seq_len": S, "global_batch_seqs": 16, "precision": "bf16"},
                   "plan": {"tp": 16, "pp": 1, "micro_batch": 1}})


def test_step_breakdown_still_sums_with_the_forward_only_gather():
    """The indexer's input gather runs in the forward only (decoder layers and the MTP layer): it is part of the
    step and of its ``tp_comm`` term, and the causes still add up to the step."""
    from trainsim.perf.step import evaluate
    r = _run(4)
    assert r.arch.mtp and any(c.tp_replicated for lk in r.arch.mtp for c in lk.attention)
    res = evaluate(context(r), plans_from_spec(r.plan, 64, r.arch))
    assert sum(v[0] for v in res.breakdown.values()) == pytest.approx(res.step_time_s[0], rel=1e-12)
    assert res.breakdown["tp_comm"][0] > 0.0
