"""DeepSeek-V4 (DeepseekV4Config / transformers ``modeling_deepseek_v4``; DeepSeek-V4 inference ``model.py``).

Per layer (``compress_ratios[i]`` picks the attention):

* attention: q_a (h -> q_lora) + RMSNorm, q_b (q_lora -> H d), one shared K=V head kv (h -> d) + RMSNorm, a
  grouped low-rank output (``o_groups`` blocks of H d / g -> o_lora, then g o_lora -> h) and a sink per head;
  every layer attends a sliding window (``sliding_window``) of uncompressed keys;
* ratio 4 (CSA): a compressor with overlapping windows (kv and gate h -> 2 d, position bias 4 x 2 d, RMSNorm d)
  and a lightning indexer (its own compressor at ``index_head_dim``, q_b from the q latent, weights h -> H_I);
  the attention reads the ``index_topk`` compressed entries the indexer picks;
* ratio 128 (HCA): a compressor (kv and gate h -> d, position bias 128 x d, RMSNorm d) whose s/128 entries are
  all attended;
* ratio 0: the sliding window only;
* MoE in every layer (no dense layers) with one shared expert; the first ``num_hash_layers`` route by a frozen
  token-id table (``tid2eid``, an integer buffer: not a parameter) and have no score-correction bias;
* two manifold-constrained hyper-connections (``hc_mult`` residual streams): fn ((2 + m) m x m h), base, scale.

Model: embedding, head, final RMSNorm and the hyper-head (m x m h + m + 1). MTP blocks add e_proj and h_proj
(h -> h each), three RMSNorms and their own hyper-head. This reproduces the main-model totals of models.yaml
(V4-Flash 284.33B, V4-Pro 1573.0B).

Attention FLOPs of the compressed branches are written as full causal cores over the compressed sequence: a
core whose head dims are divided by the compression ratio has exactly the FLOPs of attending s / ratio entries
(its ``kv_elems_per_token`` is the compressed cache per source token).
"""
from __future__ import annotations

from typing import Any

from ..arch import Arch, AttentionCore, LayerKind, Matrix
from ..blocks import moe_block
from .cfg import Cfg
from .common import display_name

DEFAULTS: dict[str, dict[str, Any]] = {
    # DeepseekV4Config (V4-Flash values where the class has none)
    "deepseek_v4": dict(num_key_value_heads=1, head_dim=512, qk_rope_head_dim=64, o_groups=8, o_lora_rank=1024,
                        n_shared_experts=1, num_hash_layers=3, sliding_window=128, index_n_heads=64,
                        index_head_dim=128, index_topk=512, hc_mult=4, tie_word_embeddings=False,
                        num_nextn_predict_layers=0),
}
CSA, HCA = 4, 128  # DeepseekV4Config.compress_rates
# Eager glue kernels of a DeepSeek-V4 layer as Megatron-Core trains it, (forward, backward) per layer and micro-batch,
# besides the GEMM, attention and fused kernels the byte model prices (perf/compute.py eager_kernels_fwd_bwd).
# Counted from Megatron-LM 43e45e1307 (the dev pin of Megatron-Bridge v0.6.0), the recipe's path: SBHD (no packed
# sequences), micro-batch 1, apply_dsa_kernel_fusion (``use_fused_dsa_kernels``), dsa_indexer_use_sparse_loss with
# dsa_indexer_loss_coeff 0.01 > 0, use_fused_mhc; ``b = 1`` makes every SBHD <-> BSHD ``permute(...).contiguous()``
# a view (no copy), views / reshapes / ``.to`` of a tensor already in that dtype launch nothing, and the window and
# compressed index tables are ``lru_cache``d (csa.py ``_get_window_topk_idxs_cached``). Backward counts follow
# PyTorch's autograd formulas: ``CopySlices`` copies the gradient and clones the slice (+ a ``zeros_like`` and a
# copy where its base needs a gradient; torch/csrc/autograd/functions/tensor.cpp ``CopySlices::apply_impl``), a
# slice's backward is ``zeros`` + copy, a bf16 + fp32 add casts the bf16 operand's gradient and reduces the
# broadcast one, a dtype cast's backward casts back.
#
#: One compressor call (experimental_attention_variant/csa.py ``Compressor._forward_sbhd``; the fused compressor
#: serves THD only), GEMMs not counted. Forward: ``score + ape`` 1, ``softmax(dtype=float32)`` 1, ``.to(kv.dtype)``
#: 1, ``kv * weights`` 1, ``.sum(dim=1)`` 1, the RMSNorm 1, the fused in-place RoPE 1: 7 at ratio 128; ratio 4
#: (``coff`` 2) adds two ``_overlap_transform`` calls, each a ``new_full`` and two slice copies, +6: 13. Backward:
#: the add 2 (bf16 cast of the score gradient, ``ape`` reduction), softmax 1, the cast 1, the product 2, the
#: RMSNorm 2 (Transformer Engine's backward and its dgamma finalize), RoPE 1: 9 at ratio 128; each overlap transform
#: +13 (two ``CopySlices``, 4 + 2; the sources' three slices, ``tensor[:, :, :, d:]`` one and
#: ``tensor[:-1, :, :, :d]`` two, 2 each; their sum 1): 35 at ratio 4. The indexer's compressor (``rotate=True``)
#: adds the Hadamard rotation (``rotate_activation``, fast_hadamard_transform) forward and backward: 14 / 36.
COMPRESSOR_KERNELS = {CSA: (13, 35), HCA: (7, 9)}
#: The sparse-attention index list every layer builds per call (csa_kernels.py ``build_flat_topk_idxs`` /
#: the same ops inline in ``FusedCSAIndexerSparseAttnFunc.forward``): ``torch.cat`` of the index groups 1 and
#: ``local_to_global_flat``'s SBHD branch (``>= 0``, ``arange``, ``% b``, ``* b``, ``+``, ``where``, ``.int()``
#: of the int64 concatenation) 7: 8 forward, none backward (integers).
SPARSE_INDEX_KERNELS = (8, 0)
#: ``torch.cat([kv, compressed_kv])`` into the sparse attention's key table (csa.py ``_build_kv_full``), layers
#: with a compressor; its backward is two views.
KV_FULL_CAT_KERNELS = (1, 0)
#: The lightning indexer and its sparse KL loss on the fused training path (csa.py
#: ``_forward_fused_indexer_training``; csa_kernels.py ``FusedCSAIndexerSparseAttnFunc``), CSA layers; the
#: cuDNN indexer forward, FlashMLA sparse forward and the cuDNN indexer / sparse-attention backwards are priced as
#: attention cores. Forward 42: ``weights * H_I^-0.5`` 1 and ``rotate_activation(q)`` 1
#: (``CSAIndexer.forward_before_topk``); the weights' ``.float() * scale .to(bf16)`` 3; ``_indexer_topk_core``'s
#: per-row lengths (``arange``, ``+ 1``, ``// ratio``, ``clamp``, ``.to(int32)``, ``repeat``) 6, the radix top-k
#: (``indexer_top_k_wrapper``) 1 and ``(topk >= 0).sum(-1).int()`` 3; the offset indices ``where(topk >= 0,
#: topk + offset, -1)`` 3; the sparse loss's predict (``clamp``, ``.long()``, ``gather``, ``>= 0``, ``where``,
#: ``softmax``) 6 and target (cuDNN ``sparse_attn_score_recompute_wrapper``) 1; ``_kl_loss_from_target_predict``
#: (two ``clamp``, two ``log``, ``-``, ``*``, ``sum``, ``>= 0``, ``any``, ``zeros_like``, ``where``, ``mean``,
#: ``loss_coeff *``) 13; ``target.clone()``, ``predict.clone()``, ``torch.ones`` 3; the logging tracker's
#: ``values[l] += loss.detach()`` (dsa.py ``DSAIndexerLossLoggingHelper.save_loss_to_tracker``) 1. Backward 7:
#: the three precomputed indexer gradients times ``grad_loss`` 3, ``DSAIndexerLossAutoScaler.backward``
#: (``ones_like * scale``) 2, the weights' scale 1, the rotation 1 (the indexer backward itself runs in the forward,
#: with ``grad_loss`` 1, so the backward only rescales).
INDEXER_LOSS_KERNELS = (42, 7)
#: Per layer, the two hyper-connection modules' kernels the byte model does not price (hyper_connection.py
#: ``compute_mappings`` with use_fused_mhc): the Sinkhorn projection (fused_mhc_kernels.py Triton
#: ``_triton_sinkhorn_fwd_kernel`` / ``_bwd_kernel``, one launch each way) and the three FP32 -> BF16 casts of
#: ``h_pre``, ``h_post``, ``h_res`` (their backward casts back): 4 + 4 per module, 8 forward and 8 backward.
MHC_KERNELS = (8, 8)


def eager_kernels(ratio: int) -> tuple[int, int]:
    """(forward, backward) eager glue kernels of one DeepSeek-V4 layer of compress ratio ``ratio`` per micro-batch
    (the sums of the tables above): CSA 86 / 86, HCA 24 / 17, window-only 16 / 8."""
    parts = [SPARSE_INDEX_KERNELS, MHC_KERNELS]
    if ratio == CSA:
        comp = (2 * COMPRESSOR_KERNELS[CSA][0] + 1, 2 * COMPRESSOR_KERNELS[CSA][1] + 1)
        parts += [comp, KV_FULL_CAT_KERNELS, INDEXER_LOSS_KERNELS]
    elif ratio == HCA:
        parts += [COMPRESSOR_KERNELS[HCA], KV_FULL_CAT_KERNELS]
    return sum(f for f, _ in parts), sum(b for _, b in parts)


def _layer(c: Cfg, ratio: int, hashed: bool, n: int, name: str) -> LayerKind:
    h, heads, d = c.int("hidden_size"), c.int("num_attention_heads"), c.int("head_dim")
    ql, ol, g = c.int("q_lora_rank"), c.int("o_lora_rank"), c.int("o_groups")
    m = c.int("hc_mult")
    # GEMMs Megatron-Core keeps in BF16 in an FP8 run (``fp8=False``; Megatron-LM 43e45e1307, the dev pin of
    # Megatron-Bridge v0.6.0): the grouped output projection o_a is ``torch.einsum("...gd,grd->...gr")`` on a plain
    # ``nn.Parameter`` (experimental_attention_variant/deepseek_v4_hybrid_attention.py lines 179-186, 465-468), one
    # batched GEMM over its g groups, not a Transformer Engine module; every compressor's ``linear_wkv`` /
    # ``linear_wgate`` and the indexer's ``linear_weights_proj`` are built and run under
    # ``get_fp8_disabled_context`` (csa.py lines 925, 1021, 1356, 1458: "Run the compressor GEMMs in high precision
    # (BF16) even under FP8 training", PR #5308); the mHC mapping projection is an ``nn.Linear`` kept in FP32
    # (hyper_connection.py ``mark_keep_in_fp32``) that the fused cuTile kernel reads in BF16 and multiplies in TF32
    # (fusions/fused_mhc_kernels.py ``_ct_proj_rms_fwd_kernel``). The indexer's q_b (``linear_wq_b``) stays FP8.
    mats = [Matrix("q_a", h, ql, "attn", "none"), Matrix("q_b", ql, heads * d, "attn", "col"),
            Matrix("kv", h, d, "attn", "none"),
            Matrix("o_a", heads * d // g, ol, "attn", "row", count=g, active=float(g), fp8=False),
            Matrix("o_b", g * ol, h, "attn", "none")]
    vec = ql + d + heads
    # RoPE on the last qk_rope_head_dim (rd) dims only (Megatron-LM d48bd6be0a, experimental_attention_variant/
    # deepseek_v4_hybrid_attention.py and csa.py ``_apply_rope``): the query once per token (H rd) plus the
    # inverse rotation of the attention output's rd dims per head (H rd, "inverse RoPE on last
    # qk_pos_emb_head_dim of each head"), the one shared KV head (rd); each compressed entry (one per `ratio`
    # tokens: rd / ratio per token); the indexer's query (H_I rd). Cores reading the shared query rotate no q.
    rd = c.int("qk_rope_head_dim")
    # Memory-bound kernels around the core as Megatron-Core runs them (Megatron-LM 43e45e1307, the dev pin of
    # Megatron-Bridge v0.6.0, experimental_attention_variant/deepseek_v4_hybrid_attention.py): the query's
    # weightless per-head RMSNorm ``_q_rms_norm`` over all H d elements (torch.compile, lines 39-42, called at
    # line 711); the inverse RoPE of the output through ``fused_mla_rope_out_of_place`` (line 405), which
    # clones the whole H d output before rotating (fusions/fused_mla_yarn_rope_apply.py line 484, ``t.clone()``:
    # "Fused DSA backward retains the raw attention output O", so it needs private storage): read + write,
    # 4 H d bytes.
    #
    # One sparse-attention kernel call per layer covers the sliding window and the compressed entries (Megatron-LM
    # 43e45e1307 experimental_attention_variant/csa.py ``CompressedSparseAttention.forward``: the window indices
    # and the compressed ones are concatenated into one flat index list per query, ``build_flat_topk_idxs``, for
    # one ``fused_csa_indexer_sparse_attn`` (CSA) or ``csa_sparse_attn`` (HCA, window-only) call): its list holds
    # the window plus the indexer's top-k (CSA), plus all s / 128 compressed entries (HCA,
    # ``get_compress_topk_idxs``), or the window alone; the window and compressed cores carry that length.
    win = c.int("sliding_window")
    dsa = {0: (win, 0.0), CSA: (win + c.int("index_topk"), 0.0), HCA: (win, 1.0 / HCA)}.get(ratio, (win, 0.0))
    cores = [AttentionCore(heads=heads, qk_head_dim=d, v_head_dim=d, kv_heads=1, kind="sliding",
                           window=win, kv_elems_per_token=d,
                           rope_q_elems=2 * heads * rd, rope_k_elems=rd, q_norm_elems=heads * d,
                           out_copy_bytes=4.0 * heads * d, dsa_keys=dsa[0], dsa_keys_per_token=dsa[1])]
    if ratio == CSA:
        ih, idim = c.int("index_n_heads"), c.int("index_head_dim")
        mats += [Matrix("csa.kv", h, 2 * d, "other", "none", fp8=False),
                 Matrix("csa.gate", h, 2 * d, "other", "none", fp8=False),
                 Matrix("indexer.kv", h, 2 * idim, "other", "none", fp8=False),
                 Matrix("indexer.gate", h, 2 * idim, "other", "none", fp8=False),
                 Matrix("indexer.wq", ql, ih * idim, "other", "none"),
                 Matrix("indexer.weights", h, ih, "other", "none", fp8=False)]
        vec += CSA * 2 * d + d + CSA * 2 * idim + idim
        cores += [AttentionCore(heads=heads, qk_head_dim=d, v_head_dim=d, kv_heads=1, kind="sparse",
                                window=c.int("index_topk"), kv_elems_per_token=d // CSA,
                                rope_q_elems=0, rope_k_elems=rd / CSA, dsa_keys=dsa[0]),
                  AttentionCore(heads=ih, qk_head_dim=idim // CSA, v_head_dim=0, kv_heads=1, kind="full",
                                kv_elems_per_token=idim // CSA, rope_q_elems=ih * rd, rope_k_elems=rd / CSA)]
    elif ratio == HCA:
        mats += [Matrix("hca.kv", h, d, "other", "none", fp8=False),
                 Matrix("hca.gate", h, d, "other", "none", fp8=False)]
        vec += HCA * d + d
        cores.append(AttentionCore(heads=heads, qk_head_dim=d // HCA, v_head_dim=d // HCA, kv_heads=1,
                                   kind="full", kv_elems_per_token=d // HCA, rope_q_elems=0,
                                   rope_k_elems=rd / HCA, dsa_keys=dsa[0], dsa_keys_per_token=dsa[1]))
    elif ratio != 0:
        raise c.error(f"compress_ratios entry {ratio} is not 0, {CSA} or {HCA}", "compress_ratios")
    experts, eff = c.int("n_routed_experts"), c.int("moe_intermediate_size")
    shared = c.int("n_shared_experts", default=1)
    moe_mats, info, rvec = moe_block(h, experts, c.int("num_experts_per_tok"), eff, "swiglu",
                                     shared_experts=shared, shared_ffn=shared * eff, router_bias=not hashed)
    mix = (2 + m) * m
    mats += moe_mats + [Matrix("hc.attn", m * h, mix, "other", "none", fp8=False),
                        Matrix("hc.ffn", m * h, mix, "other", "none", fp8=False)]
    vec += rvec + 2 * h + 2 * (mix + 3)
    eager_f, eager_b = eager_kernels(ratio)
    return LayerKind(name=name, n_layers=n, matrices=tuple(mats), attention=tuple(cores), vector_params=vec, moe=info,
                     ffn_act="swiglu", ffn_dim=shared * eff, residual_streams=m, eager_kernels_fwd=eager_f,
                     eager_kernels_bwd=eager_b)


def deepseek_v4(c: Cfg) -> Arch:
    """DeepSeek-V4 as an :class:`Arch`: layers grouped by (compress ratio, hash-routed), per the module
    docstring."""
    h, n, vocab = c.int("hidden_size"), c.int("num_hidden_layers"), c.int("vocab_size")
    ratios = [int(r) for r in (c.list("compress_ratios") or [0] * n)]
    if len(ratios) < n:
        raise c.error(f"compress_ratios has {len(ratios)} entries for {n} layers", "compress_ratios")
    n_hash = c.int("num_hash_layers", default=0)
    groups: dict[tuple[int, bool], int] = {}
    for i in range(n):
        key = (ratios[i], i < n_hash)
        groups[key] = groups.get(key, 0) + 1
    names = {0: "sliding", CSA: "csa", HCA: "hca"}
    layers = tuple(_layer(c, r, hashed, cnt, f"{names.get(r, r)}{'/hash' if hashed else ''}/moe")
                   for (r, hashed), cnt in groups.items())
    m = c.int("hc_mult")
    n_mtp = c.int("num_nextn_predict_layers", default=0)
    mtp: tuple[LayerKind, ...] = ()
    if n_mtp:
        base = _layer(c, ratios[n] if len(ratios) > n else 0, False, n_mtp, "mtp")
        extra = (Matrix("mtp.e_proj", h, h, "other", "none"), Matrix("mtp.h_proj", h, h, "other", "none"))
        mtp = (LayerKind(name="mtp", n_layers=n_mtp, matrices=base.matrices + extra, attention=base.attention,
                         vector_params=base.vector_params + 3 * h + m * m * h + m + 1, moe=base.moe,
                         ffn_act="swiglu", ffn_dim=base.ffn_dim, residual_streams=m,
                         eager_kernels_fwd=base.eager_kernels_fwd, eager_kernels_bwd=base.eager_kernels_bwd),)
    tied = c.bool("tie_word_embeddings", default=False)
    return Arch(name=display_name(c), family=c.family, hidden=h, vocab=vocab, layers=layers, tied_embeddings=tied,
                embedding_params=vocab * h, head_params=0 if tied else vocab * h, final_params=h + m * m * h + m + 1,
                mtp=mtp, notes=("hash-routing tables (tid2eid, integers) are buffers, not counted",))


BUILDERS = {"deepseek_v4": deepseek_v4}
