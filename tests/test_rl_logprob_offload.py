"""NeMo RL v0.4.0's optimizer round trip for the log-prob passes of a non-colocated (one-step-off) trainer
(``student.offload_optimizer_for_logprob``, :func:`trainsim.posttrain.phases.optimizer_round_trip_s`).

v0.4.0's ``MegatronPolicyWorker.prepare_for_lp_inference`` calls ``offload_before_refit`` (the optimizer state to the
host, tensor by tensor) and ``prepare_for_training`` brings it back, every step of the one-step-off loop
(NVIDIA-NeMo/RL tag v0.4.0, nemo_rl/models/policy/megatron_policy_worker.py, nemo_rl/algorithms/grpo.py
async_grpo_train); pull request 1404 made it optional (``offload_optimizer_for_logprob``, default false) for v0.5.0.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from trainsim.posttrain.phases import host_offload_s, optimizer_round_trip_s
from trainsim.posttrain.spec import load_posttrain
from trainsim.posttrain.timeline import resource_busy, step_time

RL = Path(__file__).resolve().parents[1] / "validation" / "rl"


def test_round_trip_by_hand():
    # 11.4 GB of optimizer state per chip, each way at the per-tensor pageable 1.8 GB/s (NVIDIA-NeMo/RL issue 3976)
    # under a 50 GB/s link: 2 x 11.4 / 1.8 = 12.67 s
    assert optimizer_round_trip_s(11.4e9, 50e9, 1.8e9) == pytest.approx(12.667, abs=1e-3)
    # a link slower than the copies bounds them: 2 x 11.4 / 1.0 = 22.8 s; no optimizer rate given: the link's
    assert optimizer_round_trip_s(11.4e9, 1.0e9, 1.8e9) == pytest.approx(22.8)
    assert optimizer_round_trip_s(11.4e9, 50e9) == pytest.approx(2 * 11.4 / 50)
    assert optimizer_round_trip_s(11.4e9, 0.0, 1.8e9) == 0.0


def test_colocated_offload_keeps_its_hand_figure():
    # host_offload_s's own example: DeepSeek-V3 on 256 H100, 7.4 GB of weights and 32.9 GB of optimizer state per
    # chip, 50 GB/s link, 1.8 GB/s pageable: 2 x 7.4 / 50 + 2 x 32.9 / 1.8 = 0.296 + 36.556 = 36.85 s
    assert host_offload_s(7.4e9, 32.9e9, 50e9, 1.8e9) == pytest.approx(36.85, abs=0.01)


def _offload(phs):
    return [p for p in phs if p.stage == "offload"]


def test_one_step_off_v04_row_pays_the_round_trip_on_its_training_chips():
    pt = load_posttrain(RL / "nemo-rl-v04-h100-llama8b-16-async.yaml")
    assert pt.student.offload_optimizer_for_logprob and pt.student.rollout_chips == 8
    r = step_time(pt)
    (off,) = _offload(r["phases"])
    opt = off.detail["optimizer_bytes_per_chip"]
    # Llama 3.1 8B on 8 training H100 (PP 2, DP 4, distributed optimizer): ~12 GB of FP32 master weights and Adam
    # moments per chip, each way at 1.8 GB/s
    assert 10e9 < opt < 14e9
    assert off.seconds == pytest.approx(2 * opt / 1.8e9, rel=1e-9)
    assert off.chips == 8
    busy = resource_busy(r["phases"], pt)
    train_side = sum(p.seconds for p in r["phases"] if p.stage in ("offload", "logprobs", "train"))
    assert busy["cluster main training chips"] >= train_side
    # without it (v0.5.0's default) the same row has no offload phase and a shorter step, by at most the round trip
    pt5 = replace(pt, student=pt.student.model_copy(update={"offload_optimizer_for_logprob": False}))
    r5 = step_time(pt5)
    assert not _offload(r5["phases"])
    assert 0 < r["step_s"] - r5["step_s"] <= off.seconds + 1e-9


def test_colocated_step_adds_nothing():
    # a colocated step's optimizer is already on the host after the refit's offload: the flag adds no phase
    pt = load_posttrain(RL / "nemo-rl-v04-h100-llama8b-16-sync.yaml")
    assert not pt.student.offload_optimizer_for_logprob
    on = replace(pt, student=pt.student.model_copy(update={"offload_optimizer_for_logprob": True}))
    a, b = step_time(pt), step_time(on)
    assert len(_offload(a["phases"])) == len(_offload(b["phases"])) == 1     # the colocated host offload only
    assert b["step_s"] == pytest.approx(a["step_s"], rel=1e-12)


def test_every_v04_one_step_off_row_states_it_and_no_later_row_does():
    for p in sorted(RL.glob("*.yaml")):
        pt = load_posttrain(p)
        want = p.name.startswith("nemo-rl-v04-") and pt.step.mode == "async"
        assert pt.student.offload_optimizer_for_logprob == want, p.name
