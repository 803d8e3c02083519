"""KV cache: what one token adds per layer, and how the cache is sharded by tensor parallelism.

``AttentionCore.kv_elems_per_token`` (trainsim.model.arch) is the number of cached elements one token adds to
one attention core: GQA/MHA ``kv_heads x (d_qk + d_v)`` (keys and values per KV head); MLA ``kv_lora_rank +
qk_rope_head_dim`` (the compressed latent and the shared rotary key, DeepSeek-V2 sec. 2.1.2). So

* GQA: ``2 x kv_heads x head_dim x layers x bytes`` per token (Llama-3-70B: 2 x 8 x 128 x 80 x 2 B = 320 KiB);
* MLA: ``(kv_lora_rank + rope_dim) x layers x bytes`` (DeepSeek-V3: (512 + 64) x 61 x 2 B = 70,272 B).

Sliding-window cores keep at most ``window`` tokens; linear-attention cores keep a fixed-size state instead
(``heads x d_qk x d_v`` elements per sequence, in FP32) and no per-token cache.

Sharding: GQA heads split over tensor parallelism, so the cache splits over ``min(tp, kv_heads)`` (replicated
beyond that); the MLA latent is shared by all heads, so every tensor-parallel rank holds (and reads) all of it --
the reason MLA decoders run attention data-parallel (DeepSeek inference system, EP144/DP144).
"""
from __future__ import annotations

import numpy as np

from ..model.arch import Arch, AttentionCore

STATE_BYTES = 4.0  # linear-attention recurrent state kept in FP32


def is_latent(core: AttentionCore) -> bool:
    """True when the cached elements are shared by all heads (MLA latent), not split per KV head."""
    return core.kv_elems_per_token > 0 and core.kv_elems_per_token != core.kv_heads * (core.qk_head_dim + core.v_head_dim)


def kv_shards(core: AttentionCore, tp):
    """How many tensor-parallel ranks the cache of ``core`` splits over."""
    if is_latent(core):
        return np.ones_like(np.asarray(tp, dtype=np.float64))
    return np.minimum(np.asarray(tp, dtype=np.float64), float(max(core.kv_heads, 1)))


def cached_tokens(core: AttentionCore, context):
    """Tokens of a ``context``-long sequence that this core keeps (sliding/sparse windows cap it; linear: 0)."""
    context = np.asarray(context, dtype=np.float64)
    if core.kind == "linear":
        return np.zeros_like(context)
    if core.kind in ("sliding", "sparse") and core.window is not None:
        if core.kind == "sparse":
            return context  # DSA keeps the whole cache and reads a top-w subset: see read_tokens
        return np.minimum(context, float(core.window))
    return context


def read_tokens(core: AttentionCore, context):
    """Tokens whose cache entries one decode query reads (sparse top-w attention reads only w of them)."""
    context = np.asarray(context, dtype=np.float64)
    if core.kind == "sparse" and core.window is not None:
        return np.minimum(context, float(core.window))
    return cached_tokens(core, context)


def state_bytes(core: AttentionCore) -> float:
    """Per-sequence recurrent state of a linear-attention core (0 for softmax attention)."""
    if core.kind != "linear":
        return 0.0
    return core.heads * core.qk_head_dim * core.v_head_dim * STATE_BYTES


def kv_bytes_per_token(arch: Arch, kv_bytes: float = 2.0) -> float:
    """KV-cache bytes one token adds to the whole model (all layers, no window cap, unsharded)."""
    return float(sum(lk.n_layers * sum(c.kv_elems_per_token for c in lk.attention if c.kind != "linear")
                     for lk in arch.layers)) * kv_bytes


def kv_bytes_per_sequence(arch: Arch, context, kv_bytes: float = 2.0):
    """KV-cache (and linear-attention state) bytes of one ``context``-token sequence, unsharded."""
    context = np.asarray(context, dtype=np.float64)
    tot = np.zeros_like(context)
    for lk in arch.layers:
        for c in lk.attention:
            tot = tot + lk.n_layers * (cached_tokens(c, context) * c.kv_elems_per_token * kv_bytes + state_bytes(c))
    return tot
