"""The engine's collectives (trainsim/perf/collectives.py) against published nccl-tests measurements
(validation/collectives/nccl_tests.yaml, each point with its source).

A measured time is the out-of-place time nccl-tests prints, or, where the source gives the bus bandwidth, the time it
implies (nccl-tests doc/PERFORMANCE.md: all-reduce busbw = S / t x 2 (n - 1) / n, all-gather S / t x (n - 1) / n).
The engine prices the same collective on the catalog system (cut to the measured NVLink partition or NIC rate where
the point says so) at the calibration's sourced collective efficiencies (perf/data/constants.yaml coll_eff); nothing
is fitted to these points. Points the engine does not model (NVLink SHARP, NCCL's Simple-protocol latencies) are
strict expected failures with their reason.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "validation" / "collectives" / "nccl_tests.yaml"
TOL = 0.20


def _doc():
    return yaml.safe_load(DATA.read_text())


def _points():
    out = []
    for p in _doc()["points"]:
        marks = [pytest.mark.xfail(strict=True, reason=p["xfail"])] if p.get("xfail") else []
        out.append(pytest.param(p, id=p["id"], marks=marks))
    return out


def _system(p):
    from trainsim.catalog.load import get_system
    from trainsim.catalog.resolve import resolve_system

    # a catalog id, or an inline system as a run spec gives it (the AMD nodes, which the catalog does not hold)
    s = resolve_system(p["system"]) if isinstance(p["system"], dict) else get_system(p["system"])
    levels = list(s.levels)
    if "scale_up_size" in p:
        levels[0] = levels[0].resized(int(p["scale_up_size"]))
    if "scale_out_gbps" in p:
        levels[1] = replace(levels[1], bw=float(p["scale_out_gbps"]) * 1e9 / 8)
    return s.with_(levels=tuple(levels))


def measured_s(p) -> float:
    """The measured time of a point: printed, or implied by its bus bandwidth (nccl-tests PERFORMANCE.md)."""
    if "time_us" in p:
        return float(p["time_us"]) * 1e-6
    n, s = int(p["ranks"]), float(p["size_bytes"])
    factor = {"all_reduce": 2.0 * (n - 1) / n, "all_gather": (n - 1) / n}[p["collective"]]
    return s * factor / (float(p["busbw_GBps"]) * 1e9)


def engine_s(p) -> float:
    from trainsim.perf.calibration import family_constants
    from trainsim.perf import collectives as co

    system = _system(p)
    eff = family_constants(system.chip.family).coll_eff
    fn = {"all_reduce": co.all_reduce_time, "all_gather": co.all_gather_time}[p["collective"]]
    if p["collective"] == "all_reduce" and p.get("algo") == "ring":
        # NCCL_ALGO=Ring: NCCL's ring all-reduce alone (a reduce-scatter and an all-gather pass in one call), at
        # the least of its protocols as the tuner picks them
        def fn(size, n, stride, sysm, e):
            nn = n.astype(np.float64)
            b = co._ring_bytes_time(size, n, stride, sysm, e)
            return co._nccl_ring_time(b, 2.0 * (nn - 1.0) / nn * size, 2.0, n, stride, sysm)
    return float(np.ravel(fn(float(p["size_bytes"]), np.array([int(p["ranks"])]), np.array([1]), system, eff))[0])


def test_data_file_is_sourced():
    doc = _doc()
    ids = [p["id"] for p in doc["points"]]
    assert len(ids) == len(set(ids))
    for p in doc["points"]:
        assert p["source"] in doc["sources"], p["id"]
        assert ("time_us" in p) != ("busbw_GBps" in p), p["id"]


@pytest.mark.parametrize("p", _points())
def test_engine_within_20_percent_of_nccl_tests(p):
    pred, meas = engine_s(p), measured_s(p)
    assert abs(pred / meas - 1.0) <= TOL, f"{p['id']}: engine {pred * 1e6:.1f} us vs measured {meas * 1e6:.1f} us"


def test_busbw_time_by_hand():
    # nccl-1455: 8 H100, ring, 2 GiB at busbw 367.5 GB/s: t = 2 GiB x 2 x 7/8 / 367.5e9 = 10.23 ms
    p = {"ranks": 8, "size_bytes": 2**31, "busbw_GBps": 367.5, "collective": "all_reduce"}
    assert measured_s(p) == pytest.approx(2**31 * 1.75 / 367.5e9)
    assert measured_s(p) == pytest.approx(10.23e-3, rel=1e-3)


def test_partitions_over_infiniband_go_at_the_slowest_link():
    # nccl-1801's rings across NVLink partitions reach busbw 0.98 x (partition's NICs) x 50 GB/s: the pipelined
    # ring's bytes go at the slowest link, not at the sum of an NVLink phase and a network phase. By hand for 3 x
    # NVL8 (24 ranks, 16 GiB, NVLink 900 GB/s x 0.80, 8 NICs x 50 GB/s x 0.85 per partition):
    # 2 x 23/24 x S / min(720e9, 340e9) under NCCL's Simple protocol (full rate), 8.4 us per call + 2 x (21 NVLink
    # steps x 3.4 us + 2 network steps x 14 us) = 96.9 ms (measured 83.65 ms); a hierarchical sum of phases would
    # give 2 (7/8 S / 720e9 + 2/3 (S / 8) / 42.5e9) = 109.2 ms
    p = next(q for q in _doc()["points"] if q["id"] == "nvl8x3-ar-16g-ring")
    s = 2.0**34
    assert engine_s(p) == pytest.approx(2 * 23 / 24 * s / 340e9 + 8.4e-6 + 2 * (21 * 3.4e-6 + 2 * 14e-6), rel=1e-9)
    hierarchical = 2 * (7 / 8 * s / 720e9 + 2 / 3 * (s / 8) / 42.5e9)
    assert abs(engine_s(p) / measured_s(p) - 1) < abs(hierarchical / measured_s(p) - 1)


def test_bad_point_key_is_refused():
    with pytest.raises(KeyError):
        measured_s({"ranks": 8, "size_bytes": 1, "busbw_GBps": 1.0, "collective": "broadcast"})


def test_small_all_reduce_by_hand():
    # Latency-bound all-reduces on DGX H100 (NCCL's tree under LL, tuning.cc at 5067397c): 6.8 us per call plus
    # 2 x (7 NVLink steps x 0.6 us + log2(nodes) network steps x 5 us); 16 B adds nothing measurable.
    # 2 nodes: 6.8 + 2 x (4.2 + 5) = 25.2 us (measured 24.96, nccl-tests-309); 4 nodes: 6.8 + 2 x (4.2 + 10) = 35.2
    # (measured 34.82); one node, the ring: 6.6 + 14 x 0.6 = 15.0 us (measured 13.00, exemplar-perf)
    pts = {q["id"]: q for q in _doc()["points"]}
    assert engine_s(pts["h100x16-ar-16b"]) == pytest.approx(25.2e-6, rel=1e-3)
    assert engine_s(pts["h100x32-ar-16b"]) == pytest.approx(35.2e-6, rel=1e-3)
    assert engine_s(pts["h100x8-ar-16b"]) == pytest.approx(15.0e-6, rel=1e-3)
    # the measured step from 2 to 4 nodes (one more tree level, up and down) is the network step twice
    assert (measured_s(pts["h100x32-ar-16b"]) - measured_s(pts["h100x16-ar-16b"])) / 2 == pytest.approx(5e-6, rel=0.03)


def test_mid_size_all_reduce_by_hand():
    # 64 KiB on 4 x 8 H100: tree LL, its bytes at LL's bus-bandwidth ceiling across more than 2 nodes, 20.4 GB/s, the
    # algorithm bandwidth half that (tuning.cc llMaxBws, ratio .5): 35.2 us + 2 x 65,536 / 20.4e9 = 41.6 us
    # (measured 50.83). 1 MiB: LL's bytes would take 103 us, so LL128's tree: 14 us + 2 x (7 x 1.25 + 2 x 8.5) +
    # 2 x 31/32 x S / min(0.8 x 450e9, 8 x 0.85 x 50e9) x 32/31 / 0.92 / (120/128) = 65.5 + 7.2 = 72.7 us (measured 82.17)
    pts = {q["id"]: q for q in _doc()["points"]}
    assert engine_s(pts["h100x32-ar-64k"]) == pytest.approx(35.2e-6 + 2 * 65536 / 20.4e9, rel=1e-3)
    s = 2.0**20
    ll128 = 65.5e-6 + 2 * 31 / 32 * s / 340e9 * 32 / 31 / 0.92 / (120 / 128)
    assert engine_s(pts["h100x32-ar-1m"]) == pytest.approx(ll128, rel=1e-3)


def test_group_of_one_costs_nothing():
    from trainsim.catalog.load import get_system
    from trainsim.perf.collectives import all_gather_time, all_reduce_time

    s = get_system("dgx-h100")
    for fn in (all_reduce_time, all_gather_time):
        assert float(np.ravel(fn(0.0, np.array([1]), np.array([1]), s, (0.8, 0.85)))[0]) == 0.0


def test_amd_small_all_reduce_by_hand():
    # RCCL keeps NCCL's ring / tree x protocol model (perf/collectives.py collective_library); an AMD level that
    # states no latency takes RCCL's tree LL step (ROCm/rccl tuning.cc tuning_model_5: xGMI 0.9 us, network 10.5 us;
    # catalog/resolve.py LIBRARY_LATENCY_S). 8 x MI300X, 16 B: the ring under LL, 6.6 us per call + 14 x 0.9 =
    # 19.2 us (measured 16.32, hisohara-ai-scripts); 2 x 8 MI355X: the tree, 6.8 + 2 x (7 x 0.9 + 10.5) = 40.4 us
    # (measured 40.09). The assumed 2 us / 5 us of before gave 34.6 and 44.8 us.
    pts = {q["id"]: q for q in _doc()["points"]}
    assert engine_s(pts["mi300x8-ar-16b"]) == pytest.approx(19.2e-6, rel=1e-3)
    assert engine_s(pts["mi355x16-ar-16b"]) == pytest.approx(40.4e-6, rel=1e-3)
