"""DualPipe's edge rank holds the embedding and the output head together (perf/step.py _edge_rank_stage).

DeepSeek-V3 technical report (arXiv 2412.19437) sec. 3.2.3: "we deploy the shallowest layers (including the
embedding layer) and deepest layers (including the output head) of the model on the same PP rank"; under DualPipe
rank 0 runs stage 0 for the micro-batches of one direction and stage pp - 1 for those of the other, half each
(sec. 3.2.1). Per micro-batch it therefore spends (t(first stage) + t(last stage with head)) / 2.

Hand derivation, pp = 2 with an even split (L / 2 layers on each rank), dense model, no MTP:
    1F1B      slowest rank = last:  per micro-batch GEMM work  3 g + 3 h + loss
    DualPipe  both ranks = edge:    (3 g + (3 g + 3 h + loss)) / 2 = 3 g + (3 h + loss) / 2
with g the forward GEMMs of L / 2 layers, h the head's forward GEMM, loss the loss kernels (forward + backward).
So the ``compute_gemm`` part per micro-batch differs by exactly (3 h + loss) / 2, h and loss taken from the head
and loss kernels themselves (perf/compute.py), not from the step.
"""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.perf.compute import head_gemm_fwd, loss_time
from trainsim.plan_estimate import context, estimate_complete, plans_from_spec
from trainsim.spec import parse_run


def _run(schedule: str):
    return parse_run({"model": {"name": "bigvocab", "layers": 8, "hidden": 2048, "heads": 16, "ffn": 8192,
                                "ffn_act": "swiglu", "vocab": 256000},
                      "system": "dgx-h100", "chips": 16, "framework": "deepseek-hai-llm",
                      "training": {"seq_len": 4096, "global_batch_seqs": 64, "precision": "bf16"},
                      "plan": {"tp": 1, "pp": 2, "cp": 1, "micro_batch": 1, "zero": 1, "recompute": "none",
                               "schedule": schedule}})


def test_dualpipe_edge_rank_carries_half_the_head_per_micro_batch():
    one, dual = _run("1f1b"), _run("dualpipe")
    e1, ed = estimate_complete(one, one.plan), estimate_complete(dual, dual.plan)
    m = 64 / (8 * 1)                                        # global batch / (dp x micro-batch), dp = 16 / 2
    ctx = context(dual)
    p = plans_from_spec(dual.plan, dual.chips, dual.arch)
    tokens = np.array([4096.0])
    h = float(np.asarray(head_gemm_fwd(ctx, p, tokens)).ravel()[0])
    lf, lb = (float(np.asarray(x).ravel()[0]) for x in loss_time(ctx, p, tokens))
    diff = (e1.breakdown["compute_gemm"] - ed.breakdown["compute_gemm"]) / m
    assert diff == pytest.approx((3.0 * h + lf + lb) / 2.0, rel=1e-9)
    assert diff > 0.0


def test_other_schedules_keep_the_whole_head_on_the_last_rank():
    """Interleaved / 1F1B: the last rank runs the head for every micro-batch (unchanged)."""
    one = _run("1f1b")
    e1 = estimate_complete(one, one.plan)
    ctx = context(one)
    p = plans_from_spec(one.plan, one.chips, one.arch)
    h = float(np.asarray(head_gemm_fwd(ctx, p, np.array([4096.0]))).ravel()[0])
    # the head's three GEMMs are all inside compute_gemm for each of the 8 micro-batches
    assert e1.breakdown["compute_gemm"] > 8 * 3.0 * h
