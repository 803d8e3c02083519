"""Tied embeddings hold one vocab x hidden matrix on a single pipeline stage, and a copy on the last stage when
pp > 1 (Megatron-Core LanguageModule.setup_embeddings_and_output_layer). Hand-derived parameter counts."""
from __future__ import annotations

import pytest

from trainsim.estimate import estimate
from trainsim.spec import parse_run

L, H, F, V = 4, 1024, 4096, 32000
# per layer: q, k, v, o (MHA, 8 heads of 128 = h) 4 h^2 + SwiGLU 3 h f + two RMSNorm weights 2 h
LAYER = 4 * H * H + 3 * H * F + 2 * H
BODY = L * LAYER + H          # + final norm


def weights_bytes(tied: bool, pp: int) -> float:
    run = parse_run({
        "model": {"name": "tiny-tied", "layers": L, "hidden": H, "heads": 8, "ffn": F, "ffn_act": "swiglu",
                  "vocab": V, "tied_embeddings": tied, "norm": "rmsnorm"},
        "system": "dgx-h100", "chips": 8,
        "training": {"seq_len": 1024, "global_batch_seqs": 64, "precision": "bf16"},
        "plan": {"tp": 1, "pp": pp, "cp": 1, "ep": 1, "etp": 1, "vpp": 1, "zero": 0, "recompute": "none",
                 "micro_batch": 1, "schedule": "1f1b"},
    })
    return estimate(run, advise=False).memory["weights"]


def test_tied_single_stage_holds_one_matrix():
    assert weights_bytes(True, 1) == pytest.approx(2.0 * (BODY + V * H), rel=1e-9)
    assert weights_bytes(False, 1) == pytest.approx(2.0 * (BODY + 2 * V * H), rel=1e-9)


def test_tied_last_stage_keeps_a_copy_of_the_matrix():
    # pp 2 under 1F1B: rank 0 binds (it keeps p = 2 micro-batches of activations against the last rank's 1) and
    # holds 2 layers + the embedding; the last rank holds 2 layers + final norm + its own copy of the matrix as
    # the output layer. Tied or not, each stage holds one matrix.
    half = 2 * LAYER
    assert weights_bytes(True, 2) == pytest.approx(2.0 * (half + V * H), rel=1e-9)
    assert weights_bytes(False, 2) == pytest.approx(2.0 * (half + V * H), rel=1e-9)
