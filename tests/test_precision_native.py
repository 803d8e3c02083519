"""An FP8 run on a chip without FP8 tensor cores is priced at the BF16 rate (catalog Chip.flops); estimate says so
instead of printing an "MFU vs FP8 peak" equal to the BF16 one as if the chip had an FP8 peak.

A100: 312 TFLOP/s BF16 dense, no FP8 (NVIDIA A100 datasheet); H100 SXM: 989 BF16 / 1,979 FP8 dense (H100 datasheet),
so on the H100 the FP8 MFU is the BF16 MFU x 989 / 1,979.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml


def _estimate(tmp_path, system: str, *extra: str):
    doc = {"name": "p", "model": "llama-3.1-8b", "system": system, "chips": 64,
           "training": {"tokens": "1T", "seq_len": 4096, "global_batch_seqs": 512, "precision": "fp8"}}
    f = tmp_path / f"{system}.yaml"
    f.write_text(yaml.safe_dump(doc))
    return subprocess.run([sys.executable, "-m", "trainsim", "estimate", str(f), *extra], capture_output=True,
                          text=True, timeout=300)


def _json(tmp_path, system: str) -> dict:
    r = _estimate(tmp_path, system, "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    return d[0] if isinstance(d, list) else d


def test_fp8_on_a100_says_it_is_priced_at_the_bf16_rate(tmp_path):
    d = _json(tmp_path, "dgx-a100")
    assert d["precision_native"] is False
    assert d["mfu_at_precision"] == pytest.approx(d["mfu"])
    assert "no FP8 dense peak" in d["mfu_at_precision_definition"]
    table = _estimate(tmp_path, "dgx-a100").stdout
    assert "no FP8 tensor cores" in " ".join(table.split())


def test_fp8_on_h100_keeps_its_fp8_peak_row(tmp_path):
    d = _json(tmp_path, "dgx-h100")
    assert d["precision_native"] is True
    assert d["mfu_at_precision"] == pytest.approx(d["mfu"] * 989.0 / 1979.0, rel=0.01)
    assert "no FP8 tensor cores" not in _estimate(tmp_path, "dgx-h100").stdout
