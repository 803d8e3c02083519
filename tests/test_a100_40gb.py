"""The A100 SXM4 40GB as a catalog chip (and the DGX A100 320GB system), and the validation runs that used to write
it inline: same step-time numbers, the catalog's TDP and price added."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trainsim import estimate, load_run
from trainsim.catalog import get_chip, get_system

ROOT = Path(__file__).resolve().parents[1]
RUNS = ("bloomberggpt-50b-512", "glm-130b-768", "gpt-neox-20b-96")


def test_a100_40gb_from_the_datasheet():
    # NVIDIA A100 datasheet: A100 40GB SXM, BF16 Tensor Core 312 TFLOPS dense (624 with sparsity), 40 GB HBM2 at
    # 1,555 GB/s, NVLink 600 GB/s bidirectional, max TDP 400 W; no FP8 Tensor Cores (Ampere)
    c = get_chip("nvidia-a100-sxm4-40gb")
    assert c.peak_flops["bf16"] == 312e12
    assert "fp8" not in c.peak_flops
    assert c.hbm_bytes == 40 * 2**30                 # "40 GB" read as GiB, as the 80GB part's 80 GiB
    assert c.hbm_bw == pytest.approx(1.555e12)
    assert c.scale_up_bw == 300e9                    # 600 GB/s bidirectional / 2
    assert c.scale_out_bw == 200e9 / 8               # one 200 Gb/s HDR port per GPU
    assert c.tdp_w == 400
    assert c.family == "nvidia-ampere"
    a80 = get_chip("nvidia-a100-sxm4-80gb")          # the same silicon and links; only the HBM differs
    assert (c.peak_flops, c.scale_up_bw, c.tdp_w) == (a80.peak_flops, a80.scale_up_bw, a80.tdp_w)
    assert c.hbm_bytes == a80.hbm_bytes / 2 and c.hbm_bw < a80.hbm_bw


def test_dgx_a100_320gb():
    s = get_system("dgx-a100-320gb")
    assert s.chip.id == "nvidia-a100-sxm4-40gb"
    assert s.scale_up_size == 8
    assert s.power_per_chip_w == pytest.approx(6500 / 8)    # DGX A100 6.5 kW max system power / 8 GPUs


@pytest.mark.parametrize("run", RUNS)
def test_validation_runs_name_the_catalog_chip_and_predict_as_inline(run, tmp_path):
    path = ROOT / "validation" / "runs" / f"{run}.yaml"
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert spec["system"]["chip"] == "nvidia-a100-sxm4-40gb"
    # the inline chip these files wrote before the catalog had the id (the datasheet's values; the vendor names the collective library, NCCL, whose step latency the catalog id carries)
    # (and, for BloombergGPT's FP32 output head, the FP32 non-Tensor 19.5 TFLOPS of NVIDIA's Hopper blog Table 3)
    spec["system"]["chip"] = {"name": "nvidia-a100-sxm4-40gb", "vendor": "NVIDIA", "family": "nvidia-ampere", "bf16_tflops": 312,
                              "fp32_tflops": 19.5,
                              "hbm": "40 GB", "hbm_bandwidth": "1.555 TB/s", "scale_up_bandwidth": "300 GB/s",
                              "scale_out_bandwidth": "200 Gb/s"}
    inline = tmp_path / f"{run}.yaml"
    inline.write_text(yaml.safe_dump(spec), encoding="utf-8")
    a, b = estimate(load_run(path)), estimate(load_run(inline))
    assert a.step_time_s == b.step_time_s
    assert a.tokens_per_s_per_chip == b.tokens_per_s_per_chip
    assert a.memory == b.memory and a.plan == b.plan
    # what the catalog id adds: the datasheet TDP (400 W x 1.4 all-in, systems.yaml overhead) and Epoch's price
    assert (b.run.system.power_per_chip_w, b.run.system.price_per_chip_usd) == (None, None)
    assert (a.run.system.power_per_chip_w, a.run.system.price_per_chip_usd) == (pytest.approx(560.0), 15000.0)
