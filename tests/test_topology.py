"""Topology per network level (issue 14 item 1): hand-derived multipliers for oversubscribed Clos and torus
levels, their effect on the collective times, parsing errors, and the catalog's sourced pods."""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.catalog.resolve import resolve_system
from trainsim.catalog.topology import SWITCH, parse_topology
from trainsim.catalog.types import NetLevel
from trainsim.errors import TrainsimError
from trainsim.perf.collectives import all_to_all_time, reduce_scatter_time, ring_step_time
from trainsim.perf.topology import a2a_factor, neighbour_factor, ring_factor

TORUS = parse_topology("torus 16x16x16", "t", size=4096)
CLOS = parse_topology("clos 7:1 above 3072", "c")


def test_clos_all_to_all_is_bound_by_the_uplinks():
    # Llama 3's cluster shape (sec. 3.3.1): 3,072-GPU pods non-blocking inside, 1:7 above. An all-to-all over
    # 16,384 ranks at stride 1 sends 1 - 3072/16384 = 0.8125 of its bytes up, at 1/7 of the injection rate
    assert float(a2a_factor(CLOS, 16384, 1)) == pytest.approx(0.8125 * 7)
    # inside one pod nothing leaves the block
    assert float(a2a_factor(CLOS, 2048, 1)) == 1.0
    # rings cross a block boundary twice: not slowed
    assert float(ring_factor(CLOS, 16384, 1)) == 1.0 and neighbour_factor(CLOS) == 1.0


def test_torus_hops_and_links():
    # whole 16x16x16 pod: mean hops on a 16-ring with wrap-around = 16/4 = 4 per dimension, 3 dimensions, all
    # links in use: 12 times the time on a switch of the same injection bandwidth
    assert float(a2a_factor(TORUS, 4096, 1)) == pytest.approx(12.0)
    # one 16-chip ring along x: 4 hops, and only 2 of the 6 links carry it: 4 x 3 = 12
    assert float(a2a_factor(TORUS, 16, 1)) == pytest.approx(12.0)
    # 8 chips on a segment of the x ring (no wrap-around): mean distance (8^2 - 1) / (3 x 8) = 2.625, x 3
    assert float(a2a_factor(TORUS, 8, 1)) == pytest.approx(2.625 * 3)
    # ring collectives: one ring per active dimension; along x only 1 of 3 dimensions -> 3x, whole pod -> 1x
    assert float(ring_factor(TORUS, 16, 1)) == pytest.approx(3.0)
    assert float(ring_factor(TORUS, 4096, 1)) == pytest.approx(1.0)
    assert neighbour_factor(TORUS) == 3.0
    # a group strided across the pod spans more dimensions: 16 members at stride 16 cover a 16x16 plane
    assert float(ring_factor(TORUS, 16, 16)) == pytest.approx(1.5)


def _system(topo):
    from trainsim.catalog.types import System

    base = resolve_system("tpu-v4-pod")
    up = base.levels[0]
    return System("t", "t", base.chip, (NetLevel("scale-up", 4096, up.bw, 0.0, topo),
                                        NetLevel("scale-out", None, base.levels[1].bw, 0.0, SWITCH)))


def test_collective_times_carry_the_factors():
    sw, to = _system(SWITCH), _system(TORUS)
    eff = (1.0, 1.0, 1.0)
    s = 1e9
    n, stride = np.array([4096]), np.array([1])
    assert all_to_all_time(s, n, stride, to, eff)[0] == pytest.approx(12.0 * all_to_all_time(s, n, stride, sw, eff)[0])
    n16 = np.array([16])
    assert reduce_scatter_time(s, n16, stride, to, eff)[0] == pytest.approx(
        3.0 * reduce_scatter_time(s, n16, stride, sw, eff)[0])
    assert ring_step_time(s, n16, stride, to, eff)[0] == pytest.approx(3.0 * ring_step_time(s, n16, stride, sw, eff)[0])


def test_catalog_pods_and_inline_overrides():
    assert resolve_system("tpu-v4-pod").levels[0].topology.dims == (16, 16, 16)
    assert resolve_system("dgx-h100").levels[0].topology == SWITCH
    # a smaller v5p slice keeps the leading whole dimensions: 1,280 of 16x20x28 -> 16x20x4
    small = resolve_system({"base": "tpu-v5p-pod", "scale_up": {"size": 1280}})
    assert small.levels[0].topology.dims == (16, 20, 4)
    clos = resolve_system({"base": "dgx-h100", "scale_out": {"topology": "clos 3:1 above 1024"}})
    assert clos.levels[1].topology.oversubscription == 3.0 and clos.levels[1].topology.block_chips == 1024


@pytest.mark.parametrize("text,msg", [("mesh 8x8", "expected 'switch'"), ("torus 16x16", "product"),
                                      ("clos 0.5:1 above 8", "oversubscription")])
def test_bad_topology_is_one_line(text, msg):
    with pytest.raises(TrainsimError) as e:
        parse_topology(text, "system.scale_up.topology", size=4096)
    assert msg in str(e.value) and "system.scale_up.topology" in str(e.value) and "\n" not in str(e.value)


def test_superpod_topology_is_an_uncertain_input():
    """The Atlas 950 SuperPoD's wiring above its 64-NPU cabinets is unpublished: nominal 1:1 (the stated 16.3 PB/s
    is full injection bandwidth), pessimistic 2:1 (ranges.yaml, with its source). An all-to-all over 256 NPUs with
    stride 1 leaves the cabinet for 1 - 64/256 = 3/4 of its peers: at 2:1 that share takes 2x, factor
    max(1, 0.75 x 2) = 1.5; at 1:1 the factor is 1."""
    from trainsim.catalog.resolve import resolve_system
    from trainsim.perf.topology import a2a_factor
    from trainsim.scenario.ranges import apply
    pod = resolve_system("atlas-950-superpod")
    r = pod.ranges["scale_up_oversubscription"]
    assert (r.low, r.nominal, r.high) == (1.0, 1.0, 2.0)
    assert "scale_up_oversubscription.range" in pod.sources
    worst = apply(pod, "system", "scale_up_oversubscription", r.high)
    assert float(a2a_factor(worst.levels[0].topology, 256, 1)) == pytest.approx(1.5)
    assert float(a2a_factor(pod.levels[0].topology, 256, 1)) == pytest.approx(1.0)


def test_an_oversubscription_range_is_a_ratio_of_at_least_one():
    """ranges.yaml reads scale_up_oversubscription as a plain ratio (2 means 2:1); below 1 or text is an input error
    naming the field."""
    from trainsim.catalog.load import _range_value
    from trainsim.errors import TrainsimError
    assert _range_value(1.5, "ratio", "scale_up_oversubscription.high", "ranges.yaml x") == 1.5
    for bad in (0.5, "2:1", True):
        with pytest.raises(TrainsimError, match="scale_up_oversubscription"):
            _range_value(bad, "ratio", "scale_up_oversubscription.high", "ranges.yaml x")
