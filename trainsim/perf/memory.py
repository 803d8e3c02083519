"""Memory per chip: weights, gradients, optimizer states, activations, logits, buffers.

* Model states (Rajbhandari et al. 2020, ZeRO, sec. 3): BF16 weights 2 B/param, gradients ``grad_bytes``
  (Megatron keeps fp32 main grads: 4), optimizer states ``optimizer_bytes`` (fp32 master + Adam m, v: 12;
  8 with BF16 moments). ZeRO-1 shards the optimizer over data parallel, ZeRO-2 also gradients, ZeRO-3 also
  weights. Expert weights shard over the expert-data-parallel group instead.
* Activations (Korthikanti et al. 2022, sec. 4, 34 s b h + 5 a s^2 b per layer with tp and sp: / t), written
  generically from the layer's matrices: every GEMM input is stored for its weight gradient (inputs shared by
  Q/K/V, gate/up and MLA's two down-projections counted once), plus the attention core's Q, K, V (flash
  attention keeps no s^2 scores: Dao et al. 2022), the activation-function inputs and the two norm inputs;
  routed-expert terms scale with the active experts. No dropout (modern LLM pre-training). Selective recompute
  drops the activation-function outputs (the down-projection inputs), full recompute keeps only each layer's
  input (2 h bytes per token) plus one layer's full working set.
* The first pipeline stage holds the most micro-batches (:func:`trainsim.perf.pipeline.microbatches_in_flight`).
* The last stage adds the logits (tokens x vocab / tp x 6 bytes: BF16 logits + fp32 loss terms).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.arch import LayerKind
from ..parallel.sharding import layer_params
from .context import StepContext
from .pipeline import microbatches_in_flight, param_copies

_SHARED_INPUT = ("k", "v", "kv_a")


def _shares_input(name: str, names: set[str]) -> bool:
    if name in _SHARED_INPUT:
        return True
    if name.endswith(".up"):
        return name[: -len("up")] + "gate" in names
    return False


@dataclass(frozen=True)
class StoredElems:
    """Activation elements one layer keeps per token, by kind (routed-expert parts already x active experts)."""

    gemm_inputs: float         # inputs of the dense GEMMs (kept for their weight gradients)
    expert_gemm_inputs: float  # inputs of the routed-expert GEMMs
    other: float               # attention-core Q/K/V, activation-function inputs (dense part)
    expert_other: float        # activation-function inputs of the routed experts
    actout: float              # activation-function outputs (= down-projection inputs), dense + experts


def stored_elems_per_token(lk: LayerKind) -> StoredElems:
    """What a layer keeps for its backward pass, per token (norm inputs are added by the caller)."""
    names = {m.name for m in lk.matrices}
    gin, egin, actout = 0.0, 0.0, 0.0
    for m in lk.matrices:
        if m.group == "router" or _shares_input(m.name, names):
            continue
        if m.group == "expert":
            egin += m.k * m.active
        else:
            gin += m.k
        if m.name.endswith("down"):
            actout += m.k * (m.active if m.group == "expert" else 1.0)
    other = sum(c.heads * c.qk_head_dim + c.kv_heads * (c.qk_head_dim + c.v_head_dim)
                for c in lk.attention if c.kind != "linear")
    gated = 2.0 if lk.ffn_act == "swiglu" else 1.0
    other += gated * lk.ffn_dim
    eother = gated * lk.moe.expert_ffn * lk.moe.active_experts if lk.moe is not None else 0.0
    return StoredElems(gin, egin, other, eother, actout)


def layer_activation_bytes(lk: LayerKind, ctx: StepContext, p, tokens):
    """Bytes of activations one layer keeps per micro-batch per chip, by recompute mode.

    GEMM inputs are kept in the GEMM input precision (FP8 training keeps the FP8 casts for the weight-gradient
    GEMMs: Transformer Engine; DeepSeek-V3 report sec. 3.3.2); everything else in BF16."""
    h = ctx.arch.hidden
    e = stored_elems_per_token(lk)
    imb = ctx.calib.expert_imbalance
    gb = ctx.act_bytes
    per_token = ((e.gemm_inputs + e.expert_gemm_inputs * imb) * gb
                 + (e.other + e.expert_other * imb + 2.0 * h) * 2.0)  # + the two norm inputs
    full = per_token * tokens / p.tp
    sel = full - e.actout * gb * tokens / p.tp
    if ctx.attention_kernel == "unfused":
        # Korthikanti et al. 2022 eq. 1: scores, softmax, dropout mask and output, 5 a s^2 b bytes per layer;
        # selective recompute (their sec. 5) drops exactly these
        scores = sum(5.0 * c.heads * ctx.seq_len for c in lk.attention if c.kind != "linear") * tokens / p.tp
        full = full + scores
    only_input = 2.0 * h * tokens / p.tp
    return np.where(p.recompute == 2, only_input, np.where(p.recompute == 1, sel, full)), full


def params_per_chip(lk: LayerKind, p):
    """(dense, expert) parameters of one layer held by one chip (:mod:`trainsim.parallel.sharding`)."""
    lp = layer_params(lk)
    return lp.tp_split / p.tp + lp.replicated + lp.router + lp.vector, lp.expert / (p.ep * p.etp)


def stage_layers(ctx: StepContext, p):
    """Layers on the slowest pipeline rank: ceil(L / (pp vpp)) x vpp."""
    L = ctx.arch.n_layers
    v = np.maximum(p.vpp, 1)
    return np.ceil(L / (p.pp * v)) * v


def model_state_params(ctx: StepContext, p):
    """(dense, expert) parameters on the chip of the heaviest stage (layers + embedding or head/MTP)."""
    a = ctx.arch
    L = a.n_layers
    n_st = stage_layers(ctx, p)
    dense = np.zeros(len(p))
    expert = np.zeros(len(p))
    for lk in a.layers:
        d, e = params_per_chip(lk, p)
        dense = dense + d * lk.n_layers / L * n_st
        expert = expert + e * lk.n_layers / L * n_st
    emb = a.vocab * a.hidden / p.tp + a.extra_embedding_params
    head = a.vocab * a.hidden / p.tp
    mtp_d = np.zeros(len(p))
    mtp_e = np.zeros(len(p))
    for lk in a.mtp:
        d, e = params_per_chip(lk, p)
        mtp_d = mtp_d + d * lk.n_layers
        mtp_e = mtp_e + e * lk.n_layers
    mtp_d = mtp_d + a.mtp_extra_params / p.tp
    last = head + mtp_d
    extra_d = np.where(p.pp > 1, np.maximum(emb, last), emb + last)
    extra_e = mtp_e
    return dense + extra_d, expert + extra_e


def memory_breakdown(ctx: StepContext, p, tokens, m, states=None):
    """Bytes per chip by part, and the total with buffers and allocator margin."""
    c = ctx.calib
    dense, expert = states if states is not None else model_state_params(ctx, p)
    edp = np.maximum((p.tp * p.cp * p.dp) // np.maximum(p.ep * p.etp, 1), 1)
    copies = param_copies(p.schedule)
    w_shard_d = np.where(p.zero >= 3, p.dp, 1)
    w_shard_e = np.where(p.zero >= 3, edp, 1)
    g_shard_d = np.where(p.zero >= 2, p.dp, 1)
    g_shard_e = np.where(p.zero >= 2, edp, 1)
    o_shard_d = np.where(p.zero >= 1, p.dp, 1)
    o_shard_e = np.where(p.zero >= 1, edp, 1)
    weights = 2.0 * copies * (dense / w_shard_d + expert / w_shard_e)
    grads = c.grad_bytes * copies * (dense / g_shard_d + expert / g_shard_e)
    optim = c.optimizer_bytes * (dense / o_shard_d + expert / o_shard_e)
    L = ctx.arch.n_layers
    n_st = stage_layers(ctx, p)
    per_layer = 0.0          # scalars broadcast to the plans' shape (fields may be a column and a row)
    work = 0.0
    for lk in ctx.arch.layers:
        kept, full = layer_activation_bytes(lk, ctx, p, tokens)
        per_layer = per_layer + kept * lk.n_layers / L
        work = np.maximum(work, full)
    inflight = microbatches_in_flight(p.schedule, p.pp, p.vpp, m)
    acts = per_layer * n_st * inflight + np.where(p.recompute == 2, work, 0.0)
    logits = tokens * ctx.arch.vocab / p.tp * 6.0
    acts = acts + np.where(p.pp > 1, np.maximum(0.0, logits - per_layer * n_st * (inflight - 1.0)), logits)
    if p.zero.max(initial=0) >= 3:
        # ZeRO-3 / FSDP gathers one unit (a layer, the embedding or the head) at a time, plus the prefetched next
        unit = ctx.arch.vocab * ctx.arch.hidden / p.tp
        for lk in ctx.arch.layers:
            d, e = params_per_chip(lk, p)
            unit = np.maximum(unit, d + e)
        weights = weights + np.where(p.zero >= 3, 2.0 * 2.0 * unit, 0.0)
    subtotal = weights + grads + optim + acts
    total = subtotal * (1.0 + c.alloc_margin) + c.buffer_bytes
    return {"weights": weights, "gradients": grads, "optimizer": optim, "activations": acts,
            "buffers_and_margin": total - subtotal, "total": total}
