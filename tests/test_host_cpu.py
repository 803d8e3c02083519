"""The host CPU of a chip and the host-time factor of Grace hosts (perf/step.py ``host_time_factor`` /
``host_time``): which chips carry a Grace host, and the factor applied once to every host-bound term of the
training engine (the MoE layer's host stall, the eager MoE launch floor, the per-step overhead). The factor used
below is a published ratio, TransformerEngine issue 2053 (2025-08-11): an eager ``torch.nn.Linear`` forward
(BF16, hidden 2048, 8192 tokens) takes 37.08 us of host time on GB200 and 13.48 us on a DGX H100 (Xeon Platinum
8480C); the expected numbers are derived by hand from it."""
from dataclasses import replace as dreplace
from pathlib import Path

import pytest

from conftest import run_with_training
from trainsim.catalog.load import chips
from trainsim.estimate import context, estimate
from trainsim.frameworks import framework_of
from trainsim.perf.calibration import Calib, calib_for
from trainsim.perf.step import host_time_factor, moe_host_sync_time, moe_launch_floor

RUNS = Path(__file__).resolve().parents[1] / "validation" / "runs"
H100_CS = RUNS / "megatron-bridge-2511-qwen3-30b-a3b-h100-16-fp8cs-pp2.yaml"
GB200_MX = RUNS / "megatron-bridge-2606-qwen3-30b-a3b-gb200-8-mxfp8.yaml"

TE_2053_GB200_US, TE_2053_H100_US = 37.08, 13.48     # host time of one eager Linear forward
TE_2053_RATIO = TE_2053_GB200_US / TE_2053_H100_US   # 2.7507...


def test_grace_superchips_carry_a_grace_host():
    # GB200 / GB300: one Grace CPU (72 Arm Neoverse V2 cores) per two Blackwell GPUs on the superchip; the HGX /
    # DGX boards take whatever host the system has (x86 in DGX H100 / B200)
    c = chips()
    assert c["nvidia-gb200"].host_cpu == "grace"
    assert c["nvidia-gb300"].host_cpu == "grace"
    assert c["nvidia-h100-sxm5"].host_cpu is None
    assert c["nvidia-b200-hgx"].host_cpu is None


def test_factor_per_host():
    calib = Calib.defaults().with_(host_time_factor_grace=TE_2053_RATIO)
    c = chips()
    assert host_time_factor(c["nvidia-gb200"], calib) == pytest.approx(2.7507, abs=1e-4)
    assert host_time_factor(c["nvidia-h100-sxm5"], calib) == 1.0


def test_committed_factor_within_the_measurements():
    # no measurement has a Grace host faster than x86 (pytorch issue 187862: a Python call 71.6 vs 67.5 ns), none
    # slower than TE issue 2053's 2.75; the packaged value is the neutral 1.0 until a factor is pinned
    f = Calib.defaults().host_time_factor_grace
    assert 1.0 <= f <= TE_2053_RATIO


def test_moe_host_terms_scale_on_grace_by_hand():
    # 24 MoE layers at 3 ms a layer and micro-batch: 72 ms on x86; x 37.08 / 13.48 on Grace = 0.198053 s
    ctx = context(run_with_training(GB200_MX, cuda_graphs="partial"))
    ctx = dreplace(ctx, calib=ctx.calib.with_(moe_layer_host_s=3e-3, moe_expert_call_host_s=40e-6,
                                              host_time_factor_grace=TE_2053_RATIO))
    assert moe_host_sync_time(ctx, 24.0) == pytest.approx(0.072 * 37.08 / 13.48)
    assert moe_host_sync_time(ctx, 24.0) == pytest.approx(0.198053, rel=1e-5)
    # the launch floor: forward 24 x 3 ms + 3,072 x 40 us = 0.19488 s, backward 3,840 x 40 us = 0.1536 s on x86
    # (tests/test_moe_launch_floor.py), each x 2.7507 on Grace; a full recompute repeats the scaled forward
    f, b = moe_launch_floor(ctx, 24.0, 3072.0, 3840.0, 1.0)
    assert f == pytest.approx(0.19488 * 37.08 / 13.48)
    assert b == pytest.approx((0.1536 + 0.19488) * 37.08 / 13.48)
    # an x86 host keeps the fitted times
    h = context(run_with_training(H100_CS))
    h = dreplace(h, calib=h.calib.with_(moe_layer_host_s=3e-3, host_time_factor_grace=TE_2053_RATIO))
    assert moe_host_sync_time(h, 24.0) == pytest.approx(0.072)
    # whole-iteration CUDA graphs: no host term to scale
    assert moe_host_sync_time(dreplace(ctx, cuda_graphs="full"), 24.0) == 0.0


def test_estimate_charges_the_factor_once():
    # Qwen3-30B-A3B (48 MoE layers) on 8 GB200, global batch 512, dp 8, micro-batch 4: 16 micro-batches; outside
    # whole-iteration graphs and without the EP overlap (which would hide part of the stall) the step's MoE host
    # stall is 16 x 48 x moe_layer_host_s on x86, x the factor on Grace. With no per-expert call time the launch
    # floor is the stall itself and never binds (tests/test_moe_launch_floor.py). The per-step overhead scales
    # likewise: 2 s of data loading on x86 -> 2 x 37.08 / 13.48 = 5.5015 s on Grace
    run = run_with_training(GB200_MX, cuda_graphs="partial", moe_a2a_overlap=False)
    stored = calib_for(run.system.chip.family, framework=framework_of(run), chip=run.system.chip.id)
    base = stored.with_(moe_layer_host_s=3e-3, moe_expert_call_host_s=0.0, step_overhead_s=2.0)
    one = estimate(run, calib=base.with_(host_time_factor_grace=1.0)).breakdown
    te = estimate(run, calib=base.with_(host_time_factor_grace=TE_2053_RATIO)).breakdown
    assert one["host"] == pytest.approx(16 * 48 * 3e-3)
    assert te["host"] == pytest.approx(16 * 48 * 3e-3 * 37.08 / 13.48)
    assert one["other"] == pytest.approx(2.0)
    assert te["other"] == pytest.approx(5.5015, rel=1e-4)
