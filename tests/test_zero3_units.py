"""ZeRO-3 syncs one collective per communication unit, each paying its own ring latency (perf/comm_dp.py
zero3_units; Megatron-FSDP at Megatron-LM core_r0.14.0: one FSDP unit per TransformerLayer, its buckets grouped by
(unit, expert or not) for NCCL).

Hand derivation, a dense 4-layer model on 16 H100 (2 DGX-H100 nodes of 8; NVLink hop 2 us, network hop 5 us in
catalog/data/systems.yaml), zero 3, dp 16 at stride 1: a ring pass over 16 ranks in 2 nodes takes 15 steps, NCCL's
nInterSteps = nNodes - 1 = 1 of them across the network and the other 14 over NVLink (src/graph/tuning.cc), one
ring latency 14 x 2 + 1 x 5 = 33 us. Units: 4
layers + 1 (embedding, head, final norm) = 5, so the all-gather and the reduce-scatter each take 4 x 33 = 132 us
more than one whole-model collective; zero 1 is unchanged.
"""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.perf.comm_dp import dp_sync_times, zero3_units
from trainsim.plan_estimate import context, plans_from_spec
from trainsim.spec import parse_run


def _run(zero, pp=1):
    return parse_run({"model": {"name": "g", "layers": 4, "hidden": 1024, "heads": 16, "ffn": 4096,
                                "ffn_act": "gelu", "vocab": 32000},
                      "system": "dgx-h100", "chips": 16, "framework": "megatron-bridge-2025",
                      "training": {"seq_len": 2048, "global_batch_seqs": 256, "precision": "bf16"},
                      "plan": {"tp": 1, "pp": pp, "cp": 1, "micro_batch": 1, "zero": zero, "recompute": "none"}})


def _times(zero):
    run = _run(zero)
    ctx = context(run)
    p = plans_from_spec(run.plan, run.chips, run.arch)
    dense, expert = np.array([1.0e8]), np.array([0.0])
    g, a = dp_sync_times(ctx, p, dense, expert)
    return ctx, p, float(np.ravel(g)[0]), float(np.ravel(a)[0])


def test_units_by_hand():
    ctx, p, _, _ = _times(3)
    d, e = zero3_units(ctx, p)
    assert float(np.ravel(d)[0]) == 5.0      # 4 layers + the parameters outside any layer
    assert float(np.ravel(e)[0]) == 0.0      # no MoE layer


def test_zero3_pays_a_ring_latency_per_unit():
    _, _, g3, a3 = _times(3)
    _, _, g1, a1 = _times(1)
    # zero 1 and zero 3 move the same bytes in the same groups (reduce-scatter + all-gather): the difference is
    # the 4 extra units' ring latency, 4 x (14 x 2 us + 1 x 5 us) = 132 us, on each
    assert a3 - a1 == pytest.approx(132e-6, rel=1e-9)
    assert g3 - g1 == pytest.approx(132e-6, rel=1e-9)
