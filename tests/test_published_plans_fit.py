"""Runs that really happened fit in memory with the plan their authors state (issue: Fidelity I).

The plans are written here from the papers (independent of validation/runs): DeepSeek-V3 report sec. 3.2-3.3
(2,048 H800, tp 1, pp 16 DualPipe, ep 64, ZeRO-1, recompute of RMSNorm and MLA up-projections, SwiGLU inputs
cached in FP8 and its output recomputed, BF16 Adam moments, EMA in host memory), and Llama 3 report sec. 3.3.2
and Table 4 (16,384 H100, tp 8, pp 16 interleaved, cp 1, dp 128, 16 sequences of 8K per dp rank, gradients and
optimizer sharded, no activation checkpointing, one layer fewer on the first and last stages).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from trainsim.estimate import estimate
from trainsim.spec import load_run, parse_run

RUNS = sorted((Path(__file__).resolve().parent.parent / "validation" / "runs").glob("*.yaml"))

# torchtitan's default selective activation checkpointing is op-level (save every other matmul output) and is not
# one of Megatron-Core's module sets; the model keeps 34 h bytes per token per layer there and over-predicts the
# published 82.4 GiB peak. Known gap, listed in the README.
KNOWN_GAPS = {"torchtitan-llama31-h100-8b-8gpu-fsdp-bf16-compile", "torchtitan-llama31-h100-8b-8gpu-fsdp-bf16-eager",
              "torchtitan-llama31-h100-8b-8gpu-fsdp-fp8-compile"}


def test_deepseek_v3_stated_plan_fits():
    run = parse_run({
        "model": "deepseek-v3", "system": "hgx-h800", "chips": 2048,
        "training": {"tokens": "14.8T", "seq_len": 4096, "global_batch_seqs": 15360, "precision": "fp8",
                     "fp8_activations": "all"},
        "plan": {"tp": 1, "pp": 16, "ep": 64, "etp": 1, "cp": 1, "vpp": 1, "schedule": "dualpipe", "zero": 1,
                 "micro_batch": 1, "recompute": "selective",
                 "recompute_modules": ["layernorm", "mla_up_proj", "moe_act"],
                 # 61 layers on 16 stages with the embedding / head ranks lighter (DualPipe puts both on rank 0)
                 "pipeline_split": "balanced"},
        "optimizer": {"moments": "bf16", "offload": ["ema"]},
    })
    est = estimate(run)
    assert est.fits, est.memory_per_chip_bytes / 2**30
    # the published whole run: 2.664M H800 GPU-hours for 14.8T tokens = 1,543 tokens/s per GPU (failure-free
    # throughput must be at least that, and not wildly above it)
    assert 0.8 * 1543 < est.tokens_per_s_per_chip < 1.5 * 1543


def test_llama3_405b_stated_plan_fits():
    run = parse_run({
        "model": "llama-3.1-405b", "system": "dgx-h100", "chips": 16384,
        "training": {"seq_len": 8192, "global_batch_seqs": 2048, "precision": "bf16"},
        "plan": {"tp": 8, "pp": 16, "vpp": 4, "schedule": "interleaved", "cp": 1, "ep": 1, "etp": 1, "zero": 2,
                 "recompute": "none", "micro_batch": 1, "first_stage_layers": 7, "last_stage_layers": 7},
    })
    est = estimate(run)
    assert est.fits, est.memory_per_chip_bytes / 2**30


def test_a_plan_that_does_not_fit_says_how_to_fix_it():
    run = parse_run({
        "model": "deepseek-v3", "system": "hgx-h800", "chips": 2048,
        "training": {"seq_len": 4096, "global_batch_seqs": 15360, "precision": "fp8"},
        "plan": {"tp": 1, "pp": 16, "ep": 64, "etp": 1, "cp": 1, "vpp": 1, "schedule": "dualpipe", "zero": 1,
                 "micro_batch": 1, "recompute": "none"},
    })
    est = estimate(run)
    assert not est.fits
    dnf = est.extra["does_not_fit"]
    assert dnf["over_by_bytes"] == pytest.approx(est.memory_per_chip_bytes - run.system.chip.hbm_bytes)
    assert dnf["fixes"], "at least one single change must make it fit"
    # every fix is valid when tried: it fits
    assert all(f["memory_per_chip_bytes"] <= run.system.chip.hbm_bytes for f in dnf["fixes"])


@pytest.mark.parametrize("path", RUNS, ids=[p.stem for p in RUNS])
def test_every_validation_run_fits_with_its_plan(path):
    if path.stem in KNOWN_GAPS:
        pytest.xfail("torchtitan op-level selective AC not modelled")
    run = load_run(path)
    est = estimate(run, advise=False)   # a partial plan is completed by the search, which raises if nothing fits
    assert est.fits
