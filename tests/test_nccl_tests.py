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

    s = get_system(p["system"])
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
    from trainsim.perf.collectives import all_gather_time, all_reduce_time, reduce_scatter_time

    system = _system(p)
    eff = family_constants(system.chip.family).coll_eff
    fn = {"all_reduce": all_reduce_time, "all_gather": all_gather_time}[p["collective"]]
    if p["collective"] == "all_reduce" and p.get("algo") == "ring":     # NCCL_ALGO=Ring: reduce-scatter + all-gather
        fn = lambda *a: 2.0 * reduce_scatter_time(*a)  # noqa: E731
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
    # 2 x 23/24 x S / min(720e9, 340e9) + 2 x (21 NVLink hops x 2 us + 2 network hops x 5 us) = 96.9 ms (measured
    # 83.65 ms); a hierarchical sum of phases would give
    # 2 (7/8 S / 720e9 + 2/3 (S / 8) / 42.5e9) = 109.2 ms
    p = next(q for q in _doc()["points"] if q["id"] == "nvl8x3-ar-16g-ring")
    s = 2.0**34
    assert engine_s(p) == pytest.approx(2 * 23 / 24 * s / 340e9 + 2 * (21 * 2e-6 + 2 * 5e-6), rel=1e-9)
    hierarchical = 2 * (7 / 8 * s / 720e9 + 2 / 3 * (s / 8) / 42.5e9)
    assert abs(engine_s(p) / measured_s(p) - 1) < abs(hierarchical / measured_s(p) - 1)


def test_bad_point_key_is_refused():
    with pytest.raises(KeyError):
        measured_s({"ranks": 8, "size_bytes": 1, "busbw_GBps": 1.0, "collective": "broadcast"})
