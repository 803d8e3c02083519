"""Time of selective recompute: the forward work each Megatron-Core recompute module repeats during backward.

Megatron-Core ``TransformerConfig.recompute_modules`` (megatron/core/transformer/transformer_config.py) checkpoints
the named sub-modules and runs their forward again before their backward:

* ``core_attn``: the attention core (:func:`trainsim.perf.compute.attention_fwd`; for unfused attention the
  s^2 score traffic too: Korthikanti et al. 2022 sec. 5);
* ``layernorm``: the two pre-norms (read + write h each);
* ``mla_up_proj``: the attention up-projection GEMMs (:data:`~trainsim.perf.activations.UP_PROJ_MATRICES`: MLA's
  q_b, kv_b; DeepSeek-V4's q_b, kv), the rotary embedding of the layer's main core and its per-head query norm
  (DeepSeek-V4; ``AttentionCore.q_norm_elems``). DeepSeek-V4's main core also rotates its output back after the
  core (outside the checkpoint): 4 H rd bytes per token recomputed too many, under 1% of the module's bytes;
* ``mlp``: the dense MLP (its GEMMs and activation function);
* ``moe_act``: the routed experts' activation function;
* ``shared_experts``: the shared experts' GEMMs and activation function;
* ``moe``: the whole MoE layer (router, dispatch and combine all-to-all, the token copies of
  :func:`trainsim.perf.compute.expert_copies_fwd_bwd`: permute / unpermute, sort, sequential experts' buffers;
  experts, shared experts);
* ``op_sac`` (torchtitan's op-level selective checkpointing): every other matmul and every memory-bound kernel.

A stack that keeps no norm output or dense SwiGLU product (``pointwise_recompute``, :mod:`trainsim.perf.activations`)
reruns those kernels in every backward, whatever the plan's recompute: :func:`pointwise_recompute_fwd`.

What each module frees is in :mod:`trainsim.perf.activations`; full recompute reruns the whole layer forward
(:mod:`trainsim.perf.step`).
"""
from __future__ import annotations

from dataclasses import replace

from typing import Any, Callable

import numpy as np

from ..model.arch import LayerKind
from .activations import UP_PROJ_MATRICES, down_k, has_up_proj_checkpoint
from .comm_ep import ep_alltoall_fwd, etp_comm_fwd, routing_map_allgather_fwd
from .comm_tp import tp_mlp_recompute_exposed
from .compute import (act_fn_bytes_per_f, attention_fwd, bytes_time, elementwise_fwd, expert_copies_fwd_bwd,
                      layer_gemm_fwd, norm_rope_bytes, rope_bytes_per_token, routed_act_bytes_per_token,
                      unfused_rope_extra_bytes_per_token)
from .context import StepContext
from .arrays import Num
from ..parallel.plan import Plans


def _gemms(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num,
           keep: Callable[[Any], bool]) -> np.ndarray | float:
    sub = tuple(m for m in lk.matrices if keep(m))
    if not sub:
        return 0.0
    return layer_gemm_fwd(replace(lk, matrices=sub), ctx, p, tokens)


def _norms_rerun(ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """The two pre-norms run again: read + write h each (``norm_rope_bytes``)."""
    return bytes_time(2.0 * norm_rope_bytes(ctx.elementwise_kernels == "eager")[0] * ctx.arch.hidden * tokens, ctx, p)


def _act_bytes_per_f(lk: LayerKind, ctx: StepContext) -> float:
    """Bytes per intermediate element of the layer's activation function (``act_fn_bytes_per_f``)."""
    return act_fn_bytes_per_f(lk.ffn_act, ctx.elementwise_kernels == "eager" or not ctx.activation_fusion,
                              ctx.relu2_unfused)


def selective_recompute_fwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num,
                            modules: tuple[str, ...]) -> np.ndarray | float:
    """Extra forward time per micro-batch of one layer when ``modules`` are recomputed."""
    t: np.ndarray | float = 0.0
    mods = set(modules)
    eager = ctx.elementwise_kernels == "eager"
    norm_b, rope_b = norm_rope_bytes(eager)
    if "op_sac" in mods:
        return 0.5 * layer_gemm_fwd(lk, ctx, p, tokens) + elementwise_fwd(lk, ctx, p, tokens)
    if "core_attn" in mods:
        t = t + attention_fwd(lk, ctx, p, tokens)
    if "layernorm" in mods:
        t = t + _norms_rerun(ctx, p, tokens)
    if "mla_up_proj" in mods and has_up_proj_checkpoint(lk):
        main = replace(lk, attention=lk.attention[:1])
        t = t + _gemms(lk, ctx, p, tokens, lambda m: m.name in UP_PROJ_MATRICES)
        unfused = unfused_rope_extra_bytes_per_token(main) if not (ctx.rope_fusion or eager) else 0.0
        t = t + bytes_time((rope_bytes_per_token(main, rope_b) + unfused + norm_b * main.attention[0].q_norm_elems)
                           * tokens, ctx, p)
    act = _act_bytes_per_f(lk, ctx)
    if "mlp" in mods and lk.moe is None:
        g = _gemms(lk, ctx, p, tokens, lambda m: m.group == "mlp")
        t = t + g + tp_mlp_recompute_exposed(lk, ctx, p, tokens, g)   # its tp gather / reduce-scatter again
        t = t + bytes_time(act * down_k(lk, "mlp") * tokens, ctx, p)
    if lk.moe is not None:
        expert_act = bytes_time(routed_act_bytes_per_token(lk, act, ctx.moe_fused_grouped_mlp) * tokens, ctx, p)
        g_sh = _gemms(lk, ctx, p, tokens, lambda m: m.group == "shared_expert")
        shared = (g_sh + tp_mlp_recompute_exposed(lk, ctx, p, tokens, g_sh)
                  + bytes_time(act * down_k(lk, "shared") * tokens, ctx, p))
        if "moe" in mods:
            t = t + _gemms(lk, ctx, p, tokens, lambda m: m.group in ("expert", "router")) + expert_act + shared
            t = t + ep_alltoall_fwd(lk, ctx, p, tokens) + etp_comm_fwd(lk, ctx, p, tokens)
            t = t + routing_map_allgather_fwd(lk, ctx, p, tokens)   # the rerun dispatch gathers again
            t = t + expert_copies_fwd_bwd(lk, ctx, p, tokens)[0]     # and permutes / sorts again
        else:
            if "moe_act" in mods:
                t = t + expert_act
            if "shared_experts" in mods:
                t = t + shared
    return t


def pointwise_recompute_fwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num,
                            modules: tuple[str, ...]) -> np.ndarray | float:
    """Extra forward time per micro-batch of one layer on a ``pointwise_recompute`` stack (else 0): the two pre-norms
    and the dense MLP's activation function run again in the backward, priced as the ``layernorm`` and ``mlp``
    modules price them (:func:`selective_recompute_fwd`: read + write h per norm, the activation function's bytes per
    f), less what the selective ``modules`` already rerun."""
    if not ctx.pointwise_recompute:
        return 0.0
    t: np.ndarray | float = 0.0
    if "layernorm" not in modules:
        t = t + _norms_rerun(ctx, p, tokens)
    if "mlp" not in modules and lk.moe is None:
        t = t + bytes_time(_act_bytes_per_f(lk, ctx) * down_k(lk, "mlp") * tokens, ctx, p)
    return t
