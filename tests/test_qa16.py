"""First-use quality pass, round 5 (qa16): each test failed before its fix (see the commit that adds it).
Expected values come from the inputs, the catalog's sources or hand derivations, never from the engine."""
from __future__ import annotations

import re

import pytest

from conftest import run_main, SMALL_RUN, write_spec  # noqa: F401


# ---------------------------------------------------------------- 1. the report's inputs in the catalog's units


def test_report_inputs_print_catalog_values_in_the_catalogs_units():
    """The HTML report's 'Every input with its source' table printed the H100's HBM as '85.9 GB' (80 GiB in
    decimal units: the H100 is sold and listed everywhere else in trainsim as 80 GB = 80 GiB), its FP8 peak as
    '1.98 PFLOP/s' and the DGX H100 scale-out link as bytes per second, while `catalog show` prints 80 GiB,
    1,979 TFLOP/s and 400 Gb/s. Hand: the H100 page's 80 GB HBM3 (read as GiB), 3.35 TB/s = 3,350 GB/s, 1,979
    TFLOP/s FP8 dense; 400 Gb/s ConnectX-7 per GPU."""
    from trainsim.catalog.load import get_system
    from trainsim.report.sources import chip_inputs, system_inputs
    system = get_system("dgx-h100")
    chip = {r["input"].split(".", 1)[1]: r["value"] for r in chip_inputs(system.chip)}
    assert chip["hbm_bytes"] == "80 GiB"
    assert chip["hbm_bw"] == "3,350 GB/s"
    assert chip["fp8_flops"] == "1,979 TFLOP/s" and chip["bf16_flops"] == "989 TFLOP/s"
    sysv = {r["input"].split(".", 1)[1]: r["value"] for r in system_inputs(system)}
    assert sysv["scale_out_bw"] == "400 Gb/s" and sysv["scale_up_bw"] == "450 GB/s"
    assert sysv["scale_up_size"] == "8" and sysv["power_per_chip_w"] == "1,275 W"   # 10.2 kW / 8 GPUs
