"""FP8 tensor-parallel all-gathers (perf/comm_tp.py tp_gather_bytes_per_elem): under FP8 GEMMs Transformer Engine
quantises before it gathers (layernorm_linear.py ``gather_along_first_dim(ln_out, tp_group, quantizer=...)`` in
the forward, the FP8 re-gather of the saved shard and the FP8 output-gradient gather of base.py
``grad_output_preprocess`` in the backward; TransformerEngine d0067d0d), and torchao's Float8 TP likewise
(PrepareFloat8ModuleInput, pytorch/ao v0.7.0); reduce-scatters stay BF16. Hand counts on the 70B block of
tests/test_tp_backward.py."""
from __future__ import annotations

from dataclasses import replace as dreplace

import pytest
import yaml

from trainsim.perf.collectives import reduce_scatter_time
from trainsim.perf.comm_tp import tp_gather_bytes_per_elem
from trainsim.perf.step import evaluate
from trainsim.plan_estimate import context, plans_from_spec
from trainsim.spec import parse_run

SPEC = """
name: fp8tp
framework: {fw}
model: {{name: t70b, layers: 80, hidden: 8192, heads: 64, kv_heads: 8, ffn: 28672, ffn_act: swiglu, vocab: 128256}}
system: {system}
chips: 64
training: {{seq_len: 4096, global_batch_seqs: 64, precision: {prec}{recipe}}}
plan: {{tp: 8, pp: 4, vpp: 1, cp: 1, ep: 1, zero: 1, recompute: none, micro_batch: 1, schedule: 1f1b}}
"""


def _run(fw="megatron-core-2024", prec="fp8", recipe="delayed", system="dgx-h100"):
    rec = f", fp8_recipe: {recipe}" if recipe else ""
    run = parse_run(yaml.safe_load(SPEC.format(fw=fw, prec=prec, recipe=rec, system=system)))
    return run, context(run), plans_from_spec(run.plan, run.chips, run.arch)


def test_bytes_per_element_by_recipe():
    # BF16 2; per-tensor FP8 (delayed, current) 1; MXFP8 1 + one E8M0 byte per 32 = 1.03125; blockwise 1 + one
    # fp32 scale per 128 = 1.03125
    assert tp_gather_bytes_per_elem(_run(prec="bf16", recipe="")[1]) == 2.0
    assert tp_gather_bytes_per_elem(_run(recipe="delayed")[1]) == 1.0
    _, ctx, _ = _run(recipe="current")
    assert tp_gather_bytes_per_elem(ctx) == 1.0
    assert tp_gather_bytes_per_elem(dreplace(ctx, fp8_recipe="mxfp8")) == 1.03125
    assert tp_gather_bytes_per_elem(dreplace(ctx, fp8_recipe="blockwise")) == 1.03125
    # all-reduce TP (no sequence parallelism) reduces BF16 outputs and gradients
    assert tp_gather_bytes_per_elem(dreplace(ctx, tp_allreduce=True)) == 2.0


def test_fp8_block_gathers_half_the_bytes():
    # one BF16 transfer: 4,096 x 8,192 x 2 = 64 MiB; an FP8 all-gather 32 MiB. Per layer (2 blocks) forward
    # 2 x (all-gather + reduce-scatter), backward 2 x (output-gradient gather + input re-gather + reduce-scatter):
    # 6 FP8 gathers + 4 BF16 reduce-scatters, against 10 BF16 transfers. 20 layers per stage, 32 micro-batches,
    # no overlap (megatron-core-2024 without --tp-comm-overlap).
    run, ctx, p = _run()
    assert ctx.fp8_gemm and ctx.calib.tp_overlap == 0.0 and not ctx.tp_comm_overlap
    bf16 = reduce_scatter_time(float(64 * 2 ** 20), p.tp, 1, ctx.system, ctx.calib.coll_eff)[0]
    fp8 = reduce_scatter_time(float(32 * 2 ** 20), p.tp, 1, ctx.system, ctx.calib.coll_eff)[0]
    assert fp8 < bf16
    assert evaluate(ctx, p).breakdown["tp_comm"][0] == pytest.approx(32 * 20 * (6 * fp8 + 4 * bf16), rel=1e-9)
    # DTensor TP keeps the gathered input (no re-gather): 2 x (gather + reduce-scatter) each way
    dt = dreplace(ctx, tp_gathered_gemm_inputs=True)
    assert evaluate(dt, p).breakdown["tp_comm"][0] == pytest.approx(32 * 20 * (4 * fp8 + 4 * bf16), rel=1e-9)


def test_fp8_without_an_fp8_rate_gathers_bf16():
    # an FP8 run on a chip without an FP8 rate runs BF16 GEMMs (StepContext.fp8_gemm False): BF16 transfers
    run, ctx, p = _run()
    no_fp8 = dreplace(ctx, precision="bf16")
    assert tp_gather_bytes_per_elem(no_fp8) == 2.0
    bf16 = reduce_scatter_time(float(64 * 2 ** 20), p.tp, 1, ctx.system, ctx.calib.coll_eff)[0]
    assert evaluate(no_fp8, p).breakdown["tp_comm"][0] == pytest.approx(32 * 20 * 10 * bf16, rel=1e-9)
