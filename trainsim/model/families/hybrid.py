"""Hybrid linear / softmax attention decoders.

* qwen3_next (Qwen3NextConfig) and qwen3_5_moe (Qwen3_5MoeTextConfig, nested in ``text_config``): three Gated
  DeltaNet layers then one gated full-attention layer (``full_attention_interval`` 4); the full-attention q_proj
  also emits a sigmoid output gate (2 x heads x head_dim) and has per-head q/k RMSNorm; every layer is MoE with a
  gated shared expert. The released checkpoints carry one MTP layer (``mtp.*`` weights; Qwen3.5 declares
  ``mtp_num_hidden_layers``), built like DeepSeek's (fc 2h -> h, two input norms, one full-attention MoE layer).
* minimax / minimax_m1 (MiniMaxConfig; MiniMax-01, arXiv 2501.08313; MiniMax-M1, arXiv 2506.13585): lightning
  attention layers with a softmax-attention layer every 8th (``attn_type_list`` 0 = linear, 1 = softmax, or
  ``layer_types``), MoE in every layer.
"""
from __future__ import annotations

from typing import Any

from .cfg import Cfg
from .common import core, layer_types, mtp_count
from .spec import DecoderSpec, LinearSpec, MoESpec, attention_types, moe_pattern

_QWEN_LINEAR = dict(head_dim=256, linear_conv_kernel_dim=4, linear_key_head_dim=128, linear_value_head_dim=128,
                    linear_num_key_heads=16, linear_num_value_heads=32, full_attention_interval=4,
                    attention_bias=False, tie_word_embeddings=False, mtp_num_hidden_layers=1)

DEFAULTS: dict[str, dict[str, Any]] = {
    # Qwen3NextConfig
    "qwen3_next": dict(_QWEN_LINEAR, vocab_size=151936, hidden_size=2048, intermediate_size=5632,
                       num_hidden_layers=48, num_attention_heads=16, num_key_value_heads=2, decoder_sparse_step=1,
                       moe_intermediate_size=512, shared_expert_intermediate_size=512, num_experts_per_tok=10,
                       num_experts=512, mlp_only_layers=None),
    # Qwen3_5MoeTextConfig
    "qwen3_5_moe": dict(_QWEN_LINEAR, vocab_size=248320, hidden_size=2048, num_hidden_layers=40,
                        num_attention_heads=16, num_key_value_heads=2, moe_intermediate_size=512,
                        shared_expert_intermediate_size=512, num_experts_per_tok=8, num_experts=256,
                        attn_output_gate=True),
    # MiniMaxConfig (MiniMax-Text-01-hf); M1 configs use the same keys plus attn_type_list
    "minimax": dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                    num_attention_heads=32, num_key_value_heads=8, head_dim=None, num_experts_per_tok=2,
                    num_local_experts=8, tie_word_embeddings=False, shared_intermediate_size=0),
}
DEFAULTS["minimax_m1"] = DEFAULTS["minimax"]


def qwen_linear(c: Cfg) -> DecoderSpec:
    """Qwen3-Next / Qwen3.5-MoE: Gated DeltaNet layers with a gated full-attention layer every
    ``full_attention_interval`` layers, MoE per ``decoder_sparse_step``."""
    s = core(c)
    n = len(s.layers)
    every = c.int("full_attention_interval", default=4) or 4
    default = ["linear" if (i + 1) % every else "full" for i in range(n)]
    attn = attention_types(c.list("layer_types"), default, c)
    if c.int("num_experts", default=0):
        step = c.int("decoder_sparse_step", default=1) or 1
        moe = moe_pattern(n, every=step, offset=1, dense_layers=c.list("mlp_only_layers") or [])
    else:
        moe = [False] * n
    s.layers = layer_types(c, attn, moe, None)
    bias = c.bool("attention_bias", default=False)
    s.qkv_bias = s.o_bias = bias
    s.q_gate = c.bool("attn_output_gate", default=True)
    s.qk_norm_params = 2 * s.head_dim
    s.linear = LinearSpec("gated_deltanet", k_heads=c.int("linear_num_key_heads"),
                          v_heads=c.int("linear_num_value_heads"), k_dim=c.int("linear_key_head_dim"),
                          v_dim=c.int("linear_value_head_dim"), conv_kernel=c.int("linear_conv_kernel_dim"))
    shared = c.int("shared_expert_intermediate_size", default=0)
    s.moe = MoESpec(experts=c.int("num_experts"), top_k=c.int("num_experts_per_tok"),
                    expert_ffn=c.int("moe_intermediate_size"), shared_experts=1 if shared else 0,
                    shared_ffn=shared, shared_gate=bool(shared))
    s.mtp_layers = mtp_count(c, "mtp_num_hidden_layers", "num_nextn_predict_layers")
    return s


def minimax(c: Cfg) -> DecoderSpec:
    """MiniMax-01 / M1: lightning and softmax attention per ``attn_type_list`` (or ``layer_types``), MoE in
    every layer."""
    s = core(c)
    n = len(s.layers)
    types = c.list("attn_type_list")
    if c.list("layer_types") is None and types is not None:
        attn = ["full" if t else "linear" for t in types]
    else:  # MiniMaxConfig default: alternate full / linear
        attn = attention_types(c.list("layer_types"), ["full" if i % 2 == 0 else "linear" for i in range(n)], c)
    s.layers = layer_types(c, attn, [True] * n, c.opt_int("sliding_window", default=None))
    s.linear = LinearSpec("lightning")
    shared = c.int("shared_intermediate_size", default=0)
    s.moe = MoESpec(experts=c.int("num_local_experts"), top_k=c.int("num_experts_per_tok"),
                    expert_ffn=c.int("intermediate_size"), shared_experts=1 if shared else 0, shared_ffn=shared)
    return s


READERS = {"qwen3_next": qwen_linear, "qwen3_5_moe": qwen_linear, "minimax": minimax, "minimax_m1": minimax}
