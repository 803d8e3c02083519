"""The engine's kernel model against this project's own H200 measurement (issue 14 item 1: GEMM efficiency by shape,
attention kernel efficiency against block length).

Measured: validation/kernels/h200-2026-12-04.json (benchmarks/h200_kernels.py, two runs on a lent H200, PyTorch
2.11 / CUDA 13.0 / cuDNN 9.19.0; its 'about' block says how). Nothing in the engine is fitted to it. The engine's
side of each point is computed from its own functions and constants: the GEMM roofline with the shape model
(perf/compute.py gemm_time, gemm_shape_eff: 128 x 128 tiles, k0 64, 132 SMs, serial epilogue and a stream-K tail
wave on Hopper, one 4 us kernel floor per GEMM), the
attention rate peak x attn_eff x L / (L + L0) (perf/compute.py attention_fwd: cuDNN's constants for the native
kernel, FlashAttention-2's for 'flash2'), the memory-bound rate hbm_bw x mem_eff.

What the measurement says (run 2 unless named; TFLOP/s; "engine" = the engine's rate for the same shape):

* The card runs at its 700 W power cap under sustained GEMMs: the SM clock falls from 1980 MHz to 1350-1620 MHz
  (nvidia-smi 'SW Power Capping' 12 of 22 s). One shape, 8192 x 8192 x 1024 BF16, ran at 721 at 1980 MHz and at 586
  at 1485 MHz in the same run. Shape comparisons below therefore use points measured at the same clock.
* Large BF16 GEMMs: 696-787 (0.70-0.80 of 989); 8192^3 702 median, 751 at its fastest call. The engine's fitted
  Hopper gemm_eff (0.576, calibration.yaml, an end-to-end training fit that absorbs what the step model does not
  price) gives 555: 0.79 of the kernel's sustained rate. FP8 8192^3: 1,446 (0.73 of 1,979) against 1,042.
* K sweep at M = N = 8192, same clock: FP8 follows the serial-epilogue shape model within 11% (K = 512: 0.605 of
  the K = 8192 rate, model 0.545 with the 4 us kernel floor, 0.566 without). BF16 loses less at short K than the
  model says: K = 512 reaches 0.82 of K = 4096, the model 0.68 (an overlapped epilogue would give 0.90): strict
  xfail below.
* Wave quantisation: M = 1024, K = 8192, N = 2048 / 2176 / 2304 (128 / 136 / 144 tiles of 128 x 128 on 132 SMs):
  617 / 576 / 613, no cliff, where whole waves halve the rate past 132 tiles (0.55 / 0.58 of N = 2048). The
  engine spreads a tail wave under half full over all SMs, as a stream-K schedule does (perf/compute.py
  gemm_waves, Hopper gemm_stream_k 1): 1.03 / 1.04.
* Small M (N = K = 8192): M = 256 / 512 reach 0.86 / 0.93 of 8192^3 (both runs within 2%), the engine 0.93 / 0.97
  with the 4 us kernel floor it adds to each dense GEMM (before this check compared the shapes without it: 1.0).
  Against run 2's M = 2048 they reach only 0.76 / 0.83, but that reference ran 12% above 8192^3 (run 1: 2% below
  it): strict xfail. Adding the weight read to the compute (no overlap) would give 0.55: ruled out.
* Attention, cuDNN (the default SDPA backend here), kernel time: 483 / 589 forward at 2K / 4K against the engine's
  473 / 575 (+2%), backward 376 / 482 against 388 / 472. From 8K the card was power-capped (1680-1860 MHz):
  571 / 605 / 599 at 8K / 16K / 32K against 645 / 687 / 710 (-11 to -16%); run 1 (event-timed, cooler) had 633 /
  663 / 593 (strict xfail). PyTorch's FlashAttention-2 backend: 306-352 from 4K, within 3.5% of the engine's flash2
  curve (0.35 of peak, L0 384); 255 at 2K against 291. At 1K cuDNN gives 360 forward (engine 349), 243 backward
  (286).
* HBM: a 4 GiB copy moves 4,258 GB/s read + write (0.89 of 4.8 TB/s), an add 4,410; the engine's memory-bound rate
  4.8 x mem_eff 0.80 = 3,840 is 10% under the copy. A GEMV over a 470 MB weight streams it at 4.3 TB/s; over a
  134 MB one at only 2.7-3.0 TB/s (45-50 us against the engine's 39): strict xfail.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainsim.catalog.load import get_system
from trainsim.perf.calibration import load_calibration
from trainsim.perf.compute import gemm_shape, gemm_time, gemm_waves

from test_attention_rates import _rates

DATA = Path(__file__).resolve().parents[1] / "validation" / "kernels" / "h200-2026-12-04.json"
DOC = json.loads(DATA.read_text())
RUN1, RUN2 = DOC["runs"]
SYSTEM = get_system("hgx-h200")
HOPPER = load_calibration()["nvidia-hopper"]
PEAK = {"bf16": SYSTEM.chip.flops("bf16"), "fp8": SYSTEM.chip.flops("fp8")}
BYTES = {"bf16": 2.0, "fp8": 1.0}


def _gemm(run: dict, key: str, shape: tuple[int, int, int], first: bool = True) -> dict:
    """The measured point of ``shape`` in ``run[key]`` (the first or last call of a shape measured twice)."""
    pts = [x for x in run[key] if (x["m"], x["n"], x["k"]) == shape]
    assert pts, shape
    return pts[0] if first else pts[-1]


def _engine_gemm_s(shape: tuple[int, int, int], dtype: str, eff: float, latency_s: float = 0.0,
                   with_shape: bool = True) -> float:
    """The engine's time for one GEMM of ``shape`` (perf/compute.py gemm_time with the Hopper shape terms)."""
    m, n, k = shape
    return float(gemm_time(m, n, k, PEAK[dtype], eff, SYSTEM.chip.hbm_bw, HOPPER.mem_eff, BYTES[dtype], latency_s,
                           gemm_shape(HOPPER) if with_shape else None))


def _shape_ratio(shape, ref, dtype: str, key: str, run: dict = RUN2) -> tuple[float, float]:
    """(measured, engine) rate of ``shape`` over that of ``ref``: the kernel efficiency cancels except in the
    epilogue term, where it is taken as the reference's measured share of the peak (as tests/test_gemm_shape.py
    does for DeepGEMM's table). The engine's time is the one it gives a dense GEMM in a layer (perf/compute.py
    layer_gemm_fwd): the shape model and one kernel floor (gemm_latency_s, 4 us) per call."""
    mref = _gemm(run, key, ref)
    eff = mref["tflops"] * 1e12 / PEAK[dtype]
    meas = _gemm(run, key, shape)["tflops"] / mref["tflops"]
    flops = [2.0 * s[0] * s[1] * s[2] for s in (shape, ref)]
    lat = HOPPER.gemm_latency_s
    model = (flops[0] / _engine_gemm_s(shape, dtype, eff, lat)) / (flops[1] / _engine_gemm_s(ref, dtype, eff, lat))
    return meas, model


def _clock(run: dict, key: str, shape) -> int:
    return _gemm(run, key, shape)["state"]["sm_clock_mhz"]


def test_measurement_header_and_setup():
    """The file is the project's own H200 measurement with its stack, and the engine's H200 is the card measured:
    989 TFLOP/s dense BF16, 4.8 TB/s (hardware.yaml nvidia-h200-sxm), 132 SMs (the run read 132)."""
    assert "own measurement" in DOC["about"]["what"]
    assert RUN2["env"]["gpu"] == "NVIDIA H200" and RUN2["env"]["sms"] == 132
    assert RUN2["env"]["torch"].startswith("2.11") and RUN2["env"]["cudnn"] == 91900
    assert PEAK["bf16"] == pytest.approx(989e12) and SYSTEM.chip.hbm_bw == pytest.approx(4.8e12)
    assert HOPPER.compute_units == 132


def test_hbm_copy_is_at_or_above_the_engines_memory_rate():
    """mem_eff 0.80 is a STREAM-like share sourced on A100 / H100 (constants.yaml). The H200's 4 GiB copy moves
    4,258 GB/s (read + write) in both runs, 0.89 of 4.8 TB/s; the engine's 3,840 must not exceed it, and stays
    within 20% of it (measured / engine 1.11)."""
    engine = SYSTEM.chip.hbm_bw * HOPPER.mem_eff
    for run in (RUN1, RUN2):
        copy = run["hbm"]["copy"]["gbps_read_plus_write"] * 1e9
        assert 1.0 <= copy / engine <= 1.2, copy / engine


def test_large_weight_gemv_streams_near_the_engines_rate():
    """Decode GEMV (M = 1-8 tokens) over Llama 3.1 70B's fused FFN weight (28,672 x 8,192 BF16, 470 MB): 108-109 us
    measured (4.3 TB/s of weights). The engine's inference form (roofline without the shape term, one 4 us kernel
    floor, mem_eff 0.80) gives 126-127 us: within 20%, on the slow side as the copy is."""
    for m in (1, 2, 4, 8):
        shape = (m, 28672, 8192)
        meas = _gemm(RUN2, "decode_gemm", shape)["median_s"]
        engine = _engine_gemm_s(shape, "bf16", HOPPER.gemm_eff, HOPPER.gemm_latency_s, with_shape=False)
        assert 0.8 <= meas / engine <= 1.0, (m, meas, engine)


@pytest.mark.xfail(strict=True, reason="cuBLAS's GEMV over an 8,192 x 8,192 BF16 weight (134 MB) streams it at "
                   "only 2.7-3.0 TB/s: 45-50 us for M = 1-8 in both runs, against the engine's 39 us (134 MB / "
                   "3.84 TB/s + 4 us floor; measured / engine 1.16-1.29); the 470 MB weight reaches 4.3 TB/s. The engine's one 4 us floor per "
                   "kernel does not cover a GEMV's ramp and tail at this size (about 15 us here)")
def test_mid_size_gemv_time():
    for m in (1, 2, 4, 8):
        shape = (m, 8192, 8192)
        meas = _gemm(RUN2, "decode_gemm", shape)["median_s"]
        engine = _engine_gemm_s(shape, "bf16", HOPPER.gemm_eff, HOPPER.gemm_latency_s, with_shape=False)
        assert meas / engine == pytest.approx(1.0, rel=0.1), (m, meas, engine)


def test_fitted_gemm_eff_is_below_the_kernel_rate():
    """The fitted Hopper gemm_eff is an end-to-end share: a large GEMM's engine rate (989 x 0.576 x shape term) must
    not exceed what cuBLAS sustains for that GEMM on the power-capped card, and sits 12-28% under it (measured /
    engine 1.14-1.39 over three shapes, two runs; 8192^3: 555 against 702 run 2 / 699 run 1; FP8 1,042 against
    1,446 / 1,391: the FP8 fit 0.549)."""
    for dtype, key, eff in (("bf16", "bf16_gemm", HOPPER.gemm_eff), ("fp8", "fp8_gemm", HOPPER.gemm_eff_fp8)):
        for shape in ((8192, 8192, 8192), (8192, 57344, 8192), (8192, 8192, 28672)):
            engine = 2.0 * shape[0] * shape[1] * shape[2] / _engine_gemm_s(shape, dtype, eff) / 1e12
            for run in (RUN1, RUN2):
                meas = _gemm(run, key, shape)["tflops"]
                assert 1.1 <= meas / engine <= 1.5, (dtype, shape, meas, engine)


K_SWEEP = (512, 1024, 2048, 4096)


def test_fp8_short_k_follows_the_serial_epilogue():
    """FP8 (cuBLAS through torch._scaled_mm, BF16 output), M = N = 8192, K = 512 ... 4096 against K = 8192, all at
    1965 MHz in run 2: measured 0.605 / 0.784 / 0.906 / 0.977, the model 0.545 / 0.719 / 0.857 / 0.947 (its 4 us kernel
    floor included; 0.566 / 0.737 / 0.867 / 0.951 without). Within 12% (the
    DeepGEMM check, tests/test_gemm_shape.py, allows 15%; run 1 repeats K = 512 at 875)."""
    ref = (8192, 8192, 8192)
    for k in K_SWEEP:
        shape = (8192, 8192, k)
        assert _clock(RUN2, "fp8_gemm", shape) == _clock(RUN2, "fp8_gemm", ref)
        meas, model = _shape_ratio(shape, ref, "fp8", "fp8_gemm")
        assert meas == pytest.approx(model, rel=0.12), (k, meas, model)


@pytest.mark.xfail(strict=True, reason="BF16 (cuBLAS through F.linear), M = N = 8192 at 1980 MHz: K = 512 / 1024 / "
                   "2048 reach 0.818 / 0.917 / 0.978 of K = 4096 (643 / 721 / 769 / 786 TFLOP/s; run 1 641 / 712 / "
                   "753 / 769), the serial-epilogue shape model 0.68 / 0.83 / 0.94 with its 4 us kernel floor (0.70 / 0.84 / 0.94 "
                   "without; Hopper gemm_epilogue_overlap 0, "
                   "sourced on DeepGEMM's FP8 table, which this run's FP8 reproduces); an overlapped epilogue would "
                   "give 0.90 at K = 512. cuBLAS's BF16 kernels hide part of the epilogue; not changed here (a "
                   "sourced constant; the FP8 pricing depends on it)")
def test_bf16_short_k_follows_the_serial_epilogue():
    ref = (8192, 8192, 4096)
    for k in K_SWEEP[:3]:
        shape = (8192, 8192, k)
        assert _clock(RUN2, "bf16_gemm", shape) == _clock(RUN2, "bf16_gemm", ref) == 1980
        meas, model = _shape_ratio(shape, ref, "bf16", "bf16_gemm")
        assert meas == pytest.approx(model, rel=0.12), (k, meas, model)


def test_no_wave_cliff_past_one_wave():
    """cuBLAS BF16, M = 1,024, K = 8,192, N = 2,048 / 2,176 / 2,304 (128 / 136 / 144 tiles of 128 x 128 over 132
    SMs), same clock (1530 MHz): 617 / 576 / 613 TFLOP/s (run 1: 600 / 577 / 604), so N = 2,176 / 2,304 at 0.934 /
    0.994 of N = 2,048 (run 1 0.960 / 1.006). Whole waves put them at 0.55 / 0.58 (a second wave of 4 / 12 tiles);
    the stream-K tail of perf/compute.py gemm_waves (Hopper gemm_stream_k 1: a tail under half a wave spread over
    all SMs) at 1.03 / 1.04. Within 12%: the split tiles' reduction, not priced, is the rest."""
    ref = (1024, 2048, 8192)
    for run in (RUN1, RUN2):
        for n in (2176, 2304):
            shape = (1024, n, 8192)
            if run is RUN2:
                assert _clock(RUN2, "bf16_gemm", shape) == _clock(RUN2, "bf16_gemm", ref)
            meas, model = _shape_ratio(shape, ref, "bf16", "bf16_gemm", run)
            assert meas == pytest.approx(model, rel=0.12), (n, meas, model)


def test_whole_waves_where_the_tail_is_over_half_full():
    """The rule keeps whole waves where CUTLASS's heuristic does (tail at least half a wave) and adds nothing where
    the tiles fill whole waves: the measured N = 4,224 (264 tiles, 2 full waves) at 1.23 / 1.08 of N = 2,048 (run 1
    / 2) against the engine's 1.06; and by hand, 200 tiles of 128 x 128 (a tail of 68 >= 66) take 2 waves, 136
    tiles 136 / 132 = 1.0303 with stream-K and 2 without."""
    for run in (RUN1, RUN2):
        meas, model = _shape_ratio((1024, 4224, 8192), (1024, 2048, 8192), "bf16", "bf16_gemm", run)
        assert 1.0 <= model <= meas * 1.05, (meas, model)
    assert float(gemm_waves(200.0, 132.0, 1.0)) == 2.0
    assert float(gemm_waves(136.0, 132.0, 1.0)) == pytest.approx(136.0 / 132.0)
    assert float(gemm_waves(136.0, 132.0, 0.0)) == 2.0
    assert float(gemm_waves(64.0, 132.0, 1.0)) == 1.0


def test_tile_quantisation_at_128_rows():
    """M = 128 (one row of 128-row tiles, 64 tiles on 132 SMs: half a wave) against M = 2048 at N = K = 8192, same
    clock (1530 MHz): 363 / 787 = 0.46 measured, the model 0.47 (0.50 without its 4 us kernel floor). Within 15%."""
    ref, shape = (2048, 8192, 8192), (128, 8192, 8192)
    assert _clock(RUN2, "bf16_gemm", shape) == _clock(RUN2, "bf16_gemm", ref)
    meas, model = _shape_ratio(shape, ref, "bf16", "bf16_gemm")
    assert meas == pytest.approx(model, rel=0.15)


SMALL_M = (256, 512)


def test_small_m_against_the_large_gemm_rate():
    """Small-M BF16 GEMMs, N = K = 8,192 (one and two waves of 128 x 128 tiles), against 8192^3, the large GEMM
    whose rate the engine's gemm_eff stands for (702 / 699 TFLOP/s in runs 2 / 1): M = 256 / 512 at 0.855 / 0.931
    (run 2: 600 / 653) and 0.871 / 0.924 (run 1: 609 / 646). Their times, 56-57 us and 105-106 us, repeat within 2%
    across the runs. The engine with the kernel floor it adds to every dense GEMM (gemm_latency_s 4 us: launch ramp
    and tail) gives 0.931 / 0.965: within 10%. The weight read is not what slows them: the 134 MB weight takes 35
    us at the engine's HBM rate against M = 256's 49 us of compute at the reference rate, and adding the two (no
    overlap) would give 0.55, not 0.86; run 1 fits time = FLOPs / 701 TFLOP/s + 7.6 us over M = 256-16,384
    (least squares in relative error), a fixed per-call time near the engine's 4 us floor."""
    for run in (RUN1, RUN2):
        for m in SMALL_M:
            meas, model = _shape_ratio((m, 8192, 8192), (8192, 8192, 8192), "bf16", "bf16_gemm", run)
            assert meas == pytest.approx(model, rel=0.1), (run["name"], m, meas, model)
    meas, model = _shape_ratio((256, 8192, 8192), (2048, 8192, 8192), "bf16", "bf16_gemm", RUN1)
    assert meas == pytest.approx(model, rel=0.1), (meas, model)   # 0.887 against 0.939


@pytest.mark.xfail(strict=True, reason="run 2's M = 2,048 reference (N = K = 8,192) ran at 787 TFLOP/s, 1.12 of "
                   "8192^3 in the same run (run 1: 687, 0.98 of 699): its time, 349 us against run 1's 400 us, "
                   "moved with the power-capped card's state, not with the shape. Against it M = 256 / 512 reach "
                   "0.762 / 0.830 (600 / 653 TFLOP/s), the engine 0.931 / 0.969 with its 4 us kernel floor; "
                   "against 8192^3, or against run 1's M = 2,048 (0.887 / 0.941), the engine is within 10% "
                   "(test_small_m_against_the_large_gemm_rate)")
def test_small_m_full_wave():
    ref = (2048, 8192, 8192)
    for m in SMALL_M:
        meas, model = _shape_ratio((m, 8192, 8192), ref, "bf16", "bf16_gemm")
        assert meas == pytest.approx(model, rel=0.1), (m, meas, model)


def _attn(backend: str, seq: int, run: dict = RUN2) -> dict:
    pts = [x for x in run["attention"] if x["backend"] == backend and x["seq"] == seq]
    assert len(pts) == 1, (backend, seq)
    return pts[0]


def test_cudnn_attention_at_full_clock():
    """cuDNN SDPA (cudnn_generated_fort_native_sdpa_sm90, PyTorch's default here), Llama 3.1 70B shape, causal,
    kernel time: 2K / 4K forward 483 / 589, backward 376 / 482 TFLOP/s at 1980 MHz; the engine (989 x 0.743 x L / (L
    + 1,135), backward / 1.218, fitted to NVIDIA's cuDNN 9.19.1 H200 sweep) 473 / 575 and 388 / 472: within 5%."""
    for seq in (2048, 4096):
        x = _attn("cudnn", seq)
        assert x["state"]["sm_clock_mhz"] == 1980
        fwd, bwd = _rates("hgx-h200", 64, seq)
        assert x["kernel_fwd_tflops"] == pytest.approx(fwd, rel=0.05), seq
        assert x["kernel_bwd_tflops"] == pytest.approx(bwd, rel=0.05), seq


@pytest.mark.xfail(strict=True, reason="from 8K the card was power-capped (1860 / 1710 / 1680 MHz after the 8K / 16K "
                   "/ 32K points): cuDNN forward 571 / 605 / 599 TFLOP/s (kernel time), backward 510 / 524 / 526, "
                   "against the engine's 645 / 687 / 710 and 530 / 564 / 583 (forward -11 to -16%); run 1, event-"
                   "timed and cooler, had 633 / 663 / 593 forward. NVIDIA's sweep behind attn_eff (688 at 32K) ran "
                   "at a clock a sustained load does not keep on this card")
def test_cudnn_attention_long_sequences():
    for seq in (8192, 16384, 32768):
        x = _attn("cudnn", seq)
        fwd, bwd = _rates("hgx-h200", 64, seq)
        assert x["kernel_fwd_tflops"] == pytest.approx(fwd, rel=0.05), seq


def test_pytorch_flash_backend_follows_the_flash2_curve():
    """PyTorch's FLASH_ATTENTION backend is FlashAttention-2 (pytorch_flash::flash_fwd_kernel): from 4K forward 306 /
    340 / 349 / 352 TFLOP/s (kernel time, 1935-1965 MHz), the engine's flash2 curve (0.35 x 989 x L / (L + 384),
    FlashAttention-3 paper) 316 / 331 / 338 / 342: within 5%; backward 250 / 287 / 305 / 318 against fwd / 1.149 =
    275 / 288 / 294 / 298: within 10%. At 2K the kernel gives 255 against 291 (-12%)."""
    for seq in (4096, 8192, 16384, 32768):
        x = _attn("flash", seq)
        fwd, bwd = _rates("hgx-h200", 64, seq, kernel="flash2")
        assert x["kernel_fwd_tflops"] == pytest.approx(fwd, rel=0.05), seq
        assert x["kernel_bwd_tflops"] == pytest.approx(bwd, rel=0.10), seq
