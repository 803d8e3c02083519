"""A decoder described layer by layer, and its assembly into an :class:`~trainsim.model.arch.Arch`.

Every family reader (one per family group) turns a config.json into a :class:`DecoderSpec`: the shapes shared by
all layers plus one :class:`LayerType` per layer (its attention kind and whether its MLP is a MoE). The builder
then groups identical layers into :class:`~trainsim.model.arch.LayerKind` objects (in order of first appearance)
from the blocks of :mod:`trainsim.model.blocks`, so each formula for a sub-layer exists once.

Multi-token prediction (MTP) modules follow DeepSeek-V3 (arXiv 2412.19437 sec. 2.2), also used by GLM-4.5,
Pangu Ultra MoE and Qwen3-Next: two RMSNorms on the inputs, a projection 2h -> h, one decoder layer (full
attention, the model's MLP kind) and the shared head's norm; the embedding and output head are shared.
"""
from __future__ import annotations

from typing import Any, cast

from dataclasses import dataclass, field, replace

from ..arch import Arch, AttentionCore, AttnKind, FfnAct, LayerKind, Matrix
from ..blocks import dense_mlp, dsa_indexer, gated_deltanet, gqa_attention, lightning_attention, mla_attention, \
    moe_block


@dataclass(frozen=True)
class LayerType:
    """One layer: attention ``full`` | ``sliding`` (``window``) | ``chunked`` (``window`` = chunk) | ``linear``."""

    attn: str = "full"
    window: int | None = None
    moe: bool = False
    shared_index: bool = False       # DSA layer reusing the previous layer's top-k (no indexer of its own)
    rope: bool = True                # False: a NoPE layer (Llama 4 ``no_rope_layers`` 0), nothing rotated


@dataclass(frozen=True)
class MoESpec:
    """The routed-expert shapes shared by a decoder's MoE layers."""

    experts: int
    top_k: int
    expert_ffn: int
    shared_experts: int = 0
    shared_ffn: int = 0              # total intermediate size of the shared expert(s)
    shared_gate: bool = False        # sigmoid gate on the shared expert, Linear(h, 1) (Qwen2-MoE, Qwen3-Next)
    #: the router's e_score_correction_bias, one per expert (aux-loss-free balancing, DeepSeek-V3 sec. 2.1.2); not
    #: the attention-score bias of ALiBi (``AttentionCore.score_bias``, ``DecoderSpec.alibi``)
    score_correction_bias: bool = False
    router_bias: bool = False        # a bias on the router Linear itself (gpt-oss)
    expert_bias: bool = False        # biases on the expert matrices (gpt-oss)
    zero_experts: int = 0
    expected_active: float | None = None
    active_range: tuple[float, float] | None = None
    groups: int = 1                  # group-limited routing: experts in n_group groups (DeepSeek-V2/V3) ...
    top_groups: int = 1              # ... each token routed inside its topk_group best groups


@dataclass(frozen=True)
class MLASpec:
    """Multi-head latent attention ranks and head dimensions (DeepSeek-V2, arXiv 2405.04434 sec. 2.1)."""

    q_lora_rank: int | None
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int


@dataclass(frozen=True)
class IndexerSpec:
    """DSA lightning indexer: the main attention keeps ``topk`` tokens (a ``sparse`` core)."""

    heads: int
    head_dim: int
    topk: int


@dataclass(frozen=True)
class LinearSpec:
    """Linear-attention layers: ``gated_deltanet`` (Qwen3-Next) or ``lightning`` (MiniMax-01/M1)."""

    kind: str
    k_heads: int = 0
    v_heads: int = 0
    k_dim: int = 0
    v_dim: int = 0
    conv_kernel: int = 4


@dataclass
class DecoderSpec:
    """A decoder's shapes shared by all layers plus one :class:`LayerType` per layer."""

    name: str
    family: str
    hidden: int
    vocab: int
    layers: list[LayerType]
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool = False
    rotary_dim: int | None = None    # dims of each q / k head RoPE rotates (None: all; 0: learned / ALiBi positions)
    alibi: bool = False              # ALiBi position biases added to the scores (AttentionCore.score_bias)
    v_head_dim: int | None = None
    qkv_bias: bool = False
    o_bias: bool = False
    fused_qkv: bool = False
    q_gate: bool = False             # q_proj also emits a per-channel output gate (Qwen3-Next gated attention)
    sinks: bool = False              # one learned attention-sink logit per head (gpt-oss)
    qk_norm_params: int = 0          # parameters of the q/k norms of one attention layer
    mla: MLASpec | None = None
    indexer: IndexerSpec | None = None
    linear: LinearSpec | None = None
    norms_per_layer: int = 2
    norm_width: int = 1              # 1: RMSNorm or LayerNorm without bias; 2: LayerNorm with bias
    final_norms: int = 1
    extra_final_params: int = 0      # e.g. BLOOM's embedding LayerNorm
    ffn: int = 0
    act: str = "swiglu"
    mlp_bias: bool = False
    moe: MoESpec | None = None
    mtp_layers: int = 0
    learned_positions: int = 0       # rows of a learned position table (GPT-2)
    parallel_block: bool = False
    source: str = ""
    notes: list[str] = field(default_factory=list)


def moe_pattern(n_layers: int, *, first_dense: int = 0, every: int = 1, offset: int = 0,
                dense_layers: list[int] | tuple[int, ...] = (), moe_layers: list[int] | None = None) -> list[bool]:
    """Which layers are MoE: an explicit list, else layers ``i >= first_dense`` with ``(i + offset) % every == 0``
    that are not in ``dense_layers``."""
    if moe_layers is not None:
        chosen = set(moe_layers)
        return [i in chosen for i in range(n_layers)]
    skip = set(dense_layers)
    return [i >= first_dense and (i + offset) % every == 0 and i not in skip for i in range(n_layers)]


_ATTN_NAMES = {"full_attention": "full", "sliding_attention": "sliding", "chunked_attention": "chunked",
               "linear_attention": "linear", "deepseek_sparse_attention": "full"}


def attention_types(raw_types: list[Any] | None, default: list[str], where: Any) -> list[str]:
    """A config's ``layer_types`` mapped to full / sliding / chunked / linear (``default`` when absent)."""
    if raw_types is None:
        return default
    out = []
    for t in raw_types:
        if t not in _ATTN_NAMES:
            raise where.error(f"layer_types entry '{t}' is not one of {sorted(_ATTN_NAMES)}", "layer_types")
        out.append(_ATTN_NAMES[t])
    return out


def _softmax_attention(s: DecoderSpec, lt: LayerType) -> tuple[list[Matrix], list[AttentionCore], int]:
    kinds: dict[str, AttnKind] = {"full": "full", "sliding": "sliding", "chunked": "sliding"}
    kind = kinds[lt.attn]
    window = lt.window if kind == "sliding" else None
    if s.indexer is not None:
        kind, window = "sparse", s.indexer.topk
    vec = s.qk_norm_params + (s.heads if s.sinks else 0)
    if s.mla is not None:
        m = s.mla
        mats, core, nvec = mla_attention(s.hidden, s.heads, m.q_lora_rank, m.kv_lora_rank, m.qk_nope_head_dim,
                                         m.qk_rope_head_dim, m.v_head_dim, kind=kind, window=window)
        vec += nvec
    else:
        mats, core = gqa_attention(s.hidden, s.heads, s.kv_heads, s.head_dim, qkv_bias=s.qkv_bias, out_bias=s.o_bias,
                                   v_head_dim=s.v_head_dim, fused_qkv=s.fused_qkv, kind=kind, window=window,
                                   rotary_dim=s.rotary_dim if lt.rope else 0, score_bias=s.alibi)
        if s.q_gate:
            mats = [replace(x, n=2 * x.n) if x.name == "q" else x for x in mats]
    cores = [core]
    if s.indexer is not None and not lt.shared_index:
        q_in = s.mla.q_lora_rank if (s.mla is not None and s.mla.q_lora_rank) else s.hidden
        imats, icore, ivec = dsa_indexer(s.hidden, q_in, s.indexer.heads, s.indexer.head_dim,
                                         rope_dim=s.mla.qk_rope_head_dim if s.mla is not None else s.rotary_dim)
        mats += imats
        cores.append(icore)
        vec += ivec
    return mats, cores, vec


def _linear_attention(s: DecoderSpec) -> tuple[list[Matrix], list[AttentionCore], int]:
    lin = s.linear
    if lin is None:
        raise ValueError("a linear-attention layer needs DecoderSpec.linear")
    if lin.kind == "gated_deltanet":
        mats, core, vec = gated_deltanet(s.hidden, lin.k_heads, lin.v_heads, lin.k_dim, lin.v_dim, lin.conv_kernel)
    else:
        mats, core, vec = lightning_attention(s.hidden, s.heads, s.head_dim)
    return mats, [core], vec


def _mlp(s: DecoderSpec, moe: bool) -> tuple[list[Matrix], Any, int, int]:
    if not moe:
        return dense_mlp(s.hidden, s.ffn, s.act, bias=s.mlp_bias), None, 0, s.ffn
    m = s.moe
    if m is None:
        raise ValueError("a MoE layer needs DecoderSpec.moe")
    mats, info, vec = moe_block(s.hidden, m.experts, m.top_k, m.expert_ffn, s.act, shared_experts=m.shared_experts,
                                shared_ffn=m.shared_ffn or None, router_bias=m.score_correction_bias,
                                zero_experts=m.zero_experts, expected_active=m.expected_active,
                                active_range=m.active_range, expert_bias=m.expert_bias, groups=m.groups,
                                top_groups=m.top_groups)
    if m.router_bias:
        vec += m.experts + m.zero_experts
    if m.shared_gate:
        mats.append(Matrix("shared_gate", s.hidden, 1, "router", "none"))
    return mats, info, vec, m.shared_ffn


def _name(lt: LayerType, s: DecoderSpec) -> str:
    mlp = "moe" if lt.moe else "dense"
    if lt.shared_index:
        mlp += "/shared-index"
    if lt.attn == "full":
        return mlp
    w = f"{lt.window}" if lt.window else ""
    return f"{lt.attn}{w}/{mlp}"


def build_layer(s: DecoderSpec, lt: LayerType, n: int, name: str | None = None) -> LayerKind:
    """``n`` layers of type ``lt``: attention (softmax or linear), MLP or MoE, and the layer's norms."""
    if lt.attn == "linear":
        mats, cores, vec = _linear_attention(s)
    else:
        mats, cores, vec = _softmax_attention(s, lt)
    fmats, info, fvec, ffn_dim = _mlp(s, lt.moe)
    vec += fvec + s.norms_per_layer * s.norm_width * s.hidden
    return LayerKind(name=name or _name(lt, s), n_layers=n, matrices=tuple(mats + fmats), attention=tuple(cores),
                     vector_params=vec, moe=info, ffn_act=cast(FfnAct, s.act), ffn_dim=ffn_dim)


def mtp_layer(s: DecoderSpec) -> LayerKind:
    """DeepSeek-style MTP module: the decoder layer plus the 2h -> h projection and three norms."""
    base = build_layer(s, LayerType("full", None, s.moe is not None), s.mtp_layers, "mtp")
    proj = Matrix("mtp.eh_proj", 2 * s.hidden, s.hidden, "other", "none")
    return replace(base, matrices=base.matrices + (proj,), vector_params=base.vector_params + 3 * s.hidden)


def build(s: DecoderSpec) -> Arch:
    """The Arch of a decoder spec: identical layers grouped in order of first appearance."""
    order: dict[LayerType, int] = {}
    for lt in s.layers:
        order[lt] = order.get(lt, 0) + 1
    kinds = tuple(build_layer(s, lt, n) for lt, n in order.items())
    emb = s.vocab * s.hidden
    return Arch(
        name=s.name, family=s.family, hidden=s.hidden, vocab=s.vocab, layers=kinds, tied_embeddings=s.tied,
        embedding_params=emb, extra_embedding_params=s.learned_positions * s.hidden,
        head_params=0 if s.tied else emb,
        final_params=s.final_norms * s.norm_width * s.hidden + s.extra_final_params,
        mtp=(mtp_layer(s),) if s.mtp_layers else (), parallel_block=s.parallel_block, source=s.source,
        notes=tuple(s.notes),
    )
