"""DeepSeek-V4's eager glue kernels: each small kernel costs a fixed device time on top of its bytes, which a
whole-iteration CUDA graph keeps (issue 14; perf/compute.py kernel_floor_time / eager_kernels_fwd_bwd), counted per
layer and direction.

Hand count from the code the recipe runs (Megatron-LM 43e45e1307, the dev pin of Megatron-Bridge v0.6.0; SBHD,
micro-batch 1 so every SBHD <-> BSHD ``permute(...).contiguous()`` is a view; fused DSA kernels; sparse indexer
loss, coefficient 0.01; fused mHC). Forward / backward per layer and micro-batch, GEMMs and priced kernels not
counted:

* compressor (csa.py ``Compressor._forward_sbhd``), ratio 128: ``score + ape``, softmax, cast, product, sum,
  RMSNorm, RoPE = 7 forward; backward: the add 2 (the bf16 score gradient cast, the ape reduction), softmax 1,
  cast 1, product 2, RMSNorm 2, RoPE 1 = 9. Ratio 4 adds two ``_overlap_transform`` calls: forward ``new_full`` +
  two slice copies = 3 each -> 13; backward per transform two CopySlices (4 + 2: copy, clone, and zeros_like +
  copy where the base needs a gradient), three source slices (2 each: zeros + copy) and the sum of the two source
  gradients 1 = 13 -> 9 + 26 = 35. The indexer's compressor adds the Hadamard rotation: 14 / 36.
* sparse index list (``build_flat_topk_idxs``): cat 1 + ``local_to_global_flat`` 7 = 8 / 0, every layer;
  ``torch.cat([kv, compressed_kv])`` 1 / 0 where a compressor runs.
* indexer and sparse KL loss (``FusedCSAIndexerSparseAttnFunc``), CSA: weights scale 1 + q rotation 1 + weights
  float/scale/cast 3 + per-row lengths 6 + radix top-k 1 + top-k lengths 3 + offset indices 3 + predict 6 +
  target 1 + KL 13 + two clones and a ones 3 + tracker add 1 = 42 forward; backward 3 (precomputed gradients x
  grad_loss) + 2 (auto-scaler ones_like x scale) + 1 (weights scale) + 1 (rotation) = 7.
* mHC (two modules per layer): Sinkhorn 1 + three FP32 -> BF16 casts = 4 each way per module: 8 / 8.

CSA layer: 8 + 8 + (13 + 14) + 1 + 42 = 86 forward, 0 + 8 + (35 + 36) + 0 + 7 = 86 backward.
HCA layer: 8 + 8 + 7 + 1 = 24 forward, 8 + 9 = 17 backward. Window-only: 16 / 8.
DeepSeek-V4-Flash (config.json compress_ratios, 43 layers + 1 MTP): 21 CSA, 20 HCA, 2 window-only layers and the
window-only MTP layer: forward 21 x 86 + 20 x 24 + 3 x 16 = 2,334, backward 21 x 86 + 20 x 17 + 3 x 8 = 2,170:
4,504 kernels per micro-batch at 4 us (gemm_latency_s) = 18.016 ms; the recipe's 2,048 sequences over dp 128 at
micro-batch 1 are 16 micro-batches on pp 1: 0.288 s per step (the compressors alone under the former
"backward = 2 x forward" rule: 3 x 707 kernels, 0.136 s).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from trainsim.estimate import estimate
from trainsim.model.families import deepseek_v4 as dsv4
from trainsim.model.load import resolve_model
from trainsim.spec import parse_run

RUN = Path(__file__).resolve().parents[1] / "validation" / "runs" / "megatron-bridge-2608-dsv4-flash-gb300-128-mxfp8.yaml"


def test_component_counts_by_hand():
    # compressor: 7 ops at ratio 128; + 2 transforms x (new_full + 2 slice copies) at ratio 4
    assert dsv4.COMPRESSOR_KERNELS[dsv4.HCA] == (7, 2 + 1 + 1 + 2 + 2 + 1)
    assert dsv4.COMPRESSOR_KERNELS[dsv4.CSA] == (7 + 2 * 3, 9 + 2 * ((4 + 2) + 3 * 2 + 1))
    assert dsv4.SPARSE_INDEX_KERNELS == (1 + 7, 0)
    assert dsv4.INDEXER_LOSS_KERNELS == (1 + 1 + 3 + 6 + 1 + 3 + 3 + 6 + 1 + 13 + 3 + 1, 3 + 2 + 1 + 1)
    assert dsv4.MHC_KERNELS == (2 * (1 + 3), 2 * (1 + 3))


def test_layer_counts_by_hand():
    arch = resolve_model("deepseek-v4-flash")
    by_name = {lk.name: lk for lk in arch.layers + arch.mtp}
    for name in ("csa/moe", "csa/hash/moe"):
        assert (by_name[name].eager_kernels_fwd, by_name[name].eager_kernels_bwd) == (86, 86)
    assert (by_name["hca/moe"].eager_kernels_fwd, by_name["hca/moe"].eager_kernels_bwd) == (24, 17)
    for name in ("sliding/hash/moe", "mtp"):
        assert (by_name[name].eager_kernels_fwd, by_name[name].eager_kernels_bwd) == (16, 8)
    kinds = arch.layers + arch.mtp
    assert sum(lk.n_layers * lk.eager_kernels_fwd for lk in kinds) == 21 * 86 + 20 * 24 + 3 * 16 == 2334
    assert sum(lk.n_layers * lk.eager_kernels_bwd for lk in kinds) == 21 * 86 + 20 * 17 + 3 * 8 == 2170


def test_backward_is_counted_not_doubled():
    # the indexer's backward runs inside its forward (grad_loss 1), so the backward only rescales: 42 vs 7, far
    # under the 2 x 42 the memory-bound rule would charge; the compressors' autograd slice copies run more than
    # twice their forward kernels at ratio 4 (35 > 26) and fewer at ratio 128 (9 < 14)
    f, b = dsv4.INDEXER_LOSS_KERNELS
    assert b < 2 * f
    assert dsv4.COMPRESSOR_KERNELS[dsv4.CSA][1] > 2 * dsv4.COMPRESSOR_KERNELS[dsv4.CSA][0]
    assert dsv4.COMPRESSOR_KERNELS[dsv4.HCA][1] < 2 * dsv4.COMPRESSOR_KERNELS[dsv4.HCA][0]


def test_other_families_count_none():
    for name in ("deepseek-v3", "llama-3.1-8b", "qwen3-30b-a3b"):
        assert all(lk.eager_kernels_fwd == 0 and lk.eager_kernels_bwd == 0 for lk in resolve_model(name).layers)


def test_dsv4_step_lengthens_by_the_hand_count():
    run = parse_run(yaml.safe_load(RUN.read_text()))
    arch = run.arch
    bare = replace(arch, layers=tuple(replace(lk, eager_kernels_fwd=0, eager_kernels_bwd=0) for lk in arch.layers),
                   mtp=tuple(replace(lk, eager_kernels_fwd=0, eager_kernels_bwd=0) for lk in arch.mtp))
    added_s = estimate(run).step_time_s - estimate(replace(run, arch=bare)).step_time_s
    # (2,334 forward + 2,170 backward kernels) x 4 us x 16 micro-batches
    assert added_s == pytest.approx((2334 + 2170) * 4e-6 * 16, rel=1e-3)
