"""Llama 3.1 405B under Meta's stated plan (arXiv 2407.21783 sec. 3.3.2 and Table 4): the stored activations of one
layer written tensor by tensor, and the micro-batches the flexible interleaved schedule holds, both derived by hand
from their sources (independent of trainsim's own output)."""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.model.inline import InlineModel, build_inline
from trainsim.parallel.plan import Plans
from trainsim.parallel.schedules import code
from trainsim.perf.activations import activation_tensors
from trainsim.perf.memory import layer_activation_bytes
from trainsim.perf.pipeline import microbatches_in_flight

from conftest import ctx_for

H, HEADS, KV, D, F = 16384, 128, 8, 128, 53248


@pytest.fixture(scope="module")
def llama405():
    return build_inline(InlineModel(name="llama-405b", layers=126, hidden=H, heads=HEADS, kv_heads=KV, ffn=F,
                                    ffn_act="swiglu", vocab=128256))


def _plan(**kw):
    base = dict(tp=1, pp=1, vpp=1, ep=1, etp=1, cp=1, dp=1, zero=0, recompute=0, mb=1, schedule=0, node_limit=0)
    base.update(kw)
    return Plans.from_columns(**base)


def test_llama_layer_activations_are_korthikanti_per_tensor(llama405, a100_system):
    # Korthikanti et al. 2022 (arXiv 2205.05198) Table 2, tensor + sequence parallel, no recompute: 34 s b h / t per
    # GPT layer (+ 5 a s^2 b / t of scores, absent with flash attention). The same count for a Llama layer (pre-RMSNorm,
    # GQA, SwiGLU, no dropout), BF16, every tensor split over t by TP + SP, each tensor counted once where two
    # autograd nodes share it (Transformer Engine LayerNormLinear saves its input and its ln_out,
    # transformer_engine/pytorch/module/layernorm_linear.py prepare_for_saving(inputmat, ..., ln_out_to_save, ...);
    # the ln_out is the Q/K/V GEMM's input, the flash-attention output O is the out-projection's input, the SwiGLU
    # output is the down-projection's input), bytes per token:
    norm_inputs = 2 * 2 * H            # layer input (attention RMSNorm) + residual after attention (MLP RMSNorm)
    attn_ln_out = 2 * H                # = Q/K/V GEMM input (one tensor)
    q = 2 * HEADS * D                  # flash-attn saves q (after RoPE) ...
    kv = 2 * 2 * KV * D                # ... and k, v at the 8 KV heads (GQA, not repeated)
    o = 2 * HEADS * D                  # flash-attn output = out-projection input (one tensor)
    mlp_ln_out = 2 * H                 # = gate/up GEMM input (one tensor)
    swiglu_in = 2 * 2 * F              # gate and up outputs, SwiGLU's saved input
    down_in = 2 * F                    # SwiGLU output = down-projection input (one tensor)
    per_token = norm_inputs + attn_ln_out + q + kv + o + mlp_ln_out + swiglu_in + down_in
    # 4h + 2h + 2h + h/4 + 2h + 2h + 6 x 3.25 h = 31.75 h (GPT: 32 h = 34 h less the two 1-byte dropout masks)
    assert per_token == pytest.approx(31.75 * H)
    s, t = 8192, 8
    ctx = ctx_for(llama405, a100_system, seq=s)
    kept, full = layer_activation_bytes(llama405.layers[0], ctx, _plan(tp=t), np.array([float(s)]))
    assert kept[0] == pytest.approx(per_token * s / t) and full[0] == pytest.approx(kept[0])
    # no tensor is listed twice: in a BF16 run the flash output is only the out-projection's input
    names = [x.name for x in activation_tensors(llama405.layers[0], H, s, gemm_bytes=2.0, act_fn_bytes=2.0)]
    assert len(names) == len(set(names)) and "flash output (bf16)" not in names


@pytest.mark.parametrize("m,chunks", [
    # PyTorch ScheduleFlexibleInterleaved1F1B (torch/distributed/pipelining/schedules.py, 2024), an interleaved
    # schedule with N = M / rounds contiguous micro-batches per chunk that drops the M % p == 0 rule, as Llama 3
    # sec. 3.3.2 / Figure 6 describes its tunable N (Meta's own code is not public): rounds = max(1, M // p); rank r
    # runs (v - 1) N + 2 (p - 1 - r) warm-up forwards (at most M v), then each 1F1B step runs one forward before its
    # backward. Any N >= p (no extra bubble) holds at least as many. p = 16, v = 8, rank 1:
    (32, 7 * 16 + 2 * 14 + 1),   # 8,192 GPUs, 32 sequences per DP rank: N = 16, 140 warm-up + 1 = 141 chunk-forwards
    (16, 16 * 8),                # 16,384 GPUs, 16 per DP rank: 140 > M v = 128, every forward before a backward
])
def test_llama3_flexible_interleaved_in_flight_rank1(m, chunks):
    # in units of the rank's 8 one-layer chunks
    got = microbatches_in_flight(np.array([code("interleaved")]), np.array([16]), np.array([8]), float(m), 1)
    assert got[0] * 8 == pytest.approx(chunks)
