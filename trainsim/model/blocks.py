"""Building blocks shared by every importer: the weight matrices of attention, MLP and MoE sub-layers.

Each function returns the matrices of one sub-layer in the form of :mod:`trainsim.model.arch`. The shapes are
the standard ones (Vaswani et al. 2017; GQA: Ainslie et al. 2023; MLA: DeepSeek-V2, arXiv 2405.04434 sec. 2.1;
SwiGLU: Shazeer 2020; MoE with shared experts: DeepSeekMoE, arXiv 2401.06066).
"""
from __future__ import annotations

from dataclasses import replace

from .arch import AttentionCore, AttnKind, Group, Matrix, MoEInfo


def gqa_attention(hidden: int, heads: int, kv_heads: int, head_dim: int, *, qkv_bias: bool = False,
                  out_bias: bool = False, v_head_dim: int | None = None, fused_qkv: bool = False,
                  kind: AttnKind = "full", window: int | None = None,
                  rotary_dim: int | None = None, score_bias: bool = False) -> tuple[list[Matrix], AttentionCore]:
    """Multi-head / grouped-query attention: Q (h x H d), K and V (h x G d), O (H d_v x h).

    ``rotary_dim``: dims of each q / k head RoPE rotates (None: all ``head_dim``; partial rotary: HF
    ``partial_rotary_factor`` x head_dim; 0: no rotary), so H x rotary_dim q and G x rotary_dim k elements.
    ``score_bias``: ALiBi positions, a bias added to the scores (``AttentionCore.score_bias``; use with
    ``rotary_dim`` 0)."""
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
    rot = head_dim if rotary_dim is None else rotary_dim
    core = AttentionCore(heads=heads, qk_head_dim=head_dim, v_head_dim=dv, kv_heads=kv_heads, kind=kind,
                         window=window, kv_elems_per_token=kv_heads * (head_dim + dv),
                         rope_q_elems=heads * rot, rope_k_elems=kv_heads * rot, score_bias=score_bias)
    return mats, core


def mla_attention(hidden: int, heads: int, q_lora_rank: int | None, kv_lora_rank: int, qk_nope_head_dim: int,
                  qk_rope_head_dim: int, v_head_dim: int, *, kind: AttnKind = "full",
                  window: int | None = None) -> tuple[list[Matrix], AttentionCore, int]:
    """Multi-head latent attention (DeepSeek-V2 sec. 2.1). Returns matrices, core, and norm params.

    Q: h -> q_lora (down) -> H (d_nope + d_rope) (up), or h -> H (d_nope + d_rope) without q compression;
    KV: h -> kv_lora + d_rope (down, with the shared rope key), kv_lora -> H (d_nope + d_v) (up); O: H d_v -> h.
    Norms: q_a_layernorm (q_lora) and kv_a_layernorm (kv_lora).
    RoPE (decoupled, sec. 2.1.3): d_rope of each query head and the one shared d_rope key per token are rotated.
    The rotary step also assembles per-head keys and values (Megatron-LM d48bd6be0a
    megatron/core/fusions/fused_mla_yarn_rope_apply.py: ``fused_apply_mla_rope_for_q`` rotates q's rope part in
    place; ``fused_apply_mla_rope_for_kv`` = ``_mla_rope_fwd_kv_split_kernel`` reads kv H (d_nope + d_v) and the
    d_rope key, writes key H (d_nope + d_rope) and value H d_v; the unfused path's ``torch.cat`` /
    ``.contiguous()`` move the same tensors): besides the rotation (read + write d_rope), it copies H (d_nope +
    d_v) elements (read + write) and writes the rotated key to the H - 1 other heads: ``rope_copy_bytes`` =
    2 x (2 H (d_nope + d_v) + (H - 1) d_rope).
    Megatron-Core's unfused path (``apply_rope_fusion`` false, Megatron-LM 847781764f
    multi_latent_attention.py ``qkv_up_proj_and_rope_apply``) also builds the query anew, ``torch.cat([q_no_pe,
    q_pos_emb])`` (read + write H (d_nope + d_rope)), and its MLA rotary first de-interleaves each rotated q / k
    vector, ``torch.cat((x1, x2))`` (read + write, rope_utils.py ``_apply_rotary_pos_emb_bshd`` with
    ``multi_latent_attention``): ``unfused_rope_copy_bytes`` = 2 x 2 (H (d_nope + d_rope) + (H + 1) d_rope).
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
                         window=window, kv_elems_per_token=kv_lora_rank + qk_rope_head_dim,
                         rope_q_elems=heads * qk_rope_head_dim, rope_k_elems=qk_rope_head_dim,
                         rope_copy_bytes=2.0 * (2 * heads * (qk_nope_head_dim + v_head_dim)
                                                + (heads - 1) * qk_rope_head_dim),
                         unfused_rope_copy_bytes=4.0 * (heads * qk + (heads + 1) * qk_rope_head_dim))
    return mats, core, norms


def dense_mlp(hidden: int, ffn: int, act: str, *, bias: bool = False, group: Group = "mlp",
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
              expert_bias: bool = False, groups: int = 1, top_groups: int = 1) -> tuple[list[Matrix], MoEInfo, int]:
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
                   zero_experts=zero_experts, expected_active=expected_active, active_range=active_range,
                   groups=groups, top_groups=top_groups)
    return mats, info, vec


def gated_deltanet(hidden: int, k_heads: int, v_heads: int, k_dim: int, v_dim: int,
                   conv_kernel: int) -> tuple[list[Matrix], AttentionCore, int]:
    """Gated DeltaNet linear attention (Yang et al. 2024, arXiv 2412.06464), as in Qwen3-Next / Qwen3.5
    (transformers ``Qwen3NextGatedDeltaNet``). Returns matrices, core and vector params.

    Projections: q, k (H_k d_k each), v and the output gate z (H_v d_v each), the beta and decay inputs
    b, a (H_v each), out (H_v d_v -> h). Vectors: depthwise causal conv1d over q, k, v
    ((2 H_k d_k + H_v d_v) x kernel, no bias), ``dt_bias`` and ``A_log`` (H_v each), the gated RMSNorm (d_v).
    Per-token forward FLOPs of the recurrence (``state_flops``): per value head a d_k x d_v state is read with
    the key (2 d_k d_v), updated by a rank-1 delta (2 d_k d_v) and read with the query (2 d_k d_v), plus the
    conv (2 x channels x kernel); the cost does not grow with the context. No RoPE (positions come from the
    conv and the recurrence; llama.cpp src/models/qwen3next.cpp passes positions only to the full-attention
    layers): 0 rotated elements.
    """
    kd, vd = k_heads * k_dim, v_heads * v_dim
    mats = [Matrix("q", hidden, kd, "attn", "col"),
            Matrix("k", hidden, kd, "attn", "col"),
            Matrix("v", hidden, vd, "attn", "col"),
            Matrix("z", hidden, vd, "attn", "col"),
            Matrix("ba", hidden, 2 * v_heads, "attn", "col"),
            Matrix("o", vd, hidden, "attn", "row")]
    conv_ch = 2 * kd + vd
    vec = conv_ch * conv_kernel + 2 * v_heads + v_dim
    state = 6.0 * v_heads * k_dim * v_dim + 2.0 * conv_ch * conv_kernel
    core = AttentionCore(heads=v_heads, qk_head_dim=k_dim, v_head_dim=v_dim, kv_heads=k_heads, kind="linear",
                         kv_elems_per_token=0, state_flops=state, rope_q_elems=0, rope_k_elems=0)
    return mats, core, vec


def lightning_attention(hidden: int, heads: int, head_dim: int) -> tuple[list[Matrix], AttentionCore, int]:
    """Lightning (linear) attention of MiniMax-01 / M1 (arXiv 2501.08313 sec. 2.2; transformers
    ``MiniMaxLightningAttention``): fused qkv (h -> 3 H d), output gate (h -> H d), RMSNorm (H d), out (H d -> h).
    Per-token forward FLOPs of the recurrence: per head the d x d state is updated (2 d^2) and read (2 d^2)."""
    hd = heads * head_dim
    mats = [Matrix("qkv", hidden, 3 * hd, "attn", "col"),
            Matrix("gate", hidden, hd, "attn", "col"),
            Matrix("o", hd, hidden, "attn", "row")]
    core = AttentionCore(heads=heads, qk_head_dim=head_dim, v_head_dim=head_dim, kv_heads=heads, kind="linear",
                         kv_elems_per_token=0, state_flops=4.0 * heads * head_dim * head_dim)
    return mats, core, hd


def dsa_indexer(hidden: int, q_in: int, heads: int, head_dim: int, *, norm_params: int | None = None,
                rope_dim: int | None = None) -> tuple[list[Matrix], AttentionCore, int]:
    """Lightning indexer of DeepSeek Sparse Attention (DeepSeek-V3.2-Exp report sec. 2.1; inference ``Indexer``):
    ``wq_b`` (q latent -> H_I d_I), ``wk`` (h -> d_I, one key head), ``weights_proj`` (h -> H_I) and a LayerNorm on
    the key (weight + bias: 2 d_I unless given). Its scores cover every previous token: a full causal core with
    H_I heads, d_I query/key dims and no value (FP8 in the original; counted like any other attention FLOP).
    RoPE on ``rope_dim`` (the model's qk_rope_head_dim; None: all d_I) of each query head and of the one key
    (Megatron-LM d48bd6be0a experimental_attention_variant/dsa.py ``_apply_rope``: split qk_pos_emb_head_dim, rotate
    it, then ``torch.cat([x_pe, x_nope])`` reads and writes the whole d_I of each of the H_I + 1 heads:
    ``rope_copy_bytes`` 4 (H_I + 1) d_I).

    Under tensor parallelism the indexer is replicated, not split: every tp rank holds all its weights and scores
    all H_I heads over the whole sequence (``tp_replicated``). Megatron-LM experimental_attention_variant/dsa.py
    (added in 382eeea395 "DeepSeek V3.2 support", as at d98e8a64) ``DSAIndexer.__init__`` builds ``linear_wq_b``,
    ``linear_wk`` and ``linear_weights_proj`` with ``parallel_mode="duplicated"`` (their gradients averaged across
    the tp domain) and ``forward_before_topk`` first gathers ``x`` and ``qr`` from the sequence-parallel region;
    MindSpeed-LLM builds them as ``LinearNoTP`` (mindspeed_llm/tasks/models/transformer/dsa_indexer.py
    ``get_dsa_indexer_spec``, already at 83623285, 12 Feb 2026, and still at c77308a1; its GLM-5 744B A3 script
    examples/mcore/glm5/pretrain_glm5_744b_4k_A3_ptd.sh went from TP=1 to TP=2 in c41d0d46) and its MLA gathers
    ``hidden_states`` and ``q_compressed`` from the sequence-parallel region before calling the indexer
    (multi_latent_attention.py). That forward all-gather of the ``hidden`` +
    ``q_in`` input elements per token is ``tp_gather_elems``; both stacks detach the inputs (Megatron-LM dsa.py
    ``x = x.detach()``, MindSpeed ``dsa_hidden_states.detach()``), so no gradient flows back through it."""
    mats = [Matrix("indexer.wq", q_in, heads * head_dim, "other", "none"),
            Matrix("indexer.wk", hidden, head_dim, "other", "none"),
            Matrix("indexer.weights", hidden, heads, "other", "none")]
    rot = head_dim if rope_dim is None else rope_dim
    core = AttentionCore(heads=heads, qk_head_dim=head_dim, v_head_dim=0, kv_heads=1, kind="full",
                         kv_elems_per_token=head_dim, rope_q_elems=heads * rot, rope_k_elems=rot,
                         rope_copy_bytes=4.0 * (heads + 1) * head_dim, tp_replicated=True,
                         tp_gather_elems=float(hidden + q_in))
    return mats, core, (2 * head_dim if norm_params is None else norm_params)


def scaled(mats: list[Matrix], copies: int) -> list[Matrix]:
    """``copies`` identical sub-layers in one layer (LongCat-Flash: two attentions and two dense MLPs)."""
    return [replace(m, count=m.count * copies, active=m.active * copies) for m in mats]
