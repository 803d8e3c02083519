"""The eager launch floor of dense layers on the Ascend 910 family (perf/step.py layer_launch_floor).

torch_npu issues one operator per ~21.5 us from the host (BF16 torch.mm of 1024^3 issued 30 times back to back on a
910B2: 99.86 TFLOP/s = 2 x 1024^3 / 99.86e12 s per call, zzc0721/torch-performance-test-data issue 109; the device
needs ~8 us for it), and a Megatron-Core layer with MindSpeed's fused RMSNorm / rotary / SwiGLU / flash attention
issues 15 operators forward and 27 backward per micro-batch (constants.yaml, with the count). The host runs ahead
of the device, so a micro-batch takes max(device, host): the floor binds only where a layer's device time is under
42 x 21.5 us = 0.90 ms, which no validation row comes near."""
from __future__ import annotations

from dataclasses import replace as dreplace
from pathlib import Path

import pytest
import yaml

from trainsim.estimate import context
from trainsim.perf.calibration import calib_for
from trainsim.perf.step import layer_launch_floor
from trainsim.spec import load_run
from trainsim.validate.calibrate import _base, prepare

RUNS = Path(__file__).resolve().parents[1] / "validation" / "runs"
QWEN2_05B = RUNS / "mindspeed-ascend-qwen2-0.5b-8.yaml"
OP_HOST_S = 2 * 1024**3 / 99.86e12      # 21.5 us per torch.mm call, issue 109's 1024 BF16 figure
LAYERS = 24                               # Qwen2-0.5B
OPS_F, OPS_B = 15, 27


def test_issue_interval_by_hand():
    """2 x 1024^3 FLOP at 99.86 TFLOP/s = 21.50 us; the family constant is that figure, other families have none."""
    assert OP_HOST_S == pytest.approx(21.50e-6, rel=1e-3)
    assert calib_for("ascend-910").eager_op_host_s == pytest.approx(OP_HOST_S, rel=2e-3)
    assert calib_for("nvidia-hopper").eager_op_host_s == 0.0
    assert calib_for("amd-cdna4", chip="amd-mi355x").eager_op_host_s == 0.0


def test_floor_by_hand():
    """Qwen2-0.5B's 24 layers on a 910B2: forward 24 x 15 x 21.5 us = 7.74 ms, backward 24 x 27 x 21.5 us = 13.93 ms
    per micro-batch; a full recompute reruns the forward's in the backward; no floor without a measured per-op time."""
    ctx = context(load_run(QWEN2_05B))
    f, b = layer_launch_floor(ctx, float(LAYERS), 0.0)
    assert f == pytest.approx(LAYERS * OPS_F * OP_HOST_S, rel=2e-3)
    assert b == pytest.approx(LAYERS * OPS_B * OP_HOST_S, rel=2e-3)
    assert f == pytest.approx(7.74e-3, rel=3e-3) and b == pytest.approx(13.93e-3, rel=3e-3)
    f1, b1 = layer_launch_floor(ctx, float(LAYERS), 1.0)
    assert (f1, b1) == (pytest.approx(f), pytest.approx(b + f))
    none = dreplace(ctx, calib=ctx.calib.with_(eager_op_host_s=0.0))
    assert layer_launch_floor(none, float(LAYERS), 1.0) == (0.0, 0.0)


def _rate(tmp: Path, seq: int | None = None, calib_kw: dict | None = None, fused: bool = True) -> float:
    """Predicted tokens/s per NPU of the Qwen2-0.5B row, at sequence length ``seq`` (global batch 512 sequences:
    64 micro-batches per rank, so per-step terms are amortised), with ``calib_kw`` replaced; at ``seq`` with
    gradient-accumulation fusion ``fused`` (the row runs without it)."""
    d = yaml.safe_load(QWEN2_05B.read_text())
    if seq is not None:
        d["training"]["seq_len"], d["training"]["global_batch_seqs"] = seq, 512
        d["plan"]["micro_batch"] = 1
        d["training"]["grad_accumulation_fusion"] = fused
    p = tmp / "q.yaml"
    p.write_text(yaml.safe_dump(d))
    (run,) = prepare([p])
    base = _base(run)
    return run.predict(base.with_(**calib_kw) if calib_kw else base)


def test_floor_binds_on_a_short_micro_batch(tmp_path):
    """At 256 tokens per micro-batch a layer's device time is far under 0.90 ms, so the host paces the step:
    256 tokens per 24 x 42 x 21.5 us = 21.67 ms, 11,813 tokens/s per NPU at most (each of the 8 NPUs runs its own
    micro-batches); the head, the loss and the per-step terms are device work the host hides or few. Without the
    floor the engine predicts more than twice that."""
    bound = 256 / (LAYERS * (OPS_F + OPS_B) * OP_HOST_S)
    assert bound == pytest.approx(11_813, rel=2e-3)
    rate = _rate(tmp_path, seq=256)
    assert 0.9 * bound <= rate <= bound * (1 + 1e-9)
    assert _rate(tmp_path, seq=256, calib_kw={"eager_op_host_s": 0.0}) > 2.0 * bound


def test_floor_does_not_bind_on_the_validation_rows(tmp_path):
    """The smallest published micro-batch time of the MindSpeed rows, Qwen2-0.5B 4K: 128 x 4,096 tokens per step at
    28,618 tokens/s per NPU on 8 NPUs = 2.290 s over 8 micro-batches per rank = 286.3 ms, against a floor of
    24 x 42 x 21.5 us = 21.67 ms (7.6%): the row's prediction is the same with and without it. A floor that closed
    the row's +10.7% leave-one-out error (about 28 ms per micro-batch of device work missing) would need the host
    to be the bottleneck, ~13 x slower per operator (~280 us) than measured."""
    per_mb = 128 * 4096 / (28_618 * 8) / 8
    assert per_mb == pytest.approx(0.2863, rel=1e-3)
    floor = LAYERS * (OPS_F + OPS_B) * OP_HOST_S
    assert floor / per_mb == pytest.approx(0.0757, rel=0.01)
    assert _rate(tmp_path) == pytest.approx(_rate(tmp_path, calib_kw={"eager_op_host_s": 0.0}), rel=1e-12)


QWEN2_05B_PARAMS = 494_032_768   # Qwen/Qwen2-0.5B model card / safetensors index (0.49B, tied embeddings)


def test_unfused_accumulation_hides_under_the_floor(tmp_path):
    """The unfused main-grad add (``param.main_grad.add_(param.grad.data)``, launched by the DDP's backward hook,
    Megatron-LM core_r0.6.0 distributed_data_parallel.py) is a device kernel the host issues like the layer's
    others, so it joins the device path inside the floor's max: t_b = max(floor, device + add), not floor + add.
    Qwen2-0.5B at tp = pp = 1 holds all 494,032,768 parameters on each NPU: 10 B each (2 read of the BF16 gradient,
    4 + 4 of the fp32 buffer) at 1.6 TB/s x 0.676 = 4.57 ms per micro-batch. At 256 tokens the device work
    (plus that 4.57 ms) stays under the 21.67 ms floor, so the step is the same with and without the fusion; the sum
    floor + add would give 21.67 / (21.67 + 4.57) = 0.826 of the fused rate. (Equal to 1e-4, not exactly: the floor's
    excess is split between the passes as the launch work is, so the unfused backward is 4.57 x 15 / 42 ms longer and
    hides a little more of the once-a-step gradient all-reduce.)"""
    add_s = 10.0 * QWEN2_05B_PARAMS / (1.6e12 * 0.676)
    assert add_s == pytest.approx(4.57e-3, rel=2e-3)
    floor = LAYERS * (OPS_F + OPS_B) * OP_HOST_S
    fused, unfused = _rate(tmp_path, seq=256), _rate(tmp_path, seq=256, fused=False)
    assert unfused == pytest.approx(fused, rel=1e-4)
    assert unfused > 1.1 * fused * floor / (floor + add_s)
