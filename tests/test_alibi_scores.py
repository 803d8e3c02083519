"""ALiBi positions (Press et al. 2022) in unfused attention: no rotary, and the bias added to the materialised scores
through the score GEMM's C input (BLOOM's Megatron-DeepSpeed: ``torch.baddbmm(alibi, q, k^T, beta=1.0)``), against
hand derivations written here (BloombergGPT's layer: 40 heads of 192 at 2,048 tokens, A100 40GB)."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from trainsim.api import parse_run
from trainsim.model.hf import import_hf_config
from trainsim.perf.compute import attention_bwd, attention_fwd, elementwise_fwd, unfused_score_bytes_per_token
from trainsim.plan_estimate import context, plans_from_spec

BB = "validation/runs/bloomberggpt-50b-512.yaml"


def _bb(positions: str, attention: str = "unfused"):
    spec = yaml.safe_load(open(BB).read())
    spec["model"]["position_embeddings"] = positions
    if positions == "learned":
        spec["model"]["max_positions"] = 2048   # a learned table: rows needed, no rotary either
    spec["training"]["attention"] = attention
    spec["plan"].update(tp=1, pp=1, cp=1, zero=3, recompute="full", micro_batch=4, schedule="1f1b")
    run = parse_run(spec)
    return run, context(run), plans_from_spec(run.plan, run.chips, run.arch)


def _one(x) -> float:
    return float(np.ravel(x)[0])


def test_alibi_core_has_a_score_bias_and_no_rotary():
    run, _, _ = _bb("alibi")
    core = run.arch.layers[0].attention[0]
    assert core.score_bias and core.rotated_qk_elems_per_token == 0
    rope = _bb("rope")[0].arch.layers[0].attention[0]
    assert not rope.score_bias and rope.rotated_qk_elems_per_token == 2 * 7680


def test_score_bytes_by_hand():
    # forward: score written 2, fused scale-mask-softmax 4, dropout 5, read by A V 2 = 13 per head, query and key,
    # plus ALiBi's bias written into the baddbmm output (2) and read back as C (2) = 17; backward 19 either way
    # (the bias takes no gradient). Per token: bytes x 40 heads x 2,048 keys
    lk_alibi = _bb("alibi")[0].arch.layers[0]
    lk_plain = _bb("learned")[0].arch.layers[0]
    assert unfused_score_bytes_per_token(lk_alibi, 2048) == 17 * 40 * 2048
    assert unfused_score_bytes_per_token(lk_plain, 2048) == 13 * 40 * 2048
    assert unfused_score_bytes_per_token(lk_alibi, 2048, backward=True) == 19 * 40 * 2048
    assert unfused_score_bytes_per_token(lk_plain, 2048, backward=True) == 19 * 40 * 2048


def test_bias_time_per_layer_by_hand():
    # 4 bytes x 40 heads x 2,048 x 2,048 scores x 4 sequences = 2.68 GB per layer and micro-batch, over the A100
    # 40GB's 1.555 TB/s x 0.8 (mem_eff): 2.16 ms more in the forward, nothing more in the backward
    _, ca, p = _bb("alibi")
    _, cl, _ = _bb("learned")
    tokens = 2048 * 4.0
    lk_a, lk_l = ca.arch.layers[0], cl.arch.layers[0]
    hand = 4 * 40 * 2048 * 2048 * 4 / (1.555e12 * 0.8)
    assert hand == pytest.approx(2.157e-3, rel=1e-3)
    assert _one(attention_fwd(lk_a, ca, p, tokens) - attention_fwd(lk_l, cl, p, tokens)) == pytest.approx(hand, rel=1e-9)
    assert _one(attention_bwd(lk_a, ca, p, tokens)) == pytest.approx(_one(attention_bwd(lk_l, cl, p, tokens)), rel=1e-12)
    # no rotary either way: the same element-wise bytes as learned positions
    assert _one(elementwise_fwd(lk_a, ca, p, tokens)) == pytest.approx(_one(elementwise_fwd(lk_l, cl, p, tokens)),
                                                                         rel=1e-12)


def test_flash_attention_takes_no_bias_bytes():
    # a fused kernel adds the bias in registers (FlashAttention 2.4's alibi_slopes): no s x s tensor, no bytes
    _, ca, p = _bb("alibi", "flash2")
    _, cl, _ = _bb("learned", "flash2")
    tokens = 2048 * 4.0
    assert _one(attention_fwd(ca.arch.layers[0], ca, p, tokens)) == pytest.approx(
        _one(attention_fwd(cl.arch.layers[0], cl, p, tokens)), rel=1e-12)


def test_hf_configs_with_alibi():
    bloom = import_hf_config(dict(model_type="bloom", hidden_size=14336, n_layer=70, n_head=112, vocab_size=250880))
    assert all(c.score_bias for lk in bloom.layers for c in lk.attention)
    falcon = dict(model_type="falcon", hidden_size=4544, num_hidden_layers=32, num_attention_heads=71,
                  vocab_size=65024, multi_query=True, parallel_attn=True)
    assert not import_hf_config(falcon).layers[0].attention[0].score_bias
    assert import_hf_config({**falcon, "alibi": True}).layers[0].attention[0].score_bias


def test_alibi_with_mla_is_one_line_input_error():
    # MLA's decoupled RoPE rotates qk_rope_head_dim of every head (DeepSeek-V2 sec. 2.1.3): an inline MLA model with
    # ALiBi positions would otherwise be priced as RoPE without a word
    from trainsim.errors import TrainsimError
    spec = yaml.safe_load(open(BB).read())
    spec["model"]["mla"] = dict(kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128)
    with pytest.raises(TrainsimError) as e:
        parse_run(spec)
    assert "position_embeddings" in str(e.value) and "mla" in str(e.value) and "\n" not in str(e.value)
