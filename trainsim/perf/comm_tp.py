"""Tensor-parallel communication per layer, with sequence parallelism (Korthikanti et al. 2022, sec. 4.2.2).

Each tensor-parallel block (attention, dense MLP) does one all-gather of the sequence-sharded input and one
reduce-scatter of its output in the forward pass, and in the backward pass the mirrored pair plus, in Megatron-style
stacks, a re-gather of the saved input shard for the weight gradient (:func:`tp_bwd_fwd_ratio`); each moves the full
activation ``tokens x hidden`` over the tp group (ring: (tp-1)/tp of it per chip), 2 bytes an element, except the
all-gathers under FP8 GEMMs, which move the FP8 cast (:func:`tp_gather_bytes_per_elem`). A MoE block with
keeps tokens sequence-sharded into the all-to-all and needs no tp collective, except for its shared experts,
which are tensor-parallel like a dense MLP (expert tensor parallelism has its own collectives over the etp group:
:func:`trainsim.perf.comm_ep.etp_comm_fwd`). A parallel block (PaLM) fuses attention and MLP: one pair.
"""
from __future__ import annotations

import numpy as np

from ..model.arch import LayerKind
from .collectives import all_reduce_time, exposed, reduce_scatter_time
from .compute import FP8_SCALE_BYTES_PER_ELEM, dsa_loss_keys, dsa_loss_teacher
from .context import BF16_BYTES, StepContext
from .arrays import Num
from ..parallel.plan import Plans


def tp_collectives_per_layer(lk: LayerKind, parallel_block: bool, etp: Num) -> float:
    """Number of (all-gather or reduce-scatter) operations per layer in the forward pass (the backward's:
    x :func:`tp_bwd_fwd_ratio`)."""
    attn = 2.0
    if lk.moe is None:
        mlp = 0.0 if parallel_block else 2.0
    else:
        mlp = 2.0 if lk.moe.shared_experts > 0 else 0.0
    return attn + mlp


def tp_bwd_fwd_ratio(ctx: StepContext) -> float:
    """Backward tensor-parallel bytes over the forward's, per tensor-parallel block: 3 / 2 where the column-parallel
    linear saves only its sequence shard of the input and gathers it again in the backward for its weight gradient,
    1 where the stack keeps the gathered input whole (``tp_gathered_gemm_inputs``: DTensor TP, torchtitan) or runs
    no sequence parallelism (``tp_allreduce``).

    Forward per block: all-gather of the input (column-parallel), reduce-scatter of the output (row-parallel).
    Backward: all-gather of the output gradient (row-parallel), the re-gather of the saved input shard and the
    reduce-scatter of the input gradient (column-parallel): three transfers of the same ``tokens x hidden`` buffer.

    * Megatron-LM d98e8a64 megatron/core/tensor_parallel/layers.py
      ``LinearWithGradAccumulationAndAsyncCommunication``: ``forward`` saves ``input`` (the shard) and gathers into
      a global buffer; ``backward`` ``dist_all_gather_func(all_gather_buffer, input, ..., async_op=True)`` beside
      the dgrad GEMM, then ``dist_reduce_scatter_func(sub_grad_input, grad_input, ..., async_op=True)`` beside the
      wgrad GEMM;
    * Transformer Engine d0067d0d transformer_engine/pytorch/module/layernorm_linear.py (``ln_out_to_save = ln_out``,
      ``ctx.ln_out_needs_gather`` = column-parallel and sequence-parallel; the backward's
      ``gather_along_first_dim(ln_out, ..., async_op=True)``, or the userbuffers bulk all-gather under
      ``ub_bulk_dgrad``), and alike module/linear.py (``backward_input_needs_gather``) and module/layernorm_mlp.py;
    * MindSpeed MC2 (mindspeed/core/tensor_parallel/ascend_turbo/mc2_linears_seq_parallel.py at e6ea2117,
      ``all_gather_recomputation`` True): the same re-gather (constants.yaml, the ascend-910 MC2 source).

    Without sequence parallelism (the stack flag ``tp_allreduce``: Megatron-LM v2.5 e269e200 megatron/mpu/layers.py,
    ``copy_to_tensor_model_parallel_region`` / ``reduce_from_tensor_model_parallel_region``) the input is whole and
    there is no re-gather: one all-reduce each way (the bytes of an all-gather plus a reduce-scatter), 1. Full
    recompute reruns the forward with its own gather and reduce-scatter (:mod:`trainsim.perf.step`) and the
    backward still re-gathers (the recomputed forward saves the shard again).
    Expert tensor parallelism (:func:`trainsim.perf.comm_ep.etp_comm_fwd`) is outside this: Megatron's token
    dispatcher gathers the tokens itself (``gather_from_sequence_parallel_region`` over the etp group, whose backward
    is one reduce-scatter) and the grouped expert GEMMs keep the gathered tokens (``explicit_expert_comm``), so its
    backward moves what its forward does.

    Example (test): hidden 8,192, 4,096 tokens, BF16: 64 MiB per transfer; a dense block moves 2 x 64 MiB forward
    and 3 x 64 MiB backward, per layer (attention + MLP) 256 MiB forward and 384 MiB backward."""
    return 1.0 if ctx.tp_gathered_gemm_inputs or ctx.tp_allreduce else 1.5


def tp_overlap_fraction(ctx: StepContext) -> float:
    """Fraction of a sequence-parallel TP transfer that hides behind its block's GEMMs: the stack's
    ``tp_overlap_userbuffers`` with ``--tp-comm-overlap`` (Transformer Engine userbuffers; MC2 on Ascend), else
    ``tp_overlap`` (constants.yaml, calibration.yaml: each with its source)."""
    return ctx.calib.tp_overlap_userbuffers if ctx.tp_comm_overlap else ctx.calib.tp_overlap


def tp_gather_bytes_per_elem(ctx: StepContext) -> float:
    """Bytes per hidden-state element of a sequence-parallel tensor-parallel all-gather: under FP8 GEMMs the stack
    casts before it gathers, so 1 byte plus the recipe's scale bytes
    (:data:`trainsim.perf.compute.FP8_SCALE_BYTES_PER_ELEM`: MXFP8 1/32, blockwise 4/128, per-tensor 0); otherwise
    BF16, 2. The reduce-scatters (row-parallel outputs,
    column-parallel input gradients) and the all-reduces of TP without sequence parallelism (``tp_allreduce``)
    stay BF16: they carry GEMM outputs.

    * Transformer Engine, forward: ``_LayerNormLinear.forward`` with ``parallel_mode == 'column'`` and
      ``sequence_parallel`` quantises the norm output (the quantized-norm kernel, or ``quantizer(ln_out)``) and
      gathers it with ``gather_along_first_dim(ln_out, tp_group, quantizer=quantizer)``, or fills the userbuffers
      all-gather with the quantized tensor (TransformerEngine d0067d0d transformer_engine/pytorch/module/
      layernorm_linear.py; distributed.py ``gather_along_first_dim``: ``_all_gather_fp8`` for delayed and current
      scaling, ``_all_gather_mxfp8`` with its scales, ``_start_all_gather_fp8_blockwise`` FP8 when the shape
      divides by 128); the same since v1.0 (layernorm_linear.py: ``ln_out_dtype = torch.uint8`` under FP8, then
      ``gather_along_first_dim(ln_out, tp_group)``).
    * Backward: the re-gather of the saved input shard (``ctx.ln_out_needs_gather``) gathers the saved FP8 tensor,
      and the row-parallel linear's output-gradient all-gather casts dY first (module/base.py
      ``grad_output_preprocess``: 'FP8 with all-gather: unfused bgrad, fused cast + transpose', then
      ``gather_along_first_dim(grad_output, ..., quantizer=quantizer)``; v1.12: ``cast_to_fp8`` into a uint8
      buffer, then the gather); userbuffers keep FP8 buffers for these all-gathers.
    * torchao Float8 TP (torchtitan's ``enable_float8_linear`` with TP): ``PrepareFloat8ModuleInput`` casts the
      module input with ``hp_tensor_to_float8_dynamic`` before ``redistribute`` to ``Replicate`` (an FP8
      all-gather), and ``Float8RowwiseParallel``'s output passes through ``NoopFwToFloat8E5M2BwDynamic`` after its
      reduce-scatter, so the backward gathers an FP8 dY (pytorch/ao v0.7.0 torchao/float8/float8_tensor_parallel.py).

    Example (test): hidden 8,192, 4,096 tokens: a BF16 transfer 64 MiB, an FP8 (current scaling) all-gather
    32 MiB, an MXFP8 one 33 MiB (32 MiB + 1 MiB of E8M0 scales)."""
    if not ctx.fp8_gemm or ctx.tp_allreduce:
        return BF16_BYTES
    return 1.0 + FP8_SCALE_BYTES_PER_ELEM[ctx.fp8_recipe]


def tp_transfer_time(ctx: StepContext, p: Plans, tokens: Num, bytes_per_elem: float = BF16_BYTES) -> Num:
    """One sequence-parallel all-gather or reduce-scatter of the hidden states over the tp group, per micro-batch:
    ``tokens x hidden x bytes_per_elem`` (BF16 unless given: :func:`tp_gather_bytes_per_elem` for the
    all-gathers), ring (tp - 1) / tp of it per chip; 0 when tp = 1."""
    size = tokens * ctx.arch.hidden * bytes_per_elem
    return reduce_scatter_time(size, p.tp, np.ones_like(p.tp), ctx.system, ctx.calib.coll_eff)


def tp_block_pair_time(ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """One tensor-parallel block's forward pair per micro-batch: the all-gather of its input at
    :func:`tp_gather_bytes_per_elem` plus the reduce-scatter of its output in BF16 (the pair a recomputed block
    reruns too, :func:`tp_mlp_recompute_exposed`)."""
    return tp_transfer_time(ctx, p, tokens, tp_gather_bytes_per_elem(ctx)) + tp_transfer_time(ctx, p, tokens)


def tp_comm_fwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Forward tensor-parallel communication time of one layer per micro-batch (0 when tp = 1): one all-gather
    and one reduce-scatter per block (:func:`tp_collectives_per_layer` / 2 blocks, :func:`tp_block_pair_time`)."""
    return tp_block_pair_time(ctx, p, tokens) * (tp_collectives_per_layer(lk, ctx.arch.parallel_block, p.etp) / 2.0)


def tp_comm_bwd(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num) -> Num:
    """Backward tensor-parallel communication time of one layer per micro-batch (0 when tp = 1): per block the
    reduce-scatter of the input gradient (BF16) and 2 x :func:`tp_bwd_fwd_ratio` - 1 all-gathers at
    :func:`tp_gather_bytes_per_elem` (the output gradient's and, where the stack saved only the input shard, the
    input's again): in BF16 exactly :func:`tp_bwd_fwd_ratio` x :func:`tp_comm_fwd`."""
    gathers = 2.0 * tp_bwd_fwd_ratio(ctx) - 1.0
    one = gathers * tp_transfer_time(ctx, p, tokens, tp_gather_bytes_per_elem(ctx)) + tp_transfer_time(ctx, p, tokens)
    return one * (tp_collectives_per_layer(lk, ctx.arch.parallel_block, p.etp) / 2.0)


def tp_mlp_recompute_exposed(lk: LayerKind, ctx: StepContext, p: Plans, tokens: Num, gemm_s: Num) -> Num:
    """The tensor-parallel pair (all-gather of the input, reduce-scatter of the output) a selectively recomputed
    MLP block runs again, exposed behind its recomputed GEMMs ``gemm_s`` at the stack's tp overlap fraction:
    Megatron-LM d98e8a64 megatron/core/transformer/transformer_layer.py ``_forward_mlp`` wraps the whole MLP module
    (``recompute_mlp``, recompute module ``mlp``) in ``tensor_parallel.checkpoint`` / ``te_checkpoint``, and
    moe/moe_layer.py the shared experts (``shared_experts_recompute``), whose column- and row-parallel linears
    gather and reduce-scatter again when rerun. 0 for a layer without a tensor-parallel MLP block (a MoE layer
    without shared experts, a parallel block's fused one) or at tp = 1."""
    has_block = (lk.moe is None and not ctx.arch.parallel_block) or (lk.moe is not None
                                                                     and lk.moe.shared_experts > 0)
    if not has_block:
        return 0.0 * np.asarray(tokens, dtype=np.float64)
    return exposed(tp_block_pair_time(ctx, p, tokens), gemm_s, tp_overlap_fraction(ctx))


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
