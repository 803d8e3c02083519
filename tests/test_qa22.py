"""qa22: product defects a sceptical user hits. Each regression test failed before its fix (the defect named in its
docstring); expected values are hand derivations or published figures written here, never the engine's own output."""
from __future__ import annotations

import pytest

from trainsim.inference.setup import ServeSetup
from trainsim.inference.step import ServePlans, step_time, weight_bytes_per_chip, weights_read_per_step

from conftest import ideal_infer_calib, make_system


# ---------------------------------------------------------------- 1. serving EP not dividing the experts


def test_serving_ep_not_dividing_experts_prices_the_busiest_rank(small_moe):
    """16 routed experts on ep = 6 chips: vLLM's determine_expert_map (PR #21497) places 16 // 6 = 2 on every rank
    and one more on the first 16 % 6 = 4, so the busiest rank holds 3 (the engine spread them evenly: 16 / 6 = 2.67
    each). Against ep = 16 (one expert per rank, same tp = 1, so the dense part is identical) the busiest rank holds
    3 - 1 = 2 more experts in each of the 7 MoE layers (8 layers, the first dense): the held weights differ by
    2 x 7 x one expert, and so do the weights a huge batch (every expert hit) reads per decode step; ep = 8 (2 per
    rank) sits one expert below ep = 6."""
    system = make_system(bf16=1e18, hbm_bw=1e12)
    s = ServeSetup(small_moe, system, calib=ideal_infer_calib())
    moe = [lk for lk in small_moe.layers if lk.moe][0]
    assert moe.n_layers == 7 and moe.moe.experts == 16
    one_expert = 3 * 1024 * 512 * 2          # SwiGLU gate, up, down of hidden 1024 x expert_ffn 512, BF16
    assert sum(m.k * m.n for m in moe.matrices if m.group == "expert") * 2 == one_expert
    p6, p8, p16 = ServePlans(6, 1, 1, 6), ServePlans(8, 1, 1, 8), ServePlans(16, 1, 1, 16)
    held = {n: float(weight_bytes_per_chip(s, p)) for n, p in ((6, p6), (8, p8), (16, p16))}
    assert held[6] - held[16] == pytest.approx(2 * 7 * one_expert, rel=1e-12)
    assert held[6] - held[8] == pytest.approx(1 * 7 * one_expert, rel=1e-12)
    big = 1_000_000                                   # every expert hit
    read6 = float(weights_read_per_step(s, p6, big * 6))
    read16 = float(weights_read_per_step(s, p16, big * 16))
    assert read6 - read16 == pytest.approx(2 * 7 * one_expert, rel=1e-6)
    # the routed-expert GEMM time of the busiest rank: 3 experts against ep = 8's 2, each with the same tokens
    # (T k / E per expert for the same T = 4096 tokens of an instance, every expert hit): 3 / 2
    _, b6 = step_time(s, p6, 4096, 16, "decode")
    _, b8 = step_time(s, p8, 4096, 16, "decode")
    assert float(b6["experts"]) / float(b8["experts"]) == pytest.approx(3 / 2, rel=1e-6)
