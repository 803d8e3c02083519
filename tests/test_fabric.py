"""A network level's ``fabric``: first-generation AWS EFA's measured collective rate (catalog/topology.py
fabric_coll_eff, catalog/data/topologies.yaml ``fabrics``)."""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.catalog.resolve import resolve_system
from trainsim.catalog.topology import fabric_coll_eff
from trainsim.errors import TrainsimError
from trainsim.perf.collectives import all_gather_time

# nccl-tests all_reduce_perf, 1 GiB float, ring busbw on 3 and 4 p4d.24xlarge (NVIDIA/nccl issue #527, 2022-07-25)
# over p4d's 4 x 100 Gb/s EFA = 50 GB/s per node; p3dn.24xlarge 6-8 GB/s of 12.5 GB/s at 8-32 nodes (NVIDIA/nccl #235)
P4D_BUSBW_GBPS = (31.8, 29.6)
P4D_LINE_GBPS = 400 / 8
P3DN_RANGE = (6.0 / 12.5, 8.0 / 12.5)

P4D = {"chip": "nvidia-a100-sxm4-40gb", "scale_up": {"size": 8, "bandwidth": "300 GB/s"},
       "scale_out": {"bandwidth": "50 Gb/s", "fabric": "efa-v1"}}


def test_efa_rate_lies_within_the_published_measurements():
    eff = fabric_coll_eff()["efa-v1"]
    p4d = [b / P4D_LINE_GBPS for b in P4D_BUSBW_GBPS]   # 0.636, 0.592
    assert min(p4d) - 0.01 <= eff <= max(p4d)
    assert P3DN_RANGE[0] <= eff <= P3DN_RANGE[1]


def test_efa_level_slows_only_the_scale_out_bytes():
    efa = resolve_system(P4D)
    plain = resolve_system({**P4D, "scale_out": {"bandwidth": "50 Gb/s"}})
    assert efa.levels[1].fabric == "efa-v1" and efa.levels[0].fabric == ""
    assert efa.levels[1].coll_eff(0.85) == pytest.approx(0.6) and plain.levels[1].coll_eff(0.85) == 0.85
    eff = (0.80, 0.85, 0.85)
    size = 1e10   # 10 GB: latency negligible next to the bytes term
    # one member per node (stride 8): the ring crosses only the scale-out level, so the bytes term scales 0.85 / 0.6
    n, stride = np.array([16]), np.array([8])
    t_efa = float(all_gather_time(size, n, stride, efa, eff)[0])
    t_plain = float(all_gather_time(size, n, stride, plain, eff)[0])
    assert t_efa / t_plain == pytest.approx(0.85 / 0.6, rel=1e-3)
    # inside one node (8 members, stride 1) nothing changes
    n8, s1 = np.array([8]), np.array([1])
    assert float(all_gather_time(size, n8, s1, efa, eff)[0]) == pytest.approx(
        float(all_gather_time(size, n8, s1, plain, eff)[0]))


def test_catalog_systems_keep_the_calibrated_rate_and_unknown_fabric_is_one_line():
    dgx = resolve_system({"base": "dgx-h100", "scale_up": {"size": 4}})
    assert [lv.fabric for lv in dgx.levels] == ["", ""] and dgx.levels[1].coll_eff(0.85) == 0.85
    with pytest.raises(TrainsimError) as e:
        resolve_system({**P4D, "scale_out": {"bandwidth": "50 Gb/s", "fabric": "slingshot"}})
    assert "efa-v1" in str(e.value) and "\n" not in str(e.value)
