"""Megatron splits interleaved pipeline stages evenly (profile flag ``vpp_divides_stage_layers``).

Megatron-LM sets vpp = (layers / pp) / N from ``--num-layers-per-virtual-pipeline-stage N``; Megatron-Core r0.8-r0.11
assert that pp divides the layers and N the layers per stage. Hand cases:

* GPT 462B of the Megatron-Core 2024 table: 112 layers, pp 16 -> 7 layers per stage: vpp 7 (N = 1) is valid,
  vpp 4 (7 / 4 layers per chunk) is not; trainsim's even split would cost it as ceil(112 / 64) x 4 = 8 layers.
* GPT 119B: 92 layers, pp 4 -> 23 per stage (prime): only vpp 1 or 23.
* 96 layers, pp 5: pp does not divide the layers, so no interleaving.
"""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.errors import TrainsimError
from trainsim.frameworks import even_vpp
from trainsim.parallel.enumerate import candidate_values
from trainsim.parallel.validity import check, even_vpp_ok, reason
from trainsim.plan_estimate import estimate_complete, plans_from_spec
from trainsim.spec import parse_run


def test_even_split_rule_by_hand():
    ok = even_vpp_ok(112, np.array([16, 16, 16, 8]), np.array([7, 4, 1, 14]))
    assert ok.tolist() == [True, False, True, True]
    assert even_vpp_ok(92, np.array([4, 4, 4]), np.array([23, 8, 1])).tolist() == [True, False, True]
    assert even_vpp_ok(96, np.array([5, 5]), np.array([2, 1])).tolist() == [False, True]


def test_profiles_that_state_it():
    for fw in ("megatron-lm-2021", "megatron-lm-2022", "megatron-core-2024"):
        assert even_vpp(fw)
    assert not even_vpp("torchtitan-2024")


def _run(fw, vpp, zero=1):
    return parse_run({
        "model": {"name": "g", "layers": 112, "hidden": 2048, "heads": 16, "ffn": 8192, "ffn_act": "gelu",
                  "vocab": 51200},
        "system": "dgx-h100", "chips": 128, "framework": fw,
        "training": {"seq_len": 2048, "global_batch_seqs": 128, "precision": "bf16"},
        "plan": {"tp": 1, "pp": 16, "vpp": vpp, "cp": 1, "micro_batch": 1, "zero": zero, "recompute": "none",
                 "schedule": "interleaved"}})


def test_uneven_interleaving_is_an_input_error_for_megatron():
    run = _run("megatron-core-2024", 4)
    with pytest.raises(TrainsimError, match="vpp"):
        estimate_complete(run, run.plan)
    ok = _run("megatron-core-2024", 7)
    assert estimate_complete(ok, ok.plan).step_time_s > 0
    # a stack without the statement keeps the engine's split (rounded up per virtual stage)
    other = _run("torchtitan-2024", 4, zero=0)
    assert estimate_complete(other, other.plan).step_time_s > 0


def test_check_names_the_rule():
    run = _run("megatron-core-2024", 4)
    p = plans_from_spec(run.plan, run.chips, run.arch)
    tr = run.training
    code = check(p, run.arch, run.chips, tr.seq_len, tr.batch_seqs, even_vpp=True)
    assert int(code[0]) == 15 and "vpp" in reason(code[0])
    assert int(check(p, run.arch, run.chips, tr.seq_len, tr.batch_seqs)[0]) == 0


def test_search_offers_every_layers_per_virtual_stage():
    run = _run("megatron-core-2024", 4)
    cand = candidate_values(run.arch, 128, 2048, 128, None, even_vpp=True, pps=[16])
    vpps = {v for _, v in cand["sched_vpp"]}
    assert 7 in vpps and 14 not in vpps     # the divisors > 1 of 112 / 16 = 7 layers per stage: 7 (N = 1)
    assert {v for _, v in candidate_values(run.arch, 128, 2048, 128, None, even_vpp=True,
                                           pps=[8])["sched_vpp"]} >= {2, 7, 14}   # 112 / 8 = 14 = 2 x 7
    plain = {v for _, v in candidate_values(run.arch, 128, 2048, 128, None, pps=[16])["sched_vpp"]}
    assert 7 not in plain
