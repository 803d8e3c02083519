"""NeMo RL v0.6.0's rank placement (trainsim/posttrain/placement.py): hosts in random Ray node-id order, so a job wider
than one NVLink domain has groups across domains and is priced with every hop between hosts at the scale-out level."""
from __future__ import annotations

from dataclasses import replace
from math import prod
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
RL = REPO / "validation" / "rl"


def _gb200():
    from trainsim.catalog.load import get_system

    g = get_system("gb200-nvl72")
    # the catalog's GB200 NVL72 as the hand derivations below take it (systems.yaml): 72 GPUs of NVLink5 at 900 GB/s
    # one way and NCCL's LL step of 0.6 us, then 400 Gb/s (50 GB/s) scale-out at 5 us
    assert (g.levels[0].size, g.levels[0].bw, g.levels[0].latency_s) == (72, 900e9, 0.6e-6)
    assert (g.levels[1].bw, g.levels[1].latency_s) == (50e9, 5e-6)
    return g


def test_job_wider_than_a_domain_sees_hosts_as_its_scale_up_domains():
    from trainsim.parallel.placement import members_within
    from trainsim.posttrain.placement import placed_system

    g = _gb200()
    p = placed_system(g, 128, 4)          # 128 GB200 = 32 trays of 4 > 18 trays of one NVL72
    assert p is not None and p.levels[0].size == 4
    assert (p.levels[0].bw, p.levels[0].latency_s, p.levels[1:]) == (g.levels[0].bw, g.levels[0].latency_s,
                                                                        g.levels[1:])
    # a vLLM TP8 server: 8 consecutive ranks = 2 hosts; aligned, both inside one domain; placed, 4 per domain
    assert [int(x) for x in members_within(8, 1, g)] == [8, 8]
    assert [int(x) for x in members_within(8, 1, p)] == [4, 8]
    assert placed_system(g, 73, 4) is not None


@pytest.mark.parametrize("chips, per_node, system", [(64, 4, "gb200-nvl72"), (72, 4, "gb200-nvl72"),
                                                     (16, 4, "gb200-nvl72"), (128, None, "gb200-nvl72"),
                                                     (256, 8, "dgx-h100"), (512, 8, "dgx-h100")])
def test_aligned_layout_stands(chips, per_node, system):
    # a job within one domain's chips (its allocation is not stated), no hosts given, or a host as large as the
    # domain (DGX H100: 8 GPUs per NVLink domain and per host) keeps the engine's layout
    from trainsim.catalog.load import get_system
    from trainsim.posttrain.placement import placed_system

    assert placed_system(get_system(system), chips, per_node) is None


def test_rank_order_crosses_racks_with_near_certainty():
    # the docstring's figures: 32 trays split 16 / 16 over two racks, 16 two-host groups drawn as a random perfect
    # matching (consecutive ranks of a random host order): one group stays inside a rack with (16 - 1) / (32 - 1);
    # all 16 do with (15!!)^2 / 31!!. A seeded simulation of the host order agrees.
    dfact = lambda n: prod(range(n, 0, -2))  # noqa: E731
    assert 15 / 31 == pytest.approx(0.4839, abs=1e-4)
    p_all = dfact(15) ** 2 / dfact(31)
    assert p_all == pytest.approx(2.14e-5, rel=1e-2)
    rng = np.random.default_rng(0)
    order = rng.permuted(np.tile(np.arange(32), (200_000, 1)), axis=1)
    rack = order < 16
    inside = (rack[:, 0::2] == rack[:, 1::2])
    assert inside[:, 0].mean() == pytest.approx(15 / 31, abs=0.005)
    assert inside.all(axis=1).mean() < 2e-4


def test_slower_of_aligned_and_placed_by_hand():
    # all-reduce = the least of NCCL's ring (2 x reduce-scatter: bytes (n-1)/n S at the slowest link, a host's
    # egress shared by its members' NICs) and double binary tree (bytes n / (0.92 (n - 1)) x the ring's) under its
    # protocols LL / LL128 / Simple (perf/collectives.py NCCL_* tables, tuning.cc at 5067397c: base 6.6 / 14 / 8.4
    # us a call, NVLink steps 0.6 / 1.9 / 3.4 ring and 0.6 / 1.25 / 4.0 tree, network 2.7 / 4.0 / 14 ring and
    # 5.0 / 8.5 / 14 tree; LL at half the rate or 1 / 3.8 of the tree's, no faster than its ceiling: 282 GB/s bus on
    # one Blackwell node, 20.4 GB/s across more than 2), collective efficiency 1 on both levels
    from trainsim.perf.collectives import all_reduce_time
    from trainsim.posttrain.placement import slower_on_placed

    g = _gb200()
    key = float

    def ar(n, size):
        return lambda system: float(np.ravel(all_reduce_time(size, np.array([n]), np.array([1]), system,
                                                              (1.0, 1.0)))[0])
    # TP8, 256 MiB (bandwidth-bound: the ring under Simple on both layouts). Aligned: 2 x 7/8 S / 900e9 + 8.4 us +
    # 2 x 7 x 3.4 us; placed on hosts of 4: 2 x 7/8 S / (4 x 50e9) + 8.4 + 2 (6 x 3.4 + 1 x 14) us: 8 ring hops
    # less one, 1 between the 2 hosts; a host's egress goes at 4 x 50 GB/s, so the placed one is the slower
    s = 256 * 2**20
    aligned = 2 * 7 / 8 * s / 900e9 + 8.4e-6 + 2 * 7 * 3.4e-6
    ring_bytes = 7 / 8 * s / (4 * 50e9)
    placed = 2 * ring_bytes + 8.4e-6 + 2 * (6 * 3.4e-6 + 14e-6)
    assert placed < 2 * ring_bytes * 8 / (0.92 * 7) + 8.4e-6 + 2 * (3 * 4e-6 + 14e-6)      # the tree loses
    assert ar(8, s)(g) == pytest.approx(aligned, rel=1e-12)
    assert slower_on_placed(ar(8, s), g, 128, 4, key) == pytest.approx(placed, rel=1e-12)
    assert placed > 3 * aligned
    # TP32, 64 KiB (latency-bound, LL). Aligned, inside one NVLink domain: the ring, 6.6 us + 2 x 31 x 0.6 us + its
    # bytes at LL's ceiling, 2 x 31/32 x S / 282e9 (half the link, 2 x 31/32 S / 450e9, would be faster) = 44.25 us.
    # Placed over 8 hosts of 4, the tree (a chain of 4, then a binary tree of depth 3 over the hosts): 6.8 us +
    # 2 (3 x 0.6 + 3 x 5) us + 2 S / 20.4e9 = 46.83 us, the slower: a group crossing racks is priced as placed
    s = 64 * 2**10
    aligned = 6.6e-6 + 62 * 0.6e-6 + 2 * 31 / 32 * s / 282e9
    placed_tree = 6.8e-6 + 2 * (3 * 0.6e-6 + 3 * 5e-6) + 2 * s / 20.4e9
    assert ar(32, s)(g) == pytest.approx(aligned, rel=1e-12)
    assert ar(32, s)(_placed(g)) == pytest.approx(placed_tree, rel=1e-12)
    assert slower_on_placed(ar(32, s), g, 128, 4, key) == pytest.approx(max(aligned, placed_tree), rel=1e-12)
    # a job within one domain: the aligned time, whatever the group
    assert slower_on_placed(ar(8, 256 * 2**20), g, 64, 4, key) == pytest.approx(
        2 * 7 / 8 * 256 * 2**20 / 900e9 + 8.4e-6 + 2 * 7 * 3.4e-6, rel=1e-12)


def _placed(g):
    from trainsim.posttrain.placement import placed_system

    p = placed_system(g, 128, 4)
    assert p is not None
    return p


def _step(pt):
    from trainsim.posttrain.timeline import evaluate

    return evaluate(pt)["step_time_s"]


@pytest.mark.parametrize("name", ["nemo-rl-gb200-q235-128-sync", "nemo-rl-gb200-dsv3-256-async",
                                  "nemo-rl-gb200-q235-64-sync"])
def test_placed_step_never_below_aligned(name):
    # the GB200 specs state the recipes' gpus_per_node 4; without it the same spec is priced in the aligned layout.
    # A job wider than one NVL72 is slower placed (its trainer's expert-parallel all-to-alls and its refit cross
    # hosts over the scale-out network); one within 72 chips is unchanged
    from trainsim.posttrain.spec import load_posttrain

    pt = load_posttrain(RL / f"{name}.yaml")
    assert pt.clusters["main"].gpus_per_node == 4
    aligned = replace(pt, clusters={"main": replace(pt.clusters["main"], gpus_per_node=None)})
    placed_s, aligned_s = _step(pt), _step(aligned)
    if pt.clusters["main"].chips > 72:
        assert placed_s > aligned_s * 1.05
    else:
        assert placed_s == pytest.approx(aligned_s, rel=1e-12)


@pytest.mark.parametrize("bad", [0, -4, "four"])
def test_gpus_per_node_must_be_a_positive_count(tmp_path, bad):
    from trainsim.errors import TrainsimError
    from trainsim.posttrain.spec import load_posttrain

    text = (RL / "nemo-rl-gb200-q235-64-sync.yaml").read_text()
    assert "    gpus_per_node: 4" in text
    f = tmp_path / "bad.yaml"
    f.write_text(text.replace("    gpus_per_node: 4", f"    gpus_per_node: {bad}", 1))
    with pytest.raises(TrainsimError, match="gpus_per_node"):
        load_posttrain(f)
