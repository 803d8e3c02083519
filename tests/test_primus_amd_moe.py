"""The AMD Primus DeepSeek-V2 runs (validation/runs/primus-2512-*): the CDNA 4 compute units their GEMMs are
quantised over and the routing their moe_router_force_load_balancing imposes, each against a hand count."""
from __future__ import annotations

from dataclasses import replace as dreplace
from pathlib import Path

import pytest
import yaml

from trainsim.estimate import context, plans_from_spec
from trainsim.frameworks import stack_flags
from trainsim.parallel.plan import Plans
from trainsim.perf.calibration import calib_for
from trainsim.perf.comm_ep import dispatched_rows_per_token
from trainsim.perf.compute import gemm_shape_eff
from trainsim.perf.step import (evaluate, launch_floor_extra, launch_work_factor, moe_host_sync_time,
                                moe_launch_floor)
from trainsim.spec import load_run
from trainsim.validate.calibrate import _base, prepare

RUNS = Path(__file__).resolve().parents[1] / "validation" / "runs"
PRIMUS = sorted(RUNS.glob("primus-2512-dsv2-*.yaml"))


def test_cdna4_has_256_compute_units():
    """AMD Instinct MI350X datasheet (LE-92701-00 C 9/25): 256 GPU compute units, eight XCDs of 32; the MI355X is the
    same die. Both chips resolve to it (MI300X keeps its 304)."""
    for chip in ("amd-mi350x", "amd-mi355x"):
        c = calib_for("amd-cdna4", chip=chip)
        assert (c.compute_units, c.sm_count) == (256.0, 256.0)
    assert calib_for("amd-cdna3").compute_units == 304.0


def test_dsv2_expert_gemm_at_micro_batch_1_fills_under_half_the_cus():
    """DeepSeek-V2 at EP 8, micro-batch 1 x 4,096 tokens: 4,096 x 6 routed copies over 160 experts, 8 ranks' tokens
    per local expert = 4,096 x 6 x 8 / 160 = 1,228.8 rows; fc1 (one of gate / up) N = 1,536, K = 5,120. 128 x 128 tiles:
    ceil(1228.8 / 128) = 10 x 12 = 120 tiles, one wave of 256 CUs: 120 / 256 (it was 120 / 132 on the H100 default);
    tile term 1228.8 / 1280; K term 5120 / (5120 + 64)."""
    c = calib_for("amd-cdna4", chip="amd-mi355x")
    rows = 4096 * 6 * 8 / 160
    eff = float(gemm_shape_eff(rows, 1536, 5120, c.gemm_tile_m, c.gemm_tile_n, c.gemm_k0, c.compute_units))
    assert eff == pytest.approx((1228.8 / 1280) * (120 / 256) * (5120 / 5184), rel=1e-9)


@pytest.mark.parametrize("path", PRIMUS, ids=lambda p: p.stem)
def test_primus_runs_state_the_forced_balanced_router(path):
    """moe_router_force_load_balancing true in the recipe config: Primus's PrimusTopKRouter.routing (AMD-AGI/Primus
    b3699abf) replaces the routing map by experts (t k + j) mod E, NeMo AutoModel's FakeBalancedGate pattern."""
    run = load_run(path)
    assert run.training.moe_fake_balanced_gate is True


@pytest.mark.parametrize("stem,rows", [("primus-2512-dsv2-mi355x-32-bf16", 1.2),
                                       ("primus-2512-dsv2-lite-mi355x-8-bf16", 1.5)])
def test_deepep_rows_per_token_under_the_forced_router(stem, rows):
    """Token t takes the 6 consecutive experts from s = 6 t mod E. DeepSeek-V2: E = 160, 20 experts per EP rank;
    gcd(6, 160) = 2, so s mod 20 runs over 0, 2, .., 18 equally often and the window [s, s + 5] crosses into a second
    rank for s mod 20 in {16, 18}: 1 + 2 / 10 = 1.2 ranks. DeepSeek-V2-Lite: E = 64, 8 per rank; s mod 8 in {0, 2, 4,
    6}, crossing for {4, 6}: 1 + 2 / 4 = 1.5. A learned router under DeepSeek-V2's group limit reaches 2.77."""
    run = load_run(RUNS / f"{stem}.yaml")
    ctx = context(run)
    lk = next(lk for lk in run.arch.layers if lk.moe is not None)
    p = Plans.from_columns(tp=1, pp=1, vpp=1, ep=8, etp=1, cp=1, dp=8, zero=1, recompute=0, mb=1, schedule=0,
                           node_limit=0)
    assert ctx.moe_dispatcher == "deepep"
    assert float(dispatched_rows_per_token(lk, ctx, p)[0]) == pytest.approx(rows)
    learned = float(dispatched_rows_per_token(lk, dreplace(ctx, moe_fake_balanced_gate=False), p)[0])
    assert learned > rows


# Figure 5 of the Primus MoE blog (ROCm/rocm-blogs blogs/software-tools-optimization/primus-moe-package, the same text
# AMD-AGI/Primus b3699abf examples/moe_package/README.md; image DeepSeekV2Lite_mbs_scaling_mi355.png): the baseline
# recipe of primus-2512-dsv2-lite-mi355x-8-bf16-baseline at micro-batch 1, 2, 4, 8, 12, tokens/s per GPU. Per
# micro-batch that is mbs x 4,096 / rate: 0.3816, 0.3896, 0.5838, 1.0793, 1.6145 s. MBS 1 and MBS 2 take the same
# time: the host's launch work (~0.385 s per micro-batch, 14 ms per layer) sets the pace there, not the device.
FIG5 = {1: 10734.6, 2: 21028.2, 4: 28063.1, 8: 30359.5, 12: 30444.3}


def _lite_rates(mbs_list, tmp: Path):
    """Predicted tokens/s per GPU of the baseline recipe at each micro-batch size, with the stored calibration."""
    src = RUNS / "primus-2512-dsv2-lite-mi355x-8-bf16-baseline.yaml"
    paths = []
    for mbs in mbs_list:
        d = yaml.safe_load(src.read_text())
        # the blog states no GBS per bar: 8 micro-batches per step at every MBS, as the MBS 12 recipe (768 / 12 / 8)
        d["plan"]["micro_batch"], d["training"]["global_batch_seqs"] = mbs, 64 * mbs
        p = tmp / f"mbs{mbs}.yaml"
        p.write_text(yaml.safe_dump(d))
        paths.append(p)
    runs = {r.name: r for r in prepare(paths)}
    return {m: runs[f"mbs{m}"].predict(_base(runs[f"mbs{m}"])) for m in mbs_list}


def test_fig5_device_bound_bars_scale_with_the_micro_batch(tmp_path):
    """Relative to the MBS 12 bar (a validation run), the device-bound bars MBS 2, 4, 8 are predicted within 10%:
    published rate(MBS) / rate(12) = 0.691, 0.922, 0.997."""
    pred = _lite_rates([2, 4, 8, 12], tmp_path)
    for m in (2, 4, 8):
        assert pred[m] / pred[12] == pytest.approx(FIG5[m] / FIG5[12], rel=0.10)


def test_fig5_mbs1_bar_is_host_bound(tmp_path):
    """Figure 5's MBS 1 bar takes 0.3816 s per micro-batch, as long as MBS 2 (0.3896 s): the host's launch work
    paces it. With the CDNA 4 launch floor at the measured ROCm host work (perf/step.py launch_work_factor)
    rate(1) / rate(12) is predicted within 10% of the published 10,734.6 / 30,444.3 = 0.353."""
    pred = _lite_rates([1, 12], tmp_path)
    assert pred[1] / pred[12] == pytest.approx(FIG5[1] / FIG5[12], rel=0.10)


def test_rocm_launch_work_factor_is_figure5_over_the_x86_floor():
    """The measured host work of one DeepSeek-V2-Lite MoE layer and micro-batch on MI355X / ROCm, by hand: the MBS 1
    bar's 4,096 tokens at 10,734.6 tokens/s = 0.38157 s per micro-batch over 26 MoE layers (27 layers, the first
    dense) = 14.676 ms, at 8 local experts x 6 calls = 48 per-expert calls. The factor on the launch floor is that
    over the fitted x86 work of the same layer, moe_layer_host_s + 48 x moe_expert_call_host_s (2.72 at 3.26 ms and
    44.4 us); NVIDIA families keep 1; the exposed sync time is not scaled."""
    layer_s = 4096 / 10734.6 / 26
    assert layer_s == pytest.approx(0.014676, rel=1e-4)
    c = calib_for("amd-cdna4", chip="amd-mi355x")
    assert (c.host_bound_layer_s, c.host_bound_layer_calls) == (pytest.approx(layer_s, rel=1e-4), 48.0)
    x86 = c.moe_layer_host_s + 48 * c.moe_expert_call_host_s
    assert launch_work_factor(c) == pytest.approx(layer_s / x86, rel=1e-4)
    assert launch_work_factor(calib_for("nvidia-hopper")) == 1.0
    assert launch_work_factor(c.with_(moe_layer_host_s=0.0, moe_expert_call_host_s=0.0)) == 1.0
    # the launch floor of the Lite MBS 1 micro-batch (26 layers x 8 local experts x 2 / 4 calls) is the published
    # micro-batch time; the exposed sync time stays at the x86 26 x moe_layer_host_s
    ctx = context(load_run(RUNS / "primus-2512-dsv2-lite-mi355x-8-bf16-baseline.yaml"))
    ctx = dreplace(ctx, calib=c)
    f, b = moe_launch_floor(ctx, 26.0, 26.0 * 8 * 2, 26.0 * 8 * 4, 0.0)
    assert f + b == pytest.approx(4096 / 10734.6, rel=1e-4)
    assert moe_host_sync_time(ctx, 26.0) == pytest.approx(26 * c.moe_layer_host_s, rel=1e-12)


# Figure 7 of the same blog (image DeepSeekV2_tks_speedup_mi355.png, AMD-AGI/Primus b3699abf): DeepSeek-V2 on 32
# MI355X, tokens/s per GPU as each feature is added to the baseline recipe of primus-2512-dsv2-mi355x-32-bf16-baseline
# (1F1B, PP 4, EP 8, MBS 1): Base-1F1B 1,987.6, +LossFusion 1,989.6, +DeepEP 2,202.9, +LaunchOpt 2,298.6 (NUMA binding
# and a 12 MB HIP kernel-argument pool: host only), +VPP3 2,308.0, +SyncFree1 2,485.4, +VPP5 2,547.5 (the validation
# run primus-2512-dsv2-mi355x-32-bf16). Each bar changes one thing, so a ratio of neighbouring bars isolates one cost.
FIG7 = {"base": 1987.6, "loss": 1989.6, "deepep": 2202.9, "launch": 2298.6, "vpp3": 2308.0, "sync1": 2485.4,
        "vpp5": 2547.5}
_FIG7_KEYS = {  # run-spec changes of each bar the engine can represent (LaunchOpt and SyncFree1 change host work only)
    "loss": {"training": {"cross_entropy_fusion": "te"}},
    "deepep": {"training": {"cross_entropy_fusion": "te", "moe_dispatcher": "deepep"}},
    "vpp3": {"training": {"cross_entropy_fusion": "te", "moe_dispatcher": "deepep"},
             "plan": {"vpp": 3, "schedule": "interleaved"}},
}


def _dsv2_rates(bars, tmp: Path):
    """Predicted tokens/s per GPU of Figure 7's bars (the baseline run spec with each bar's changes), with the stored
    calibration."""
    src = RUNS / "primus-2512-dsv2-mi355x-32-bf16-baseline.yaml"
    paths = []
    for bar in bars:
        d = yaml.safe_load(src.read_text())
        for sec, kv in _FIG7_KEYS.get(bar, {}).items():
            d[sec].update(kv)
        p = tmp / f"{bar}.yaml"
        p.write_text(yaml.safe_dump(d))
        paths.append(p)
    runs = {r.name: r for r in prepare(paths)}
    return {b: runs[b].predict(_base(runs[b])) for b in bars}


def test_fig7_loss_fusion_bar(tmp_path):
    """The loss-fusion step of Figure 7's 1F1B bars: 1,989.6 / 1,987.6 = 1.001, predicted within 3%."""
    pred = _dsv2_rates(["base", "loss"], tmp_path)
    assert pred["loss"] / pred["base"] == pytest.approx(FIG7["loss"] / FIG7["base"], rel=0.03)


@pytest.mark.xfail(strict=True, reason="the engine's 1F1B DeepSeek-V2 forward is launch-bound: 14.75 MoE layers x "
                   "2.72 x (3.26 ms + 40 forward per-expert calls x 44.4 us) = 0.20 s of ROCm launch work "
                   "(launch_work_factor, measured on Figure 5's MBS 1 bar) against a forward device path of 0.16 s, "
                   "and batch_p2p_sync keeps the backward from sharing it (launch_floor_extra), so a faster "
                   "dispatcher gains only in the device-bound backward (1.044), where Figure 7 has 2,202.9 / 1,989.6 = "
                   "1.107. The published slots, 16.49 s / 35 = 0.47 s (all-to-all) and 0.43 s (DeepEP), are above "
                   "the engine's 0.38 s: about 6 ms per layer and micro-batch that Lite at MBS 4-12 does not show; "
                   "not modelled")
def test_fig7_deepep_bar(tmp_path):
    """The Turbo DeepEP dispatcher over Megatron's all-to-all, Figure 7's 1F1B bars: 2,202.9 / 1,989.6 = 1.107,
    within 3%."""
    pred = _dsv2_rates(["loss", "deepep"], tmp_path)
    assert pred["deepep"] / pred["loss"] == pytest.approx(FIG7["deepep"] / FIG7["loss"], rel=0.03)


@pytest.mark.xfail(strict=True, reason="interleaving gains less than its bubble: 3 virtual stages per rank take "
                   "1F1B's fill and drain from 3 of 35 micro-batch slots to 1 of 33 (about +6%) and drop 1F1B's "
                   "synchronised p2p exchange (the engine predicts 1.179), but Figure 7's +VPP3 bar gains 2,308.0 / 2,298.6 = 1.004 over +LaunchOpt (a "
                   "host-only change, so its ratio to the 1F1B DeepEP bar is the engine's VPP3 / DeepEP). Something "
                   "that grows with the virtual stages (their 2 x 3 inter-node transfers per micro-batch, host work "
                   "per chunk) takes the gain back; it is not modelled")
def test_fig7_vpp3_bar(tmp_path):
    pred = _dsv2_rates(["deepep", "vpp3"], tmp_path)
    assert pred["vpp3"] / pred["deepep"] == pytest.approx(FIG7["vpp3"] / FIG7["launch"], rel=0.03)


def test_launch_floor_extra_per_pass_by_hand():
    """A micro-batch whose forward takes t_f = 0.1 s and backward t_b = 0.2 s on the device, with 0.3 s and 0.1 s of
    host launch work. Shared floor (the host runs ahead across the micro-batch): 0.4 - 0.3 = 0.1 s more, split 3 : 1
    as the launch work is, 0.075 + 0.025. Separated by a device synchronisation: the forward takes its 0.3 s (0.2
    more), the backward its device 0.2 s (0 more). A micro-batch device-bound in total and in each pass (t_f 1, t_b
    2, launch 0.5 and 1) adds nothing either way; one launch-bound only in its forward (t_f 1, t_b 2, launch 1.5 and
    1) adds nothing shared and 0.5 s separated."""
    f, b = launch_floor_extra(0.1, 0.2, 0.3, 0.1, False)
    assert (float(f), float(b)) == (pytest.approx(0.075), pytest.approx(0.025))
    f, b = launch_floor_extra(0.1, 0.2, 0.3, 0.1, True)
    assert (float(f), float(b)) == (pytest.approx(0.2), 0.0)
    for synced in (False, True):
        assert [float(x) for x in launch_floor_extra(1.0, 2.0, 0.5, 1.0, synced)] == [0.0, 0.0]
    assert [float(x) for x in launch_floor_extra(1.0, 2.0, 1.5, 1.0, False)] == [0.0, 0.0]
    assert [float(x) for x in launch_floor_extra(1.0, 2.0, 1.5, 1.0, True)] == [pytest.approx(0.5), 0.0]


def _step_s(stem: str, device_sync: bool) -> float:
    run = load_run(RUNS / f"{stem}.yaml")
    ctx = dreplace(context(run), pp_p2p_device_sync=device_sync)
    return float(evaluate(ctx, plans_from_spec(run.plan, run.chips, run.arch)).step_time_s[0])


def test_primus_1f1b_synchronises_between_forward_and_backward():
    """Megatron-LM 847781764f, which Primus b3699abf runs: without a virtual pipeline overlap_p2p_comm is forced off
    (megatron/training/arguments.py:589), so batch_p2p_comm = True (:1229) and, with batch_p2p_sync's default True
    (megatron/core/model_parallel_config.py:270), p2p_communication.py _communicate calls torch.cuda.synchronize()
    after each exchange (:395-398). The Primus profile states it; the DeepSeek-V2 1F1B baseline (Figure 7's
    Base-1F1B: forward launch-bound at 20 local experts, backward device-bound) is slower for it, and the
    interleaved run with overlap_p2p_comm (Pre+VPP5) is not touched by it."""
    assert stack_flags("primus-megatron-2025")["pp_p2p_device_sync"] is True
    assert context(load_run(RUNS / "primus-2512-dsv2-mi355x-32-bf16-baseline.yaml")).pp_p2p_device_sync is True
    base = "primus-2512-dsv2-mi355x-32-bf16-baseline"
    assert _step_s(base, True) > 1.05 * _step_s(base, False)
    tuned = "primus-2512-dsv2-mi355x-32-bf16"
    assert _step_s(tuned, True) == _step_s(tuned, False)
