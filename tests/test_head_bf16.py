"""The output head runs in BF16 in an FP8 run (perf/compute.py head_gemm_fwd).

Megatron-Core builds the output layer as ``tensor_parallel.ColumnParallelLinear`` (megatron/core/models/gpt/
gpt_model.py at core_r0.8.0), a plain ``torch.matmul`` outside Transformer Engine, so ``fp8_autocast`` does not
reach it: the head's three GEMMs run at the BF16 rate whatever the decoder layers run at.

Hand derivation (Nemotron-3 8B head, vocab 256,000, hidden 4,096; tp 2; one micro-batch of 4 x 4,096 tokens on an
H100 SXM: 989 TFLOP/s BF16, 3.35 TB/s HBM, 132 SMs; tiles 128 x 128, prologue k0 64, serial epilogue on Hopper):

    M = 16,384 tokens, N = 256,000 / 2 = 128,000, K = 4,096
    tiles = (16,384 / 128) x (128,000 / 128) = 128 x 1,000 = 128,000 (no partial tile)
    waves = ceil(128,000 / 132) = 970 -> wave quantisation 128,000 / (970 x 132) = 128,000 / 128,040
    k_epi = 2 bytes x 989e12 x eff / (2 x 3.35e12 x 0.8)       (the tile's BF16 output write, in K-steps)
    K-loop share = K / (k0 + K + k_epi)
    t = 2 M N K / (989e12 x eff x wave_q x K-loop share) + 4 us launch

with eff the Hopper BF16 GEMM efficiency of the calibration (read from the run's constants, not a copied number).
An FP8 and a BF16 run of the same model must give this same head time; before the fix the FP8 run's head ran at the
FP8 peak (1,979 TFLOP/s) and its FP8 efficiency.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from trainsim.perf.compute import head_gemm_fwd
from trainsim.plan_estimate import context, plans_from_spec
from trainsim.spec import parse_run


def _run(precision: str):
    return parse_run({"model": {"name": "nemotron-3-8b", "layers": 32, "hidden": 4096, "heads": 32, "ffn": 16384,
                                "ffn_act": "relu2", "vocab": 256000, "tied_embeddings": False},
                      "system": "dgx-h100", "chips": 64, "framework": "nemo-2024",
                      "training": {"seq_len": 4096, "global_batch_seqs": 256, "precision": precision},
                      "plan": {"tp": 2, "pp": 1, "cp": 1, "micro_batch": 4, "zero": 1, "recompute": "none"}})


def _head_s(precision: str) -> tuple[float, float]:
    run = _run(precision)
    ctx = context(run)
    p = plans_from_spec(run.plan, run.chips, run.arch)
    tokens = np.array([4.0 * 4096.0])
    return float(np.asarray(head_gemm_fwd(ctx, p, tokens)).ravel()[0]), ctx.calib.gemm_eff


def test_fp8_run_head_at_bf16_rate_by_hand():
    t_fp8, eff = _head_s("fp8")
    m, n, k = 16384.0, 128000.0, 4096.0
    wave_q = 128000.0 / (math.ceil(128000.0 / 132.0) * 132.0)
    assert wave_q == pytest.approx(128000.0 / 128040.0)
    k_epi = 2.0 * 989e12 * eff / (2.0 * 3.35e12 * 0.8)
    expect = 2.0 * m * n * k / (989e12 * eff * wave_q * k / (64.0 + k + k_epi)) + 4.0e-6
    assert t_fp8 == pytest.approx(expect, rel=1e-9)


def test_head_same_in_fp8_and_bf16_runs():
    t_fp8, _ = _head_s("fp8")
    t_bf16, _ = _head_s("bf16")
    assert t_fp8 == pytest.approx(t_bf16, rel=1e-12)


def test_fp8_run_still_runs_its_layers_faster():
    """Only the head stays in BF16: the decoder layers' GEMMs of the FP8 run are faster than the BF16 run's."""
    from trainsim.plan_estimate import estimate_complete
    fp8, bf16 = _run("fp8"), _run("bf16")
    g8 = estimate_complete(fp8, fp8.plan).breakdown["compute_gemm"]
    g16 = estimate_complete(bf16, bf16.plan).breakdown["compute_gemm"]
    assert g8 < 0.8 * g16
