"""One training step: compose compute, communication, pipeline and optimizer into a time and its breakdown.

For m = global batch / (dp x micro-batch) micro-batches, with t_f and t_b the forward and backward time of one
micro-batch on the slowest pipeline stage (its layers, plus the output head and MTP modules on the last stage;
each including the communication the schedule cannot hide):

    step = m (t_f + t_b) + bubble(schedule, p, v, t_f + t_b) + exposed DP sync + optimizer + overhead

Backward = 2 x forward for GEMMs (input and weight gradients), ``attn_bwd_ratio`` x for flash attention, 2 x for
memory-bound kernels; recomputation adds the recomputed forward parts to the backward (selective: attention
core and activation functions; full: the whole layer forward, tp collectives included). Overlap of a
communication C with compute W uses one rule everywhere: exposed = C - f min(C, W), f from the calibration.

MFU = model FLOPs (6 x active params incl. head + causal attention, per token; no recompute, no MTP) /
(step x chips x BF16 dense peak). HFU counts what the hardware executed (recompute and MTP included).
"""
from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields as dc_fields

import numpy as np

from ..model.counts import count, layer_attention_fwd_flops_per_token
from .comm_cp import cp_ring_fwd
from .comm_dp import dp_sync_times
from .comm_ep import ep_alltoall_fwd, etp_comm_fwd
from .comm_tp import tp_comm_fwd
from .compute import (attention_fwd, elementwise_fwd, head_gemm_fwd, layer_gemm_fwd)
from .collectives import p2p_time
from .context import StepContext
from .memory import memory_breakdown, model_state_params, stage_layers
from .pipeline import SCHED_DUALPIPE, bubble_time

BREAKDOWN_KEYS = ("compute_gemm", "attention", "memory_bound", "recompute", "tp_comm", "ep_alltoall",
                  "cp_comm", "pp_p2p", "pipeline_bubble", "dp_comm", "optimizer", "other")


def exposed(comm, work, f):
    """Communication left on the critical path when a fraction ``f`` of it can hide behind ``work``."""
    return comm - f * np.minimum(comm, work)


@dataclass
class StepResult:
    step_time_s: np.ndarray
    tokens_per_s_per_chip: np.ndarray
    mfu: np.ndarray
    hfu: np.ndarray
    memory: dict
    breakdown: dict
    microbatches: np.ndarray

    @property
    def memory_per_chip_bytes(self) -> np.ndarray:
        return self.memory["total"]


LAYER_KEY = ("tp", "cp", "mb", "ep", "etp", "node_limit")


STATE_KEY = ("tp", "cp", "dp", "pp", "vpp", "ep", "etp", "zero")


def _unique_rows(p, fields=LAYER_KEY):
    """Representative plans (flat) for the fields a cost depends on, and the map back to every plan.

    Fields may be arrays of different broadcastable shapes (the plan search passes the fields that shape a stage
    as a column (n, 1, 1), zero as (1, Z, 1) and recompute as (1, 1, R)); the distinct rows are found per group
    of fields of one shape and combined, and the map has the broadcast shape of ``fields``."""
    names = [f.name for f in dc_fields(p)]
    full = np.broadcast_shapes(*(np.shape(getattr(p, f)) for f in names))
    groups: dict[tuple, list[str]] = {}
    for f in fields:
        groups.setdefault(np.shape(getattr(p, f)), []).append(f)
    at_parts, inv, n_rep = [], 0, 1
    for shape, fs in groups.items():
        shape = (1,) * (len(full) - len(shape)) + tuple(shape)
        key = np.zeros(shape, dtype=np.int64)
        for name in fs:
            col = np.reshape(getattr(p, name), shape)
            key = key * (int(col.max(initial=0)) + 1) + col
        _, first, g_inv = np.unique(key.ravel(), return_index=True, return_inverse=True)
        at_parts.append(np.unravel_index(first, shape))
        inv = inv * len(first) + g_inv.reshape(shape)
        n_rep *= len(first)
    # representatives: every combination of the groups' distinct rows (position = inv's mixed-radix code)
    at = [np.zeros(n_rep, dtype=np.int64) for _ in full]
    stride = n_rep
    for part in at_parts:
        u = len(part[0])
        stride //= u
        sel = (np.arange(n_rep) // stride) % u
        for d, coord in enumerate(part):
            at[d] = at[d] + coord[sel]     # groups vary along different axes; others are 0 there
    reps = type(p)(**{f: np.broadcast_to(getattr(p, f), full)[tuple(at)] for f in names})
    return reps, np.broadcast_to(inv, np.broadcast_shapes(*(np.shape(getattr(p, f)) for f in fields)))


def layer_costs(ctx: StepContext, p) -> dict:
    """Per micro-batch forward costs of all the model's layers (summed over layer kinds, before dividing among
    pipeline stages), the output head and the MTP modules, for plans ``p``. Depends only on LAYER_KEY fields."""
    a = ctx.arch
    n = len(p)
    tokens = np.full(n, ctx.seq_len, dtype=np.float64) * p.mb / p.cp   # tokens a tp group holds per micro-batch
    out = {k: np.zeros(n) for k in ("gemm", "attn", "elem", "tp", "ep", "cp", "rec_sel",
                                    "mtp_g", "mtp_a", "mtp_e", "mtp_comm")}
    for lk in a.layers:
        g = layer_gemm_fwd(lk, ctx, p, tokens)
        at = attention_fwd(lk, ctx, p, tokens)
        el = elementwise_fwd(lk, ctx, p, tokens)
        out["gemm"] += lk.n_layers * g
        out["attn"] += lk.n_layers * at
        out["elem"] += lk.n_layers * el
        out["tp"] += lk.n_layers * tp_comm_fwd(lk, ctx, p, tokens)
        out["ep"] += lk.n_layers * (ep_alltoall_fwd(lk, ctx, p, tokens) + etp_comm_fwd(lk, ctx, p, tokens))
        out["cp"] += lk.n_layers * cp_ring_fwd(lk, ctx, p, tokens)
        # selective recompute: the attention core and (a quarter of the memory-bound work) the activation functions
        out["rec_sel"] += lk.n_layers * (at + el * 0.25)
    head = head_gemm_fwd(ctx, p, tokens)
    out["head"] = head
    for lk in a.mtp:
        out["mtp_g"] += lk.n_layers * (layer_gemm_fwd(lk, ctx, p, tokens) + head)
        out["mtp_a"] += lk.n_layers * attention_fwd(lk, ctx, p, tokens)
        out["mtp_e"] += lk.n_layers * elementwise_fwd(lk, ctx, p, tokens)
        out["mtp_comm"] += lk.n_layers * (tp_comm_fwd(lk, ctx, p, tokens) + ep_alltoall_fwd(lk, ctx, p, tokens)
                                          + etp_comm_fwd(lk, ctx, p, tokens))
    return out


def evaluate(ctx: StepContext, p, detail: bool = True) -> StepResult:
    """Vectorised step time, MFU/HFU, memory and breakdown for every plan in ``p``.

    ``detail=False`` (the plan search's bulk pass) returns only step time, tokens/s and total memory; the same
    arithmetic, without assembling the breakdown and utilisation figures."""
    a, c = ctx.arch, ctx.calib
    tokens = float(ctx.seq_len) * p.mb / p.cp   # tokens a tp group holds per micro-batch
    m = ctx.global_batch_seqs / (p.dp * p.mb)
    L = a.n_layers
    n_st = stage_layers(ctx, p)
    share = n_st / L
    # per-layer costs depend on few fields: compute them once per distinct combination
    reps, inv = _unique_rows(p)
    lc = {k: v[inv] for k, v in layer_costs(ctx, reps).items()}
    gemm, attn, elem = share * lc["gemm"], share * lc["attn"], share * lc["elem"]
    tp_f, ep_f, cp_f, rec_sel = share * lc["tp"], share * lc["ep"], share * lc["cp"], share * lc["rec_sel"]
    head, mtp_g, mtp_a, mtp_e, mtp_comm = lc["head"], lc["mtp_g"], lc["mtp_a"], lc["mtp_e"], lc["mtp_comm"]
    gemm_last = head + mtp_g
    # a stage's forward: compute + exposed comm
    comp_f = gemm + attn + elem
    tp_exp_f = exposed(tp_f, gemm, c.tp_overlap)
    ep_ov = np.where(p.schedule == SCHED_DUALPIPE, c.ep_overlap_dualpipe, c.ep_overlap)
    ep_exp_f = exposed(ep_f, comp_f, ep_ov)
    cp_exp_f = exposed(cp_f, attn, c.cp_overlap)
    cp_exp_b = exposed(2.0 * cp_f, c.attn_bwd_ratio * attn, c.cp_overlap)
    # extra forward work on the last stage (head + MTP) makes it the slowest when it exceeds nothing else
    last_f = gemm_last + mtp_a + mtp_e + mtp_comm
    comp_b = 2.0 * gemm + c.attn_bwd_ratio * attn + 2.0 * elem
    last_b = 2.0 * gemm_last + c.attn_bwd_ratio * mtp_a + 2.0 * mtp_e + 2.0 * mtp_comm
    # recompute (extra forward work during backward)
    rec = np.where(p.recompute == 1, rec_sel, 0.0)
    rec = np.where(p.recompute == 2, comp_f + tp_exp_f + ep_exp_f + cp_exp_f, rec)

    # pipeline p2p per micro-batch: activation forward, gradient backward, per virtual-stage boundary
    p2p_bytes = tokens / p.tp * a.hidden * 2.0
    p2p = 2.0 * np.maximum(p.vpp, 1) * p2p_time(p2p_bytes, p.tp * p.cp * p.dp, ctx.system, c.coll_eff)
    p2p = np.where(p.pp > 1, p2p * (1.0 - c.pp_overlap), 0.0)

    t_f = comp_f + tp_exp_f + ep_exp_f + cp_exp_f + last_f
    t_b = comp_b + tp_exp_f + ep_exp_f + cp_exp_b + last_b + rec
    t_mb = t_f + t_b + p2p
    bubble = bubble_time(p.schedule, p.pp, p.vpp, t_mb)

    # data-parallel synchronisation and optimizer: parameters per chip and their sync depend on few fields
    reps2, inv2 = _unique_rows(p, STATE_KEY)
    d_u, e_u = model_state_params(ctx, reps2)
    g_u, a_u = dp_sync_times(ctx, reps2, d_u, e_u)
    dense, expert, grad_t, gather_t = d_u[inv2], e_u[inv2], g_u[inv2], a_u[inv2]
    z3 = p.zero >= 3
    # zero 0-2: gradients sync behind the last micro-batch's backward, parameters gather behind the first forward
    dp_exp = np.where(z3, 0.0, exposed(grad_t, t_b, c.dp_overlap) + exposed(gather_t, t_f, c.dp_overlap))
    # zero 3: per micro-batch 2 gathers + 1 reduce-scatter, prefetched behind that micro-batch's compute
    z3_per_mb = exposed(2.0 * gather_t + grad_t, t_f + t_b, c.dp_overlap)
    dp_exp = np.where(z3, m * z3_per_mb, dp_exp)
    edp = np.maximum((p.tp * p.cp * p.dp) // np.maximum(p.ep * p.etp, 1), 1)
    opt_params = dense / np.where(p.zero >= 1, p.dp, 1) + expert / np.where(p.zero >= 1, edp, 1)
    optimizer = opt_params * c.optimizer_step_bytes / (ctx.chip.hbm_bw * c.mem_eff)

    step = m * t_mb + bubble + dp_exp + optimizer + c.step_overhead_s
    tokens_step = ctx.global_batch_seqs * ctx.seq_len
    mem = memory_breakdown(ctx, p, tokens, m, (dense, expert))
    if not detail:
        return StepResult(step_time_s=step, tokens_per_s_per_chip=tokens_step / (step * ctx.chips), mfu=None,
                          hfu=None, memory={"total": mem["total"]}, breakdown={}, microbatches=m)

    # breakdown: every part of `step`, in seconds
    bd = {
        "compute_gemm": m * (3.0 * gemm + 3.0 * gemm_last),
        "attention": m * ((1.0 + c.attn_bwd_ratio) * (attn + mtp_a)),
        "memory_bound": m * 3.0 * (elem + mtp_e),
        "recompute": m * rec,
        "tp_comm": m * 2.0 * tp_exp_f,
        "ep_alltoall": m * (2.0 * ep_exp_f + 3.0 * mtp_comm),
        "cp_comm": m * (cp_exp_f + cp_exp_b),
        "pp_p2p": m * p2p,
        "pipeline_bubble": bubble,
        "dp_comm": dp_exp,
        "optimizer": optimizer,
        "other": np.full(np.shape(step), c.step_overhead_s),
    }
    counts = count(a, ctx.seq_len)
    peak = ctx.chip.flops("bf16")
    model_flops = counts.flops_per_token * tokens_step
    hw_extra = counts.mtp_flops_per_token * tokens_step
    # recompute FLOPs: selective = attention forward again; full = one more forward of the layers
    attn_fl = 3.0 * sum(layer_attention_fwd_flops_per_token(lk, ctx.seq_len) * lk.n_layers for lk in a.layers)
    rec_fl = np.where(p.recompute == 1, attn_fl / 3.0 * tokens_step, 0.0)
    rec_fl = np.where(p.recompute == 2, (counts.flops_per_token - 6.0 * a.vocab * a.hidden) / 3.0 * tokens_step,
                      rec_fl)
    mfu = model_flops / (step * ctx.chips * peak)
    hfu = (model_flops + hw_extra + rec_fl) / (step * ctx.chips * peak)
    return StepResult(step_time_s=step, tokens_per_s_per_chip=tokens_step / (step * ctx.chips), mfu=mfu,
                      hfu=hfu, memory=mem, breakdown=bd, microbatches=m)
