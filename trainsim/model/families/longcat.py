"""LongCat-Flash (LongcatFlashConfig; arXiv 2509.01322) and LongCat-Flash-Lite (``longcat_flash_ngram``).

One of the ``num_layers`` layers holds two MLA attentions, two dense SwiGLU MLPs (``ffn_hidden_size``) and one
shortcut-connected MoE (transformers ``LongcatFlashDecoderLayer``; four RMSNorms). The router scores
``n_routed_experts + zero_expert_num`` candidates (classifier and ``e_score_correction_bias`` both have that many
rows); zero-computation (identity) experts cost nothing, so a token uses between ``max(0, top_k - zero)`` and
``min(top_k, experts)`` real experts. The average is set during training by a PID-controlled router bias, not by
the config: trainsim takes ``expected_active_experts`` when the config carries it (a trainsim key), else the
uniform-routing value ``top_k x experts / (experts + zero)`` (8 of 12 for LongCat-Flash; the report's 27B average
corresponds to about 7.9).

LongCat-Flash-Lite adds N-gram embeddings (modelling_longcat_ngram.py, as described in llama.cpp's port):
``emb_split_num x (emb_neighbor_num - 1)`` tables, table i has ``ratio x vocab + 2 i + 1`` rows of
``hidden / tables`` channels and a projection to ``hidden``. They are looked up, so they are counted with the
embedding (their projections, 9.4M parameters, too).
"""
from __future__ import annotations

from typing import Any

from ..arch import Arch, LayerKind
from ..blocks import dense_mlp, mla_attention, moe_block, scaled
from .cfg import Cfg
from .common import display_name

DEFAULTS: dict[str, dict[str, Any]] = {
    # LongcatFlashConfig
    "longcat_flash": dict(vocab_size=131072, hidden_size=6144, num_layers=28, num_attention_heads=64,
                          tie_word_embeddings=False, ffn_hidden_size=12288, q_lora_rank=1536, kv_lora_rank=512,
                          qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128, moe_topk=12,
                          n_routed_experts=512, zero_expert_num=256, expert_ffn_hidden_size=2048),
}
DEFAULTS["longcat_flash_ngram"] = dict(DEFAULTS["longcat_flash"], ngram_vocab_size_ratio=None,
                                       emb_neighbor_num=None, emb_split_num=None)


def ngram_embedding_params(vocab: int, hidden: int, ratio: float, neighbors: int, splits: int) -> int:
    """Parameters of the N-gram embedding tables and their projections (see the module docstring)."""
    tables = splits * (neighbors - 1)
    if tables <= 0:
        return 0
    dim = hidden // tables
    rows = int(ratio * vocab)
    return sum((rows + 2 * i + 1) * dim for i in range(tables)) + tables * dim * hidden


def longcat(c: Cfg) -> Arch:
    """LongCat-Flash as an :class:`Arch`: one layer kind with two MLA attentions, two dense MLPs and a MoE
    with zero experts (expected active experts per the module docstring)."""
    h = c.int("hidden_size")
    heads = c.int("num_attention_heads")
    top_k = c.int("moe_topk", "num_experts_per_tok")
    experts = c.int("n_routed_experts")
    zero = c.int("zero_expert_num", default=0)
    lo, hi = max(0, top_k - zero), min(top_k, experts)
    expected = c.get("expected_active_experts", default=None)
    expected = float(expected) if expected is not None else top_k * experts / (experts + zero)
    attn, core, norm = mla_attention(h, heads, c.opt_int("q_lora_rank"), c.int("kv_lora_rank"),
                                     c.int("qk_nope_head_dim"), c.int("qk_rope_head_dim"), c.int("v_head_dim"))
    ffn = c.int("ffn_hidden_size", "intermediate_size")
    moe_mats, info, router_vec = moe_block(h, experts, top_k, c.int("expert_ffn_hidden_size"), "swiglu",
                                           router_bias=True, zero_experts=zero, expected_active=expected,
                                           active_range=(float(lo), float(hi)))
    layer = LayerKind(name="2xmla+2xmlp+moe", n_layers=c.int("num_layers"),
                      matrices=tuple(scaled(attn, 2) + scaled(dense_mlp(h, ffn, "swiglu"), 2) + moe_mats),
                      attention=(core, core), vector_params=2 * norm + router_vec + 4 * h, moe=info,
                      ffn_act="swiglu", ffn_dim=2 * ffn)
    vocab = c.int("vocab_size")
    tied = c.bool("tie_word_embeddings", default=False)
    ngram = 0
    notes = ["expected real experts per token: "
             + (f"{expected:g} (expected_active_experts)" if c.has("expected_active_experts")
                else f"{expected:g} (uniform routing over real + zero experts)")]
    if c.has("ngram_vocab_size_ratio"):
        ngram = ngram_embedding_params(vocab, h, float(c.get("ngram_vocab_size_ratio")),
                                       c.int("emb_neighbor_num"), c.int("emb_split_num"))
        notes.append(f"N-gram embedding tables: {ngram} parameters (looked up, counted as embedding)")
    return Arch(name=display_name(c), family=c.family, hidden=h, vocab=vocab, layers=(layer,), tied_embeddings=tied,
                embedding_params=vocab * h, extra_embedding_params=ngram, head_params=0 if tied else vocab * h,
                final_params=h, notes=tuple(notes))


BUILDERS = {"longcat_flash": longcat, "longcat_flash_ngram": longcat}
