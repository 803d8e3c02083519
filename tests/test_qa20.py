"""qa20: a sceptical user's defect hunt on the training side (estimate, plan, size, check, cost). Each regression
test failed before its fix (the defect named in its docstring); expected values are hand derivations or
published figures written here, never the engine's own output."""
from __future__ import annotations

import pytest

from conftest import run_main, write_spec


def _one_line(code, err, want):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == want and len(lines) == 1 and "Traceback" not in err, (code, err[-400:])
    return lines[0]


# ---------------------------------------------------------------- 1. "4 SuperPoDs" of an 8-GPU server


@pytest.mark.parametrize("system", ["dgx-h100", "gb200-nvl72"])
def test_superpods_of_a_system_that_is_not_one_are_bad_input(tmp_path, capsys, system):
    """`chips: "4 SuperPoDs"` with `system: dgx-h100` was read as 4 x 8 = 32 chips (one NVLink domain each), and
    `check` said 'valid'. An NVIDIA DGX SuperPOD is scalable units of 32 DGX H100 systems = 256 GPUs (reference
    architecture RA-11333-001: '4 SU, 127-node'), or 8 GB200 NVL72 racks = 576 GPUs per SU (GB200 RA): never one
    scale-up domain. Now one line naming chips and the value, exit 2."""
    spec = write_spec(tmp_path, f"model: llama-3.1-8b\nsystem: {system}\nchips: 4 SuperPoDs\n"
                                "training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 512}\n")
    code, out, err = run_main(capsys, "check", spec)
    line = _one_line(code, err, 2)
    assert "chips" in line and "'4 SuperPoDs'" in line and "(line 3)" in line, line


@pytest.mark.parametrize("system, stated, chips", [
    ("atlas-950-superpod", "2 SuperPoDs", 2 * 8192),   # Huawei Connect 2025: 8,192 NPUs per Atlas 950 SuperPoD
    ("cloudmatrix-384", "3 superpods", 3 * 384),       # CloudMatrix384 is the Atlas 900 A3 SuperPoD: 384 NPUs
    ("dgx-h100", "4 systems", 4 * 8),                  # a DGX H100 system: 8 GPUs
])
def test_superpods_of_a_superpod_system_still_count_domains(tmp_path, capsys, system, stated, chips):
    spec = write_spec(tmp_path, f"model: llama-3.1-8b\nsystem: {system}\nchips: {stated}\n"
                                "training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 512}\n")
    code, out, err = run_main(capsys, "check", spec)
    assert code == 0 and f"{chips:,} chips" in out, (code, err)
