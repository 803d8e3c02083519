"""Serving decode over DeepEP's low-latency kernels: message bytes, the all-to-all time against DeepEP's published
low-latency figures, and the kernels' own HBM copies that replace the permute / unpermute kernels.

Published figures (deepseek-ai/DeepEP README.md at fbcf430, "Low-latency kernels with pure RDMA"): H800, one CX7
400 Gb/s NIC per GPU (~50 GB/s), 128 tokens per batch, hidden 7,168, top-8, FP8 dispatch, BF16 combine:

    EP    dispatch   combine
    64    173 us     314 us
    128   192 us     369 us
    256   194 us     360 us
"""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.catalog.load import get_system
from trainsim.inference.calib import default_calib
from trainsim.inference.serve import setup_for
from trainsim.inference.step import (ServePlans, _elementwise, _ep_comm, ll_dispatch, ll_dispatch_msg_bytes,
                                     ll_kernel_bytes_per_token, non_gemm_kernels)
from trainsim.model.load import resolve_model
from trainsim.perf.compute import elementwise_bytes_per_token

H = 7168
DEEPEP_LL_US = {64: (173.0, 314.0), 128: (192.0, 369.0), 256: (194.0, 360.0)}


def _moe_layer(arch):
    return next(lk for lk in arch.layers if lk.moe is not None)


def test_ll_dispatch_message_bytes():
    # internode_ll.cu: sizeof(int4) header + 7,168 FP8 bytes + 7,168 / 128 = 56 FP32 scales = 16 + 7,168 + 224
    assert float(ll_dispatch_msg_bytes(H, 1.0)) == 7408.0
    # BF16 dispatch: header + 2 bytes per channel, no scales
    assert float(ll_dispatch_msg_bytes(H, 2.0)) == 16.0 + 2 * H


@pytest.mark.parametrize("ep", [64, 128, 256])
def test_decode_all_to_all_against_deepep_published_rates(ep):
    """The model's decode dispatch + combine at a2a_eff 1 (the collective efficiency of each level only) against
    DeepEP's measured kernels. By hand at EP 256 (32 H800 nodes of 8): 248 of 256 destinations are off-node, so the
    RDMA NIC carries 248/256 of the bytes at 0.85 x 50 GB/s = 42.5 GB/s, plus the NVLink and NIC latencies (0.6 +
    5 us, NCCL tuning.cc's step latencies in systems.yaml) per all-to-all. Dispatch: 128 x 8 x 7,408 B = 7.586 MB ->
    7.586e6 x 0.969 / 42.5e9 = 172.9 us + 5.6 = 178.5 us (published 194); combine: 128 x 8 x 7,168 x 2 B = 14.68 MB ->
    334.6 + 5.6 = 340.2 us (published 360): 518.7 of 554 us, 0.94. A ratio below 1 is the part of line rate DeepEP does not reach, the physical range of ``a2a_eff``."""
    arch = resolve_model("deepseek-v3")
    s = setup_for(arch, get_system("hgx-h800"), "fp8", "bf16", calib=default_calib().with_(a2a_eff=1.0,
                                                                                          coll_eff=(0.80, 0.85)))
    lk = _moe_layer(arch)
    p = ServePlans(chips=ep, tp=1, pp=1, ep=ep)
    model_s = float(_ep_comm(lk, s, p, 128.0, dedup=False))
    pub_s = sum(DEEPEP_LL_US[ep]) * 1e-6
    if ep == 256:
        assert model_s == pytest.approx((7.586e6 * 248 / 256 / 42.5e9 + 5.6e-6)
                                        + (14.68e6 * 248 / 256 / 42.5e9 + 5.6e-6), rel=2e-3)
    assert 0.85 <= model_s / pub_s <= 1.0


def test_no_per_peer_cost_in_deepep_ll():
    # Published: doubling the peers from 128 to 256 at the same bytes per rank changes dispatch + combine by -1.2%
    # (561 -> 554 us): the kernels are bandwidth-bound, no per-peer message cost to add. The model agrees within 5%.
    arch = resolve_model("deepseek-v3")
    s = setup_for(arch, get_system("hgx-h800"), "fp8", "bf16", calib=default_calib().with_(a2a_eff=1.0))
    lk = _moe_layer(arch)
    t = {ep: float(_ep_comm(lk, s, ServePlans(chips=ep, tp=1, pp=1, ep=ep), 128.0, dedup=False)) for ep in (128, 256)}
    pub = sum(DEEPEP_LL_US[256]) / sum(DEEPEP_LL_US[128])
    assert abs(t[256] / t[128] - pub) < 0.05


def test_fused_dispatch_drops_permute_unpermute_and_expert_input_cast():
    # DeepSeek-V3 routed layer, k = 8: permute + unpermute 2 x 2 x (8 + 8) x 7,168 = 458,752 B; the routed copies'
    # fc1-input cast 8 x 7,168 elements x 3 B (delayed rowwise cast: read 2, write 1) = 172,032 B
    arch = resolve_model("deepseek-v3")
    lk = _moe_layer(arch)
    assert lk.moe.active_experts == 8 and arch.hidden == H
    full = elementwise_bytes_per_token(lk, H, 3.0, backward_casts=False)
    fused = elementwise_bytes_per_token(lk, H, 3.0, backward_casts=False, dispatch_fused=True)
    assert full - fused == 458_752 + 172_032
    # two kernels fewer (no permute, no unpermute); a dense layer has neither
    assert non_gemm_kernels(lk) - non_gemm_kernels(lk, True) == 2
    dense = next(x for x in arch.layers if x.moe is None)
    assert non_gemm_kernels(dense, True) == non_gemm_kernels(dense)
    assert elementwise_bytes_per_token(dense, H, 3.0, backward_casts=False, dispatch_fused=True) == \
        elementwise_bytes_per_token(dense, H, 3.0, backward_casts=False)


def test_ll_kernel_bytes_by_hand():
    # DeepSeek-V3, FP8 dispatch (message m = 7,408 B), k = 8.
    # All peers over RDMA: dispatch 2 h + m + 2 k m = 14,336 + 7,408 + 118,528 = 140,272; combine 2 k h x 2 (read
    # the rows, copy them into the send buffer) + 2 k h (read at the receiver) + 2 h = 229,376 + 114,688 + 14,336
    # = 358,400: 498,672 B per token, against 630,784 for permute + unpermute + per-copy cast.
    assert float(ll_kernel_bytes_per_token(H, 8.0, 1.0, 1.0)) == pytest.approx(498_672, abs=1e-6)
    # All peers over NVLink: dispatch adds the warp copy to each peer (k m = 59,264), combine drops the buffer copy
    assert float(ll_kernel_bytes_per_token(H, 8.0, 1.0, 0.0)) == pytest.approx(
        14_336 + 7_408 + 59_264 + 118_528 + 229_376 + 14_336, abs=1e-6)


def test_ll_dispatch_only_on_decode_expert_all_to_all():
    arch = resolve_model("deepseek-v3")
    lk = _moe_layer(arch)
    dense = next(x for x in arch.layers if x.moe is None)
    p = ServePlans(chips=np.array([144.0, 8.0, 1.0]), tp=np.array([1.0, 8.0, 1.0]), pp=1, ep=np.array([144.0, 1.0, 1.0]))
    # EP144: all-to-all -> fused; tp 8 with experts split over the tp group (ep 1, etp 8): no all-to-all; one chip
    assert ll_dispatch(lk, p, "decode").tolist() == [True, False, False]
    assert not ll_dispatch(lk, p, "prefill").any()
    assert not ll_dispatch(dense, p, "decode").any()
    # the decode step charges the kernels' own bytes instead of the permute where it applies: EP144 on 8-GPU H800
    # nodes sends 136 of 144 copies over RDMA (f = 136/144):
    # dispatch 14,336 + 7,408 + 8 x 7,408 x 8/144 + 118,528 = 143,564.4; combine 229,376 + 114,688 x 136/144 + 14,336
    # = 352,028.4; together 495,592.9 B per token against 630,784
    s = setup_for(arch, get_system("hgx-h800"), "fp8", "bf16")
    t = 256.0
    dec = _elementwise(lk, s, p, t, "decode")
    pre = _elementwise(lk, s, p, t, "prefill")
    c = s.calib
    saved = (630_784 - 495_592.889) * t / s.chip.hbm_bw / c.mem_eff + 2 * c.gemm_latency_s
    assert float(pre[0] - dec[0]) == pytest.approx(saved, rel=1e-6)
    assert float(pre[1] - dec[1]) == 0.0
