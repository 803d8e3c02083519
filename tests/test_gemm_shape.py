"""GEMM efficiency by shape (perf/compute.py gemm_shape_eff, gemm_epilogue_k) against published per-shape rates.

Source: DeepGEMM README, "Normal GEMMs for dense models" (deepseek-ai/DeepGEMM, H800 SXM5, FP8 inputs, BF16
output), two published versions of the table: the initial commit a6d97a1 (2025-02-25) and 55ab91f
(2025-03-25, "Update performance"). Only the M = 4096 rows are used: the M = 64 / 128 rows are bound by reading
the weights (their "Memory bandwidth" column is 1.5-2.7 TB/s), which the roofline's max() covers, not the shape
term. H800 SXM5: 132 SMs, 1979 dense FP8 TFLOPS, 3.35 TB/s HBM3 (the catalog's H100 SXM5 figures).

The model's rate for a shape is peak x eff x q(shape); ``eff`` is not known from the source, so the test compares
each shape's rate to the rate of the largest shape (M, N, K) = (4096, 7168, 16384) in the same table: both the
measured and the modelled ratio cancel ``eff`` except inside the epilogue term, where eff is taken as that
largest shape's measured share of peak (1358 / 1979 = 0.686, 1426 / 1979 = 0.721; q there is 0.94-0.95,
so eff is within 6% of these, which moves k_epi by 6%).
"""
import numpy as np
import pytest

from trainsim.perf.calibration import Calib
from trainsim.perf.compute import gemm_epilogue_k, gemm_shape_eff, gemm_time

PEAK_FP8 = 1979e12   # H800 / H100 SXM5 dense FP8 (NVIDIA H100 datasheet)
HBM_BW = 3.35e12     # H800 / H100 SXM5 HBM3
SMS = 132

# (M, N, K): TFLOPS, from the two README versions
DEEPGEMM_A6D97A1 = {(4096, 2112, 7168): 1058, (4096, 24576, 1536): 990, (4096, 32768, 512): 590,
                    (4096, 7168, 16384): 1358, (4096, 4096, 7168): 1304, (4096, 7168, 2048): 1025}
DEEPGEMM_55AB91F = {(4096, 2112, 7168): 1009, (4096, 24576, 1536): 1125, (4096, 32768, 512): 751,
                    (4096, 7168, 16384): 1426, (4096, 4096, 7168): 1265, (4096, 7168, 2048): 1168}
REF = (4096, 7168, 16384)
TOL = 0.15   # per shape: the table's own run-to-run change between the two versions is up to 27% (K = 512)


def _model_ratios(table):
    c = Calib.defaults()
    eff = table[REF] * 1e12 / PEAK_FP8
    k_epi = gemm_epilogue_k(PEAK_FP8, eff, HBM_BW, c.mem_eff, c.gemm_out_bytes)
    q = {s: float(gemm_shape_eff(*s, c.gemm_tile_m, c.gemm_tile_n, c.gemm_k0, SMS, k_epi)) for s in table}
    return {s: q[s] / q[REF] for s in table}


@pytest.mark.parametrize("table", [DEEPGEMM_A6D97A1, DEEPGEMM_55AB91F], ids=["a6d97a1", "55ab91f"])
def test_shape_eff_matches_deepgemm_h800(table):
    model = _model_ratios(table)
    for s, tflops in table.items():
        measured = tflops / table[REF]
        assert model[s] == pytest.approx(measured, rel=TOL), (s, model[s], measured)


def test_short_k_is_slowed_by_the_epilogue():
    """K = 512 against K = 16384 at M = 4096: 590 / 1358 = 0.43 and 751 / 1426 = 0.53 measured. Without the
    epilogue the K loop alone (K / (K + 64)) and the tile / wave terms put it at 0.89 / 0.97 x ... >= 0.8: the
    epilogue term is what brings it down."""
    c = Calib.defaults()
    small, big = (4096, 32768, 512), REF
    no_epi = float(gemm_shape_eff(*small, c.gemm_tile_m, c.gemm_tile_n, c.gemm_k0, SMS) / gemm_shape_eff(*big, c.gemm_tile_m, c.gemm_tile_n, c.gemm_k0, SMS))
    assert no_epi > 0.75   # what the model gave before the epilogue term: off by > 40% from both tables
    r = _model_ratios(DEEPGEMM_55AB91F)[small]
    assert 0.43 * (1 - TOL) < r < 0.53 * (1 + TOL)


def test_epilogue_k_hand_derivation():
    """k_epi = out_bytes x peak x eff / (2 x bw x mem_eff): H800 FP8 at eff 0.72, mem_eff 0.8, BF16 output:
    2 x 1979e12 x 0.72 / (2 x 3.35e12 x 0.8) = 531.7 K-steps."""
    assert gemm_epilogue_k(PEAK_FP8, 0.72, HBM_BW, 0.8, 2.0) == pytest.approx(531.7, rel=1e-3)
    # vectorised over plans
    out = gemm_epilogue_k(np.array([PEAK_FP8, PEAK_FP8 / 2]), 0.72, HBM_BW, 0.8, 2.0)
    assert out[1] == pytest.approx(out[0] / 2)


def test_gemm_time_shape_tuple_errors():
    """The shape tuple is (tile, k0, units, out_bytes): the old three-field form is refused."""
    with pytest.raises(ValueError):
        gemm_time(4096.0, 4096.0, 4096.0, PEAK_FP8, 0.7, HBM_BW, 0.8, 1.0, 0.0, (128.0, 128.0, 64.0, 132.0))


def test_overlapped_epilogue_hides_until_it_is_longer_than_the_k_loop():
    """Double-buffered accumulators (Blackwell): a tile takes k0 + max(K, k_epi) K-steps instead of
    k0 + K + k_epi. Hand numbers, one tile on one unit (no tile or wave loss): K = 4096, k0 = 64, k_epi = 500:
    serial 4096 / 4660 = 0.8790, overlapped 4096 / 4160 = 0.9846; K = 256 < k_epi: overlapped 256 / 564 = 0.4539."""
    one = dict(tile_m=128.0, tile_n=128.0, k0=64.0, units=1.0, k_epi=500.0)
    assert float(gemm_shape_eff(128, 128, 4096, epi_overlap=0.0, **one)) == pytest.approx(4096 / 4660, rel=1e-9)
    assert float(gemm_shape_eff(128, 128, 4096, epi_overlap=1.0, **one)) == pytest.approx(4096 / 4160, rel=1e-9)
    assert float(gemm_shape_eff(128, 128, 256, epi_overlap=1.0, **one)) == pytest.approx(256 / 564, rel=1e-9)


def test_tile_and_wave_quantisation_by_hand():
    """NVIDIA Matrix Multiplication Background guide, wave quantisation: on a 2-SM-pair Blackwell (74 units of
    256 x 128 tiles), M = 4096, N = 2432: 16 x 19 = 304 tiles = 4.11 waves -> 5 waves, 304 / 370 = 0.8216; the
    same on 128 x 128 tiles over 148 SMs: 32 x 19 = 608 tiles, 5 waves of 148 = 740, 0.8216 too. N = 2400 leaves
    the last column of tiles 96 / 128 full: tile term 2400 / 2432."""
    bw = dict(tile_m=256.0, tile_n=128.0, k0=0.0, units=74.0)
    assert float(gemm_shape_eff(4096, 2432, 8192, **bw)) == pytest.approx(304 / 370, rel=1e-9)
    assert float(gemm_shape_eff(4096, 2400, 8192, **bw)) == pytest.approx(304 / 370 * 2400 / 2432, rel=1e-9)


def test_blackwell_and_hopper_shape_data():
    """The per-generation shape terms as constants.yaml states them from CUTLASS: Blackwell 2-SM MMA 256 x 128
    tiles over B200's 148 / 2 SM pairs with the epilogue overlapped (tensor-memory accumulator stages); Hopper
    128 x 128 per SM over 132 SMs, epilogue serial, a tail wave spread stream-K (cuBLAS, measured on the H200:
    tests/test_h200_kernels.py); Blackwell keeps whole waves (not measured)."""
    from trainsim.perf.calibration import calib_for
    b, h = calib_for("nvidia-blackwell"), calib_for("nvidia-hopper")
    assert (b.gemm_tile_m, b.gemm_tile_n, b.compute_units * 2, b.gemm_epilogue_overlap) == (256.0, 128.0, 148.0, 1.0)
    assert (h.gemm_tile_m, h.gemm_tile_n, h.compute_units, h.gemm_epilogue_overlap) == (128.0, 128.0, 132.0, 0.0)
    assert (h.gemm_stream_k, b.gemm_stream_k) == (1.0, 0.0)


def test_memory_bound_gemm_writes_its_output_in_bf16_behind_fp8_inputs():
    """A skinny FP8 GEMM (M = 128 tokens, K = 8,192, N = 32,768) on an H100-like chip is memory-bound: it reads
    128 x 8,192 + 8,192 x 32,768 one-byte operands and writes 128 x 32,768 BF16 outputs, 1,048,576 + 268,435,456 +
    2 x 4,194,304 = 277,872,640 bytes, 103.68 us at 3.35 TB/s x 0.8 (hand), against about 75 us of tensor-core
    time (256 tiles in two waves of 132 SMs)."""
    from trainsim.perf.compute import gemm_time
    shape = (128.0, 128.0, 64.0, 132.0, 2.0, 0.0)
    t = float(gemm_time(128.0, 32768.0, 8192.0, 1979e12, 0.5, 3.35e12, 0.8, 1.0, 0.0, shape))
    assert t == pytest.approx(277_872_640 / (3.35e12 * 0.8), rel=1e-12)
    # without a shape (the inference model) the output takes the operands' bytes
    t0 = float(gemm_time(128.0, 32768.0, 8192.0, 1979e12, 0.5, 3.35e12, 0.8, 1.0, 0.0, None))
    assert t0 == pytest.approx((1_048_576 + 268_435_456 + 4_194_304) / (3.35e12 * 0.8), rel=1e-12)
