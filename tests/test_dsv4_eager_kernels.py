"""DeepSeek-V4's eager compressor kernels: each small kernel costs a fixed device time on top of its bytes, which a
whole-iteration CUDA graph keeps (issue 14; perf/compute.py eager_kernels_fwd_time).

Hand count from the code the recipe runs (Megatron-LM 43e45e1307, the dev pin of Megatron-Bridge v0.6.0,
experimental_attention_variant/csa.py ``Compressor._forward_sbhd``; the SBHD path, eager PyTorch), forward,
per compressor call, GEMMs not counted:
* ratio 128 (HCA): ``score + self.ape`` 1, ``torch.softmax(..., dtype=torch.float32)`` 1, ``.to(kv.dtype)`` 1,
  ``kv * weights`` 1, ``.sum(dim=1)`` 1, ``self.norm`` 1, ``_apply_rope`` (fused, in place) 1: 7;
* ratio 4 (CSA, overlapping windows): the same 7 plus two ``_overlap_transform`` calls of ``new_full`` and two
  slice assignments each, 6: 13; the indexer's own compressor is built with ``rotate=True``
  (``CSAIndexer.__init__``) and adds ``rotate_activation``: 14.
A CSA layer runs both (27), an HCA layer one (7), a window-only layer none.

DeepSeek-V4-Flash (config.json compress_ratios, 43 layers + 1 MTP): 21 CSA layers, 20 HCA layers, 2 window-only
layers and the window-only MTP layer: 21 x 27 + 20 x 7 = 707 kernels per micro-batch forward. The engine charges
memory-bound forward time once forward and twice backward: 3 x 707 = 2,121 kernels at 4 us (gemm_latency_s) =
8.484 ms per micro-batch; the recipe's 2,048 sequences over dp 128 at micro-batch 1 are 16 micro-batches on pp 1:
0.13574 s per step.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from trainsim.estimate import estimate
from trainsim.model.load import resolve_model
from trainsim.spec import parse_run

RUN = Path(__file__).resolve().parents[1] / "validation" / "runs" / "megatron-bridge-2608-dsv4-flash-gb300-128-mxfp8.yaml"


def test_compressor_kernel_counts_by_hand():
    arch = resolve_model("deepseek-v4-flash")
    by_name = {lk.name: lk for lk in arch.layers + arch.mtp}
    assert by_name["csa/moe"].eager_kernels_fwd == 27
    assert by_name["csa/hash/moe"].eager_kernels_fwd == 27
    assert by_name["hca/moe"].eager_kernels_fwd == 7
    assert by_name["sliding/hash/moe"].eager_kernels_fwd == 0
    assert by_name["mtp"].eager_kernels_fwd == 0
    assert sum(lk.n_layers * lk.eager_kernels_fwd for lk in arch.layers + arch.mtp) == 707


def test_other_families_count_none():
    for name in ("deepseek-v3", "llama-3.1-8b", "qwen3-30b-a3b"):
        assert all(lk.eager_kernels_fwd == 0 for lk in resolve_model(name).layers)


def test_dsv4_step_lengthens_by_the_hand_count():
    run = parse_run(yaml.safe_load(RUN.read_text()))
    arch = run.arch
    bare = replace(arch, layers=tuple(replace(lk, eager_kernels_fwd=0) for lk in arch.layers),
                   mtp=tuple(replace(lk, eager_kernels_fwd=0) for lk in arch.mtp))
    added_s = estimate(run).step_time_s - estimate(replace(run, arch=bare)).step_time_s
    # 3 passes x 707 kernels x 4 us x 16 micro-batches
    assert added_s == pytest.approx(3 * 707 * 4e-6 * 16, rel=1e-3)
