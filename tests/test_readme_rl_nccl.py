"""The README's RL item (c) quotes the engine's NCCL all-reduce against nccl-tests on 32 H100 (+1% / -18% / -12% at
16 B / 64 KiB / 1 MiB). The figures come from scripts/rl_tp32_decode_whatif.py (nccl_check); this test re-derives
them from the measured points of validation/collectives/nccl_tests.yaml so that the quoted text fails when the
engine or the data drift."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest import load_script

ROOT = Path(__file__).resolve().parent.parent


def test_readme_quotes_the_tp32_nccl_check():
    mod = load_script("rl_tp32_decode_whatif")
    doc = mod.load_data((ROOT / "validation" / "collectives" / "nccl_tests.yaml").read_text(encoding="utf-8"))
    h100 = mod.get_system("dgx-h100")
    rel = {}
    for p in doc["points"]:
        if p.get("system") == "dgx-h100" and p.get("ranks") == 32 and "time_us" in p and p["algo"] == "default":
            t_us = float(mod.all_reduce_time(float(p["size_bytes"]), np.int64(32), np.int64(1), h100,
                                             mod.COLL_EFF)) * 1e6
            rel[int(p["size_bytes"])] = t_us / float(p["time_us"]) - 1.0
    sizes = (16, 64 * 1024, 1024 * 1024)
    assert all(s in rel for s in sizes), sorted(rel)
    quoted = " / ".join(f"{rel[s]:+.0%}".replace("+-", "-") for s in sizes)
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert f"at {quoted} of nccl-tests' 16 B / 64 KiB / 1 MiB all-reduces on 32 H100" in readme, quoted
