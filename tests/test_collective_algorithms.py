"""All-gather / reduce-scatter priced by the algorithm the collective library picks (perf/collectives.py
reduce_scatter_time), and the ZeRO sharding group as a search dimension where the stack offers one (HSDP / MiCS:
the profile's zero_shard_groups), against hand derivations written here.

* HCCL (Ascend): NB / NHR take ceil(log2 N) steps per level without extra bytes (Huawei CANN HCCL user guide, 'NB',
  hcclug_000122; HCCL_ALGO, envref_07_0079: NHR / NB 'logarithmic complexity').
* NCCL: the ring (n - 1 steps), or PAT with one GPU per node (NCCL 2.23; src/graph/tuning.cc at 5067397c:
  busBw x 0.75, latency log2(nNodes) x interLat / 3.5 + 2.8 us x nRanks), whichever is faster.
"""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.catalog.load import systems
from trainsim.perf.collectives import all_gather_time, all_reduce_time, reduce_scatter_time
from trainsim.plan_estimate import context, plans_from_spec
from trainsim.search import search
from trainsim.spec import parse_run

EFF = (1.0, 1.0)


def test_hccl_all_gather_takes_log_steps_per_level():
    # Atlas 950 SuperPoD: 8,192 NPUs on UB (2.1 us a step), SuperPoDs joined by UBoE (5 us). 32,768 ranks at stride
    # 4 span 16 SuperPoDs with 8,192 / 4 = 2,048 members in each: ceil(log2 2048) = 11 UB steps and ceil(log2 16) = 4
    # network steps = 11 x 2.1 + 4 x 5 = 43.1 us, where a ring takes 32,767 steps (16 - 1 = 15 across the network)
    sysm = systems()["atlas-950-superpod"]
    n, stride = np.array([32768]), np.array([4])
    tiny = float(np.ravel(all_gather_time(1.0, n, stride, sysm, EFF))[0])
    assert tiny == pytest.approx(11 * 2.1e-6 + 4 * 5e-6, rel=1e-3)
    # the bytes are the ring's, (n - 1) / n x S over the slowest link: each member's 1,008 GB/s UB link (a
    # SuperPoD's egress spreads over its 2,048 members' 100 GB/s network links), so 1 GB adds 32767 / 32768 / 1008e9 s
    big = float(np.ravel(reduce_scatter_time(1e9, n, stride, sysm, EFF))[0])
    assert big - tiny == pytest.approx(1e9 * 32767 / 32768 / 1008e9, rel=1e-3)
    # all-reduce: NB's reduce-scatter + all-gather, twice the above
    assert float(np.ravel(all_reduce_time(1e9, n, stride, sysm, EFF))[0]) == pytest.approx(2 * big, rel=1e-6)


def test_nccl_pat_only_with_one_gpu_per_node_and_when_faster():
    # DGX-H100 under NCCL's tuner (tuning.cc at 5067397c; perf/collectives.py NCCL_* tables). 64 ranks at stride 8
    # (tp 8): one per node, PAT enabled. A 0-byte gather: the ring's best is LL, 6.6 us a call + 63 network steps at
    # the tree's 5 us (one rank per node: "latencies are fully exposed") = 321.6 us; PAT 8.0 us a call +
    # floor(log2 64) x 5 / 3.5 + 64 x 2.8 = 8 + 8.57 + 179.2 = 195.8 us
    sysm = systems()["dgx-h100"]
    n = np.array([64])
    pat_lat = 8e-6 + 6 * 5e-6 / 3.5 + 64 * 2.8e-6
    assert float(np.ravel(all_gather_time(0.0, n, np.array([8]), sysm, EFF))[0]) == pytest.approx(pat_lat, rel=1e-6)
    # a large gather stays on the ring (PAT's bus bandwidth is 0.75 of the ring's), under Simple (full rate):
    # 8 GB over 50 GB/s NICs, 8.4 us a call + 63 network steps x 14 us
    s = 8e9
    ring = 63 / 64 * s / 50e9 + 8.4e-6 + 63 * 14e-6
    assert ring < 63 / 64 * s / (0.75 * 50e9) + pat_lat
    assert float(np.ravel(all_gather_time(s, n, np.array([8]), sysm, EFF))[0]) == pytest.approx(ring, rel=1e-6)
    # 64 ranks at stride 1 share nodes (8 a node): the ring, however small, under LL: 6.6 us + 56 NVLink steps at
    # the proxy's 1 us floor (a ring across nodes, tuning.cc getNetOverhead) + 7 network steps x 2.7 us (ring LL)
    assert float(np.ravel(all_gather_time(0.0, n, np.array([1]), sysm, EFF))[0]) == pytest.approx(
        6.6e-6 + 56 * 1.0e-6 + 7 * 2.7e-6)


def _dense(fw: str, system: str = "dgx-h100", chips: int = 64, plan: dict | None = None,
           group: int | None = None):
    tr = {"seq_len": 4096, "global_batch_seqs": 256, "precision": "bf16"}
    if group:
        tr["zero_shard_group"] = group
    return parse_run({"model": {"name": "g", "layers": 16, "hidden": 4096, "heads": 32, "ffn": 16384,
                                "ffn_act": "swiglu", "vocab": 32000},
                      "system": system, "chips": chips, "framework": fw, "training": tr,
                      **({"plan": plan} if plan else {})})


def test_search_offers_shard_groups_only_where_the_stack_has_them():
    fixed = {"tp": 2, "pp": 1, "cp": 1, "zero": 3, "micro_batch": 1, "recompute": "full"}
    hsdp = search(_dense("mindspeed-2026", plan=fixed), top=50)
    flat = search(_dense("megatron-bridge-2025", plan=fixed), top=50)
    groups = {e.plan.get("zero_shard_group") for e in [hsdp.best] + hsdp.runners_up}
    # mindspeed-2026 (FSDP2 backend, fsdp_size): the whole dp group (no key) and one node's dp ranks, 8 / tp 2 = 4
    assert groups == {None, 4}
    assert all("zero_shard_group" not in e.plan for e in [flat.best] + flat.runners_up)
    # the searched group is the stated one's path: the same plan with training.zero_shard_group 4 costs the same
    e = next(e for e in [hsdp.best] + hsdp.runners_up if e.plan.get("zero_shard_group") == 4)
    stated = search(_dense("mindspeed-2026", plan=fixed, group=4), top=1).best
    assert stated.step_time_s == pytest.approx(e.step_time_s, rel=1e-9)
    assert stated.memory_per_chip_bytes == pytest.approx(e.memory_per_chip_bytes, rel=1e-9)


def test_searched_group_is_the_dp_ranks_of_one_domain():
    # 64 H100 in 8-GPU nodes, tp 2, dp 32: the dp ranks sit 2 apart, 8 / 2 = 4 of them in a node; zgroup 1 (a group
    # per level-0 domain) shards over those 4, zgroup 0 over all 32
    plan = {"tp": 2, "pp": 1, "cp": 1, "zero": 3, "micro_batch": 1, "recompute": "full"}
    run = _dense("mindspeed-2026", plan=plan)
    ctx = context(run)
    p = plans_from_spec(run.plan, run.chips, run.arch)
    assert int(ctx.shard_ranks(p)[0]) == 32
    p.zgroup = np.array([1])
    assert int(ctx.shard_ranks(p)[0]) == 4


def test_a_searched_group_round_trips_into_a_run_spec():
    # a scenario re-estimates its best plan from the printed plan: the searched group becomes the run spec's
    # training.zero_shard_group (a training key, not a plan field)
    from trainsim.scenario.common import make_run
    model = {"name": "g", "layers": 16, "hidden": 4096, "heads": 32, "ffn": 16384, "ffn_act": "swiglu",
             "vocab": 32000}
    plan = {"tp": 2, "pp": 1, "cp": 1, "dp": 32, "zero": 3, "micro_batch": 1, "recompute": "full",
            "zero_shard_group": 4}
    run = make_run(model, "dgx-h100", 64, {"seq_len": 4096, "global_batch_seqs": 256, "precision": "bf16"},
                   plan=plan, framework="mindspeed-2026")
    assert run.training.zero_shard_group == 4 and run.plan.zero == 3
    ctx = context(run)
    assert int(ctx.shard_ranks(plans_from_spec(run.plan, run.chips, run.arch))[0]) == 4
