"""The one placement rule for weights and the one routing statistic, against hand derivations."""
from __future__ import annotations

import pytest

from trainsim.model.inline import InlineModel, build_inline
from trainsim.parallel.sharding import layer_params
from trainsim.perf.routing import expected_distinct


def test_gpt_layer_is_all_tensor_parallel():
    # GPT layer without biases: QKV 3h^2 + O h^2 + MLP 8h^2 = 12 h^2, all split by tp; norms 2 x 2h (LayerNorm)
    h = 1024
    a = build_inline(InlineModel(layers=2, hidden=h, heads=16, ffn=4 * h, vocab=1000, ffn_act="gelu"))
    lp = layer_params(a.layers[0])
    assert (lp.tp_split, lp.replicated, lp.router, lp.expert, lp.vector) == (12 * h * h, 0, 0, 0, 4 * h)


def test_mla_moe_layer_placement():
    # DeepSeek-V3 MoE layer: q_a 7168x1536 and kv_a 7168x576 replicated (MLA down-projections);
    # router 7168 x 256; 256 experts of 3 x 7168 x 2048
    a = build_inline(InlineModel(layers=4, hidden=7168, heads=128, ffn=18432, ffn_act="swiglu", vocab=129280,
                                 moe=dict(experts=256, top_k=8, shared_experts=1, expert_ffn=2048, dense_layers=1),
                                 mla=dict(q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128,
                                          qk_rope_head_dim=64, v_head_dim=128)))
    lp = layer_params(a.layers[1])
    assert lp.replicated == 7168 * 1536 + 7168 * 576
    assert lp.router == 7168 * 256
    assert lp.expert == 256 * 3 * 7168 * 2048


def test_balls_in_bins():
    # 8 picks over 8 domains: 8 (1 - (7/8)^8) = 5.2511 distinct domains (one token's top-8 over 8 nodes)
    assert float(expected_distinct(8, 1.0, 8)) == pytest.approx(8 * (1 - (7 / 8) ** 8))
    assert float(expected_distinct(8, 1.0, 8)) == pytest.approx(5.2511, abs=1e-4)
    # batch 1, top-8 of 256 experts: exactly 8 distinct experts
    assert float(expected_distinct(1, 8, 256)) == pytest.approx(8.0)
