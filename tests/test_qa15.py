"""First-use quality pass, round 4: each test failed before its fix (see the commit that adds it)."""
from __future__ import annotations

import re

from conftest import run_main, SMALL_RUN, write_spec  # noqa: F401


# ---------------------------------------------------------------- 1. one quantity format: catalog and numfmt


def test_catalog_show_quantities_in_numfmts_format(capsys):
    """`catalog show nvidia-h100-sxm5` printed '3350 GB/s' and '1979 TFLOP/s' where the sweep axes, `check` and
    the reports print '3,350 GB/s': two formatters. Hand: the H100 SXM5 page's 3.35 TB/s = 3,350 GB/s; 1,979
    TFLOP/s FP8 dense (3,958 with sparsity / 2); both grouped by thousands like every count trainsim prints."""
    from trainsim.numfmt import axis_value, in_unit
    code, out, err = run_main(capsys, "catalog", "show", "nvidia-h100-sxm5")
    assert code == 0, err
    assert re.search(r"│ hbm_bw\s+│ 3,350 GB/s\s+│", out) and re.search(r"│ fp8_flops\s+│ 1,979 TFLOP/s\s+│", out)
    assert "3350 GB/s" not in out and "1979 TFLOP/s" not in out
    # one formatter: the catalog's cell and the sweep axis of the same SI value are the same text
    assert axis_value("system.chip.hbm_bw", 3.35e12) == in_unit(3.35e12, "bytes_per_s") == "3,350 GB/s"
    code, out, err = run_main(capsys, "catalog", "show", "dgx-h100")
    assert code == 0 and re.search(r"│ power_per_chip_w\s+│ 1,275 W\s+│", out)   # 10.2 kW / 8 GPUs
