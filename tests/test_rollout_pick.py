"""rolloutpick (issue 18 criterion 4): which rollout server an RL step generates on.

A spec that states the rollout layout (``student.rollout_tp``: NeMo RL recipes state vLLM's tensor-parallel size,
as every validation/rl row does) is taken as stated, nothing chosen; an unstated one is searched, and the server
is the serving plan that finishes the step's prefill + decode first (posttrain/phases.py ``rollout_servers``), not
the one with the most decode tokens/s per chip at full batch: with a tail the longest sample's last steps run
nearly alone at the per-step fixed cost, which the full-batch rate does not see."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainsim.catalog import get_system
from trainsim.errors import NoPlanError
from trainsim.model.load import resolve_model
from trainsim.posttrain.phases import rollout_time
from trainsim.posttrain.spec import load_posttrain
from trainsim.posttrain.timeline import phases

from tests.test_qa19 import scaled_system

ROOT = Path(__file__).resolve().parent.parent
RL = sorted((ROOT / "validation" / "rl").glob("*.yaml"))
FAST = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


def _arch(model: str):
    return resolve_model(model, ROOT, field="model")


def _better(system_id: str, what: str, factor: float):
    if what == "hbm_bytes":
        s = get_system(system_id)
        return s.with_(chip=s.chip.with_(hbm_bytes=s.chip.hbm_bytes * factor))
    return scaled_system(system_id, what, factor)


@pytest.mark.parametrize("path", RL, ids=[p.stem for p in RL])
def test_stated_rollout_layout_is_used_as_stated(path):
    """Every published NeMo RL row states vLLM's tensor-parallel size; its rollout server is that layout (chips =
    tp = rollout_tp, one pipeline stage, one replica, experts sharded with the tensor-parallel group: vLLM without
    ``enable_expert_parallel``), and it runs at most the sequences it is given and at most ``max_num_seqs``."""
    pt = load_posttrain(path)
    tp = pt.student.rollout_tp
    assert tp, f"{path.name} states no rollout_tp"
    rolls = [ph for ph in phases(pt) if ph.stage == "rollout"]
    assert rolls
    for ph in rolls:
        plan = ph.detail["plan"]
        assert (plan["chips"], plan["tp"], plan["pp"], plan["dp"], plan["ep"]) == (tp, tp, 1, 1, 1), plan
        batch = ph.detail["batch_per_chip"] * tp
        age = pt.step.max_trajectory_age_steps if pt.step.mode == "async" else 1
        share = age * pt.step.sequences / ph.chips * tp
        assert batch <= share * (1 + 1e-9)
        if pt.student.rollout_max_seqs:
            assert batch <= pt.student.rollout_max_seqs * (1 + 1e-9)


# (model, system, chips, samples, tail, HBM share). The first three were lengthened by better hardware when the
# server was the best full-batch rate: Qwen3-30B-A3B, 512 samples on 16 H100, tail 2, scale-out x1.25: the 8-chip
# server (tp 2, ep 8) -> 16 chips (tp 2, ep 16), 189.2 -> 192.3 s; Llama 3.1 8B on 32 A100 at 0.6 of HBM x1.25,
# tail 3: tp 8 -> tp 4, 517.9 -> 540.2 s; Qwen3-30B-A3B on 32 GB200, 64 samples, tail 3, HBM bandwidth x1.25: tp 4
# -> tp 1 (32 chips), 107.1 -> 107.6 s
CASES = [("qwen3-30b-a3b", "dgx-h100", 16, 512, 2.0, 1.0), ("llama-3.1-8b", "dgx-a100", 32, 2048, 3.0, 0.6),
         ("qwen3-30b-a3b", "gb200-nvl72", 32, 64, 3.0, 1.0), ("llama-3.1-70b", "dgx-h100", 64, 2048, 3.0, 0.6)]


#: where the best full-batch rate was slower than a layout the spec could have stated: Qwen3-30B-A3B, 64 samples
#: on 64 H100, tail 3: 64 chips (tp 4, ep 64) 124.5 s against rollout_tp 8's 118.8 s; Llama 3.1 8B, 2,048 samples on
#: 32 A100, tail 3: tp 4 525.1 s against tp 8's 504.2 s
SLOWER = [("qwen3-30b-a3b", "dgx-h100", 64, 64, 3.0, 1.0), ("llama-3.1-8b", "dgx-a100", 32, 2048, 3.0, 1.0)]


@pytest.mark.parametrize("model, system, chips, seqs, tail, frac", CASES + SLOWER)
def test_searched_server_is_never_slower_than_a_stated_one(model, system, chips, seqs, tail, frac):
    """Every layout a spec can state (``rollout_tp`` t: t chips, tp t) is one of the searched candidates, so the
    searched server finishes the step's generation no later than any stated one that fits."""
    arch = _arch(model)
    sysm = get_system(system)
    args = (arch, sysm, chips, seqs, max(seqs // 8, 1), 512, 8192, "bf16", tail)
    searched = rollout_time(*args, hbm_fraction=frac).total_s
    stated = []
    for t in (1, 2, 4, 8):
        try:
            stated.append(rollout_time(*args, instance_chips=t, hbm_fraction=frac).total_s)
        except NoPlanError:
            continue
    assert stated
    assert searched <= min(stated) * (1 + 1e-9), (searched, stated)


@settings(max_examples=25, **FAST)
@given(case=st.sampled_from(CASES), tail=st.sampled_from((1.0, 2.0, 3.0)),
       what=st.sampled_from(("hbm_bw", "flops", "scale_up", "scale_out", "hbm_bytes")),
       factor=st.sampled_from((1.25, 2.0)))
def test_better_hardware_never_lengthens_a_searched_rollout(case, tail, what, factor):
    """More HBM bandwidth, FLOP/s, link bandwidth or HBM capacity leaves every server's step no longer, so the
    searched server's (the least of them) is no longer either -- also with a tail."""
    model, system, chips, seqs, _, frac = case
    arch = _arch(model)
    r = [rollout_time(arch, sysm, chips, seqs, max(seqs // 8, 1), 512, 8192, "bf16", tail, hbm_fraction=frac)
         for sysm in (get_system(system), _better(system, what, factor))]
    assert r[1].total_s <= r[0].total_s * (1 + 1e-6), (r[0].plan, r[1].plan, r[0].total_s, r[1].total_s)


def test_a_step_below_the_smallest_batch_costs_what_one_at_it_does():
    """A server of two pipeline stages (batch0 = pp x dp = 2) running one sequence still takes its step at two
    sequences: one wave of 64 samples, mean 1,000, longest 3,000; tpot 26.4 ms at 64 and 20.2 ms at 2 give b =
    6.2 ms / 62 = 0.1 ms, a = 26.4 - 6.4 = 20 ms; 20 ms x 3,000 steps + 0.1 ms x 64,000 tokens = 66.4 s, and the
    2,000 tail steps run one sequence short of batch0: + 0.1 ms x 2,000 = 66.6 s (at batch0 = 1: 66.4 s)."""
    from trainsim.posttrain.phases import generation_s

    assert generation_s(64, 64, 0.0264, 2, 0.0202, 1000, 3000) == pytest.approx(66.6, rel=1e-9)
    assert generation_s(64, 64, 0.0264, 1, 0.0201, 1000, 3000) == pytest.approx(66.4, rel=1e-9)
