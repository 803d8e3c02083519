"""MoE dispatch wire format (StepContext.dispatch_bytes) and the SMs an overlapped dispatcher takes from the
compute (perf/comm_ep.py ep_overlapped_exposed), checked against hand derivations."""
from __future__ import annotations

import math
from dataclasses import replace as dreplace

import numpy as np
import pytest

from conftest import ctx_for, make_system
from trainsim.frameworks import stack_flags
from trainsim.perf.comm_ep import ep_overlapped_exposed


@pytest.fixture()
def fp8_ctx(small_moe):
    return ctx_for(small_moe, make_system(fp8=624e12), precision="fp8")


def test_dispatch_bytes_bf16_unless_the_stack_quantises(fp8_ctx):
    # Megatron-Core sends BF16 hidden states (fused_a2a.py FusedDispatch / HybridEPDispatch); DeepSeek-V3's stack
    # quantises to FP8 before the dispatch (report sec. 3.3.2); a BF16 run never dispatches FP8
    assert fp8_ctx.act_bytes == 1.0
    assert fp8_ctx.dispatch_bytes == 2.0
    assert dreplace(fp8_ctx, moe_fp8_dispatch=True).dispatch_bytes == 1.0
    assert dreplace(fp8_ctx, precision="bf16", moe_fp8_dispatch=True).dispatch_bytes == 2.0


def test_stack_flag_only_for_deepseek():
    assert stack_flags("deepseek-hai-llm")["moe_fp8_dispatch"] is True
    for fw in ("megatron-bridge-2025", "megatron-bridge-2026", "torchtitan-2024", "other-nemo-automodel"):
        assert stack_flags(fw)["moe_fp8_dispatch"] is False


@pytest.mark.parametrize("dispatcher,sms", [("deepep", 20.0), ("hybridep", 16.0), ("alltoall", 0.0)])
def test_overlapped_dispatch_takes_sms(fp8_ctx, dispatcher, sms):
    ctx = dreplace(fp8_ctx, moe_dispatcher=dispatcher)
    assert ctx.calib.sm_count == 132.0   # H100 SXM5's SMs
    # 10 ms of dispatch + combine, 20 ms of compute, 80% overlappable: 2 ms exposed, 8 ms hidden beside the GEMMs,
    # which run on 132 - sms SMs meanwhile: + 8 ms x sms / 132
    got = ep_overlapped_exposed(np.array([10e-3]), np.array([20e-3]), 0.8, ctx)[0]
    assert got == pytest.approx(2e-3 + 8e-3 * sms / 132.0)
    # only 5 ms of compute to hide under: 10 - 0.8 x 5 = 6 ms exposed, 4 ms hidden
    got = ep_overlapped_exposed(np.array([10e-3]), np.array([5e-3]), 0.8, ctx)[0]
    assert got == pytest.approx(6e-3 + 4e-3 * sms / 132.0)
    # no overlap: the kernels run alone, nothing taken from the compute
    assert ep_overlapped_exposed(np.array([10e-3]), np.array([20e-3]), 0.0, ctx)[0] == pytest.approx(10e-3)


def test_bf16_dispatch_scales_the_scale_out_time_by_4_3():
    # DeepSeek-V3 on 1024 H100, EP 64 over 8 nodes with DeepEP: the scale-out link bounds both the dispatch and the
    # combine (3.5 remote node copies at 42.5 GB/s vs 6.6 NVLink copies at 360 GB/s per token), so the bandwidth
    # part of forward dispatch + combine is (d + 2) x X with d the dispatch bytes: BF16 (d = 2) / FP8 (d = 1) = 4/3
    # once the fixed part, 2 x (level latencies) + 2 x (launch + peer x (ep - 1)), is taken off
    from trainsim.perf.comm_ep import ep_alltoall_fwd
    from trainsim.plan_estimate import context, plans_from_spec
    from trainsim.spec import load_run
    run = load_run("validation/runs/megatron-bridge-perf-dsv3-h100-1024.yaml")
    ctx = context(run)
    assert ctx.moe_dispatcher == "deepep" and not ctx.moe_fp8_dispatch and ctx.act_bytes == 1.0
    p = plans_from_spec(run.plan, run.chips, run.arch)
    lk = next(lk for lk in run.arch.layers if lk.moe is not None)
    tok = np.array([4096.0])
    c = ctx.calib
    fixed = 2.0 * sum(lv.latency_s for lv in ctx.system.levels[:2]) + 2.0 * (c.comm_launch_s + c.a2a_peer_s * 63.0)
    bf16 = ep_alltoall_fwd(lk, ctx, p, tok)[0] - fixed
    fp8 = ep_alltoall_fwd(lk, dreplace(ctx, moe_fp8_dispatch=True), p, tok)[0] - fixed
    assert bf16 / fp8 == pytest.approx(4.0 / 3.0)
    # and X itself: 2048 tokens per rank (tp 2) x 7168 x 3.5 remote nodes (4 of 8 nodes under group-limited
    # routing, 7/8 of them remote) per byte of element, at 400 Gb/s x 0.85
    x = 2048 * 7168 * 3.5 / (50e9 * c.coll_eff[1])
    assert fp8 == pytest.approx(3.0 * x, rel=1e-6)


def test_blackwell_dispatch_share_is_of_its_148_sms_not_its_74_gemm_units(fp8_ctx):
    """B200 has 148 SMs (NVIDIA Blackwell technical brief); its GEMMs run on 74 two-SM pairs (compute_units), but
    DeepEP's 20 SMs are 20 of the 148: 8 ms hidden costs 8 x 20 / 148 ms, not 8 x 20 / 74."""
    from trainsim.perf.calibration import calib_for
    cal = calib_for("nvidia-blackwell")
    assert (cal.sm_count, cal.compute_units) == (148.0, 74.0)
    ctx = dreplace(fp8_ctx, moe_dispatcher="deepep", calib=cal)
    got = ep_overlapped_exposed(np.array([10e-3]), np.array([20e-3]), 0.8, ctx)[0]
    assert got == pytest.approx(2e-3 + 8e-3 * 20.0 / 148.0)


def test_paired_overlap_shares_one_window_when_the_costs_exceed_it(fp8_ctx):
    """One forward + backward pair (Megatron-Core model_chunk_schedule_plan.py ``TransformerLayerSchedulePlan.run``;
    DualPipe, DeepSeek-V3 Fig. 4) with 4 ms of forward and 8 ms of backward compute: window W = 12 ms, W / 2 = 6 ms.
    Costs: the forward's dispatch + combine 4 ms plus a 1 ms NCCL routing-map gather (5 ms), the backward's 4 ms,
    the host stall 7 ms; f = 0.9.
    Alone each would hide 0.9 min(x, 6): 4.5 + 3.6 + 5.4 = 13.5 ms, more than the pair's 12 ms of compute.
    Shared: h = 5 + 4 + 6 = 15 ms > W, each scaled by 12 / 15 = 0.8, hidden 3.6 + 2.88 + 4.32 = 10.8 ms = 0.9 W;
    exposed 5 - 3.6 = 1.4 ms, 4 - 2.88 = 1.12 ms, 7 - 4.32 = 2.68 ms (NCCL all-to-all: no dispatcher SMs)."""
    from trainsim.perf.comm_ep import paired_overlap_exposed
    ctx = dreplace(fp8_ctx, moe_dispatcher="alltoall")
    (a2a_f, a2a_b), (host,) = paired_overlap_exposed([(np.array([4e-3]), np.array([1e-3])),
                                                      (np.array([4e-3]), np.array([0.0]))],
                                                     [np.array([7e-3])], np.array([12e-3]), 0.9, ctx)
    assert (a2a_f[0], a2a_b[0], host[0]) == pytest.approx((1.4e-3, 1.12e-3, 2.68e-3), rel=1e-12)
    # DeepEP's 20 of 132 SMs: the hidden 3.6 ms of the forward's is 4/5 dispatch kernels, 1/5 the NCCL gather
    (a2a_f, _), _ = paired_overlap_exposed([(np.array([4e-3]), np.array([1e-3])), (np.array([4e-3]), np.array([0.0]))],
                                           [np.array([7e-3])], np.array([12e-3]), 0.9,
                                           dreplace(fp8_ctx, moe_dispatcher="deepep"))
    assert a2a_f[0] == pytest.approx(1.4e-3 + 3.6e-3 * 0.8 * 20.0 / 132.0, rel=1e-12)


def test_paired_overlap_within_the_window_hides_each_alone(fp8_ctx):
    """Costs that fit the window: forward 2 ms, backward 2 ms, host stall 1 ms behind W = 12 ms (each under
    W / 2 = 6 ms, 5 ms in all): each hides 0.9 of itself, 0.2 / 0.2 / 0.1 ms exposed; a cost longer than W / 2 hides
    0.9 x 6 ms at most (10 ms alone: 4.6 ms exposed); with f = 0 (no paired schedule) all of it is exposed."""
    from trainsim.perf.comm_ep import paired_overlap_exposed
    ctx = dreplace(fp8_ctx, moe_dispatcher="alltoall")
    z = np.array([0.0])
    (f_, b_), (h_,) = paired_overlap_exposed([(np.array([2e-3]), z), (np.array([2e-3]), z)], [np.array([1e-3])],
                                             np.array([12e-3]), 0.9, ctx)
    assert (f_[0], b_[0], h_[0]) == pytest.approx((0.2e-3, 0.2e-3, 0.1e-3), rel=1e-12)
    (f_,), (h_,) = paired_overlap_exposed([(np.array([10e-3]), z)], [np.array([0.0])], np.array([12e-3]), 0.9, ctx)
    assert (f_[0], h_[0]) == pytest.approx((4.6e-3, 0.0), abs=1e-15)
    (f_, b_), (h_,) = paired_overlap_exposed([(np.array([2e-3]), z), (np.array([2e-3]), z)], [np.array([1e-3])],
                                             np.array([12e-3]), 0.0, ctx)
    assert (f_[0], b_[0], h_[0]) == pytest.approx((2e-3, 2e-3, 1e-3), rel=1e-12)


def test_a2a_overlap_hides_each_direction_under_half_the_pair_compute(small_moe):
    """An EP all-to-all longer than one forward's compute (EP 16 over two 8-chip nodes on a 1 GB/s scale-out
    link): with moe_a2a_overlap the step's exposed EP time is, per micro-batch and direction,
    ep - 0.8 min(ep, (comp_f + comp_b) / 2) (forward and backward paired on two streams), not
    ep - 0.8 min(ep, comp_f); the plain all-to-all dispatcher takes no SMs."""
    from trainsim.parallel.plan import Plans
    from trainsim.perf.step import evaluate, layer_costs
    sys_ = make_system(out=1e9)
    ctx = dreplace(ctx_for(small_moe, sys_, chips=16, gbs=16), moe_a2a_overlap=True, moe_dispatcher="alltoall")
    p = Plans.from_columns(tp=1, pp=1, vpp=1, ep=16, etp=1, cp=1, dp=16, zero=1, recompute=0, mb=1, schedule=0,
                           node_limit=0)
    lc = layer_costs(ctx, p)
    ep = lc["ep"][0]
    cf = lc["gemm"][0] + lc["attn"][0] + lc["elem"][0] + lc["seq_f"][0]
    cb = 2.0 * lc["gemm"][0] + lc["attn_b"][0] + 2.0 * lc["elem"][0] + lc["seq_b"][0]
    assert cf < ep   # the forward alone cannot hide it: the window matters
    m = 16 / (16 * 1)   # micro-batches per step
    want = m * 2.0 * (ep - 0.8 * min(ep, (cf + cb) / 2.0))
    got = evaluate(ctx, p).breakdown["ep_alltoall"][0]
    assert got == pytest.approx(want, rel=1e-9)
    assert got < m * 2.0 * (ep - 0.8 * min(ep, cf))   # less than behind one forward alone
    # without the overlap nothing hides
    off = evaluate(dreplace(ctx, moe_a2a_overlap=False), p).breakdown["ep_alltoall"][0]
    assert off == pytest.approx(m * 2.0 * ep, rel=1e-9)


def test_a2a_overlap_and_host_stall_share_the_pair_window(small_moe):
    """The engine end to end (perf/step.py ``_stage``): the same EP 16 plan on a 1 GB/s scale-out link, where each
    direction's dispatch + combine alone outlasts half the pair's compute, so the two directions already fill the
    window W = comp_f + comp_b and the dispatcher's host stall (7 MoE layers x moe_layer_host_s, hand count: 8
    layers, the first dense) finds none of it left: per micro-batch the exposed all-to-all + stall is
    2 ep + stall - 0.8 W, all of the stall beyond its 0.8 share of the budget exposed. (Before the shared window
    the stall hid another 0.8 min(stall, W / 2) behind the same compute.)"""
    from trainsim.parallel.plan import Plans
    from trainsim.perf.step import evaluate, layer_costs
    ctx = dreplace(ctx_for(small_moe, make_system(out=1e9), chips=16, gbs=16), moe_a2a_overlap=True,
                   moe_dispatcher="alltoall")
    ctx = dreplace(ctx, calib=dreplace(ctx.calib, moe_layer_host_s=1e-3), cuda_graphs="none")
    p = Plans.from_columns(tp=1, pp=1, vpp=1, ep=16, etp=1, cp=1, dp=16, zero=1, recompute=0, mb=1, schedule=0,
                           node_limit=0)
    lc = layer_costs(ctx, p)
    ep = lc["ep"][0]
    w = (lc["gemm"][0] + lc["attn"][0] + lc["elem"][0] + lc["seq_f"][0]
         + lc["gemm_b"][0] + lc["attn_b"][0] + 2.0 * lc["elem"][0] + lc["seq_b"][0])
    stall = 7 * 1e-3
    assert stall > 0.0 and ep > w / 2.0   # each direction alone fills its half: the budget binds
    bd = evaluate(ctx, p).breakdown
    assert bd["ep_alltoall"][0] + bd["host"][0] == pytest.approx(2.0 * ep + stall - 0.8 * w, rel=1e-9)
    # the budget is shared in proportion to what each would hide alone: ep, ep and the stall (if under W / 2)
    h = 2.0 * min(ep, w / 2.0) + min(stall, w / 2.0)
    assert bd["host"][0] == pytest.approx(stall - 0.8 * min(stall, w / 2.0) * w / h, rel=1e-9)


def test_deepep_permute_reads_the_delivered_rows_once():
    # Transformer Engine's fused permute (mask map) loads each input row once and stores it to each routed expert's
    # slot; the unpermute loads a token's k slots and stores one row: 2 bytes x 2 x (r + k) h per token, r the rows
    # permuted per token. After a DeepEP dispatch r is the rows delivered, one per destination rank; the generic
    # count keeps r = k (8 k h).
    from trainsim.model.load import resolve_model
    from trainsim.parallel.plan import Plans
    from trainsim.perf.comm_ep import dispatched_rows_per_token
    from trainsim.perf.compute import hbm_time, moe_permute_bytes_per_token, moe_permute_fwd_bwd
    arch = resolve_model("qwen3-30b-a3b")          # hidden 2048, 128 experts, top-8
    lk = next(lk for lk in arch.layers if lk.moe is not None)
    assert (arch.hidden, lk.moe.experts, lk.moe.top_k) == (2048, 128, 8)
    generic = moe_permute_bytes_per_token(lk, 2048)
    one_row = moe_permute_bytes_per_token(lk, 2048, 1.0)
    assert generic == 4 * (8 + 8) * 2048
    assert generic - one_row == pytest.approx(4 * (8 - 1) * 2048)      # 57,344 bytes per token
    p = Plans.from_columns(tp=1, pp=1, vpp=1, ep=8, etp=1, cp=1, dp=8, zero=3, recompute=0, mb=1, schedule=0,
                           node_limit=0)
    base = ctx_for(arch, make_system(), chips=8)
    # FakeBalancedGate: token t takes experts 8t .. 8t+7 (mod 128), always inside one rank's 16: 1 row
    fake = dreplace(base, moe_dispatcher="deepep", moe_fake_balanced_gate=True)
    assert float(dispatched_rows_per_token(lk, fake, p)[0]) == pytest.approx(1.0)
    # a learned router's 8 distinct experts of 128, 16 per rank: E[distinct ranks] = 8 (1 - C(112, 8) / C(128, 8))
    # = 5.339 (8 independent draws would give 8 (1 - (7/8)^8) = 5.251)
    learned = dreplace(base, moe_dispatcher="deepep")
    assert float(dispatched_rows_per_token(lk, learned, p)[0]) == pytest.approx(
        8 * (1 - math.comb(112, 8) / math.comb(128, 8)))
    # Megatron's all-to-all sends one copy per routed expert (its permute reads each token once, and it sorts the
    # received rows: tests/test_dispatcher_permute.py)
    assert float(dispatched_rows_per_token(lk, base, p)[0]) == 8.0
    tokens = np.array([4096.0])
    r = 8 * (1 - math.comb(112, 8) / math.comb(128, 8))
    saved = moe_permute_fwd_bwd(lk, learned, p, tokens)[0] - moe_permute_fwd_bwd(lk, fake, p, tokens)[0]
    assert float(saved[0]) == pytest.approx(float(hbm_time(4 * (r - 1) * 2048 * 4096.0, base)))
    # Kimi K2's 384 experts on ep 32 (12 per rank): windows of 8 from multiples of 8 cross a rank boundary in one
    # start of three (8 .. 15 spans 0 .. 11 and 12 .. 23): 4 / 3 rows
    kimi = resolve_model("kimi-k2")
    lk2 = next(lk for lk in kimi.layers if lk.moe is not None)
    p32 = Plans.from_columns(tp=1, pp=1, vpp=1, ep=32, etp=1, cp=1, dp=32, zero=3, recompute=0, mb=1, schedule=0,
                             node_limit=0)
    assert float(dispatched_rows_per_token(lk2, dreplace(fake, arch=kimi), p32)[0]) == pytest.approx(4 / 3)
    # a dense layer has no dispatch
    dense = next(lk for lk in kimi.layers if lk.moe is None)
    with pytest.raises(ValueError, match="no experts"):
        dispatched_rows_per_token(dense, fake, p)
