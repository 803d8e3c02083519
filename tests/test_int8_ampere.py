"""A100-class chips serve INT8 (W8A8) on their INT8 tensor cores, not at the BF16 rate (qa29 finding).

NVIDIA's A100 datasheet: BF16 Tensor Core 312 TFLOPS, INT8 Tensor Core 624 TOPS, dense, for both SXM parts; the
A100 has no FP8, so before this the INT8 rate fell back to BF16's 312. The A800 SXM4 80GB is the A100's silicon
(hardware.yaml same_silicon_as) and has the same rate."""
from __future__ import annotations

import pytest

from trainsim.catalog.load import get_chip as catalog_chip
from trainsim.inference.calib import int8_peak


@pytest.mark.parametrize("cid", ["nvidia-a100-sxm4-80gb", "nvidia-a100-sxm4-40gb", "nvidia-a800-sxm4-80gb"])
def test_a100_int8_is_twice_bf16(cid):
    c = catalog_chip(cid)
    rate, source = int8_peak(c)
    assert rate == pytest.approx(624e12)
    assert rate == pytest.approx(2 * c.peak_flops["bf16"])      # 624 = 2 x 312, the datasheet's ratio
    assert "datasheet" in source


def test_hopper_int8_stays_at_its_fp8_rate():
    # H100 SXM5 datasheet: FP8 and INT8 tensor core both 1,979 dense (3,958 with sparsity)
    c = catalog_chip("nvidia-h100-sxm5")
    assert int8_peak(c)[0] == pytest.approx(c.peak_flops["fp8"])
