"""ZeRO-3 syncs one collective per communication unit, each paying its own ring latency (perf/comm_dp.py
zero3_units; Megatron-FSDP at Megatron-LM core_r0.14.0: one FSDP unit per TransformerLayer, its buckets grouped by
(unit, expert or not) for NCCL).

Hand derivation, a dense 4-layer model on 16 H100 (2 DGX-H100 nodes of 8), zero 3, dp 16 at stride 1, priced as
NCCL's tuner prices a ring (perf/collectives.py NCCL_* tables, NVIDIA/nccl src/graph/tuning.cc at 5067397c): a ring
pass over 16 ranks in 2 nodes takes 15 steps, nInterSteps = nNodes - 1 = 1 of them across the network and 14 over
NVLink. Per call: Simple 8.4 us base + 14 x 3.4 + 1 x 14 = 70 us at the full bus rate; LL128 14 + 14 x 1.9 + 4.0 =
44.6 us at 0.92 of it. The ring's bytes rate is 8 x 400 Gb/s NICs per node = 400 GB/s at coll_eff 0.85 = 340 GB/s,
(15/16) S / 340 GB/s = B. Units: 4 layers + 1 (embedding, head, final norm) = 5. Zero 1 makes one call of the whole
buffer (Simple: 70 us + B), zero 3 five calls of a fifth (LL128: 44.6 us + B / 5 / 0.92 each), so zero 3 pays
5 x 44.6 - 70 us + B (1 / 0.92 - 1) more, on the all-gather (S = 1e8 parameters x 2 bytes) and the
reduce-scatter (x 4 bytes, FP32 gradient reduction).
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
    # four more calls' latency and the smaller calls' protocol (module docstring)
    def extra(size_bytes):
        b = 15 / 16 * size_bytes / 340e9
        return 5 * 44.6e-6 - 70e-6 + b * (1 / 0.92 - 1)
    assert a3 - a1 == pytest.approx(extra(1e8 * 2), rel=1e-6)
    assert g3 - g1 == pytest.approx(extra(1e8 * 4), rel=1e-6)
