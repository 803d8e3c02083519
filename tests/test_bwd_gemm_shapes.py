"""Backward GEMMs at their own shapes (perf/compute.py matrix_bwd_gemms, layer_gemm_bwd) and the FP8 transposes of
sequence-parallel gathered operands on Hopper (sp_gathered_fp8_transpose_bytes). Expected numbers are derived by
hand below from the GEMM shape model's published terms (tile 128 x 128, 64-element prologue, 132 SMs, serial
epilogue on Hopper: perf/data/constants.yaml) and Transformer Engine v2.9's backward (module/linear.py)."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from trainsim.model.load import resolve_model
from trainsim.perf.compute import (gemm_matrices, layer_gemm_bwd, layer_gemm_fwd, matrix_bwd_gemms,
                                   sp_gathered_fp8_elems_per_token, sp_gathered_fp8_transpose_bytes,
                                   wgrad_out_bytes)
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


def _qkv(ctx):
    return next(m for m in gemm_matrices(ctx.arch.layers[0]) if m.name == "qkv")


def test_wgrad_epilogue_reads_and_writes_the_gradient_buffer():
    ctx, _, run = _run(H405)
    # the recipe reduces gradients in BF16 (grad_reduce_in_fp32 False) and fuses the accumulation: 2 x 2 bytes
    assert ctx.optimizer.grad_bytes == 2.0 and ctx.grad_accumulation_fusion
    assert wgrad_out_bytes(ctx) == 4.0
    assert wgrad_out_bytes(replace(ctx, grad_accumulation_fusion=False)) == ctx.calib.gemm_out_bytes == 2.0


def test_hopper_qkv_backward_by_hand():
    # Llama 3.1 405B qkv at tp 8: K = 16,384, N = (128 + 2 x 8) x 128 / 8 = 2,304; 8,192 / cp 2 = 4,096 tokens.
    ctx, p, _ = _run(H405)
    c = ctx.calib.with_(gemm_eff_fp8=0.5, gemm_latency_s=0.0)
    ctx = replace(ctx, calib=c)
    mat = _qkv(ctx)
    assert (mat.k, mat.n / 8) == (16_384, 2_304)
    peak, hbm = ctx.chip.flops("fp8"), ctx.chip.hbm_bw
    assert (c.gemm_tile_m, c.gemm_tile_n, c.gemm_k0, c.compute_units, c.gemm_epilogue_overlap) == (128, 128, 64,
                                                                                                 132, 0.0)
    flops = 2.0 * 4096 * 16_384 * 2_304

    def k_epi(out_bytes):   # epilogue in K-steps: out_bytes x peak x eff / (2 x HBM x mem_eff)
        return out_bytes * peak * 0.5 / (2.0 * hbm * 0.80)

    # dgrad: M 4,096 x N 16,384, K loop 2,304: 32 x 128 = 4,096 tiles in ceil(4096 / 132) = 32 waves of 132
    q_d = (4096 / (32 * 132)) * 2_304 / (64 + 2_304 + k_epi(2.0))
    # wgrad: M 16,384 x N 2,304, K loop 4,096 tokens: 128 x 18 = 2,304 tiles in 18 waves; epilogue 4 bytes
    q_w = (2_304 / (18 * 132)) * 4_096 / (64 + 4_096 + k_epi(4.0))
    hand = flops / (peak * 0.5 * q_d) + flops / (peak * 0.5 * q_w)
    assert _f(matrix_bwd_gemms(mat, ctx, p, 4096.0)) == pytest.approx(hand, rel=1e-9)
    # the forward (M 4,096 x N 2,304, K 16,384: 32 x 18 = 576 tiles, 5 waves) runs faster per FLOP than either
    q_f = (576 / (5 * 132)) * 16_384 / (64 + 16_384 + k_epi(2.0))
    assert q_f > q_w and q_f > q_d


def test_short_token_loop_slows_the_hopper_backward():
    # a dense Llama 3.1 405B layer at tp 8: backward / forward above 2 (the weight gradients' K loop is the
    # tokens), more so at 4,096 tokens (cp 2) than at 8,192 (cp 1)
    ctx, p, _ = _run(H405)
    lk = ctx.arch.layers[0]

    def ratio(tokens):
        fwd = layer_gemm_fwd(lk, ctx, p, tokens)
        return _f(layer_gemm_bwd(lk, ctx, p, tokens, fwd)) / _f(fwd)

    assert ratio(4096.0) > ratio(8192.0) > 2.0


def test_routed_experts_keep_twice_the_forward():
    ctx, p, _ = _run(H405)
    mx = resolve_model("mixtral-8x7b").layers[0]
    ctx = replace(ctx, arch=resolve_model("mixtral-8x7b"))
    experts = replace(mx, matrices=tuple(m for m in mx.matrices if m.group == "expert"))
    fwd = layer_gemm_fwd(experts, ctx, p, 4096.0)
    assert _f(layer_gemm_bwd(experts, ctx, p, 4096.0, fwd)) == pytest.approx(2.0 * _f(fwd))


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
