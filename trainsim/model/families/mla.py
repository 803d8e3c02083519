"""DeepSeek-style decoders: multi-head latent attention (MLA) and fine-grained MoE with shared experts.

Families: deepseek_v2 (DeepseekV2Config; arXiv 2405.04434), deepseek_v3 and kimi_k2 (DeepseekV3Config; Kimi K2
ships the DeepSeek-V3 architecture, arXiv 2507.20534), deepseek_v32 (V3 + DSA lightning indexer, DeepSeek-V3.2-Exp
report), glm_moe_dsa (GlmMoeDsaConfig, GLM-5: MLA + DSA), pangu_ultra_moe (Pangu Ultra MoE, arXiv 2505.04519:
DeepSeek-V3 shapes with sandwich norms, i.e. a norm before and after each sub-layer).

MoE layers: ``i >= first_k_dense_replace`` and ``i % moe_layer_freq == 0`` (DeepseekV2/V3 modelling). Routers of
V3-style models carry ``e_score_correction_bias`` (aux-loss-free balancing, arXiv 2412.19437 sec. 2.1.2); V2's
greedy / group-limited routers do not.
"""
from __future__ import annotations

from typing import Any

from dataclasses import replace

from .cfg import Cfg
from .common import display_name, layer_types, mtp_count
from .spec import DecoderSpec, IndexerSpec, MLASpec, MoESpec, moe_pattern

_V3 = dict(vocab_size=129280, hidden_size=7168, intermediate_size=18432, moe_intermediate_size=2048,
           num_hidden_layers=61, num_attention_heads=128, num_key_value_heads=128, n_shared_experts=1,
           n_routed_experts=256, kv_lora_rank=512, q_lora_rank=1536, qk_rope_head_dim=64, v_head_dim=128,
           qk_nope_head_dim=128, num_experts_per_tok=8, first_k_dense_replace=3, moe_layer_freq=1,
           tie_word_embeddings=False, num_nextn_predict_layers=0, topk_method="noaux_tc")

DEFAULTS: dict[str, dict[str, Any]] = {
    # DeepseekV2Config
    "deepseek_v2": dict(vocab_size=102400, hidden_size=4096, intermediate_size=11008, moe_intermediate_size=1407,
                        num_hidden_layers=30, num_attention_heads=32, num_key_value_heads=32, n_shared_experts=None,
                        n_routed_experts=None, kv_lora_rank=512, q_lora_rank=1536, qk_rope_head_dim=64,
                        v_head_dim=128, qk_nope_head_dim=128, topk_method="greedy", num_experts_per_tok=None,
                        moe_layer_freq=1, first_k_dense_replace=0, tie_word_embeddings=False,
                        num_nextn_predict_layers=0),
    # DeepseekV3Config (Kimi K2's remote code reuses it)
    "deepseek_v3": _V3,
    "kimi_k2": _V3,
    # DeepseekV32Config: V3 + indexer (64 heads x 128, top-2048)
    "deepseek_v32": dict(_V3, index_n_heads=64, index_head_dim=128, index_topk=2048),
    # GlmMoeDsaConfig (GLM-5)
    "glm_moe_dsa": dict(vocab_size=154880, hidden_size=6144, intermediate_size=12288, moe_intermediate_size=2048,
                        num_hidden_layers=78, num_attention_heads=64, num_key_value_heads=64, n_shared_experts=1,
                        n_routed_experts=256, kv_lora_rank=512, q_lora_rank=2048, qk_rope_head_dim=64,
                        v_head_dim=256, qk_nope_head_dim=192, num_experts_per_tok=8, first_k_dense_replace=3,
                        moe_layer_freq=1, tie_word_embeddings=False, index_topk=2048, index_head_dim=128,
                        index_n_heads=32, num_nextn_predict_layers=0, topk_method="noaux_tc"),
    # openPangu-Ultra-MoE-718B (remote code PanguUltraMoEConfig; DeepSeek-V3 keys)
    "pangu_ultra_moe": dict(_V3, topk_method="noaux_tc"),
}


def deepseek(c: Cfg) -> DecoderSpec:
    """DeepSeek-V2/V3-style decoder: MLA attention, MoE layers from ``mlp_layer_types`` or
    ``first_k_dense_replace`` / ``moe_layer_freq``."""
    hidden = c.int("hidden_size")
    heads = c.int("num_attention_heads")
    n = c.int("num_hidden_layers")
    experts = c.opt_int("n_routed_experts")
    if (mlp_types := c.list("mlp_layer_types")) is not None:
        moe = [t != "dense" for t in mlp_types]
    elif experts:
        moe = moe_pattern(n, first_dense=c.int("first_k_dense_replace", default=0),
                          every=c.int("moe_layer_freq", default=1) or 1)
    else:
        moe = [False] * n
    mla = MLASpec(q_lora_rank=c.opt_int("q_lora_rank"), kv_lora_rank=c.int("kv_lora_rank"),
                  qk_nope_head_dim=c.int("qk_nope_head_dim"), qk_rope_head_dim=c.int("qk_rope_head_dim"),
                  v_head_dim=c.int("v_head_dim"))
    s = DecoderSpec(name=display_name(c), family=c.family, hidden=hidden, vocab=c.int("vocab_size"),
                    layers=layer_types(c, ["full"] * n, moe, None), heads=heads, kv_heads=heads,
                    head_dim=mla.qk_nope_head_dim + mla.qk_rope_head_dim, tied=c.bool("tie_word_embeddings"),
                    mla=mla, ffn=c.opt_int("intermediate_size") or 0,
                    mtp_layers=mtp_count(c, "num_nextn_predict_layers"))
    if any(moe):
        eff = c.int("moe_intermediate_size")
        n_shared = c.opt_int("n_shared_experts") or 0
        s.moe = MoESpec(experts=experts or 0, top_k=c.int("num_experts_per_tok"), expert_ffn=eff,
                        shared_experts=n_shared, shared_ffn=n_shared * eff,
                        score_correction_bias=c.family != "deepseek_v2" or c.get("topk_method") == "noaux_tc",
                        groups=c.opt_int("n_group") or 1, top_groups=c.opt_int("topk_group") or 1)
    if c.family in ("deepseek_v32", "glm_moe_dsa"):
        s.indexer = IndexerSpec(heads=c.int("index_n_heads"), head_dim=c.int("index_head_dim"),
                                topk=c.int("index_topk"))
        shared = [t == "shared" for t in (c.list("indexer_types") or [])]
        if any(shared):  # GLM-5.2/5.3: a 'shared' layer reuses the previous top-k and has no indexer weights
            if len(shared) != n:
                raise c.error(f"indexer_types has {len(shared)} entries for {n} layers", "indexer_types")
            s.layers = [replace(lt, shared_index=sh) for lt, sh in zip(s.layers, shared)]
    if c.family == "pangu_ultra_moe" and c.bool("sandwich_norm", default=True):
        s.norms_per_layer = 4
    return s


READERS = {f: deepseek for f in DEFAULTS}
