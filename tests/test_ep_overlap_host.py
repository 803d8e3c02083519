"""The merged forward-backward EP overlap hides the dispatcher's host stall; an MTP layer's dispatch and combine run
once per direction and overlap like a decoder layer's (perf/step.py ``_stage``, ``moe_host_sync_exposed``).

Megatron-Core's ``overlap_moe_expert_parallel_comm`` runs one layer's forward for micro-batch i+1 with its backward
for micro-batch i (Megatron-LM 2edffadb model_chunk_schedule_plan.py ``TransformerLayerSchedulePlan.run``): the
other micro-batch's ``combine.backward``, ``attn.forward`` and ``mlp.backward`` are issued before
``moe_dispatch.forward``, whose dispatcher waits on the host for the token counts, so the GPU has work while the
host waits. Measured by Megatron-Bridge PR #5094 (skills/nemo-mbridge-perf-moe-comm-overlap/SKILL.md at 067f987d,
Qwen3-30B-A3B on 16 H100, only the overlap switched): GPU-active interval union 22.821 s of a 24.714 s step without
the overlap (1.893 s idle), 21.221 s of a 20.992 s step with it (no idle time left).

Hand counts, in the engine's own units (one layer's dispatch + combine, ``comm_ep.ep_alltoall_fwd``; the fitted host
stall per MoE layer and micro-batch, ``moe_layer_host_s``):
- without the overlap a micro-batch on one pipeline rank moves each MoE layer's dispatch + combine once forward and
  once backward: 2 x (58 decoder MoE layers + 1 MTP layer) of DeepSeek-V3 on pp 1 (the MTP layer's backward was
  charged twice before);
- without the overlap the host stall is 58 x moe_layer_host_s per micro-batch (the MTP layer's is not counted);
  with it, 1 - ep_overlap_a2a (0.8, constants.yaml) of that where the pair's compute covers it.
"""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.perf.comm_ep import ep_alltoall_fwd
from trainsim.plan_estimate import context, estimate_complete, plans_from_spec
from trainsim.spec import parse_run

GBS = 64
CHIPS = 8


def _run(overlap: bool, schedule: str = "1f1b", pp: int = 1):
    plan = {"tp": 1, "pp": pp, "cp": 1, "ep": 8, "etp": 1, "micro_batch": 1, "zero": 1, "recompute": "none",
            "schedule": schedule}
    return parse_run({"model": "deepseek-v3", "system": "dgx-b200", "chips": CHIPS, "framework": "megatron-bridge-2026",
                      "training": {"seq_len": 4096, "global_batch_seqs": GBS, "precision": "bf16",
                                   "moe_dispatcher": "alltoall", "cuda_graphs": "none",
                                   "moe_a2a_overlap": overlap},
                      "plan": plan})


def _ep_unit(run) -> tuple[float, float]:
    """(one decoder MoE layer's, the MTP layer's) forward dispatch + combine, from comm_ep itself."""
    ctx = context(run)
    p = plans_from_spec(run.plan, run.chips, run.arch)
    tokens = np.array([4096.0])
    moe = [lk for lk in ctx.arch.layers if lk.moe is not None]
    assert len(moe) == 1 and moe[0].n_layers == 58
    assert len(ctx.arch.mtp) == 1 and ctx.arch.mtp[0].n_layers == 1 and ctx.arch.mtp[0].moe is not None
    one = float(np.asarray(ep_alltoall_fwd(moe[0], ctx, p, tokens)).ravel()[0])
    mtp = float(np.asarray(ep_alltoall_fwd(ctx.arch.mtp[0], ctx, p, tokens)).ravel()[0])
    return one, mtp


def test_mtp_layer_moves_its_dispatch_and_combine_once_per_direction():
    run = _run(False)
    est = estimate_complete(run, run.plan)
    m = GBS / CHIPS                                   # micro-batches: global batch / (dp x micro-batch), dp = 8
    one, mtp = _ep_unit(run)
    assert one > 0.0 and mtp > 0.0
    per_mb = est.breakdown["ep_alltoall"] / m
    assert per_mb == pytest.approx(2.0 * (58.0 * one + mtp), rel=1e-9)
    # the old charge, 2 x 58 + 3 x 1 transfers, is the wrong count
    assert per_mb != pytest.approx(2.0 * 58.0 * one + 3.0 * mtp, rel=1e-6)


def test_host_stall_without_overlap_is_one_per_moe_layer():
    run = _run(False)
    est = estimate_complete(run, run.plan)
    host_s = context(run).calib.moe_layer_host_s
    assert host_s > 0.0
    assert est.breakdown["host"] == pytest.approx(GBS / CHIPS * 58.0 * host_s, rel=1e-9)


def test_merged_ep_overlap_hides_the_host_stall_as_it_hides_the_all_to_all():
    off, on = (estimate_complete(r, r.plan) for r in (_run(False), _run(True)))
    ctx = context(_run(True))
    f = ctx.calib.ep_overlap_a2a
    assert 0.0 < f < 1.0
    # DeepSeek-V3's 58 MoE layers of compute per micro-batch cover its 58 host stalls, so f of them hide
    assert on.breakdown["host"] == pytest.approx((1.0 - f) * off.breakdown["host"], rel=1e-9)
    assert on.step_time_s < off.step_time_s


def test_mtp_dispatch_overlaps_under_the_merged_schedule():
    """With the overlap each direction's dispatch + combine exposes 1 - f of itself where its window covers it
    (the all-to-all dispatcher pins no SMs, comm_ep.dispatcher_sms), the MTP layer's as the decoder layers':
    (1 - f) x 2 x (58 + 1) transfers, not (1 - f) x 2 x 58 + 3 exposed MTP transfers."""
    run = _run(True)
    est = estimate_complete(run, run.plan)
    f = context(run).calib.ep_overlap_a2a
    one, mtp = _ep_unit(run)
    per_mb = est.breakdown["ep_alltoall"] / (GBS / CHIPS)
    assert per_mb == pytest.approx((1.0 - f) * 2.0 * (58.0 * one + mtp), rel=1e-9)
    assert per_mb != pytest.approx((1.0 - f) * 2.0 * 58.0 * one + 3.0 * mtp, rel=1e-6)
