"""Readers shared by several families: the Llama-style core keys, layer patterns and MTP counts."""
from __future__ import annotations

from typing import Any

from .cfg import Cfg
from .spec import DecoderSpec, LayerType, attention_types


def display_name(c: Cfg) -> str:
    """A name for an imported config: ``_name_or_path``, else the first architecture, else the family."""
    for key in ("_name_or_path", "name"):
        if isinstance(c.raw.get(key), str) and c.raw[key]:
            return c.raw[key]
    arch = c.raw.get("architectures")
    if isinstance(arch, list) and arch:
        return str(arch[0])
    return c.family


def core(c: Cfg, **fields: Any) -> DecoderSpec:
    """The keys every Llama-descended config uses (``LlamaConfig`` names): hidden_size, num_hidden_layers,
    num_attention_heads, num_key_value_heads (None = heads), head_dim (None = hidden / heads), vocab_size,
    intermediate_size, tie_word_embeddings. ``fields`` set the rest of the spec. Rotary dims per head
    (:func:`rotary_dim`)."""
    hidden = c.int("hidden_size")
    heads = c.int("num_attention_heads")
    kv = c.int("num_key_value_heads", default=heads) or heads
    head_dim = c.opt_int("head_dim") or hidden // heads
    n = c.int("num_hidden_layers")
    layers = fields.pop("layers", None) or [LayerType()] * n
    if heads % kv:
        raise c.error(f"num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kv})",
                      "num_key_value_heads")
    return DecoderSpec(name=display_name(c), family=c.family, hidden=hidden, vocab=c.int("vocab_size"),
                       layers=layers, heads=heads, kv_heads=kv, head_dim=head_dim,
                       tied=c.bool("tie_word_embeddings", default=False),
                       ffn=c.opt_int("intermediate_size") or 0,
                       **{"rotary_dim": rotary_dim(c, head_dim), **fields})


def rotary_dim(c: Cfg, head_dim: int) -> int | None:
    """Dims of each q / k head RoPE rotates, as the config states it: ``rotary_dim`` (MiniMax-M2), else
    ``partial_rotary_factor`` (HF Glm4Moe, Qwen3-Next, Nemotron, Phi, Bailing) or ``rotary_pct`` (GPT-NeoX) x
    head_dim; None (full rotation) when the config says nothing."""
    if c.opt_int("rotary_dim", default=None) is not None:
        return c.int("rotary_dim")
    for key in ("partial_rotary_factor", "rotary_pct"):
        v = c.get(key, default=None)
        if v is not None:
            f = float(v)
            if not 0.0 <= f <= 1.0:
                raise c.error(f"{key} {v} is not between 0 and 1", key)
            return int(head_dim * f)
    return None


def layer_types(c: Cfg, attn: list[str], moe: list[bool], window: int | None) -> list[LayerType]:
    """Zip per-layer attention kinds and MoE flags; ``window`` applies to sliding / chunked layers."""
    if len(attn) != len(moe):
        raise c.error(f"layer_types has {len(attn)} entries for {len(moe)} layers", "layer_types")
    return [LayerType(a, window if a in ("sliding", "chunked") else None, m) for a, m in zip(attn, moe)]


def sliding_or_full(c: Cfg, n: int, default: list[str] | None = None) -> list[str]:
    """Attention kinds from ``layer_types`` if the config has them, else ``default`` (all full)."""
    return attention_types(c.list("layer_types"), default or ["full"] * n, c)


def mtp_count(c: Cfg, *keys: str, default: int = 0) -> int:
    """Number of MTP modules from the first of ``keys`` present (null or absent: ``default``, else 0)."""
    v = c.get(*keys, default=default)
    return 0 if v is None else c.int(*keys, default=default)
