"""The Ascend 910 family's memory-bound rate against a measured element-wise kernel on the 910B.

huawei-csl/pto-dsl pull request 50 (merged as 9133759, 2026-02-28) and 64 (bf95136, 2026-03-05),
examples/aot/elementwise/add_dynamic_multicore/bench_add.py: ``torch.add(x, y, out=z)`` on fp32 vectors, IO =
3 x N x 4 bytes = 471.86 MB (N = 39,321,600: two inputs read, one output written), a 256 MB buffer zeroed between
launches (the 910B's L2 is 192 MB), NPU events over 50 launches minus the zeroing alone: 0.436 ms, 1,081.552 /
1,080.642 / 1,082.534 GB/s in the three runs published. The engine prices every element-wise kernel at
bytes / (HBM bandwidth x mem_eff) (perf/compute.py hbm_time)."""
from __future__ import annotations

import pytest

from trainsim.catalog import get_chip
from trainsim.perf.calibration import calib_for

IO_BYTES = 3 * 39_321_600 * 4          # 471.86 MB
MEASURED_S = 0.436e-3
MEASURED_GBPS = (1081.552, 1080.642, 1082.534)


def test_measured_bandwidth_by_hand():
    """471.86 MB / 0.436 ms = 1,082 GB/s, the figure the benchmark prints (it rounds the time to 3 digits)."""
    assert IO_BYTES == pytest.approx(471.86e6, rel=1e-4)
    assert IO_BYTES / MEASURED_S == pytest.approx(1081.6e9, rel=2e-3)


def test_family_rate_is_the_measured_one():
    """mean 1,081.58 GB/s over the 910B2's 1.6 TB/s = 0.676, below NVIDIA's 0.80 STREAM-like default."""
    chip = get_chip("ascend-910b2")
    assert chip.hbm_bw == pytest.approx(1.6e12)
    c = calib_for("ascend-910")
    measured = sum(MEASURED_GBPS) / len(MEASURED_GBPS) * 1e9 / chip.hbm_bw
    assert measured == pytest.approx(0.676, abs=1e-3)
    assert c.mem_eff == pytest.approx(measured, abs=2e-3)
    assert c.mem_eff < calib_for("nvidia-hopper").mem_eff


def test_engine_prices_the_measured_add():
    """The same 471.86 MB through the engine's memory-bound rate on the 910B2: 0.436 ms within 1%."""
    chip = get_chip("ascend-910b2")
    c = calib_for("ascend-910")
    assert IO_BYTES / (chip.hbm_bw * c.mem_eff) == pytest.approx(MEASURED_S, rel=0.01)
