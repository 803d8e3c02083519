"""Gradient accumulation without Megatron-LM's --gradient-accumulation-fusion: one extra HBM pass per micro-batch.

Without the fusion each micro-batch's BF16 weight gradient is added to the fp32 main-grad buffer by the DDP's
backward hook, ``param.main_grad.add_(param.grad.data)`` (megatron/core/distributed/distributed_data_parallel.py
line 461 at Megatron-LM 847781764f): read 2 B, read 4 B and write 4 B per parameter.

Hand derivation: Llama 3.1 8B has 8,030,261,248 parameters (meta-llama/Llama-3.1-8B model card / safetensors
index: 8.03B, embedding and output head untied). With tp = pp = 1 every chip holds all of them, so the pass moves
10 x 8,030,261,248 = 80.30 GB per micro-batch; at the H100 SXM5's 3.35 TB/s (NVIDIA H100 product page) x 0.80 (the
engine's memory-bound kernel efficiency, perf/data/constants.yaml mem_eff: STREAM-like copies) = 2.68 TB/s that
is 29.96 ms. Global batch 64 over dp 8 at micro-batch 2 gives 4 micro-batches: 119.9 ms per step, all of it in the
memory-bound line, nothing else changed (pp = 1: no bubble to scale).
"""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.frameworks import RUNTIME_DEFAULTS, runtime_settings
from trainsim.parallel.plan import Plans
from trainsim.perf.comm_dp import grad_accumulation_bytes
from trainsim.plan_estimate import context, estimate_complete
from trainsim.spec import TrainingSpec, parse_run
from trainsim.errors import TrainsimError

LLAMA31_8B_PARAMS = 8_030_261_248
H100_HBM_BPS = 3.35e12
MEM_EFF = 0.80


def _run(**training):
    return parse_run({"model": "llama-3.1-8b", "system": "dgx-h100", "chips": 8, "framework": "megatron-core-2024",
                      "training": {"seq_len": 4096, "global_batch_seqs": 64, "precision": "bf16", **training},
                      "plan": {"tp": 1, "pp": 1, "cp": 1, "micro_batch": 2, "zero": 1, "recompute": "none"}})


def test_default_is_fused_and_a_stated_value_wins():
    assert RUNTIME_DEFAULTS["grad_accumulation_fusion"] is True
    for fw in ("megatron-core-2024", "megatron-bridge-2025", "primus-megatron-2025", "mindspeed-2024"):
        assert runtime_settings(TrainingSpec(global_batch_seqs=8), fw)["grad_accumulation_fusion"] is True
        stated = TrainingSpec(global_batch_seqs=8, grad_accumulation_fusion=False)
        assert runtime_settings(stated, fw)["grad_accumulation_fusion"] is False


def test_unfused_accumulation_costs_one_buffer_pass_per_micro_batch():
    fused, unfused = _run(), _run(grad_accumulation_fusion=False)
    a, b = estimate_complete(fused, fused.plan), estimate_complete(unfused, unfused.plan)
    per_mb_s = 10.0 * LLAMA31_8B_PARAMS / (H100_HBM_BPS * MEM_EFF)
    assert per_mb_s == pytest.approx(0.02996, rel=1e-3)
    assert b.step_time_s - a.step_time_s == pytest.approx(4 * per_mb_s, rel=1e-6)
    assert b.breakdown["memory_bound"] - a.breakdown["memory_bound"] == pytest.approx(4 * per_mb_s, rel=1e-6)
    for cause in ("compute_gemm", "attention", "dp_comm", "optimizer"):
        assert b.breakdown[cause] == pytest.approx(a.breakdown[cause], rel=1e-12)


def test_bytes_follow_the_gradient_dtype_and_vanish_under_zero3():
    run = _run(grad_accumulation_fusion=False)
    ctx = context(run)
    p1 = Plans.from_columns(tp=1, pp=1, vpp=1, ep=1, etp=1, cp=1, dp=8, zero=1, recompute=0, mb=2, schedule=0,
                            node_limit=0)
    p3 = Plans.from_columns(tp=1, pp=1, vpp=1, ep=1, etp=1, cp=1, dp=8, zero=3, recompute=0, mb=2, schedule=0,
                            node_limit=0)
    # 1e9 dense + 2e8 expert parameters on the rank, fp32 buffer: (2 + 4 + 4) B each
    assert float(grad_accumulation_bytes(ctx, p1, 1e9, 2e8)[0]) == pytest.approx(1.2e10)
    assert float(grad_accumulation_bytes(ctx, p3, 1e9, 2e8)[0]) == 0.0
    fused_ctx = context(_run())
    assert np.all(grad_accumulation_bytes(fused_ctx, p1, 1e9, 2e8) == 0.0)


def test_bad_value_is_an_input_error():
    with pytest.raises(TrainsimError, match="grad_accumulation_fusion"):
        _run(grad_accumulation_fusion="sometimes")


# --- the MindSpeed (Ascend) rows -------------------------------------------------------------------------------
MINDSPEED_ROWS = ("llama2-7b-8", "llama2-13b-8", "llama2-70b-32", "llama3-8b-8", "qwen2-7b-8", "qwen2-72b-32",
                  "mixtral-8x7b-64")


def test_mindspeed_rows_run_without_the_fusion():
    """The six dense scripts (Ascend/MindSpeed-LLM examples/mcore/*/pretrain_*.sh at c25982e4) pass
    --no-gradient-accumulation-fusion; the Mixtral script does not, but its row (first in 9252dc91, 2024-07-29) ran
    on Ascend/MindSpeed 2b0edd2, whose mindspeed/arguments.py re-registers that flag with default False ('# gradient_
    accumulation_fusion保持常闭'), until npu_matmul_add replaced it in 9064d343 (2024-09-04)."""
    from trainsim.spec import load_run

    for row in MINDSPEED_ROWS:
        run = load_run(f"validation/runs/mindspeed-ascend-{row}.yaml")
        assert runtime_settings(run.training, "mindspeed-2024")["grad_accumulation_fusion"] is False, row


def test_mindspeed_llama2_7b_pays_one_pass_per_micro_batch_on_its_last_stage():
    """Hand count on validation/runs/mindspeed-ascend-llama2-7b-8.yaml (TP 1, PP 2, DP 4, micro-batch 1, global
    batch 256). A Llama 2 7B layer holds 4 h^2 + 3 h f + 2 h = 202,383,360 parameters (h 4096, f 11008, no biases),
    and 32 of them + the untied embedding and head (2 x 32000 x 4096) + the final norm give 6,738,415,616, the
    official count (meta-llama/Llama-2-7b-hf safetensors index). The last of the two stages holds 16 layers + the
    head + the final norm = 3,369,209,856; 10 B each at the 910B2's 1.6 TB/s (hardware.yaml) x 0.676 (mem_eff, the measured
    torch.add rate: tests/test_ascend_mem_eff.py) is 31.15 ms per micro-batch. 256 / (4 x 1) = 64 micro-batches, and the 1F1B bubble, (pp - 1) micro-batch slots,
    stretches by one more: 65 x 31.15 ms = 2.025 s a step."""
    from trainsim.io import load_spec_file

    layer = 4 * 4096 ** 2 + 3 * 4096 * 11008 + 2 * 4096
    assert 32 * layer + 2 * 32000 * 4096 + 4096 == 6_738_415_616
    last_stage = 16 * layer + 32000 * 4096 + 4096
    per_mb_s = 10.0 * last_stage / (1.6e12 * 0.676)
    assert per_mb_s == pytest.approx(0.03115, rel=1e-3)
    steps = {}
    for fused in (True, False):
        spec = load_spec_file("validation/runs/mindspeed-ascend-llama2-7b-8.yaml")
        spec["training"] = {**spec["training"], "grad_accumulation_fusion": fused}
        run = parse_run(spec)
        steps[fused] = estimate_complete(run, run.plan).step_time_s
    assert steps[False] - steps[True] == pytest.approx(65 * per_mb_s, rel=1e-6)
