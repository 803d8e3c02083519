"""The serving decode step against a real H200 (issue 18 criterion 2: "decode as weight and KV reads per step with
batch").

Measured: validation/kernels/h200-decode-2026-12-04.json (benchmarks/h200_decode.py, one run on a lent H200, PyTorch
2.11 / CUDA 13.0, 2026-12-04): a Llama-3.1-8B-shaped BF16 decode step in plain PyTorch (32 layers of RMSNorm, QKV,
cache write, GQA attention of one query over L cached tokens, O, gate/up, SiLU x up, down; final norm and LM head;
no sampling), captured in one CUDA graph so that no host time is in it, at batch 1-256 and L = 1,024 / 4,096.
Per point also the attention of the 32 layers alone and the step without attention.

The engine's decode step (trainsim/inference/step.py ``step_time``, tp 1, BF16, chip nvidia-h200-sxm of hgx-h200)
is a serving round: kernel time -- weights read once per step (GEMM rooflines at ``gemm_eff`` / ``mem_eff``), the KV
cache read once per sequence (``_attention_decode``: KV bytes / (HBM x ``mem_eff``)), memory-bound kernels, one
4 us floor per kernel -- plus host terms (``step_overhead_s`` 150 us + ``seq_overhead_s`` 4 us x batch). The
measured step is the kernel time alone, so it is compared with the engine's round less its host terms (the
breakdown's ``step_overhead``), shown separately below. ``mem_eff`` 0.45 is the serving fit's NVIDIA value
(inference/data/inference.yaml vendor_eff, scripts/calibrate_inference.py over end-to-end serving runs).

Table (ms; engine = kernel part at the fitted mem_eff 0.45, host = its host terms; "at copy" = the same engine with
mem_eff set to this run's HBM copy share, 4,250 GB/s / 4.8 TB/s = 0.886; the measured step is the SDPA variant):

    B    L      measured  engine  host   meas/engine  engine at copy  meas/at copy
    1    1024    5.05      8.81   0.15     0.573          5.36          0.941
    8    1024    5.48      9.28   0.18     0.590          5.60          0.978
    32   1024    6.27     10.90   0.28     0.575          6.42          0.976
    64   1024    7.41     13.06   0.41     0.567          7.52          0.985
    128  1024    9.74     17.38   0.66     0.560          9.72          1.002
    256  1024   15.52     26.02   1.17     0.596         15.20          1.021
    1    4096    5.19      9.00   0.15     0.577          5.46          0.952
    8    4096    6.16     10.78   0.18     0.572          6.36          0.969
    32   4096    9.04     16.87   0.28     0.536          9.46          0.956
    64   4096   12.93     24.99   0.41     0.517         13.58          0.952

What it says: the engine's accounting (the bytes read, the sum of the weight and KV parts, the floors) reproduces the
kernel-level step within 6% once the memory share is the card's own copy rate; the fitted serving ``mem_eff`` 0.45 is
about half the kernel-level streaming rate (weights 2.8-3.2 TB/s at batch <= 64, KV 4.1-4.5 TB/s from 8.6 GB of
cache), so at the fitted constants the engine's decode kernel time is 1.7-1.9x this step: the fit puts into
``mem_eff`` whatever the end-to-end serving runs lose beyond bare kernel streaming.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainsim.catalog.load import get_system
from trainsim.inference.calib import default_calib
from trainsim.inference.serve import setup_for
from trainsim.inference.step import ServePlans, kv_bytes_per_chip, step_time, weights_read_per_step
from trainsim.model.load import resolve_model

DATA = Path(__file__).resolve().parents[1] / "validation" / "kernels" / "h200-decode-2026-12-04.json"
DOC = json.loads(DATA.read_text())
RUN = DOC["run"]
POINTS = RUN["points"]
SYSTEM = get_system("hgx-h200")
ARCH = resolve_model("llama-3.1-8b", Path.cwd(), field="model")
TP1 = ServePlans(1, 1, 1, 1)
HBM_BW = 4.8e12                                                   # H200 SXM datasheet, hardware.yaml
COPY_SHARE = RUN["hbm_copy"]["gbps_read_plus_write"] * 1e9 / HBM_BW  # this run's 4 GiB copy: 0.886

# hand count from Llama-3.1-8B's config.json (hidden 4,096, 32 layers, 32 / 8 heads of 128, FFN 14,336, vocab
# 128,256, untied head): per layer QKV 4,096 x 6,144 + O 4,096 x 4,096 + gate/up 4,096 x 28,672 + down 14,336 x
# 4,096 = 218,103,808 weights; x 32 = 6,979,321,856; head 525,336,576; total 7,504,658,432 x 2 bytes
WEIGHT_BYTES = 15_009_316_864
NORM_BYTES = (2 * 32 + 1) * 4096 * 2                              # 65 RMSNorm vectors, BF16
KV_BYTES_PER_TOKEN_SEQ = 2 * 32 * 8 * 128 * 2                     # K and V, 32 layers, 8 heads of 128, BF16


def _engine(batch: int, kv_len: int, mem_eff: float | None = None) -> tuple[float, float]:
    """(kernel seconds, host seconds) of the engine's decode round: the fitted calibration, or ``mem_eff`` for
    every memory-bound term instead of the fitted one (no other constant changed)."""
    calib = None if mem_eff is None else default_calib().with_(vendor_eff=(), mem_eff=mem_eff)
    s = setup_for(ARCH, SYSTEM, "bf16", "bf16", calib=calib)
    rnd, parts = step_time(s, TP1, float(batch), float(kv_len), "decode")
    host = float(parts["step_overhead"])
    return float(rnd) - host, host


def test_measurement_header_and_setup():
    """The file is the project's own H200 measurement, at the card's full clock almost throughout, and the engine's
    setup is the one measured: H200 SXM at 4.8 TB/s, Llama 3.1 8B, fitted NVIDIA serving mem_eff 0.45."""
    assert "own measurement" in DOC["about"]["what"]
    assert RUN["env"]["gpu"] == "NVIDIA H200" and RUN["env"]["sms"] == 132
    assert RUN["env"]["torch"].startswith("2.11") and not RUN["errors"]
    assert SYSTEM.chip.id == "nvidia-h200-sxm" and SYSTEM.chip.hbm_bw == pytest.approx(HBM_BW)
    assert setup_for(ARCH, SYSTEM).calib.mem_eff == pytest.approx(0.45)
    assert len(POINTS) == 10
    assert sum(p["step_sdpa"]["state"]["sm_clock_mhz"] == 1980 for p in POINTS) == 9


def test_bytes_per_step_match_the_hand_count():
    """The engine reads 15,009,316,864 weight bytes per decode step whatever the batch (the embedding table not
    read; norm vectors not counted as streamed weights) and holds 131,072 bytes of KV per token and sequence; the
    measured step read the same matrices plus 532,480 bytes of norm vectors, and the same cache."""
    for b in (1, 64, 256):
        assert float(weights_read_per_step(setup_for(ARCH, SYSTEM), TP1, float(b))) == pytest.approx(WEIGHT_BYTES,
                                                                                                      rel=1e-9)
    for p in POINTS:
        assert p["weight_bytes"] == WEIGHT_BYTES + NORM_BYTES
        assert p["kv_read_bytes"] == KV_BYTES_PER_TOKEN_SEQ * p["batch"] * p["kv_len"]
        kv = float(kv_bytes_per_chip(setup_for(ARCH, SYSTEM), TP1, float(p["batch"]), float(p["kv_len"])))
        assert kv == pytest.approx(p["kv_read_bytes"], rel=1e-9)


def test_step_is_the_sum_of_its_weight_and_kv_parts():
    """The engine adds a layer's GEMM, attention and memory-bound kernel times (no overlap on one chip). Measured:
    the step without attention plus the 32 layers' attention alone is the whole step within 2.1% at every point
    (5.06 against 5.05 ms at batch 1 / L 1,024; 12.89 against 12.93 at 64 / 4,096; 15.84 against 15.52 at 256 /
    1,024, where the clock differed between the three graphs: 1,665 / 1,965 / 1,815 MHz). Within 3%."""
    for p in POINTS:
        parts = p["step_no_attn"]["median_s"] + p["attn_sdpa"]["median_s"]
        assert parts == pytest.approx(p["step_sdpa"]["median_s"], rel=0.03), (p["batch"], p["kv_len"])


def test_decode_attention_streams_the_cache_at_the_copy_rate():
    """With 8.6 GB of cache or more, the 32 layers' SDPA decode attention (cuDNN's flash kernel, one query per
    sequence, GQA) reads the cache at 4.14-4.53 TB/s: 0.97-1.07 of this run's 4,250 GB/s copy (0.86-0.94 of the
    4.8 TB/s peak). The engine's decode attention is the KV bytes over HBM x mem_eff, the same share as any other
    memory-bound read: at kernel level that share is the copy's, within 10%."""
    big = [p for p in POINTS if p["kv_read_bytes"] >= 8e9]
    assert len(big) == 5
    for p in big:
        assert p["attn_sdpa"]["kv_gbps"] * 1e9 / (COPY_SHARE * HBM_BW) == pytest.approx(1.0, rel=0.10), p["batch"]


def test_engine_kernel_time_at_the_cards_copy_rate():
    """The engine's decode kernel time (the round less its host terms) with mem_eff at this run's copy share (0.886,
    no other constant changed) against the measured CUDA-graph step: 0.941-1.021 (table in the module docstring).
    Within 7%: the residue is the weight streaming of batch-1 GEMVs over 4,096-wide weights (the step without
    attention reads 15.0 GB at 3.1 TB/s, 0.73 of the copy; tests/test_h200_kernels.py finds cuBLAS's GEMV below
    the copy rate at such sizes), which the engine's one 4 us floor per kernel covers in part."""
    for p in POINTS:
        kern, _ = _engine(p["batch"], p["kv_len"], COPY_SHARE)
        assert p["step_sdpa"]["median_s"] / kern == pytest.approx(1.0, abs=0.07), (p["batch"], p["kv_len"])


@pytest.mark.xfail(strict=True, reason="at the fitted serving constants the engine's decode kernel time is 1.7-1.9x "
                   "the bare CUDA-graph step on an H200 (measured / engine 0.517-0.596 over batch 1-256, L 1K / 4K: "
                   "5.05 against 8.81 ms at batch 1 / L 1,024, 12.93 against 24.99 at 64 / 4,096; host terms 0.15-1.17 "
                   "ms shown apart, not compared). The fitted mem_eff 0.45 is half the kernel-level rate (weights 2.8-"
                   "3.2 TB/s, KV 4.1-4.5 TB/s; at the copy share 0.886 the engine is within 6%): the fit carries in "
                   "mem_eff whatever end-to-end serving runs lose beyond streaming (their stacks' paged-KV kernels, "
                   "sampling, unmodelled per-step work). Not changed here (a fitted constant; the split would be a "
                   "model change with a refit)")
def test_engine_decode_at_fitted_constants():
    for p in POINTS:
        kern, _ = _engine(p["batch"], p["kv_len"])
        assert p["step_sdpa"]["median_s"] / kern == pytest.approx(1.0, rel=0.20), (p["batch"], p["kv_len"])
