"""Short key blocks of sliding-window and top-k attention cores (issue 14, Fidelity II: attention efficiency
against block length).

Hand derivation. The flash-attention time of a core is its causal FLOPs at attn_eff x peak, divided by the
short-block factor L / (L + L0), L0 = 384 (constants.yaml, FlashAttention-2 Fig. 4). A causal full core over a
block of s = 4,096 keys has L = 4,096: factor 4,096 / 4,480 = 0.91429. A sliding-window core of w = 128 keys at
s = 4,096: each query attends w - w (w - 1) / (2 s) = 128 - 16,256 / 8,192 = 126.015625 keys on average; a causal
block with that mean context is twice as long, L = 252.03125: factor 252.03125 / 636.03125 = 0.39626. So one
sliding core takes 0.91429 / 0.39626 = 2.3073 times what the same FLOPs would take in a full causal core.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from trainsim.model.arch import AttentionCore, LayerKind
from trainsim.model.counts import attention_fwd_flops_per_token
from trainsim.parallel.plan import Plans
from trainsim.perf.compute import attention_fwd

from conftest import ctx_for, make_system


def _plan(cp=1):
    return Plans.from_columns(tp=1, pp=1, vpp=1, ep=1, etp=1, cp=cp, dp=1, zero=0, recompute=0, mb=1, schedule=0,
                              node_limit=0)


def _layer(core):
    return LayerKind(name="x", n_layers=1, matrices=(), attention=(core,))


def test_sliding_core_runs_at_its_short_block_rate(gpt3):
    ctx = ctx_for(gpt3, make_system(), seq=4096)
    sliding = AttentionCore(heads=64, qk_head_dim=128, v_head_dim=128, kv_heads=8, kind="sliding", window=128)
    full = replace(sliding, kind="full", window=None)
    t_sliding = float(attention_fwd(_layer(sliding), ctx, _plan(), 4096.0)[0])
    t_full = float(attention_fwd(_layer(full), ctx, _plan(), 4096.0)[0])
    per_flop = (t_sliding / attention_fwd_flops_per_token(sliding, 4096)) / (
        t_full / attention_fwd_flops_per_token(full, 4096))
    assert per_flop == pytest.approx((4096 / 4480) / (252.03125 / 636.03125), rel=1e-9)
    assert per_flop == pytest.approx(2.3073, rel=1e-4)


def test_full_core_unchanged_and_window_capped_by_the_cp_block(gpt3):
    ctx = ctx_for(gpt3, make_system(), seq=4096)
    full = AttentionCore(heads=64, qk_head_dim=128, v_head_dim=128, kv_heads=8)
    fl = attention_fwd_flops_per_token(full, 4096) * 4096.0
    rate = ctx.chip.flops("bf16") * ctx.calib.attn_eff
    assert float(attention_fwd(_layer(full), ctx, _plan(), 4096.0)[0]) == pytest.approx(
        fl / (rate * 4096 / 4480), rel=1e-9)
    # a window of 4,000 keys under cp 8 (512-key blocks) sees the 512-key block, as a full core does
    wide = replace(full, kind="sliding", window=4000)
    t = float(attention_fwd(_layer(wide), ctx, _plan(cp=8), 4096.0)[0])
    assert t == pytest.approx(attention_fwd_flops_per_token(wide, 4096) * 4096.0 / (rate * 512 / 896), rel=1e-9)
