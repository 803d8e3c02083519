"""Megatron-Core's FP8 padding of the grouped experts' rows (perf/compute.py fp8_padding_fwd_bwd), checked against a
hand derivation from TEGroupedMLP (megatron/core/transformer/moe/experts.py at Megatron-LM 0d8e0714) and Transformer
Engine's Fp8Padding / Fp8Unpadding (transformer_engine/pytorch/module/fp8_padding.py, fp8_unpadding.py at v2.9)."""
from __future__ import annotations

from dataclasses import replace as dreplace

import numpy as np
import pytest

from conftest import ctx_for, make_system, one_plan
from trainsim.model.load import resolve_model
from trainsim.perf.compute import expert_copies_fwd_bwd, fp8_padding_fwd_bwd, hbm_time


@pytest.fixture()
def dsv3():
    arch = resolve_model("deepseek-v3")          # hidden 7168, 256 routed experts, top-8
    lk = next(lk for lk in arch.layers if lk.moe is not None)
    assert (arch.hidden, lk.moe.experts, lk.moe.top_k) == (7168, 256, 8)
    return arch, lk


def test_alltoall_fp8_pads_and_unpads_every_routed_row(dsv3):
    # The 25.11 DeepSeek-V3 B200 row's micro-batch: 4,096 tokens, tp 1, top-8 -> 32,768 routed rows on a chip's
    # 32 local experts (ep 8). Fp8Padding copies the 32,768 x 7,168 BF16 input into a padded buffer (read + write
    # 2 x 469,762,048 bytes) and Fp8Unpadding the output back (as much): 1,879,048,192 bytes forward; the backward
    # pads the output gradient and unpads the input gradient: as many.
    arch, lk = dsv3
    ctx = ctx_for(arch, make_system(fp8=624e12), chips=8, precision="fp8")
    assert ctx.fp8_gemm and ctx.moe_dispatcher == "alltoall"
    p = one_plan(ep=8, dp=8, zero=1)
    tokens = np.array([4096.0])
    fwd, bwd = fp8_padding_fwd_bwd(lk, ctx, p, tokens)
    assert float(fwd[0]) == pytest.approx(float(hbm_time(1_879_048_192.0, ctx)))
    assert float(bwd[0]) == pytest.approx(float(fwd[0]))
    # DeepEP pads nothing in its permute without moe_router_padding_for_quantization: the same copies
    f2, _ = fp8_padding_fwd_bwd(lk, dreplace(ctx, moe_dispatcher="deepep"), p, tokens)
    assert float(f2[0]) == pytest.approx(float(fwd[0]))
    # and they are part of the MoE layer's token copies the step reads
    with_pad, _ = expert_copies_fwd_bwd(lk, ctx, p, tokens)
    without, _ = expert_copies_fwd_bwd(lk, ctx_for(arch, make_system(), chips=8), p, tokens)
    assert float(with_pad[0] - without[0]) == pytest.approx(float(fwd[0]))


def test_no_padding_copy_where_the_rows_arrive_aligned_or_in_bf16(dsv3):
    arch, lk = dsv3
    ctx = ctx_for(arch, make_system(fp8=624e12), chips=8, precision="fp8")
    p, tokens = one_plan(ep=8, dp=8, zero=1), np.array([4096.0])
    cases = [
        ctx_for(arch, make_system(), chips=8),            # BF16: TEGroupedMLP builds no Fp8Padding
        dreplace(ctx, moe_dispatcher="hybridep"),         # HybridEP pads each expert's rows in its permute
        dreplace(ctx, moe_token_drop=True),               # drop-and-pad: every expert gets the capacity
        dreplace(ctx, moe_fused_grouped_mlp=True),        # TE's fused grouped MLP: its own kernels
        dreplace(ctx, moe_grouped_gemm=False),            # SequentialMLP: no TEGroupedMLP
    ]
    for c in cases:
        f, b = fp8_padding_fwd_bwd(lk, c, p, tokens)
        assert float(f[0]) == 0.0 and float(b[0]) == 0.0
    dense = next(lk for lk in arch.layers if lk.moe is None)
    f, b = fp8_padding_fwd_bwd(dense, ctx, p, tokens)
    assert float(f[0]) == 0.0 and float(b[0]) == 0.0


def test_allgather_dispatcher_pads_too(dsv3):
    # TEGroupedMLP.forward calls quantization_padding / quantization_unpadding under any FP8 config, whatever the
    # dispatcher (experts.py lines 880-887, 978 at 0d8e0714): the all-gather dispatcher's permuted rows get the
    # same 1,879,048,192 bytes per pass as the all-to-all's (32,768 rows x 7,168 x 2 B x 4).
    arch, lk = dsv3
    ctx = dreplace(ctx_for(arch, make_system(fp8=624e12), chips=8, precision="fp8"), moe_dispatcher="allgather")
    fwd, bwd = fp8_padding_fwd_bwd(lk, ctx, one_plan(ep=8, dp=8, zero=1), np.array([4096.0]))
    assert float(fwd[0]) == pytest.approx(float(hbm_time(1_879_048_192.0, ctx)))
    assert float(bwd[0]) == pytest.approx(float(fwd[0]))


@pytest.mark.parametrize("dispatcher", ["alltoall", "deepep"])
def test_router_padding_removes_the_copies(dsv3, dispatcher):
    # moe_router_padding_for_quantization pads the routing map in the dispatcher (token_dispatcher.py lines
    # 625-630, 1306-1309 at 0d8e0714), so Fp8Padding finds every count aligned and returns its input (TE v2.9
    # fp8_padding.py: 'if m_splits == padded_m_splits')
    arch, lk = dsv3
    ctx = dreplace(ctx_for(arch, make_system(fp8=624e12), chips=8, precision="fp8"), moe_dispatcher=dispatcher,
                   moe_router_padding_for_quantization=True)
    f, b = fp8_padding_fwd_bwd(lk, ctx, one_plan(ep=8, dp=8, zero=1), np.array([4096.0]))
    assert float(f[0]) == 0.0 and float(b[0]) == 0.0


def test_router_padding_is_refused_where_megatron_core_refuses_it():
    # Megatron-Core transformer_config.py __post_init__ at 0d8e0714 (lines 1439-1449): needs fp8 / fp4, and the
    # allgather dispatcher 'does not support moe_router_padding_for_quantization'
    from pydantic import ValidationError
    from trainsim.spec import TrainingSpec
    base = dict(seq_len=4096, global_batch_seqs=1024)
    assert TrainingSpec(**base, precision="fp8", moe_router_padding_for_quantization=True)
    with pytest.raises(ValidationError, match="only to precision fp8"):
        TrainingSpec(**base, precision="bf16", moe_router_padding_for_quantization=True)
    with pytest.raises(ValidationError, match="allgather"):
        TrainingSpec(**base, precision="fp8", moe_dispatcher="allgather", moe_router_padding_for_quantization=True)
