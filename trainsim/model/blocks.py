"""Building blocks shared by every importer: the weight matrices of attention, MLP and MoE sub-layers.

Each function returns the matrices of one sub-layer in the form of :mod:`trainsim.model.arch`. The shapes are
the standard ones (Vaswani et al. 2017; GQA: Ainslie et al. 2023; MLA: DeepSeek-V2, arXiv 2405.04434 sec. 2.1;
SwiGLU: Shazeer 2020; MoE with shared experts: DeepSeekMoE, arXiv 2401.06066).
"""
from __future__ import annotations

from .arch import AttentionCore, Matrix, MoEInfo


def gqa_attention(hidden: int, heads: int, kv_heads: int, head_dim: int, *, qkv_bias: bool = False,
                  out_bias: bool = False, v_head_dim: int | None = None, fused_qkv: bool = False,
                  kind: str = "full", window: int | None = None) -> tuple[list[Matrix], AttentionCore]:
    """Multi-head / grouped-query attention: Q (h x H d), K and V (h x G d), O (H d_v x h)."""
    dv = head_dim if v_head_dim is None else v_head_dim
    mats: list[Matrix]
    if fused_qkv:
        mats = [Matrix("qkv", hidden, heads * head_dim + kv_heads * (head_dim + dv), "attn", "col", bias=qkv_bias)]
    else:
        mats = [
            Matrix("q", hidden, heads * head_dim, "attn", "col", bias=qkv_bias),
            Matrix("k", hidden, kv_heads * head_dim, "attn", "col", bias=qkv_bias),
            Matrix("v", hidden, kv_heads * dv, "attn", "col", bias=qkv_bias),
        ]
    mats.append(Matrix("o", heads * dv, hidden, "attn", "row", bias=out_bias))
    core = AttentionCore(heads=heads, qk_head_dim=head_dim, v_head_dim=dv, kv_heads=kv_heads, kind=kind,
                         window=window, kv_elems_per_token=kv_heads * (head_dim + dv))
    return mats, core


def mla_attention(hidden: int, heads: int, q_lora_rank: int | None, kv_lora_rank: int, qk_nope_head_dim: int,
                  qk_rope_head_dim: int, v_head_dim: int, *, kind: str = "full",
                  window: int | None = None) -> tuple[list[Matrix], AttentionCore, int]:
    """Multi-head latent attention (DeepSeek-V2 sec. 2.1). Returns matrices, core, and norm params.

    Q: h -> q_lora (down) -> H (d_nope + d_rope) (up), or h -> H (d_nope + d_rope) without q compression;
    KV: h -> kv_lora + d_rope (down, with the shared rope key), kv_lora -> H (d_nope + d_v) (up); O: H d_v -> h.
    Norms: q_a_layernorm (q_lora) and kv_a_layernorm (kv_lora).
    """
    qk = qk_nope_head_dim + qk_rope_head_dim
    mats: list[Matrix] = []
    norms = kv_lora_rank
    if q_lora_rank:
        mats += [Matrix("q_a", hidden, q_lora_rank, "attn", "none"),
                 Matrix("q_b", q_lora_rank, heads * qk, "attn", "col")]
        norms += q_lora_rank
    else:
        mats.append(Matrix("q", hidden, heads * qk, "attn", "col"))
    mats += [Matrix("kv_a", hidden, kv_lora_rank + qk_rope_head_dim, "attn", "none"),
             Matrix("kv_b", kv_lora_rank, heads * (qk_nope_head_dim + v_head_dim), "attn", "col"),
             Matrix("o", heads * v_head_dim, hidden, "attn", "row")]
    core = AttentionCore(heads=heads, qk_head_dim=qk, v_head_dim=v_head_dim, kv_heads=heads, kind=kind,
                         window=window, kv_elems_per_token=kv_lora_rank + qk_rope_head_dim)
    return mats, core, norms


def dense_mlp(hidden: int, ffn: int, act: str, *, bias: bool = False, group: str = "mlp",
              count: int = 1, active: float = 1.0, name: str = "mlp") -> list[Matrix]:
    """Dense MLP: gated (SwiGLU/GeGLU: gate, up, down = 3 matrices) or plain (GELU/ReLU^2: up, down)."""
    if act == "swiglu":
        return [Matrix(f"{name}.gate", hidden, ffn, group, "col", count, active, bias),
                Matrix(f"{name}.up", hidden, ffn, group, "col", count, active, bias),
                Matrix(f"{name}.down", ffn, hidden, group, "row", count, active, bias)]
    return [Matrix(f"{name}.up", hidden, ffn, group, "col", count, active, bias),
            Matrix(f"{name}.down", ffn, hidden, group, "row", count, active, bias)]


def moe_block(hidden: int, experts: int, top_k: int, expert_ffn: int, act: str, *, shared_experts: int = 0,
              shared_ffn: int | None = None, router_bias: bool = False, zero_experts: int = 0,
              expected_active: float | None = None, active_range: tuple[float, float] | None = None,
              expert_bias: bool = False) -> tuple[list[Matrix], MoEInfo, int]:
    """Routed experts (count = experts, active = top-k or the expected real experts), shared experts and
    the router (hidden x (experts + zero experts)). Returns matrices, MoE facts, vector params (router bias)."""
    act_n = float(top_k if expected_active is None else expected_active)
    mats = dense_mlp(hidden, expert_ffn, act, bias=expert_bias, group="expert", count=experts, active=act_n,
                     name="expert")
    if shared_experts:
        sf = shared_ffn if shared_ffn is not None else shared_experts * expert_ffn
        mats += dense_mlp(hidden, sf, act, group="shared_expert", name="shared")
    mats.append(Matrix("router", hidden, experts + zero_experts, "router", "none"))
    vec = (experts + zero_experts) if router_bias else 0
    info = MoEInfo(experts=experts, top_k=top_k, expert_ffn=expert_ffn, shared_experts=shared_experts,
                   zero_experts=zero_experts, expected_active=expected_active, active_range=active_range)
    return mats, info, vec
