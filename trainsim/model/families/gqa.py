"""Llama-descended decoders with grouped-query attention: dense and MoE.

One reader per family; each starts from :func:`~.common.core` (the Llama keys) and sets what its ``transformers``
modelling code adds. Defaults are those of the family's ``transformers`` configuration class (named in each
``DEFAULTS`` entry); what a config does not say (biases, QK-norm shapes, router biases) comes from the modelling
code, as listed in ../shared/data/models.md "What the configs do not say".
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from .cfg import Cfg
from .common import core, layer_types, mtp_count, sliding_or_full
from .spec import DecoderSpec, MoESpec, moe_pattern

DEFAULTS: dict[str, dict[str, Any]] = {
    # LlamaConfig
    "llama": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=None, head_dim=None, attention_bias=False,
                  mlp_bias=False, tie_word_embeddings=False),
    # MistralConfig (sliding_window 4096 on every layer when set)
    "mistral": dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                    num_attention_heads=32, num_key_value_heads=8, head_dim=None, sliding_window=4096,
                    tie_word_embeddings=False),
    # MixtralConfig
    "mixtral": dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                    num_attention_heads=32, num_key_value_heads=8, head_dim=None, sliding_window=None,
                    num_local_experts=8, num_experts_per_tok=2, tie_word_embeddings=False),
    # Qwen2Config (q/k/v always biased in Qwen2Attention)
    "qwen2": dict(vocab_size=151936, hidden_size=4096, intermediate_size=22016, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=32, tie_word_embeddings=False,
                  use_sliding_window=False, sliding_window=4096, max_window_layers=28),
    # Qwen2MoeConfig
    "qwen2_moe": dict(vocab_size=151936, hidden_size=2048, intermediate_size=5632, num_hidden_layers=24,
                      num_attention_heads=16, num_key_value_heads=16, tie_word_embeddings=False,
                      use_sliding_window=False, sliding_window=4096, max_window_layers=28, decoder_sparse_step=1,
                      moe_intermediate_size=1408, shared_expert_intermediate_size=5632, num_experts_per_tok=4,
                      num_experts=60, mlp_only_layers=None, qkv_bias=True),
    # Qwen3Config (per-head RMSNorm on q and k)
    "qwen3": dict(vocab_size=151936, hidden_size=4096, intermediate_size=22016, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=32, head_dim=128, attention_bias=False,
                  tie_word_embeddings=False, use_sliding_window=False, sliding_window=4096, max_window_layers=28),
    # Qwen3MoeConfig
    "qwen3_moe": dict(vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=24,
                      num_attention_heads=32, num_key_value_heads=4, attention_bias=False,
                      tie_word_embeddings=False, use_sliding_window=False, sliding_window=4096,
                      max_window_layers=28, decoder_sparse_step=1, moe_intermediate_size=768,
                      num_experts_per_tok=8, num_experts=128, mlp_only_layers=None),
    # OlmoeConfig (q_norm over all query channels, k_norm over all key channels)
    "olmoe": dict(vocab_size=50304, hidden_size=2048, intermediate_size=2048, num_hidden_layers=16,
                  num_attention_heads=16, num_key_value_heads=None, num_experts=64, num_experts_per_tok=8,
                  attention_bias=False, tie_word_embeddings=False),
    # NemotronConfig (squared-ReLU MLP with 2 matrices, LayerNorm1P with weight and bias)
    "nemotron": dict(vocab_size=256000, hidden_size=6144, intermediate_size=24576, num_hidden_layers=32,
                     num_attention_heads=48, head_dim=None, num_key_value_heads=None, attention_bias=False,
                     mlp_bias=False, tie_word_embeddings=False),
    # MiniMaxM2Config (q_norm / k_norm over all heads; router e_score_correction_bias)
    "minimax_m2": dict(vocab_size=200064, hidden_size=3072, intermediate_size=1536, num_hidden_layers=62,
                       num_attention_heads=48, num_key_value_heads=8, head_dim=128, num_experts_per_tok=8,
                       num_local_experts=256, tie_word_embeddings=False, use_qk_norm=True,
                       qk_norm_type="per_layer", use_routing_bias=True, shared_intermediate_size=0),
    # GptOssConfig (q/k/v/o biases, per-head sinks, router and expert biases, alternating sliding/full)
    "gpt_oss": dict(num_hidden_layers=36, num_local_experts=128, vocab_size=201088, hidden_size=2880,
                    intermediate_size=2880, head_dim=64, num_attention_heads=64, num_key_value_heads=8,
                    sliding_window=128, tie_word_embeddings=False, num_experts_per_tok=4, attention_bias=True),
    # BailingMoeV2Config (inclusionAI remote code; Megatron-Bridge keeps a copy)
    "bailing_moe_v2": dict(vocab_size=30592, hidden_size=1024, intermediate_size=None, num_hidden_layers=24,
                           num_attention_heads=16, num_key_value_heads=0, use_qkv_bias=False, use_qk_norm=False,
                           use_bias=True, tie_word_embeddings=False, num_experts=16, num_shared_experts=0,
                           num_experts_per_tok=2, moe_intermediate_size=None, first_k_dense_replace=0,
                           head_dim=None, moe_router_enable_expert_bias=True, num_nextn_predict_layers=0),
    # Glm4MoeConfig (q/k/v biases from attention_bias, optional per-head QK-norm, router score-correction bias)
    "glm4_moe": dict(vocab_size=151552, hidden_size=4096, intermediate_size=10944, num_hidden_layers=46,
                     num_attention_heads=96, num_key_value_heads=8, head_dim=128, attention_bias=False,
                     moe_intermediate_size=1408, num_experts_per_tok=8, n_shared_experts=1, n_routed_experts=128,
                     first_k_dense_replace=1, use_qk_norm=False, tie_word_embeddings=False,
                     num_nextn_predict_layers=0),
    # Llama4TextConfig (L2 QK-norm without weights; chunked attention on RoPE layers, full on NoPE layers)
    "llama4_text": dict(vocab_size=202048, hidden_size=5120, intermediate_size=8192, intermediate_size_mlp=16384,
                        num_hidden_layers=48, num_attention_heads=40, num_key_value_heads=8, head_dim=128,
                        tie_word_embeddings=False, num_experts_per_tok=1, num_local_experts=16, moe_layers=None,
                        interleave_moe_layer_step=1, no_rope_layers=None, no_rope_layer_interval=4,
                        attention_chunk_size=8192, attention_bias=False),
    # DbrxConfig (attn_config / ffn_config sub-dicts: DbrxAttentionConfig, DbrxFFNConfig)
    "dbrx": dict(d_model=2048, n_heads=16, n_layers=24, vocab_size=32000, tie_word_embeddings=False),
    # PaLM 540B as written in models.yaml (arXiv 2204.02311 sec. 2: SwiGLU, parallel layers, multi-query
    # attention, shared input/output embeddings, no biases; one LayerNorm without bias per parallel block)
    "palm": dict(num_key_value_heads=1, head_dim=None, parallel_block=True, activation="swiglu", bias=False,
                 tie_word_embeddings=True),
}


DBRX_ATTN = {"kv_n_heads": 1}
DBRX_FFN = {"ffn_hidden_size": 3584, "moe_num_experts": 4, "moe_top_k": 1}


def _sliding_window_layers(c: Cfg, n: int) -> list[str]:
    """Qwen2/Qwen3 rule: with ``use_sliding_window``, layers from ``max_window_layers`` on slide."""
    if not c.bool("use_sliding_window", default=False) or c.get("sliding_window", default=None) is None:
        return ["full"] * n
    first = c.int("max_window_layers", default=n)
    return ["sliding" if i >= first else "full" for i in range(n)]


def _window(c: Cfg) -> int | None:
    return c.opt_int("sliding_window", default=None)


def _qwen_moe_pattern(c: Cfg, n: int) -> list[bool]:
    """Qwen2-MoE / Qwen3-MoE / Qwen3-Next: MoE unless in ``mlp_only_layers``, every ``decoder_sparse_step``."""
    if not c.int("num_experts", default=0):
        return [False] * n
    step = c.int("decoder_sparse_step", default=1) or 1
    return moe_pattern(n, every=step, offset=1, dense_layers=c.list("mlp_only_layers") or [])


def llama(c: Cfg) -> DecoderSpec:
    """LlamaForCausalLM: q/k/v/o biases from ``attention_bias``, MLP biases from ``mlp_bias``."""
    bias = c.bool("attention_bias", default=False)
    return core(c, qkv_bias=bias, o_bias=bias, mlp_bias=c.bool("mlp_bias", default=False))


def mistral(c: Cfg) -> DecoderSpec:
    """Mistral / Mixtral: every layer slides over ``sliding_window`` tokens when it is set."""
    s = core(c)
    window = _window(c)
    n = len(s.layers)
    moe = [c.family == "mixtral"] * n
    s.layers = layer_types(c, sliding_or_full(c, n, ["sliding" if window else "full"] * n), moe, window)
    if c.family == "mixtral":
        s.moe = MoESpec(experts=c.int("num_local_experts"), top_k=c.int("num_experts_per_tok"),
                        expert_ffn=c.int("intermediate_size"))
    return s


def qwen(c: Cfg) -> DecoderSpec:
    """Qwen2 / Qwen2-MoE / Qwen3 / Qwen3-MoE. Qwen2: q/k/v biases; Qwen3: per-head q/k RMSNorm (2 d);
    Qwen2-MoE: one shared expert with a sigmoid gate (Linear h -> 1)."""
    s = core(c)
    n = len(s.layers)
    qwen3 = c.family.startswith("qwen3")
    if qwen3:
        bias = c.bool("attention_bias", default=False)
        s.qkv_bias, s.o_bias, s.qk_norm_params = bias, bias, 2 * s.head_dim
    else:
        s.qkv_bias = c.bool("qkv_bias", default=True)
    is_moe = c.family.endswith("_moe")
    moe = _qwen_moe_pattern(c, n) if is_moe else [False] * n
    s.layers = layer_types(c, sliding_or_full(c, n, _sliding_window_layers(c, n)), moe, _window(c))
    if is_moe and any(moe):
        shared = c.int("shared_expert_intermediate_size", default=0) if not qwen3 else 0
        s.moe = MoESpec(experts=c.int("num_experts"), top_k=c.int("num_experts_per_tok"),
                        expert_ffn=c.int("moe_intermediate_size"), shared_experts=1 if shared else 0,
                        shared_ffn=shared, shared_gate=bool(shared))
    return s


def olmoe(c: Cfg) -> DecoderSpec:
    """OLMoE: RMSNorm over all q channels and all k channels; every layer MoE."""
    s = core(c)
    bias = c.bool("attention_bias", default=False)
    s.qkv_bias = s.o_bias = bias
    s.qk_norm_params = (s.heads + s.kv_heads) * s.head_dim
    s.layers = layer_types(c, ["full"] * len(s.layers), [True] * len(s.layers), None)
    s.moe = MoESpec(experts=c.int("num_experts"), top_k=c.int("num_experts_per_tok"),
                    expert_ffn=c.int("intermediate_size"))
    return s


def nemotron(c: Cfg) -> DecoderSpec:
    """Nemotron / Nemotron-4: squared-ReLU MLP (up, down), LayerNorm1P with bias, no other biases."""
    bias = c.bool("attention_bias", default=False)
    return core(c, act="relu2", norm_width=2, qkv_bias=bias, o_bias=bias, mlp_bias=c.bool("mlp_bias", default=False))


def minimax_m2(c: Cfg) -> DecoderSpec:
    """MiniMax-M2: QK RMSNorm over all heads (``qk_norm_type: per_layer``) or per head; every layer MoE with a
    sigmoid router and score-correction bias. Its MTP modules (``num_mtp_modules``) have no published shape."""
    s = core(c)
    if c.bool("use_qk_norm", default=True):
        per_layer = c.get("qk_norm_type", default="per_layer") == "per_layer"
        s.qk_norm_params = (s.heads + s.kv_heads) * s.head_dim if per_layer else 2 * s.head_dim
    n = len(s.layers)
    s.layers = layer_types(c, sliding_or_full(c, n), [True] * n, _window(c))
    shared = c.int("shared_intermediate_size", default=0)
    s.moe = MoESpec(experts=c.int("num_local_experts", "num_experts"), top_k=c.int("num_experts_per_tok"),
                    expert_ffn=c.int("intermediate_size"), shared_experts=1 if shared else 0, shared_ffn=shared,
                    score_correction_bias=c.bool("use_routing_bias", default=True))
    if c.bool("use_mtp", default=False) and c.int("num_mtp_modules", default=0):
        s.notes.append(f"{c.int('num_mtp_modules')} MTP modules declared but their shape is not published; "
                       "not counted")
    return s


def gpt_oss(c: Cfg) -> DecoderSpec:
    """gpt-oss (arXiv 2508.10925): biases on q/k/v/o, router and experts; a learned sink per head; layers
    alternate sliding-window (even index) and full attention."""
    s = core(c)
    bias = c.bool("attention_bias", default=True)
    s.qkv_bias = s.o_bias = bias
    s.sinks = True
    n = len(s.layers)
    default = ["sliding" if i % 2 == 0 else "full" for i in range(n)]
    s.layers = layer_types(c, sliding_or_full(c, n, default), [True] * n, _window(c))
    s.moe = MoESpec(experts=c.int("num_local_experts", "num_experts"), top_k=c.int("num_experts_per_tok"),
                    expert_ffn=c.int("intermediate_size"), router_bias=True, expert_bias=True)
    return s


def bailing(c: Cfg) -> DecoderSpec:
    """Ling 2.0 (BailingMoeV2): fused QKV (bias ``use_qkv_bias``), output bias ``use_bias``, per-head QK-norm,
    first ``first_k_dense_replace`` layers dense, shared experts of ``moe_intermediate_size`` each, router
    expert bias (aux-loss-free)."""
    s = core(c)
    s.fused_qkv = True
    s.qkv_bias, s.o_bias = c.bool("use_qkv_bias", default=False), c.bool("use_bias", default=True)
    if c.bool("use_qk_norm", default=False):
        s.qk_norm_params = 2 * s.head_dim
    n = len(s.layers)
    moe = moe_pattern(n, first_dense=c.int("first_k_dense_replace", default=0))
    s.layers = layer_types(c, sliding_or_full(c, n), moe, _window(c))
    eff = c.int("moe_intermediate_size")
    n_shared = c.int("num_shared_experts", default=0)
    s.moe = MoESpec(experts=c.int("num_experts"), top_k=c.int("num_experts_per_tok"), expert_ffn=eff,
                    shared_experts=n_shared, shared_ffn=n_shared * eff,
                    score_correction_bias=c.bool("moe_router_enable_expert_bias", default=True))
    s.mtp_layers = mtp_count(c, "num_nextn_predict_layers")
    return s


def glm4_moe(c: Cfg) -> DecoderSpec:
    """GLM-4.5 family (Glm4Moe): q/k/v biases (``attention_bias``; o has none), per-head QK-norm with
    ``use_qk_norm``, first ``first_k_dense_replace`` layers dense, shared experts, score-correction bias, MTP."""
    s = core(c)
    s.qkv_bias = c.bool("attention_bias", default=False)
    if c.bool("use_qk_norm", default=False):
        s.qk_norm_params = 2 * s.head_dim
    n = len(s.layers)
    moe = moe_pattern(n, first_dense=c.int("first_k_dense_replace", default=1))
    s.layers = layer_types(c, sliding_or_full(c, n), moe, None)
    eff = c.int("moe_intermediate_size")
    n_shared = c.int("n_shared_experts", default=1)
    s.moe = MoESpec(experts=c.int("n_routed_experts", "num_experts"), top_k=c.int("num_experts_per_tok"),
                    expert_ffn=eff, shared_experts=n_shared, shared_ffn=n_shared * eff, score_correction_bias=True)
    s.mtp_layers = mtp_count(c, "num_nextn_predict_layers")
    return s


def llama4(c: Cfg) -> DecoderSpec:
    """Llama 4 text model: MoE every ``interleave_moe_layer_step`` layers (or ``moe_layers``) with one shared
    expert of ``intermediate_size``; dense layers use ``intermediate_size_mlp``; the L2 QK-norm has no weights.
    Attention is chunked (``attention_chunk_size``) on RoPE layers, global on every ``no_rope_layer_interval``-th
    (NoPE: nothing rotated) layer; a chunk of c tokens is modelled as a sliding window of c (exact up to
    seq_len = c)."""
    s = core(c)
    n = len(s.layers)
    bias = c.bool("attention_bias", default=False)
    s.qkv_bias = s.o_bias = bias
    s.ffn = c.int("intermediate_size_mlp")
    step = c.int("interleave_moe_layer_step", default=1) or 1
    moe = moe_pattern(n, moe_layers=c.list("moe_layers") or list(range(step - 1, n, step)))
    rope = c.list("no_rope_layers") or [int((i + 1) % c.int("no_rope_layer_interval", default=4) != 0)
                                        for i in range(n)]
    chunk = c.opt_int("attention_chunk_size", default=None)
    default = ["chunked" if (r and chunk) else "full" for r in rope[:n]]
    s.layers = [replace(lt, rope=bool(r)) for lt, r in
                zip(layer_types(c, sliding_or_full(c, n, default), moe, chunk), rope)]
    s.moe = MoESpec(experts=c.int("num_local_experts"), top_k=c.int("num_experts_per_tok"),
                    expert_ffn=c.int("intermediate_size"), shared_experts=1, shared_ffn=c.int("intermediate_size"))
    return s


def dbrx(c: Cfg) -> DecoderSpec:
    """DBRX (DbrxConfig: d_model, n_heads, n_layers, attn_config, ffn_config): fused QKV without bias,
    LayerNorms without bias, fine-grained GLU experts in every layer."""
    attn = {**DBRX_ATTN, **(c.get("attn_config", default=None) or {})}
    ffn = {**DBRX_FFN, **(c.get("ffn_config", default=None) or {})}
    keep: dict[str, Any] = {k: c.raw[k] for k in ("_name_or_path", "architectures", "tie_word_embeddings")
                            if k in c.raw}
    flat = Cfg({"hidden_size": c.int("d_model"), "num_attention_heads": c.int("n_heads"),
                "num_hidden_layers": c.int("n_layers"), "vocab_size": c.int("vocab_size"),
                "num_key_value_heads": attn["kv_n_heads"], "intermediate_size": ffn["ffn_hidden_size"], **keep},
               c.family, where=c.where)
    s = core(flat, fused_qkv=True)
    s.layers = layer_types(flat, ["full"] * len(s.layers), [True] * len(s.layers), None)
    s.moe = MoESpec(experts=int(ffn["moe_num_experts"]), top_k=int(ffn["moe_top_k"]),
                    expert_ffn=int(ffn["ffn_hidden_size"]))
    return s


def palm(c: Cfg) -> DecoderSpec:
    """PaLM in the models.yaml form: parallel attention + MLP with one LayerNorm (no bias), multi-query
    attention, SwiGLU, tied embeddings, no biases anywhere."""
    bias = c.bool("bias", default=False)
    act = str(c.get("activation", default="swiglu"))
    if act not in ("swiglu", "gelu", "relu2"):
        raise c.error(f"activation '{act}' is not swiglu, gelu or relu2", "activation")
    parallel = c.bool("parallel_block", default=True)
    return core(c, act=act, qkv_bias=bias, o_bias=bias, mlp_bias=bias, parallel_block=parallel,
                norms_per_layer=1 if parallel else 2, norm_width=2 if bias else 1)


READERS = {
    "llama": llama, "mistral": mistral, "mixtral": mistral, "qwen2": qwen, "qwen2_moe": qwen, "qwen3": qwen,
    "qwen3_moe": qwen, "olmoe": olmoe, "nemotron": nemotron, "minimax_m2": minimax_m2, "gpt_oss": gpt_oss,
    "bailing_moe_v2": bailing, "glm4_moe": glm4_moe, "llama4_text": llama4, "dbrx": dbrx, "palm": palm,
}
