"""Tensor-parallel all-reduce in serving: the stacks' custom one-shot / two-shot kernel (vLLM
csrc/custom_all_reduce.cuh), not NCCL's ring. Expected times are derived by hand below."""
from __future__ import annotations

import pytest

from trainsim.catalog.types import Chip, NetLevel, System
from trainsim.inference.calib import InferCalib
from trainsim.inference.setup import ServeSetup
from trainsim.inference.step import ServePlans, custom_all_reduce_time, step_time, tp_all_reduce_time
from trainsim.model.inline import InlineModel, build_inline

B = 400e9       # scale-up bytes/s per chip (a non-blocking switch)
ALPHA = 2e-6    # scale-up latency per step
EFF = (1.0, 1.0)


def _system(vendor: str) -> System:
    chip = Chip(f"{vendor}-x", "X", "x", "x", {"bf16": 1e15}, 80e9, 3e12, B, 50e9)
    return System(f"{vendor}-sys", "X", chip, (NetLevel("scale-up", 8, B, ALPHA), NetLevel("scale-out", None, 50e9, 5e-6)))


def test_one_shot_under_256_kib_at_8_ranks():
    # 1-stage: every rank reads the whole 128 KiB buffer from each of 7 peers -> 7 S / B, plus two barriers
    s = 128 * 1024.0
    t = float(custom_all_reduce_time(s, 8, _system("nvidia"), EFF))
    assert t == pytest.approx(7 * s / B + 2 * ALPHA, rel=1e-12)


def test_two_shot_from_256_kib_at_8_ranks():
    # 2-stage: reduce-scatter + all-gather, each reads 7/8 of S -> 2 x 7/8 S / B, plus two barriers
    s = 1024 * 1024.0
    t = float(custom_all_reduce_time(s, 8, _system("nvidia"), EFF))
    assert t == pytest.approx(2 * 7 / 8 * s / B + 2 * ALPHA, rel=1e-12)


def test_thresholds_by_rank_count():
    sysm = _system("nvidia")
    s = 384 * 1024.0   # over the 8-rank threshold (256 KiB), under the 4-rank one (512 KiB)
    assert float(custom_all_reduce_time(s, 4, sysm, EFF)) == pytest.approx(3 * s / B + 2 * ALPHA, rel=1e-12)
    assert float(custom_all_reduce_time(s, 8, sysm, EFF)) == pytest.approx(2 * 7 / 8 * s / B + 2 * ALPHA,
                                                                            rel=1e-12)
    big = 64e6         # two ranks always run the 1-stage kernel: read S from the one peer
    assert float(custom_all_reduce_time(big, 2, sysm, EFF)) == pytest.approx(big / B + 2 * ALPHA, rel=1e-12)


def test_small_message_latency_is_two_barriers_not_a_ring():
    # ring all-reduce of a tiny buffer over 8 ranks pays 2 (n - 1) = 14 latencies; the custom kernel pays 2
    sysm = _system("nvidia")
    s = ServeSetup(_arch(), sysm, calib=InferCalib().with_(coll_eff=EFF))
    ring_like = ServeSetup(_arch(), _system("test"), calib=InferCalib().with_(coll_eff=EFF))
    tiny = 16.0
    assert float(tp_all_reduce_time(s, tiny, 8)) == pytest.approx(2 * ALPHA + 7 * tiny / B, rel=1e-9)
    assert float(tp_all_reduce_time(ring_like, tiny, 8)) == pytest.approx(14 * ALPHA + 2 * 7 / 8 * tiny / B,
                                                                          rel=1e-9)


def test_serving_step_uses_custom_kernel_only_inside_eight_ranks_of_a_domain():
    arch = _arch()
    nv = ServeSetup(arch, _system("nvidia"), calib=InferCalib().with_(coll_eff=EFF, comm_overlap=0.0))
    _, br = step_time(nv, ServePlans(8, 8, 1, 1), 8, 256, "decode")
    layers = sum(lk.n_layers for lk in arch.layers)
    s = 8 * arch.hidden * 2.0     # 8 tokens x hidden x BF16 per tp group, under 256 KiB: one-shot
    assert float(br["tp_comm"]) == pytest.approx(2 * layers * (7 * s / B + 2 * ALPHA), rel=1e-9)
    # 16 ranks span two scale-up domains: no custom kernel, the ring's cost (more than the one-shot's)
    t16 = tp_all_reduce_time(nv, s, 16)
    assert float(t16) > float(custom_all_reduce_time(s, 8, nv.system, EFF))


def _arch():
    return build_inline(InlineModel(name="d", layers=4, hidden=1024, heads=16, ffn=4096, ffn_act="swiglu",
                                    vocab=32000))

