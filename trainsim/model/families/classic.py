"""GPT-2-style decoders: LayerNorm with bias, fused QKV, biased projections, GELU MLP (2 matrices).

* gpt2 (GPT2Config; Radford et al. 2019, GPT-3 arXiv 2005.14165 uses the same blocks): learned positions
  (``n_positions`` x h), tied embeddings by default.
* gpt_neox (GPTNeoXConfig; Black et al. 2022, arXiv 2204.06745): rotary, parallel residual, untied head.
* bloom (BloomConfig; arXiv 2211.05100): ALiBi (no position parameters), a LayerNorm on the embeddings, tied.
* falcon (FalconConfig; arXiv 2311.16867): multi-query (7B) or grouped KV with ``new_decoder_architecture``
  (40B/180B, two LayerNorms per parallel block), biases only with ``bias``, tied.
"""
from __future__ import annotations

from typing import Any

from .cfg import Cfg
from .common import display_name, rotary_dim
from .spec import DecoderSpec, LayerType

DEFAULTS: dict[str, dict[str, Any]] = {
    "gpt2": dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12, n_inner=None,
                 tie_word_embeddings=True),
    "gpt_neox": dict(vocab_size=50432, hidden_size=6144, num_hidden_layers=44, num_attention_heads=64,
                     intermediate_size=24576, use_parallel_residual=True, attention_bias=True,
                     tie_word_embeddings=False, rotary_pct=0.25),
    "bloom": dict(vocab_size=250880, hidden_size=64, n_layer=2, n_head=8, tie_word_embeddings=True),
    "falcon": dict(vocab_size=65024, hidden_size=4544, num_hidden_layers=32, num_attention_heads=71,
                   num_kv_heads=None, new_decoder_architecture=False, multi_query=True, parallel_attn=True,
                   bias=False, ffn_hidden_size=None, num_ln_in_parallel_attn=None, alibi=False,
                   tie_word_embeddings=True),
}


def _spec(c: Cfg, hidden: int, layers: int, heads: int, kv: int, ffn: int, *, bias: bool, parallel: bool,
          norms: int, positions: int = 0, extra_final: int = 0, rotary: int | None = None,
          alibi: bool = False) -> DecoderSpec:
    return DecoderSpec(name=display_name(c), family=c.family, hidden=hidden, vocab=c.int("vocab_size"),
                       rotary_dim=rotary, alibi=alibi, layers=[LayerType()] * layers, heads=heads, kv_heads=kv,
                       head_dim=hidden // heads,
                       tied=c.bool("tie_word_embeddings", default=True), fused_qkv=True, qkv_bias=bias,
                       o_bias=bias, mlp_bias=bias, act="gelu", ffn=ffn, norm_width=2, norms_per_layer=norms,
                       parallel_block=parallel, learned_positions=positions, extra_final_params=extra_final)


def gpt2(c: Cfg) -> DecoderSpec:
    """GPT-2 (GPT2Config): ``n_embd``, ``n_head``, FFN ``n_inner`` or 4h, learned positions, biases."""
    h = c.int("n_embd", "hidden_size")
    heads = c.int("n_head", "num_attention_heads")
    ffn = c.opt_int("n_inner") or 4 * h
    return _spec(c, h, c.int("n_layer", "num_hidden_layers"), heads, heads, ffn, bias=True, parallel=False,
                 norms=2, positions=c.int("n_positions", "max_position_embeddings"), rotary=0)


def gpt_neox(c: Cfg) -> DecoderSpec:
    """GPT-NeoX (GPTNeoXConfig): rotary, ``use_parallel_residual``, biases unless ``attention_bias`` false."""
    h = c.int("hidden_size")
    heads = c.int("num_attention_heads")
    return _spec(c, h, c.int("num_hidden_layers"), heads, heads, c.int("intermediate_size"),
                 bias=c.bool("attention_bias", default=True), parallel=c.bool("use_parallel_residual"), norms=2,
                 rotary=rotary_dim(c, h // heads))


def bloom(c: Cfg) -> DecoderSpec:
    """BLOOM (BloomConfig): FFN 4h, biases, ALiBi, plus the embedding LayerNorm (2h parameters)."""
    h = c.int("hidden_size", "n_embed")
    heads = c.int("n_head", "num_attention_heads")
    return _spec(c, h, c.int("n_layer", "num_hidden_layers"), heads, heads, 4 * h, bias=True, parallel=False,
                 norms=2, extra_final=2 * h, rotary=0, alibi=True)


def falcon(c: Cfg) -> DecoderSpec:
    """Falcon (FalconConfig): multi-query or grouped KV (``new_decoder_architecture``), parallel attention
    and MLP, FFN ``ffn_hidden_size`` or 4h."""
    h = c.int("hidden_size", "n_embed")
    heads = c.int("num_attention_heads", "n_head")
    new_arch = c.bool("new_decoder_architecture")
    if new_arch:
        kv = c.int("num_kv_heads", "n_head_kv", default=heads) or heads
    else:
        kv = 1 if c.bool("multi_query") else heads
    parallel = c.bool("parallel_attn")
    if new_arch:
        norms = c.opt_int("num_ln_in_parallel_attn") or 2
    else:
        norms = 1 if parallel else 2
    s = _spec(c, h, c.int("num_hidden_layers", "n_layer"), heads, kv, c.opt_int("ffn_hidden_size") or 4 * h,
              bias=c.bool("bias"), parallel=parallel or new_arch, norms=norms,
              rotary=0 if c.bool("alibi") else None, alibi=c.bool("alibi"))
    if c.bool("alibi"):
        s.notes.append("ALiBi position biases (no parameters)")
    return s


READERS = {"gpt2": gpt2, "gpt_neox": gpt_neox, "bloom": bloom, "falcon": falcon}
