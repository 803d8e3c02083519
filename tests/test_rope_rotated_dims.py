"""RoPE is charged on the q / k elements a model rotates, not on every q and k element.

Hand derivations from each family's published shapes (the catalog's config.json values):
* MLA (DeepSeek-V2 sec. 2.1.3, decoupled RoPE): 128 heads x qk_rope_head_dim 64 query elements + ONE shared
  64-dim rope key per token = 8,256 rotated (the old full charge: (128 + 128) x 192 = 49,152). Megatron's fused
  MLA rope kernels move more than that: q rotated in place (read + write 128 x 64 BF16: 32,768 B) and the KV split
  kernel (reads kv 128 x (128 + 128) and the 64 rope key, writes key 128 x (128 + 64) and value 128 x 128:
  2 x (32,832 + 40,960) = 147,584 B): 180,352 B per token.
* Partial rotary (GLM-4.5, partial_rotary_factor 0.5 of head_dim 128): (96 + 8) x 64 = 6,656.
* Qwen3-Next: full-attention layers rotate 0.25 x 256 = 64 of (16 + 2) heads = 1,152; Gated DeltaNet layers: 0.
* Llama 4 NoPE layers (no_rope_layer_interval 4: layers 4, 8, ... rotate nothing); RoPE layers (40 + 8) x 128.
* DeepSeek-V4-Flash (64 heads, head_dim 512, rope 64, one KV head): query + inverse output rotation
  2 x 64 x 64 + shared key 64 = 8,256; CSA compressed keys 64 / 4 = 16; indexer 64 heads x 64 + 16 = 4,112;
  HCA compressed keys 64 / 128 = 0.5.
* A config that says nothing rotates everything (Llama-3.1-8B: (32 + 8) x 128 = 5,120).
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from trainsim.errors import TrainsimError
from trainsim.model.hf import import_hf_config
from trainsim.model.load import resolve_model
from trainsim.perf.compute import elementwise_bytes_per_token, rope_bytes_per_token


def _rotated(arch, kind_name=None):
    return [[c.rotated_qk_elems_per_token for c in lk.attention] for lk in arch.layers
            if kind_name is None or lk.name == kind_name]


def test_mla_rotates_rope_dims_of_each_query_head_and_one_shared_key():
    a = resolve_model("deepseek-v3")
    for lk in a.layers:
        assert [c.rotated_qk_elems_per_token for c in lk.attention] == [128 * 64 + 64]
        assert rope_bytes_per_token(lk) == 32768 + 2 * (128 * 256 + 64) + 2 * (128 * 192 + 128 * 128)
    # the fused elementwise total differs from the old every-element charge 4 x 49,152 by exactly that much
    lk = a.layers[0]
    old = replace(lk, attention=tuple(replace(c, rope_q_elems=None, rope_k_elems=None, rope_copy_bytes=0.0)
                                      for c in lk.attention))
    diff = elementwise_bytes_per_token(old, a.hidden, 0.0) - elementwise_bytes_per_token(lk, a.hidden, 0.0)
    assert diff == pytest.approx(4.0 * 49152 - 180352)


def test_eager_rope_bytes_apply_to_rotated_elements_only():
    lk = resolve_model("deepseek-v3").layers[0]
    assert rope_bytes_per_token(lk, 20.0) - rope_bytes_per_token(lk, 4.0) == 16.0 * 8256


def test_partial_rotary_factor_glm45():
    a = resolve_model("glm-4.5")
    assert all(r == [(96 + 8) * 64] for r in _rotated(a))


def test_qwen3_next_partial_rotary_and_no_rope_in_gated_deltanet():
    a = resolve_model("qwen3-next-80b-a3b")
    by_kind = {lk.attention[0].kind: lk.attention[0].rotated_qk_elems_per_token for lk in a.layers}
    assert by_kind == {"linear": 0, "full": (16 + 2) * 64}


def test_llama4_nope_layers_rotate_nothing():
    a = resolve_model("llama-4-scout")
    rot = [c.rotated_qk_elems_per_token for lk in a.layers for _ in range(lk.n_layers) for c in lk.attention]
    assert sorted(set(rot)) == [0, (40 + 8) * 128]
    assert rot.count(0) * 4 == 48   # one NoPE layer in four (no_rope_layer_interval 4)


def test_deepseek_v4_rope_on_64_of_512_one_kv_head():
    a = resolve_model("deepseek-v4-flash")
    def by(kind):
        return {c.rotated_qk_elems_per_token for lk in a.layers for c in lk.attention if c.kind == kind}
    assert by("sliding") == {2 * 64 * 64 + 64}
    assert by("sparse") == {64 / 4}
    assert by("full") == {64 * 64 + 16, 0.5}   # CSA indexer, HCA compressed keys



def test_config_silent_on_rotary_rotates_every_dim():
    a = resolve_model("llama-3.1-8b")
    assert all(r == [(32 + 8) * 128] for r in _rotated(a))


def _neox(**extra):
    return {"model_type": "gpt_neox", "vocab_size": 1024, "hidden_size": 512, "num_hidden_layers": 2,
            "num_attention_heads": 8, "intermediate_size": 2048, **extra}


def test_gpt_neox_rotary_pct_default_and_stated():
    # GPTNeoXConfig default rotary_pct 0.25: 0.25 x 64 of (8 + 8) heads
    assert _rotated(import_hf_config(_neox())) == [[16 * 16]]
    assert _rotated(import_hf_config(_neox(rotary_pct=1.0))) == [[16 * 64]]


def test_learned_and_alibi_positions_rotate_nothing():
    gpt2 = {"model_type": "gpt2", "vocab_size": 1024, "n_embd": 256, "n_layer": 2, "n_head": 4,
            "n_positions": 512}
    assert _rotated(import_hf_config(gpt2)) == [[0]]
    bloom = {"model_type": "bloom", "vocab_size": 1024, "hidden_size": 256, "n_layer": 2, "n_head": 4}
    assert _rotated(import_hf_config(bloom)) == [[0]]


def test_partial_rotary_factor_out_of_range_is_an_error():
    cfg = {"model_type": "llama", "vocab_size": 1024, "hidden_size": 512, "num_hidden_layers": 2,
           "num_attention_heads": 8, "intermediate_size": 1024, "partial_rotary_factor": 1.5}
    with pytest.raises(TrainsimError, match="partial_rotary_factor"):
        import_hf_config(cfg)


def test_dsa_indexer_rotates_rope_dims_and_concatenates_whole_heads():
    # DeepSeek-V3.2 indexer: 64 heads x index_head_dim 128, rope 64 of them on q and on the one key;
    # Megatron's torch.cat([x_pe, x_nope]) then reads and writes 65 x 128 elements
    a = resolve_model("deepseek-v3.2")
    idx = [c for c in a.layers[0].attention if c.v_head_dim == 0][0]
    assert idx.rotated_qk_elems_per_token == 65 * 64
    assert idx.rope_copy_bytes == 4 * 65 * 128
