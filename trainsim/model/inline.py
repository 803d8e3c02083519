"""The run spec's inline model keys (docs/run-spec.md) -> :class:`Arch`.

These keys describe GPT/Llama/DeepSeek-style decoders: GQA or MLA attention, GELU or SwiGLU MLP, optional MoE
(first ``dense_layers`` dense, then a MoE layer every ``every`` layers) and MTP modules.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..types_checked import Layers, NonNegInt, PosFloat, PosInt
from .arch import Arch, LayerKind
from .blocks import dense_mlp, gqa_attention, mla_attention, moe_block


class InlineMoE(BaseModel):
    """Routed experts of a model written inline in a run spec."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    experts: PosInt
    top_k: PosInt
    shared_experts: NonNegInt = 0
    expert_ffn: PosInt
    dense_layers: NonNegInt = 0
    every: PosInt = 1
    zero_experts: NonNegInt = 0
    expected_active: PosFloat | None = Field(None, description="expected real experts per token (zero experts)")

    @model_validator(mode="after")
    def _topk(self) -> "InlineMoE":
        if self.top_k > self.experts + self.zero_experts:
            raise ValueError(f"top_k {self.top_k} exceeds experts {self.experts}")
        return self


class InlineMLA(BaseModel):
    """Multi-head latent attention of a model written inline in a run spec."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    q_lora_rank: NonNegInt | None = None
    kv_lora_rank: PosInt
    qk_nope_head_dim: PosInt
    qk_rope_head_dim: PosInt
    v_head_dim: PosInt


class InlineModel(BaseModel):
    """The inline model mapping of a run spec (every key documented in run-spec.md, plus a few optional ones)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    name: str = "inline"
    layers: Layers
    hidden: PosInt
    heads: PosInt
    kv_heads: PosInt | None = None
    head_dim: PosInt | None = None
    ffn: NonNegInt = 0
    ffn_act: Literal["gelu", "swiglu", "relu2"] = "gelu"
    vocab: PosInt
    tied_embeddings: bool = False
    parallel_block: bool = False
    bias: bool = False
    norm: Literal["layernorm", "rmsnorm"] | None = None
    position_embeddings: Literal["rope", "learned", "alibi"] = "rope"
    max_positions: NonNegInt = 0
    moe: InlineMoE | None = None
    mla: InlineMLA | None = None
    mtp_layers: NonNegInt = 0

    @property
    def moe_layers(self) -> int:
        """MoE layers of the model: a fraction 1/every of the layers after the first ``dense_layers``,
        ``(layers - dense_layers) // every`` (0 without ``moe``); the rest are dense (:func:`build_inline`)."""
        return (self.layers - self.moe.dense_layers) // self.moe.every if self.moe is not None else 0

    @model_validator(mode="after")
    def _shapes(self) -> "InlineModel":
        kv = self.kv_heads or self.heads
        if self.heads % kv:
            raise ValueError(f"heads ({self.heads}) must be a multiple of kv_heads ({kv})")
        if self.head_dim is None and self.mla is None and self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads}), "
                             "or give head_dim")
        if self.moe is not None and self.moe.dense_layers > self.layers:
            raise ValueError(f"moe.dense_layers ({self.moe.dense_layers}) exceeds layers ({self.layers})")
        if self.moe is not None and self.moe_layers == 0:
            # zero dropped the stated experts and priced the model dense (qa30b)
            raise ValueError(f"moe: dense_layers {self.moe.dense_layers} and every {self.moe.every} leave no MoE "
                             f"layer among the {self.layers} layers ((layers - dense_layers) // every = 0); expected "
                             "at least one, or leave moe out for a dense model")
        if self.moe is None and self.ffn <= 0:
            raise ValueError("ffn must be given for a dense model")
        if self.moe is not None and self.moe.dense_layers > 0 and self.ffn <= 0:
            raise ValueError("ffn must be given when moe.dense_layers > 0")
        if self.position_embeddings == "learned" and self.max_positions <= 0:
            # a learned table is max_positions x hidden parameters (Megatron-core LanguageModelEmbedding:
            # torch.nn.Embedding(max_sequence_length, hidden_size)); its size is a property of the model, not of
            # one run's seq_len, so there is no default to take (NeMo and Megatron set it from their own
            # --max-position-embeddings / seq_length, which the spec must state)
            raise ValueError("position_embeddings: learned needs max_positions (rows of the learned position "
                             "table, e.g. Megatron's --max-position-embeddings)")
        if self.position_embeddings != "learned" and self.max_positions:
            raise ValueError(f"max_positions ({self.max_positions}) is only for position_embeddings: learned")
        if self.position_embeddings == "alibi" and self.mla is not None:
            # MLA rotates its own qk_rope_head_dim dims (decoupled RoPE, DeepSeek-V2 sec. 2.1.3): an ALiBi bias would
            # be ignored by the mla_attention core, so it is refused rather than priced as RoPE
            raise ValueError("position_embeddings: alibi does not apply to mla (MLA rotates qk_rope_head_dim with "
                             "RoPE): leave position_embeddings out")
        return self


def _layer(m: InlineModel, is_moe: bool, name: str, n: int) -> LayerKind:
    norm_w = 2 if (m.norm or ("layernorm" if m.ffn_act == "gelu" else "rmsnorm")) == "layernorm" else 1
    vec = 2 * norm_w * m.hidden  # two norms per layer
    if m.mla is not None:
        mats, core, nparams = mla_attention(m.hidden, m.heads, m.mla.q_lora_rank, m.mla.kv_lora_rank,
                                            m.mla.qk_nope_head_dim, m.mla.qk_rope_head_dim, m.mla.v_head_dim)
        vec += nparams
    else:
        hd = m.head_dim or m.hidden // m.heads
        mats, core = gqa_attention(m.hidden, m.heads, m.kv_heads or m.heads, hd, qkv_bias=m.bias, out_bias=m.bias,
                                   rotary_dim=None if m.position_embeddings == "rope" else 0,
                                   score_bias=m.position_embeddings == "alibi")
    moe = None
    if is_moe:
        assert m.moe is not None
        mm, moe, v = moe_block(m.hidden, m.moe.experts, m.moe.top_k, m.moe.expert_ffn, m.ffn_act,
                               shared_experts=m.moe.shared_experts, zero_experts=m.moe.zero_experts,
                               expected_active=m.moe.expected_active)
        mats += mm
        vec += v
        ffn_dim = m.moe.shared_experts * m.moe.expert_ffn
    else:
        mats += dense_mlp(m.hidden, m.ffn, m.ffn_act, bias=m.bias)
        ffn_dim = m.ffn
    return LayerKind(name=name, n_layers=n, matrices=tuple(mats), attention=(core,), vector_params=vec, moe=moe,
                     ffn_act=m.ffn_act, ffn_dim=ffn_dim)


def build_inline(m: InlineModel) -> Arch:
    """Arch of an inline model. MoE layers: after ``dense_layers`` dense ones, layer i is MoE when
    (i - dense_layers) % every == every - 1 ... simplified to: a fraction 1/every of the remaining layers."""
    kinds: list[LayerKind] = []
    if m.moe is None:
        kinds.append(_layer(m, False, "dense", m.layers))
    else:
        n_moe = m.moe_layers
        n_dense = m.layers - n_moe
        if n_dense:
            kinds.append(_layer(m, False, "dense", n_dense))
        if n_moe:
            kinds.append(_layer(m, True, "moe", n_moe))
    norm_w = 2 if (m.norm or ("layernorm" if m.ffn_act == "gelu" else "rmsnorm")) == "layernorm" else 1
    mtp: tuple[LayerKind, ...] = ()
    mtp_extra = 0
    if m.mtp_layers:
        last = kinds[-1]
        mtp = (LayerKind(name="mtp", n_layers=m.mtp_layers, matrices=last.matrices, attention=last.attention,
                         vector_params=last.vector_params, moe=last.moe, ffn_act=last.ffn_act, ffn_dim=last.ffn_dim),)
        # DeepSeek-V3 MTP module: two RMSNorms (h each), projection 2h -> h, and a final norm (sec. 2.2)
        mtp_extra = m.mtp_layers * (2 * m.hidden * m.hidden + 3 * m.hidden)
    return Arch(
        name=m.name, family="inline", hidden=m.hidden, vocab=m.vocab, layers=tuple(kinds),
        tied_embeddings=m.tied_embeddings, embedding_params=m.vocab * m.hidden,
        extra_embedding_params=(m.max_positions * m.hidden if m.position_embeddings == "learned" else 0),
        head_params=0 if m.tied_embeddings else m.vocab * m.hidden, final_params=norm_w * m.hidden,
        mtp=mtp, mtp_extra_params=mtp_extra, parallel_block=m.parallel_block, source="inline run-spec keys",
    )
