"""Full-mesh scale-up (issue 14 item 4, the Ascend 910B's HCCS): an 8-NPU server whose NPUs are wired pairwise by
7 links of 28 GB/s per direction (196 GB/s summed), no switch.

Hand derivation (perf/topology.py). A group of m members uses only its m - 1 peers' links, each B / 7:
all-gather of S bytes (mesh: S / m to each peer at once) takes (S / m) / (B / 7), against the switch's
(m - 1) / m x S / B, so the full mesh is 7 / (m - 1) times the switch: 7 at m = 2, 7/3 at m = 4, 1 at m = 8. Its
algorithm bandwidth S / t is m x 28 GB/s: 56, 112, 224 GB/s at line rate.

Measurement (gameofdimension/limulidae README, torch_npu 2.4.0.post2, CANN 8.0.0.beta1, bench_collective.py
prints the full-buffer volume / time): Ascend 910B all_gather 38, 64, 149 GB/s on 2, 4, 8 NPUs. Against the mesh
model: 38 / 56 = 0.68, 64 / 112 = 0.57, 149 / 224 = 0.67, one efficiency within 1.2x. Against a switch at the same
196 GB/s (m / (m - 1) x 196: 392, 261.3, 224 GB/s): 0.097, 0.245, 0.665, a factor 6.9 apart, which no constant
efficiency gives.
"""
from __future__ import annotations

import pytest

from trainsim.catalog.load import systems
from trainsim.catalog.resolve import resolve_system
from trainsim.catalog.topology import SWITCH, kind_coll_eff, parse_kind_coll_eff, parse_topology
from trainsim.catalog.types import Chip, NetLevel, System
from trainsim.errors import TrainsimError
from trainsim.perf.calibration import load_calibration
from trainsim.perf.collectives import all_gather_time, all_reduce_time, all_to_all_time, p2p_time
from trainsim.perf.topology import a2a_factor, neighbour_factor, ring_factor

MESH = parse_topology("fullmesh 8", "t", size=8)
B = 196e9
#: HCCL's measured fraction of line rate on the 910B's mesh (catalog/data/topologies.yaml, derived by hand in
#: test_hccl_mesh_efficiency_from_the_910b_measurements): a level wired as a full mesh carries it, whatever
#: fraction the caller passes for its other levels
MESH_EFF = 0.65
MEASURED_ALLGATHER_GBPS = {2: 38.0, 4: 64.0, 8: 149.0}   # limulidae README, Ascend 910B


def _system(topo) -> System:
    chip = Chip("npu", "NPU", "test", "test", {"bf16": 376e12}, 64e9, 1.6e12, B, 25e9)
    return System("s", "S", chip, (NetLevel("scale-up", 8, B, 0.0, topo), NetLevel("scale-out", None, 25e9, 0.0)))


def test_parse_and_label():
    assert MESH.kind == "fullmesh" and MESH.dims == (8,) and MESH.text() == "fullmesh 8"
    assert parse_topology("FullMesh 8", "t") == MESH
    # a smaller configuration of the server keeps each NPU's 7 links
    assert MESH.resized(4) == MESH
    with pytest.raises(TrainsimError, match="full mesh"):
        parse_topology("fullmesh 4", "t", size=8)
    with pytest.raises(TrainsimError, match="full mesh"):
        parse_topology("fullmesh 1", "t")


def test_factors_by_group_size():
    for m, f in ((2, 7.0), (4, 7.0 / 3.0), (8, 1.0)):
        assert float(a2a_factor(MESH, m, 1)) == pytest.approx(f)
        assert float(ring_factor(MESH, m, 1)) == pytest.approx(f)
    # one member: no traffic, no factor; more members than the mesh: capped at the mesh
    assert float(ring_factor(MESH, 1, 1)) == 1.0
    assert float(a2a_factor(MESH, 16, 1)) == 1.0
    # one peer, one link
    assert neighbour_factor(MESH) == 7.0


def test_all_gather_bandwidth_follows_the_910b_measurements():
    mesh, switch = _system(MESH), _system(SWITCH)
    s = 1e9
    ratio_mesh, ratio_switch = {}, {}
    for m, hand in ((2, 56.0), (4, 112.0), (8, 224.0)):
        # at line rate: the mesh level runs at MESH_EFF of it
        algbw_mesh = s / float(all_gather_time(s, m, 1, mesh, (1.0,))) / 1e9 / MESH_EFF
        algbw_switch = s / float(all_gather_time(s, m, 1, switch, (1.0,))) / 1e9
        assert algbw_mesh == pytest.approx(hand)
        assert algbw_switch == pytest.approx(m / (m - 1) * 196.0)
        ratio_mesh[m] = MEASURED_ALLGATHER_GBPS[m] / algbw_mesh
        ratio_switch[m] = MEASURED_ALLGATHER_GBPS[m] / algbw_switch
    assert ratio_mesh[2] == pytest.approx(0.679, abs=1e-3) and ratio_mesh[4] == pytest.approx(0.571, abs=1e-3)
    assert max(ratio_mesh.values()) / min(ratio_mesh.values()) < 1.2
    assert max(ratio_switch.values()) / min(ratio_switch.values()) > 6.0


def test_all_to_all_and_pipeline_send_in_the_mesh():
    mesh, switch = _system(MESH), _system(SWITCH)
    s = 8e8
    # EP 4 inside the server: 3 of 7 links -> 7/3 of the switch's time (at line rate: the mesh at MESH_EFF of it)
    assert float(all_to_all_time(s, 4, 1, mesh, (1.0,))) * MESH_EFF == pytest.approx(
        7.0 / 3.0 * float(all_to_all_time(s, 4, 1, switch, (1.0,))))
    # 4 x 200 MB over 3 links of 28 GB/s: 200 MB / 28 GB/s each
    assert float(all_to_all_time(s, 4, 1, mesh, (1.0,))) == pytest.approx(2e8 / (MESH_EFF * 28e9))
    # a pipeline send to a peer in the server: one 28 GB/s link
    assert float(p2p_time(s, 2, 4, mesh, (1.0,))) == pytest.approx(s / (MESH_EFF * 28e9))


def test_catalog_atlas_server_is_a_full_mesh():
    up = systems()["atlas-900-a2-pod"].levels[0]
    assert up.topology == MESH and up.size == 8 and up.bw == pytest.approx(B)
    # a run spec can state it on an inline system; a wrong size is an input error
    sysm = resolve_system({"chip": "ascend-910b2", "scale_up": {"size": 8, "bandwidth": "196 GB/s",
                                                                "topology": "fullmesh 8"},
                           "scale_out": {"bandwidth": "200 Gb/s"}})
    assert sysm.levels[0].topology == MESH
    with pytest.raises(TrainsimError):
        resolve_system({"chip": "ascend-910b2", "scale_up": {"size": 8, "bandwidth": "196 GB/s",
                                                             "topology": "fullmesh 16"},
                        "scale_out": {"bandwidth": "200 Gb/s"}})


MEASURED_ALLREDUCE_GBPS = {2: 18.0, 4: 30.0, 8: 72.0}   # limulidae README, Ascend 910B, the same benchmark


def test_hccl_mesh_efficiency_from_the_910b_measurements():
    """catalog/data/topologies.yaml kinds.fullmesh coll_eff 0.65, by hand: at 8 NPUs the mesh gives an all-gather
    algorithm bandwidth of 8 x 28 = 224 GB/s and an all-reduce (reduce-scatter + all-gather) of 112 GB/s at line
    rate; measured 149 and 72: 0.665 and 0.643, mean 0.654."""
    by_hand = (149.0 / 224.0 + 72.0 / 112.0) / 2.0
    assert by_hand == pytest.approx(0.654, abs=1e-3)
    assert kind_coll_eff() == {"fullmesh": pytest.approx(MESH_EFF)} and MESH.coll_eff == pytest.approx(MESH_EFF)
    calib = load_calibration()
    eff = calib["ascend-910"].coll_eff
    atlas = systems()["atlas-900-a2-pod"]
    # the catalog's mesh level carries it in place of the calibrated 0.80; its RoCE scale-out keeps its 0.85
    assert atlas.levels[0].coll_eff(eff[0]) == pytest.approx(MESH_EFF) and eff[0] == pytest.approx(0.80)
    assert atlas.levels[1].coll_eff(eff[1]) == pytest.approx(0.85)
    s = 1e9
    ag = s / float(all_gather_time(s, 8, 1, atlas, eff)) / 1e9
    ar = s / float(all_reduce_time(s, 8, 1, atlas, eff)) / 1e9
    # the engine adds HCCL's 3 steps' (ceil(log2 8)) 2 us latency to the bytes term; 1 GB keeps that under 1.5%
    assert ag == pytest.approx(0.65 * 224.0, rel=0.015) and ag == pytest.approx(MEASURED_ALLGATHER_GBPS[8], rel=0.03)
    assert ar == pytest.approx(0.65 * 112.0, rel=0.03) and ar == pytest.approx(MEASURED_ALLREDUCE_GBPS[8], rel=0.03)
    # a pipeline send over one 28 GB/s link takes the mesh's fraction too (2 NPUs: 38 / 56 = 0.68 measured)
    assert float(p2p_time(s, 2, 4, atlas, eff)) == pytest.approx(s / (0.65 * 28e9) + 2e-6)


def test_mesh_efficiency_leaves_switched_levels_alone():
    calib = load_calibration()
    eff = calib["ascend-910"].coll_eff
    # the 910C's CloudMatrix (same family, UB switch) and the 910B's RoCE scale-out keep coll_eff
    cm = systems()["cloudmatrix-384"]
    s = 1e9
    # latency: HCCL's logarithmic all-gather, ceil(log2 8) = 3 steps (perf/collectives.py log_latency_s)
    assert float(all_gather_time(s, 8, 1, cm, eff)) == pytest.approx(7 / 8 * s / (0.80 * 392e9) + 3 * cm.levels[0].latency_s)
    atlas = systems()["atlas-900-a2-pod"]
    t_out = float(all_gather_time(s, 2, 8, atlas, eff))   # two servers, one NPU each: the scale-out level only
    assert t_out == pytest.approx(0.5 * s / (0.85 * atlas.levels[1].bw) + atlas.levels[1].latency_s)
    # the fraction is the level's, not the calibration's: any family's constants (a plain tuple per level) price
    # a mesh level at the mesh's fraction and a switched level at their own
    assert type(calib["nvidia-hopper"].coll_eff) is tuple and type(eff) is tuple
    mesh, switch = _system(MESH), _system(SWITCH)
    assert float(all_gather_time(s, 8, 1, mesh, (0.80,))) == pytest.approx(7 / 8 * s / (MESH_EFF * B))
    assert float(all_gather_time(s, 8, 1, switch, (0.80,))) == pytest.approx(7 / 8 * s / (0.80 * B))
    assert SWITCH.coll_eff is None and NetLevel("x", 8, B, 0.0, SWITCH).coll_eff(0.8) == 0.8
    # a mesh resized past its N chips is a switch (catalog/topology.py resized) and loses the mesh's fraction
    assert MESH.resized(16).coll_eff is None and MESH.resized(4).coll_eff == pytest.approx(MESH_EFF)


def test_topology_efficiency_data_errors():
    """topologies.yaml entries: a known kind, a value and a source, a fraction in (0, 1]."""
    ok = {"coll_eff": {"value": 0.5, "source": "s"}}
    assert parse_kind_coll_eff({"kinds": {"torus": ok}}) == {"torus": 0.5}
    assert parse_kind_coll_eff({}) == {}
    with pytest.raises(TrainsimError, match="kind 'ring'"):
        parse_kind_coll_eff({"kinds": {"ring": ok}})
    with pytest.raises(TrainsimError, match="needs a value and a source"):
        parse_kind_coll_eff({"kinds": {"fullmesh": {"coll_eff": {"value": 0.5}}}})
    for bad in (0.0, 1.2):
        with pytest.raises(TrainsimError, match="fraction of line rate"):
            parse_kind_coll_eff({"kinds": {"fullmesh": {"coll_eff": {"value": bad, "source": "s"}}}})


def test_inline_system_takes_the_chips_own_mesh():
    # qa16 leftover: {chip: amd-mi300x, scale_up: {size: 8}} with no base and no topology was read as a non-blocking
    # switch, though AMD's UBB has no switch (hardware.yaml amd-mi300x scale_up_topology, AMD: point-to-point
    # Infinity Fabric, 7 links in use, one per peer). A TP 2 all-gather there uses one of the 7 links: by the
    # module docstring's derivation 7 / (m - 1) = 7 times the switch's time at the same summed bandwidth.
    out = {"bandwidth": "400 Gb/s"}
    mesh = resolve_system({"chip": "amd-mi300x", "scale_up": {"size": 8}, "scale_out": out})
    assert mesh.levels[0].topology == parse_topology("fullmesh 8", "t", size=8)
    assert "amd-mi300x" in mesh.sources["scale_up_topology"].note
    stated = resolve_system({"chip": "amd-mi300x", "scale_up": {"size": 8, "topology": "switch"}, "scale_out": out})
    assert stated.levels[0].topology == SWITCH          # a stated wiring wins
    assert resolve_system({"chip": "amd-mi355x", "scale_up": {"size": 4}, "scale_out": out}).levels[0].topology.dims == (8,)
    # 16 GPUs in one domain is not the 8-GPU board: no known wiring, a switch (Topology.resized)
    assert resolve_system({"chip": "amd-mi300x", "scale_up": {"size": 16}, "scale_out": out}).levels[0].topology == SWITCH
    # chips on switched fabrics keep the switch
    assert resolve_system({"chip": "nvidia-h100-sxm5", "scale_up": {"size": 8}, "scale_out": out}).levels[0].topology == SWITCH
    sw = resolve_system({"chip": "amd-mi300x", "scale_up": {"size": 8, "topology": "switch"}, "scale_out": out})
    eff = (0.80,)
    # the bytes term only (the same one latency step on both cancels in the difference of two sizes)
    t_mesh = float(all_gather_time(2e9, 2, 1, mesh, eff) - all_gather_time(1e9, 2, 1, mesh, eff))
    t_sw = float(all_gather_time(2e9, 2, 1, sw, eff) - all_gather_time(1e9, 2, 1, sw, eff))
    # 7x the wiring factor, at the mesh's own measured fraction (0.65) against the switch's 0.80
    assert t_mesh / t_sw == pytest.approx(7 * 0.80 / MESH_EFF, rel=1e-9)
