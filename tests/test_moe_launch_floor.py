"""The host floor of an eager MoE layer (perf/step.py ``expert_host_calls`` / ``moe_launch_floor``): per-expert
calls counted from Transformer Engine's source, the floor's arithmetic by hand, and the step it gives against
the device path. Expected numbers are derived by hand below; the published rows are cited where used."""
from dataclasses import replace as dreplace
from pathlib import Path

import pytest

from conftest import run_with_training
from trainsim.estimate import context, estimate
from trainsim.frameworks import framework_of
from trainsim.perf.calibration import calib_for
from trainsim.perf.step import EXPERT_QUANT_LAUNCHES, expert_host_calls, moe_launch_floor
from trainsim.validate.calibrate import CALL_BOUNDS, CALL_TOL, _fit_params, prepare

RUNS = Path(__file__).resolve().parents[1] / "validation" / "runs"
H100_CS = RUNS / "megatron-bridge-2511-qwen3-30b-a3b-h100-16-fp8cs-pp2.yaml"
B200_MX = RUNS / "megatron-bridge-2511-qwen3-30b-a3b-b200-8-fp8mx-mbs1.yaml"
DSV3_H100 = RUNS / "megatron-bridge-perf-dsv3-h100-1024.yaml"
GB200_FULL = RUNS / "megatron-bridge-2606-qwen3-30b-a3b-gb200-8-mxfp8.yaml"


def _calib(run, call_s):
    c = calib_for(run.system.chip.family, framework=framework_of(run), chip=run.system.chip.id)
    return c.with_(moe_expert_call_host_s=call_s)


@pytest.mark.parametrize("precision, recipe, hand", [
    # fc1 + fc2: forward 2 fprop GEMMs + 2 quantised slices (inputs), backward 2 dgrad + 2 wgrad GEMMs + 2
    # quantised slices (output gradients); q launches per slice (TE v2.9 cast.cpp / quantizer.cpp)
    ("bf16", None, (2.0, 4.0)),                   # no quantisation: torch.split views
    ("fp8", "delayed", (2.0, 4.0)),               # one fused nvte_multi_cast_transpose for all experts
    ("fp8", "current", (2.0 + 2 * 3, 4.0 + 2 * 3)),  # amax + scale + cast per slice
    ("fp8", "mxfp8", (2.0 + 2 * 1, 4.0 + 2 * 1)),
    ("fp8", "blockwise", (2.0 + 2 * 1, 4.0 + 2 * 1)),
])
def test_calls_per_local_expert(precision, recipe, hand):
    path = B200_MX if recipe == "mxfp8" else H100_CS   # MXFP8 needs Blackwell
    kw = {"precision": precision, "fp8_recipe": recipe}
    ctx = context(run_with_training(path, **kw))
    assert expert_host_calls(ctx) == hand


def test_quant_launches_cover_every_recipe():
    assert set(EXPERT_QUANT_LAUNCHES) == {"delayed", "current", "mxfp8", "blockwise"}


def test_floor_arithmetic_by_hand():
    # 24 MoE layers, 16 local experts, current scaling: 24 x 16 x 8 = 3,072 forward and 24 x 16 x 10 = 3,840
    # backward calls; 3 ms per layer and 40 us per call: forward 24 x 3 ms + 3,072 x 40 us = 0.19488 s,
    # backward 3,840 x 40 us = 0.1536 s; a full recompute (rerun 1) repeats the forward in the backward
    ctx = context(run_with_training(H100_CS))
    ctx = dreplace(ctx, calib=ctx.calib.with_(moe_layer_host_s=3e-3, moe_expert_call_host_s=40e-6))
    f, b = moe_launch_floor(ctx, 24.0, 3072.0, 3840.0, 0.0)
    assert (f, b) == (pytest.approx(0.19488), pytest.approx(0.1536))
    f2, b2 = moe_launch_floor(ctx, 24.0, 3072.0, 3840.0, 1.0)
    assert (f2, b2) == (pytest.approx(0.19488), pytest.approx(0.1536 + 0.19488))
    # whole-iteration CUDA graphs replay without launches
    assert moe_launch_floor(dreplace(ctx, cuda_graphs="full"), 24.0, 3072.0, 3840.0, 0.0) == (0.0, 0.0)


def test_zero_call_time_changes_nothing():
    # with no per-call time the floor is the MoE layers' own host time, which the dropless device path already
    # carries (moe_host_sync_time), so the floor never binds
    run = run_with_training(B200_MX)
    stored = calib_for(run.system.chip.family, framework=framework_of(run), chip=run.system.chip.id)
    ctx = context(run, stored.with_(moe_expert_call_host_s=0.0))
    f, b = moe_launch_floor(ctx, 48.0, 48 * 16 * 4.0, 48 * 16 * 6.0, 0.0)
    assert f + b == pytest.approx(48 * stored.moe_layer_host_s)
    assert estimate(run, calib=stored.with_(moe_expert_call_host_s=0.0)).breakdown["host"] == \
        pytest.approx(64 * 48 * stored.moe_layer_host_s)


def test_host_bound_step_is_the_floor():
    # 8 B200, pp 1, MXFP8, 48 MoE layers of 128 / 8 = 16 local experts, 64 micro-batches: at 40 us per call a
    # layer's launch work is moe_layer_host_s + 16 x (4 + 6) x 40 us = moe_layer_host_s + 6.4 ms, above its
    # device work, so each micro-batch takes 48 x that; the step's other parts (DP sync, optimizer, overhead)
    # stay as they are
    run = run_with_training(B200_MX)
    c0, c1 = _calib(run, 0.0), _calib(run, 40e-6)
    e0, e1 = estimate(run, calib=c0), estimate(run, calib=c1)
    m = 512 / 8
    floor_mb = 48 * (c1.moe_layer_host_s + 16 * (4 + 6) * 40e-6)
    per_mb0 = (e0.step_time_s - e0.breakdown["dp_comm"] - e0.breakdown["optimizer"] - e0.breakdown["other"]) / m
    assert floor_mb > per_mb0                     # host-bound at this call time
    rest = e1.step_time_s - m * floor_mb
    assert rest == pytest.approx(e0.breakdown["dp_comm"] + e0.breakdown["optimizer"] + e0.breakdown["other"],
                                 abs=1e-6)
    # charged as host time: the breakdown still sums to the step
    assert sum(e1.breakdown.values()) == pytest.approx(e1.step_time_s)
    assert e1.breakdown["host"] - e0.breakdown["host"] == pytest.approx(
        e1.step_time_s - e0.step_time_s)


@pytest.mark.parametrize("path", [DSV3_H100, GB200_FULL])
def test_device_bound_and_graphed_runs_do_not_move(path):
    # DeepSeek-V3 on 1,024 H100: 4 local experts, 27 ms of device work per layer and micro-batch, far above
    # its launch work; Qwen3-30B-A3B on 8 GB200 under whole-iteration CUDA graphs: no launches
    run = run_with_training(path)
    assert estimate(run, calib=_calib(run, 40e-6)).step_time_s == pytest.approx(
        estimate(run, calib=_calib(run, 0.0)).step_time_s, rel=1e-12)


def test_per_call_time_agrees_across_chips_and_recipes():
    # The two published rows the floor binds, each read alone for the per-call time the engine needs to match it:
    # NeMo 25.11 Qwen3-30B-A3B on 16 H100, per-tensor current scaling, pp 2 (5,275 tokens/s/GPU; 18 calls per
    # local expert) and on 8 B200, MXFP8, pp 1 (9,299; 10 calls). Different chips, hosts, recipes and pipeline
    # layouts; a floor that is physics, not a per-run offset, needs about the same time per call from both: within
    # 25% of each other (each predicts the other within 20%: the leave-one-out figures of scripts/calibrate.py).
    runs = {r.name: r for r in prepare([H100_CS, B200_MX])}
    t = {}
    for name, r in runs.items():
        t[name] = _fit_params([r], "moe_expert_call_host_s", CALL_BOUNDS,
                              lambda rr: _calib(rr.run, 0.0), tol=CALL_TOL)
    a, b = t[H100_CS.stem], t[B200_MX.stem]
    assert 0.0 < min(a, b) and max(a, b) / min(a, b) < 1.25
    for held, other in ((H100_CS.stem, B200_MX.stem), (B200_MX.stem, H100_CS.stem)):
        r = runs[held]
        assert abs(r.predict(_calib(r.run, t[other])) / r.reported - 1.0) < 0.20
