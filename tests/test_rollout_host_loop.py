"""The rollout engine's host loop (servemax2, issue 18): a decode step's host terms as the engine pays them,
keyed on what an RL spec states (student.rollout_host_overlap, rollout_numa_bound; inference/calib.py
engine_host_calib)."""
from dataclasses import replace
from pathlib import Path

import pytest

from trainsim.catalog import get_chip
from trainsim.inference.calib import default_calib, engine_host_calib

REPO = Path(__file__).resolve().parents[1]


def test_v1_sync_host_per_seq_is_issue_10634():
    # vLLM issue #10634: "the gap between the two decodes ... is about 5-6ms" at batch 256 (V1, no overlap)
    assert default_calib().v1_sync_host_s_per_seq == pytest.approx(5.5e-3 / 256, rel=0.01)


def test_unbound_grace_factor_is_te_2053():
    # NVIDIA/TransformerEngine issue 2053: eager Linear host time 37.08 us on GB200 vs 13.48 us on DGX H100
    assert default_calib().unbound_grace_host_factor == pytest.approx(37.08 / 13.48, rel=0.01)


def _host_s(c, n):
    return c.step_overhead_s + c.seq_overhead_s * n


def test_host_terms_by_hand():
    base = default_calib()
    h100, gb200 = get_chip("nvidia-h100-sxm5"), get_chip("nvidia-gb200")
    # overlapped, x86 or NUMA-bound: the serving fit's terms unchanged
    assert engine_host_calib(base, h100) == base
    assert engine_host_calib(base, gb200, numa_bound=True) == base
    assert engine_host_calib(base, h100, numa_bound=False) == base          # not a Grace host
    # no overlap, 128 running, x86: 0.15 ms + 128 x 21.5 us = 2.90 ms (hand)
    sync = engine_host_calib(base, h100, host_overlap=False)
    assert _host_s(sync, 128) == pytest.approx(1.5e-4 + 128 * 21.5e-6, rel=1e-3)
    # the same on an unbound Grace host: x 2.75 = 7.98 ms
    g = engine_host_calib(base, gb200, host_overlap=False, numa_bound=False)
    assert _host_s(g, 128) == pytest.approx(2.75 * (1.5e-4 + 128 * 21.5e-6), rel=1e-2)


def test_serving_v0_loop_is_the_same_mechanism():
    """Serving specs with host_overlap false (vLLM V0 points) take their per-sequence time from the same
    engine_host_calib as rollout servers: V0's 20 ms at 200 running (vLLM issue #6801) = 100 us per sequence,
    0.15 ms + 200 x 100 us = 20.15 ms per step (hand); an unknown loop is refused."""
    base = default_calib()
    v0 = engine_host_calib(base, get_chip("nvidia-h100-sxm5"), host_overlap=False, loop="vllm-v0")
    assert _host_s(v0, 200) == pytest.approx(1.5e-4 + 200 * 20e-3 / 200, rel=1e-3)
    with pytest.raises(ValueError, match="vllm-v0"):
        engine_host_calib(base, get_chip("nvidia-h100-sxm5"), host_overlap=False, loop="vllm-v2")


def test_rollout_pays_the_stated_host_loop():
    """The same NeMo RL v0.6.0 GB200 on-policy step with the rollout host loop stated overlapped and NUMA-bound vs
    neither: generation grows by about the exposed host time, steps x (host per step) -- the longest sample's
    decode steps at least, each with >= 0.15 ms x (2.75 - 1) more."""
    from trainsim.posttrain.spec import load_posttrain
    from trainsim.posttrain.timeline import step_time

    pt = load_posttrain(REPO / "validation" / "rl" / "nemo-rl-gb200-q30-16-sync.yaml")
    fast = replace(pt, student=pt.student.model_copy(update={"rollout_host_overlap": True,
                                                             "rollout_numa_bound": True}))
    slow = replace(pt, student=pt.student.model_copy(update={"rollout_host_overlap": False,
                                                             "rollout_numa_bound": False}))
    def rollout_s(spec):
        return sum(p.seconds for p in step_time(spec)["phases"] if p.stage == "rollout")

    g_fast, g_slow = rollout_s(fast), rollout_s(slow)
    longest = pt.step.rollout_len * pt.step.tail_factor
    assert g_slow - g_fast >= longest * 1.5e-4 * (2.75 - 1)
