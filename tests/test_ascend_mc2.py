"""How much of the tensor-parallel traffic Ascend's MC2 hides (issue 14 item 4: the MindSpeed rows at TP 8 were
predicted fast and those at TP 1 slow).

MC2 (MindSpeed-LLM --use-mc2, training.tp_comm_overlap on the MindSpeed rows) fuses the sequence-parallel
all-gather / reduce-scatter with the matmul in pipelined sub-tasks, the decomposition Transformer Engine's
userbuffers run on NVIDIA (0.75 hidden). No MC2 on/off figure is published; two published Ascend figures set it:

* MindSpeed's CoC fused kernel (the same decomposition, TP 8, 910B) measured on and off: +7.85% end to end for
  LLaMA2 70B (Ascend/MindSpeed docs/features/communication-over-computation.md at e6ea2117). The plan is not
  stated; the MindSpeed-LLM README's LLaMA2 70B plan (TP 8, PP 4, VPP 4, micro-batch 1, 4K) stands in.
* MindSpeed-LLM docs/features/fused_mlp.md (3faff091, Dec 2024), baseline column: Llama2-7B on one 8-NPU server at
  TP 8, PP 1 with MC2, 4K sequences: 152.43 TFLOP/s per NPU by Megatron-LM's formula (core_r0.6.0
  megatron/training/training.py num_floating_point_operations). Per token:
  12 x L x h^2 x (1 + ffn/h x 3/2 + groups/heads + s/h + V / (2 L h))
  = 12 x 32 x 4096^2 x (1 + 11008/4096 x 1.5 + 1 + 1 + 32000 / (2 x 32 x 4096)) = 46.08 GFLOP,
  so 152.43e12 / 46.08e9 = 3,308 tokens/s per NPU, against 4,672 for the same model at TP 1, PP 2, DP 4 in the
  README table of Sep 2024 (validation/runs/mindspeed-ascend-llama2-7b-8.yaml): 0.708.
"""
from __future__ import annotations

import pytest

from trainsim.api import estimate, parse_run
from trainsim.io import load_spec_file

LLAMA2_70B = "validation/runs/mindspeed-ascend-llama2-70b-32.yaml"
LLAMA2_7B = "validation/runs/mindspeed-ascend-llama2-7b-8.yaml"


def _tok_s(path: str, training: dict | None = None, plan: dict | None = None) -> float:
    spec = load_spec_file(path)
    spec["training"] = {**spec["training"], **(training or {})}
    if plan is not None:
        spec["plan"] = plan
    return estimate(parse_run(spec)).tokens_per_s_per_chip


def test_megatron_formula_by_hand():
    per_token = 12 * 32 * 4096 ** 2 * (1 + 11008 / 4096 * 1.5 + 1 + 1 + 32000 / (2 * 32 * 4096))
    assert per_token == pytest.approx(46.08e9, rel=1e-3)
    assert 152.43e12 / per_token == pytest.approx(3308, abs=1)
    assert 152.43e12 / per_token / 4672 == pytest.approx(0.708, abs=1e-3)


def test_fused_tp_overlap_gain_on_llama2_70b_is_the_measured_one():
    # CoC fused kernel on / off: +7.85% (MindSpeed docs); NVIDIA's 0.75 would give about +23% (with the backward's
    # re-gather, perf/comm_tp.py tp_bwd_fwd_ratio; 0.30 gives +8.0%)
    on = _tok_s(LLAMA2_70B, {"tp_comm_overlap": True})
    off = _tok_s(LLAMA2_70B, {"tp_comm_overlap": False})
    assert on / off - 1.0 == pytest.approx(0.0785, abs=0.015)


def test_tp8_against_tp1_on_llama2_7b_matches_mindspeed():
    # the fused_mlp.md baseline (TP 8, PP 1, MC2; micro-batch 4, global batch 128 as examples/mcore/llama2/
    # tune_llama2_7b_full_ptd.sh at 3faff091) against the README row (TP 1, PP 2, DP 4): 0.708 measured;
    # 0.88 with the TP traffic 0.75 hidden, 0.71 with 0.30
    tp1 = _tok_s(LLAMA2_7B)
    tp8 = _tok_s(LLAMA2_7B, {"global_batch_seqs": 128, "tp_comm_overlap": True},
                 {"tp": 8, "pp": 1, "cp": 1, "dp": 1, "zero": 0, "micro_batch": 4, "recompute": "none"})
    assert tp8 / tp1 == pytest.approx(0.708, rel=0.12)


def test_nvidia_userbuffers_keep_three_quarters():
    from trainsim.perf.calibration import calib_for

    assert calib_for("nvidia-hopper").tp_overlap_userbuffers == 0.75
    assert calib_for("ascend-910").tp_overlap_userbuffers < calib_for("nvidia-hopper").tp_overlap_userbuffers
