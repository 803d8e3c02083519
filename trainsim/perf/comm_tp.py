"""Tensor-parallel communication per layer, with sequence parallelism (Korthikanti et al. 2022, sec. 4.2.2).

Each tensor-parallel block (attention, dense MLP) does one all-gather of the sequence-sharded input and one
reduce-scatter of its output in the forward pass, and the same pair in the backward pass; each moves the full
activation ``tokens x hidden x 2 bytes`` over the tp group (ring: (tp-1)/tp of it per chip). A MoE block with
keeps tokens sequence-sharded into the all-to-all and needs no tp collective, except for its shared experts,
which are tensor-parallel like a dense MLP (expert tensor parallelism has its own collectives over the etp group:
:func:`trainsim.perf.comm_ep.etp_comm_fwd`). A parallel block (PaLM) fuses attention and MLP: one pair.
"""
from __future__ import annotations

import numpy as np

from ..model.arch import LayerKind
from .collectives import all_reduce_time, reduce_scatter_time
from .compute import dsa_loss_keys, dsa_loss_teacher
from .context import BF16_BYTES, StepContext
from .arrays import Num
from ..parallel.plan import Plans


def tp_collectives_per_layer(lk: LayerKind, parallel_block: bool, etp: Num) -> float:
    """Number of (all-gather or reduce-scatter) operations per layer per pass (forward or backward)."""
    attn = 2.0
    if lk.moe is None:
        mlp = 0.0 if parallel_block else 2.0
    else:
        mlp = 2.0 if lk.moe.shared_experts > 0 else 0.0
    return attn + mlp


def tp_comm_fwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Forward tensor-parallel communication time of one layer per micro-batch (0 when tp = 1)."""
    size = tokens * ctx.arch.hidden * BF16_BYTES   # the BF16 hidden states (also under FP8 GEMMs)
    one = reduce_scatter_time(size, p.tp, np.ones_like(p.tp), ctx.system, ctx.calib.coll_eff)
    return one * tp_collectives_per_layer(lk, ctx.arch.parallel_block, p.etp)


def replicated_gather_fwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Forward-only all-gather over the tp group of the sequence-sharded inputs of the layer's tp-replicated cores
    (``AttentionCore.tp_gather_elems`` BF16 elements per token; the DSA indexer's hidden states and q latent,
    :func:`trainsim.model.blocks.dsa_indexer`): Megatron-LM dsa.py ``DSAIndexer.forward_before_topk``
    (``gather_from_sequence_parallel_region(x)``, ``(qr)``), MindSpeed-LLM multi_latent_attention.py (the same two
    gathers before ``self.dsa_indexer``). Both detach the inputs first, so the backward has no matching
    reduce-scatter, unlike :func:`tp_comm_fwd`'s pairs; a plain ``torch.distributed`` call, outside Transformer
    Engine's userbuffer GEMM overlap. 0 when tp = 1 or without such a core."""
    elems = sum(c.tp_gather_elems for c in lk.attention if c.tp_replicated)
    size = tokens * elems * BF16_BYTES
    return reduce_scatter_time(size, p.tp, np.ones_like(p.tp), ctx.system, ctx.calib.coll_eff) if elems \
        else 0.0 * np.asarray(tokens, dtype=np.float64)


def dsa_loss_allreduce_fwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Forward-only all-reduce over the tp group of a layer's DSA indexer-loss target, per micro-batch: each tp
    rank sums the main attention's probabilities over its own heads (every tp rank holds every query row), and
    the ranks add their sums before the row normalisation; a plain ``torch.distributed.all_reduce`` of FP32:

    * ``sparse``: Megatron-LM d98e8a64 dsa_cudnn_kernels.py ``_compute_sparse_indexer_loss_and_grads``
      (``_all_reduce_tp_target``, the [b, sq, topk] target): ``tokens`` x min(top-k, s) x 4 bytes;
    * ``dense``: MindSpeed-LLM 8aaf6085 dsa_indexer.py ``get_attn_scores`` (the [b, sq, sk] head sum):
      ``tokens`` x s x 4 bytes;
    * ``dense_local``: none (MindSpeed-LLM c77308a1 ``get_attn_scores`` with its default ``allgather_q=True``).

    (:func:`trainsim.perf.compute.dsa_indexer_loss_work`). 0 when tp = 1, the stack runs no loss or the layer has
    no indexer. Example (test): 128 tokens, top-k 16: 128 x 16 x 4 = 8,192 bytes."""
    core = dsa_loss_teacher(lk)
    if ctx.dsa_indexer_loss not in ("sparse", "dense") or core is None:
        return 0.0 * np.asarray(tokens, dtype=np.float64)
    size = tokens * dsa_loss_keys(core, ctx) * 4.0   # FP32
    return all_reduce_time(size, p.tp, np.ones_like(p.tp), ctx.system, ctx.calib.coll_eff)
