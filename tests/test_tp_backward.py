"""The backward's tensor-parallel traffic under sequence parallelism (issue 14 criterion 1, "no cost is free";
perf/comm_tp.py tp_bwd_fwd_ratio): the column-parallel linear keeps only its sequence shard of the input and
gathers it again in the backward for its weight gradient (Megatron-LM d98e8a64
megatron/core/tensor_parallel/layers.py LinearWithGradAccumulationAndAsyncCommunication.backward; Transformer
Engine d0067d0d module/layernorm_linear.py ``ctx.ln_out_needs_gather``), so a block moves three buffers in the
backward against two in the forward; DTensor TP (torchtitan) keeps the gathered input and moves two."""
from __future__ import annotations

from dataclasses import replace as dreplace

import pytest
import yaml

from conftest import T70B_TP8_SPEC
from trainsim.perf.collectives import reduce_scatter_time
from trainsim.perf.comm_tp import tp_bwd_fwd_ratio
from trainsim.perf.step import evaluate
from trainsim.plan_estimate import context, plans_from_spec
from trainsim.spec import parse_run

SPEC = T70B_TP8_SPEC.replace("{extra}", "").replace("{recompute}", "none")


def _run(fw: str, zero: int = 1):
    run = parse_run(yaml.safe_load(SPEC.format(fw=fw, zero=zero)))
    return run, context(run), plans_from_spec(run.plan, run.chips, run.arch)


def test_megatron_backward_moves_three_buffers_per_block():
    # one transfer: 4096 tokens x hidden 8192 x 2 bytes (BF16) = 64 MiB over the 8 tp ranks.
    # Per layer (attention block + MLP block), forward: 2 x (all-gather + reduce-scatter) = 4 transfers = 256 MiB;
    # backward: 2 x (all-gather of the output gradient + re-gather of the input + reduce-scatter of its gradient)
    # = 6 transfers = 384 MiB. 80 layers / pp 4 = 20 per stage; dp = 64 / (8 x 4) = 2, 64 / 2 = 32 micro-batches;
    # megatron-core-2024 leaves --tp-comm-overlap off, so nothing hides (tp_overlap 0):
    # tp_comm = 32 x 20 x (4 + 6) x one transfer.
    size = 4096 * 8192 * 2
    assert size == 64 * 2 ** 20
    run, ctx, p = _run("megatron-core-2024")
    assert tp_bwd_fwd_ratio(ctx) == 1.5
    assert ctx.calib.tp_overlap == 0.0 and not ctx.tp_comm_overlap
    one = reduce_scatter_time(float(size), p.tp, 1, ctx.system, ctx.calib.coll_eff)[0]
    r = evaluate(ctx, p)
    assert r.breakdown["tp_comm"][0] == pytest.approx(32 * 20 * (4 + 6) * one, rel=1e-9)


def test_dtensor_tp_keeps_the_gathered_input_and_moves_two():
    # torchtitan's ColwiseParallel saves the all-gathered norm output (framework_schedules.yaml
    # tp_gathered_gemm_inputs): the backward mirrors the forward, 4 transfers each way per layer
    run, ctx, p = _run("megatron-core-2024")
    ctx2 = dreplace(ctx, tp_gathered_gemm_inputs=True)
    assert tp_bwd_fwd_ratio(ctx2) == 1.0
    one = reduce_scatter_time(float(4096 * 8192 * 2), p.tp, 1, ctx.system, ctx.calib.coll_eff)[0]
    assert evaluate(ctx2, p).breakdown["tp_comm"][0] == pytest.approx(32 * 20 * (4 + 4) * one, rel=1e-9)
    assert evaluate(ctx2, p).step_time_s[0] < evaluate(ctx, p).step_time_s[0]


def test_userbuffers_hide_the_same_fraction_of_the_backward():
    # --tp-comm-overlap: the bulk dgrad / wgrad overlaps (ub_bulk_dgrad, ub_bulk_wgrad) and the ring-exchange
    # all-gather hide f = 0.75 of every transfer whose GEMM is longer (70B at tp 8 on NVLink): (1 - f) x 10 units
    run, ctx, p = _run("megatron-core-2024")
    on = dreplace(ctx, tp_comm_overlap=True)
    one = reduce_scatter_time(float(4096 * 8192 * 2), p.tp, 1, ctx.system, ctx.calib.coll_eff)[0]
    f = on.calib.tp_overlap_userbuffers
    assert f == 0.75
    assert evaluate(on, p).breakdown["tp_comm"][0] == pytest.approx(32 * 20 * 10 * (1 - f) * one, rel=1e-9)


def test_no_tp_no_traffic():
    run, ctx, p = _run("megatron-core-2024")
    spec = yaml.safe_load(SPEC.format(fw="megatron-core-2024", zero=1))
    spec["plan"]["tp"] = 1
    spec["plan"]["pp"] = 8
    spec["chips"] = 64
    run1 = parse_run(spec)
    assert evaluate(context(run1), plans_from_spec(run1.plan, run1.chips, run1.arch)).breakdown["tp_comm"][0] == 0.0


def test_megatron_2021_all_reduce_tp_has_no_regather():
    # Megatron-LM v2.5 (no sequence parallelism): one all-reduce forward (row-parallel output), one backward
    # (column-parallel input gradient), each the bytes of an all-gather + a reduce-scatter: 4 transfers each way
    run, ctx, p = _run("megatron-lm-2021", zero=0)
    assert ctx.tp_allreduce is True
    assert tp_bwd_fwd_ratio(ctx) == 1.0
    one = reduce_scatter_time(float(4096 * 8192 * 2), p.tp, 1, ctx.system, ctx.calib.coll_eff)[0]
    assert evaluate(ctx, p).breakdown["tp_comm"][0] == pytest.approx(32 * 20 * (4 + 4) * one, rel=1e-9)


def test_stack_flag_is_a_boolean_with_a_source():
    from trainsim.frameworks import frameworks

    stating = {fw: prof for fw, prof in frameworks().items() if "tp_allreduce" in prof}
    assert "megatron-lm-2021" in stating and "e269e200" in stating["megatron-lm-2021"]["tp_allreduce_source"]
    for prof in stating.values():
        assert isinstance(prof["tp_allreduce"], bool)
        assert prof["tp_allreduce_source"].strip()
    # Megatron-Core and later keep sequence parallelism: the re-gather
    assert not frameworks()["megatron-bridge-2026"].get("tp_allreduce", False)


def test_recomputed_mlp_gathers_and_reduce_scatters_again():
    # Megatron-LM d98e8a64 transformer_layer.py: recompute module 'mlp' checkpoints the whole dense MLP module, so
    # its rerun forward gathers its input and reduce-scatters its output again: 2 transfers per layer. With
    # --tp-comm-overlap 0.75 of them hide behind the recomputed MLP GEMMs (longer at 70B, tp 8), without none:
    # (off - on) = 0.75 x 2 x one transfer; the attention core (no tp collective) recomputes the same either way
    from trainsim.perf.recompute import selective_recompute_fwd

    run, ctx, p = _run("megatron-core-2024")
    lk = run.arch.layers[0]
    tok = 4096.0 + 0.0 * p.tp
    one = reduce_scatter_time(float(4096 * 8192 * 2), p.tp, 1, ctx.system, ctx.calib.coll_eff)[0]
    on = dreplace(ctx, tp_comm_overlap=True)
    off_mlp = selective_recompute_fwd(lk, ctx, p, tok, ("mlp",))[0]
    on_mlp = selective_recompute_fwd(lk, on, p, tok, ("mlp",))[0]
    assert off_mlp - on_mlp == pytest.approx(0.75 * 2 * one, rel=1e-9)
    core = selective_recompute_fwd(lk, ctx, p, tok, ("core_attn",))
    assert core[0] == pytest.approx(selective_recompute_fwd(lk, on, p, tok, ("core_attn",))[0], rel=1e-12)
