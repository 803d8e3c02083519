"""The FP8 transposes of sequence-parallel gathered operands on Hopper (perf/compute.py
sp_gathered_fp8_transpose_bytes): Transformer Engine v2.9 all-gathers per-tensor FP8 rowwise only and transposes the
gathered tensor for the weight-gradient GEMM. Expected numbers are derived by hand below."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from trainsim.model.load import resolve_model
from trainsim.perf.compute import elementwise_fwd, sp_gathered_fp8_elems_per_token, sp_gathered_fp8_transpose_bytes
from trainsim.plan_estimate import context, plans_from_spec
from trainsim.spec import parse_run

RUNS = Path(__file__).resolve().parents[1] / "validation" / "runs"
H405 = RUNS / "megatron-bridge-2511-llama31-405b-h100-1024-fp8cs-gbs512"   # tp 8, cp 2, seq 8192, FP8-CS, H100
B405 = RUNS / "megatron-bridge-2511-llama31-405b-b200-128-fp8cs"           # tp 4, cp 2, B200


def _run(path: Path, **plan):
    spec = yaml.safe_load(path.with_suffix(".yaml").read_text())
    spec["plan"].update(plan)
    run = parse_run(spec)
    return context(run), plans_from_spec(run.plan, run.chips, run.arch), run


def _f(x) -> float:
    return float(np.asarray(x).reshape(-1)[0])


def test_sp_gathered_operands_llama_and_moe():
    # Llama 3.1 405B: qkv input, fc1 input (K = hidden), o and down output gradients (N = hidden): 4 x 16,384
    a = resolve_model("llama-3.1-405b")
    assert sp_gathered_fp8_elems_per_token(a.layers[0], a.hidden) == 4 * 16_384
    # Mixtral: the attention's two (hidden 4,096); the routed experts' tokens come through the dispatcher
    mx = resolve_model("mixtral-8x7b")
    assert sp_gathered_fp8_elems_per_token(mx.layers[0], mx.hidden) == 2 * 4096


def test_sp_gathered_transpose_bytes_by_hand():
    ctx, p, _ = _run(H405)
    lk = ctx.arch.layers[0]
    # 4,096 tokens x 65,536 elements x (read 1 + write 1 of the gathered tensor - the 1 / 8 the cast already counts)
    hand = 4096 * 65_536 * (2.0 - 1.0 / 8.0)
    assert hand == 503_316_480
    assert _f(sp_gathered_fp8_transpose_bytes(lk, ctx, p, 4096.0)) == pytest.approx(hand)
    # none without a tp gather, without per-tensor FP8 on Hopper, or where the stack keeps the gathered input
    ctx1, p1, _ = _run(H405, tp=1, dp=64)
    assert _f(sp_gathered_fp8_transpose_bytes(lk, ctx1, p1, 4096.0)) == 0.0
    ctxb, pb, _ = _run(B405)
    assert not ctxb.fp8_transposed_copy
    assert _f(sp_gathered_fp8_transpose_bytes(ctxb.arch.layers[0], ctxb, pb, 4096.0)) == 0.0
    assert _f(sp_gathered_fp8_transpose_bytes(lk, replace(ctx, tp_gathered_gemm_inputs=True), p, 4096.0)) == 0.0
    assert _f(sp_gathered_fp8_transpose_bytes(lk, replace(ctx, precision="bf16"), p, 4096.0)) == 0.0


def test_memory_bound_time_carries_a_third_of_the_transposes():
    # the engine charges memory-bound kernels forward + 2 x forward backward: the forward figure holds a third
    ctx, p, _ = _run(H405)
    lk = ctx.arch.layers[0]
    with_t = _f(elementwise_fwd(lk, ctx, p, 4096.0))
    without = _f(elementwise_fwd(lk, replace(ctx, tp_gathered_gemm_inputs=True), p, 4096.0))
    assert with_t - without == pytest.approx(503_316_480 / 3.0 / (ctx.chip.hbm_bw * ctx.calib.mem_eff), rel=1e-9)
