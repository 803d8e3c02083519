"""Memory per chip against published memory figures, each written here with its source."""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.estimate import estimate
from trainsim.parallel.plan import Plans
from trainsim.perf.context import OptimizerStates
from trainsim.perf.memory import _state_bytes, layer_activation_bytes
from trainsim.spec import load_run

from conftest import ctx_for, make_system


def _plan(**kw):
    base = dict(tp=1, pp=1, vpp=1, ep=1, etp=1, cp=1, dp=1, zero=0, recompute=0, mb=1, schedule=0, node_limit=0)
    base.update(kw)
    return Plans.from_columns(**base)


@pytest.mark.parametrize("zero,gb", [(0, 120.0), (1, 31.4), (2, 16.6), (3, 1.9)])
def test_zero_paper_figure_1(gpt3, a100_system, zero, gb):
    # ZeRO (Rajbhandari et al. 2020) Figure 1: a 7.5B-parameter model, 64-way data parallel, mixed-precision Adam
    # (K = 12): 120 GB baseline, 31.4 GB (P_os), 16.6 GB (P_os+g), 1.9 GB (P_os+g+p) of model states per GPU.
    # fp16 params and grads (2 + 2 bytes), fp32 master + moments (12 bytes).
    from dataclasses import replace
    ctx = replace(ctx_for(gpt3, a100_system, chips=64), optimizer=OptimizerStates(grad_bytes=2.0))
    p = _plan(dp=64, zero=zero)
    w, g, o = _state_bytes(ctx, p, np.array([7.5e9]), np.array([0.0]))
    assert (w + g + o)[0] / 1e9 == pytest.approx(gb, rel=0.02)


def test_megatron_theoretical_activation_formula(gpt3, a100_system):
    # Megatron-LM megatron/training/theoretical_memory_usage.py compute_activation_memory (Korthikanti et al. 2022
    # Table 2, selective recompute): s b h (18 + 4 ffn / h) / t bytes per layer = 34 s b h / t for GPT-3. That
    # formula keeps dropout masks (2 s b h); trainsim's no-dropout count must be within 10% of it.
    s, b, h, t = 2048, 1, 12288, 8
    ctx = ctx_for(gpt3, a100_system)
    kept, _ = layer_activation_bytes(gpt3.layers[0], ctx, _plan(tp=t, recompute=1), np.array([float(s * b)]))
    megatron = s * b * h * (18 + 4 * 4) / t
    assert kept[0] == pytest.approx(megatron, rel=0.10)


def test_torchtitan_8b_fsdp_peak_memory():
    # torchtitan benchmarks/llama3_h100_202412_torchtitan.md Table 1: Llama 3.1 8B, 8 H100 (96 GB), FSDP 8,
    # local batch 2 x 8192, op-level selective AC, torch.compile: peak memory 77.0 GiB (max reserved, which
    # includes the caching allocator's slack). Predicted within 15%.
    from pathlib import Path
    run = load_run(Path(__file__).resolve().parent.parent / "validation/runs/torchtitan-llama31-h100-8b-8gpu-fsdp-bf16-compile.yaml")
    est = estimate(run, advise=False)
    assert est.fits
    assert est.memory_per_chip_bytes / 2**30 == pytest.approx(77.0, rel=0.15)
