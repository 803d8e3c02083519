"""Issue 18 (servemax): MLPerf bounds the 99th percentile of the requests' TPOT; the serving model's step is the mean.

MLPerf Inference v5.1 closed llama2-70b-99 Interactive performance logs (closed/<submitter>/results/<system>/
llama2-70b-99/Interactive/performance/run_1/mlperf_log_summary.txt, "Mean Time to Output Token (ns)" and
"99.00 percentile time to output token (ns)", tpot_latency 40 ms; mirror github ntuhpc/inference_results_v5.1 at
387c3dd) are copied below; the relation inference.yaml states (``tpot_p99``) is checked against them by hand, and
the two MLPerf v5.1 Llama 2 70B interactive points against the mean TPOT their own logs report.
"""
from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from trainsim.catalog.load import get_chip, get_system
from trainsim.errors import TrainsimError
from trainsim.inference.calib import default_calib, mean_tpot_bound_s, tpot_p99_relation
from trainsim.inference.serve import infer
from trainsim.inference.spec import load_serving, parse_serving

ROOT = Path(__file__).resolve().parents[1]
BOUND_NS = 40_000_000          # tpot_latency (ns) of every Interactive log
#: (submitter / system, mean TPOT ns, p99 TPOT ns); "_TRT" systems and NVIDIA's GB200 run TensorRT-LLM, the MI3xx
#: systems AMD's vLLM-based stack
LOGS = [
    ("AMD/8xMI300X_2xEPYC_9575F", 32102490, 39507635),
    ("AMD/8xMI325X_2xEPYC_9575F_2", 35266243, 39838610),
    ("ASUSTeK/ESC_A8A_MI325X_256GBx8", 34966148, 39394372),
    ("Cisco/C885_H200x8_TRT", 34827044, 36794453),
    ("Dell/XE7745_H200_NVL_141GBx8_TRT", 37368701, 39716230),
    ("Dell/XE9680L_B200_SXM_180GBx8_TRT", 32339673, 35872751),
    ("Dell/XE9680_H200_SXM_141GBx8_TRT", 37193987, 38788998),
    ("Dell/XE9680_MI300X_192GBx8", 32317071, 39070543),
    ("GigaComputing/8xMI325X_2xEPYC_9575F", 34853577, 39600667),
    ("GigaComputing/G894-SD1_B200-SXM-180GBx8_TRT", 31532885, 33142144),
    ("Google/B200-SXM-180GBx8_TRT", 35209942, 39312166),
    ("Google/H200-SXM-141GBx8_TRT", 33982746, 35754168),
    ("HPE/HPE_Cray_XD670_H200_SXM_141GBx8_TRT", 35192890, 37350938),
    ("MiTAC/8xMI325X_2xEPYC_9755", 34297148, 39005389),
    ("NVIDIA/B200-SXM-180GBx8_TRT", 34209789, 38148975),
    ("NVIDIA/GB200-NVL72_GB200-186GB_aarch64x4_TRT", 30583382, 33563603),
    ("Nebius/B200-SXM-180GBx8_TRT", 35522859, 39784089),
    ("Nebius/H200-SXM-141GBx8_TRT", 37052760, 39642461),
    ("Quanta_Cloud_Technology/D75E-4U_H200-NVL-141GBx4_TRT", 33339908, 39254835),
    ("Quanta_Cloud_Technology/D75T-7U_8xMI325X", 35051698, 39563416),
    ("Supermicro/SYS-422GS-NBRT-LCC_B200-SXM-180GBx8_TRT", 32281784, 35668694),
    ("Vultr/8xMI325X_2xEPYC_9554", 34610573, 38908402),
]
TRT = [r for r in LOGS if r[0].endswith("_TRT")]
AMD = [r for r in LOGS if "MI3" in r[0]]


def test_log_sets_are_complete():
    assert len(TRT) == 14 and len(AMD) == 8 and len(TRT) + len(AMD) == len(LOGS)


def test_nvidia_relation_is_the_logs():
    p99_over_mean, p99_over_bound, src = tpot_p99_relation(get_system("dgx-b200").chip)
    # the p99 the TensorRT-LLM submissions run at, over the 40 ms bound: the median of the 14 Interactive logs
    assert p99_over_bound == pytest.approx(statistics.median(p / BOUND_NS for _, _, p in TRT), abs=5e-4)
    # p99 / mean: stated as the median of the 42 Server + Interactive logs; the 14 Interactive ones give 1.084
    ratios = [p / m for _, m, p in TRT]
    assert statistics.median(ratios) == pytest.approx(1.084, abs=1e-3)
    assert min(ratios) < p99_over_mean < max(ratios)
    assert abs(p99_over_mean - statistics.median(ratios)) < 0.01
    assert "TensorRT-LLM" in src


def test_amd_relation_is_the_logs():
    p99_over_mean, p99_over_bound, _ = tpot_p99_relation(get_chip("amd-mi300x"))
    assert p99_over_bound == pytest.approx(statistics.median(p / BOUND_NS for _, _, p in AMD), abs=5e-4)
    assert p99_over_mean > max(p / m for _, m, p in TRT)   # AMD's Server logs spread wider (1.20-1.56)


def test_mean_bound_by_hand():
    chip = get_system("dgx-b200").chip
    assert mean_tpot_bound_s(40, "mean", chip) == pytest.approx(0.040)
    assert mean_tpot_bound_s(None, "p99", chip) is None
    # 40 ms x 0.944 / 1.078 = 35.03 ms; NVIDIA's own B200 x8 submission ran at a mean of 34.21 ms (p99 38.15 ms)
    assert mean_tpot_bound_s(40, "p99", chip) == pytest.approx(0.040 * 0.944 / 1.078, rel=1e-9)
    assert 34.209789e-3 < mean_tpot_bound_s(40, "p99", chip) < 38.148975e-3


@pytest.mark.parametrize("name, published_mean_ms", [("mlperf51-llama2-70b-b200x8-interactive.yaml", 34.209789),
                                                      ("mlperf51-llama2-70b-gb200x4-interactive.yaml", 30.583382)])
def test_interactive_points_run_under_the_mean_bound(name, published_mean_ms):
    """The searched batch meets the mean bound (not the 40 ms p99 bound), and the predicted mean TPOT lies within 15%
    of the one the point's own log reports (34.21 / 30.58 ms)."""
    sv = load_serving(ROOT / "validation" / "inference" / name)
    assert sv.latency.tpot_ms == 40 and sv.latency.tpot_stat == "p99"
    d = infer(sv)["decode"]
    assert d["tpot_s"] <= d["mean_tpot_bound_s"] < 0.040
    assert d["tpot_s"] * 1e3 == pytest.approx(published_mean_ms, rel=0.15)


def test_every_mlperf_server_and_interactive_point_bounds_the_p99():
    for p in sorted((ROOT / "validation" / "inference").glob("mlperf*.yaml")):
        sv = load_serving(p)
        if sv.latency.tpot_ms is not None:
            assert sv.latency.tpot_stat == "p99", p.name


def test_tpot_stat_default_and_bad_value():
    doc = {"name": "t", "model": "llama-3.1-8b", "system": "dgx-h100", "chips": 1,
           "serving": {"phase": "decode", "input_len": 1024, "output_len": 256}, "latency": {"tpot_ms": 50}}
    assert parse_serving(doc).latency.tpot_stat == "mean"
    with pytest.raises(TrainsimError, match="tpot_stat"):
        parse_serving({**doc, "latency": {"tpot_ms": 50, "tpot_stat": "p95"}})


def test_host_time_per_step_and_per_sequence_sources():
    """The fixed host time per step is the measured 150 us gap between overlapped CUDA-graph decode steps (vLLM pull
    request 11133); the fitted per-sequence time of an overlapping engine stays below what vLLM V1 measured without
    overlap (5-6 ms at 256 running sequences, issue 10634: >= 19.5 us per sequence) and V0's 20 ms at 200 (issue
    6801: 100 us)."""
    c = default_calib()
    assert c.step_overhead_s == pytest.approx(150e-6)
    assert 0.0 <= c.seq_overhead_s < 5e-3 / 256 < c.sync_host_s_per_seq == pytest.approx(20e-3 / 200)
