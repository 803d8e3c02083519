"""rope_fusion false (Megatron-Core's unfused rotary path): the HBM bytes it adds, counted by hand from the ops of
Megatron-LM 847781764f (rope_utils.py ``_apply_rotary_pos_emb_bshd`` / ``_rotate_half``, multi_latent_attention.py
``qkv_up_proj_and_rope_apply``), and where the run specs state it."""
from __future__ import annotations

from dataclasses import replace as dreplace
from pathlib import Path

import pytest

from trainsim.estimate import context
from trainsim.perf.compute import elementwise_fwd
from trainsim.spec import load_run
from tests.conftest import one_plan

RUNS = Path(__file__).resolve().parents[1] / "validation" / "runs"


def _moe_layer(run):
    return next(lk for lk in run.arch.layers if lk.moe is not None)


def test_dsv2_unfused_rope_bytes_by_hand():
    """DeepSeek-V2 (128 heads, d_nope 128, d_rope 64), per token, forward, BF16 (2 bytes an element):
    rotated elements: 128 x 64 query + 64 shared key = 8,256. Unfused ops per rotated element: t * cos (read 2 +
    write 2), negate one half (2), cat(-x2, x1) (4), * sin (4), the sum (read 4 + write 2), cat(t, t_pass) (4) = 24,
    against the fused kernel's 4: +20 x 8,256 = 165,120. MLA's de-interleave cat(x1, x2) over the 8,256 rotated
    elements, 4 x 8,256 = 33,024, and the query's cat(q_no_pe, q_pos_emb), read + write 128 x 192: 98,304.
    Total 296,448 bytes; at 4,096 tokens on an MI355X (8.0 TB/s x mem_eff 0.80) 0.190 ms more per layer forward."""
    run = load_run(RUNS / "primus-2512-dsv2-mi355x-32-bf16.yaml")
    ctx = context(run)
    assert ctx.rope_fusion is False
    lk, p = _moe_layer(run), one_plan(ep=8, dp=8)
    extra_bytes = 20 * (128 * 64 + 64) + 4 * (128 * 64 + 64) + 4 * 128 * 192
    assert extra_bytes == 296_448
    unfused = float(elementwise_fwd(lk, ctx, p, 4096.0)[0])
    fused = float(elementwise_fwd(lk, dreplace(ctx, rope_fusion=True), p, 4096.0)[0])
    assert unfused - fused == pytest.approx(extra_bytes * 4096 / (8.0e12 * 0.80), rel=1e-9)


def test_dsv2_lite_unfused_rope_bytes_by_hand():
    """DeepSeek-V2-Lite (16 heads, no q compression, same head dims): (24 - 4) x (16 x 64 + 64)
    + 4 x 1,088 + 4 x 16 x 192 = 21,760 + 4,352 + 12,288 = 38,400 bytes per token forward."""
    run = load_run(RUNS / "primus-2512-dsv2-lite-mi355x-8-bf16.yaml")
    ctx = context(run)
    lk, p = _moe_layer(run), one_plan(ep=8, dp=8)
    unfused = float(elementwise_fwd(lk, ctx, p, 1.0)[0])
    fused = float(elementwise_fwd(lk, dreplace(ctx, rope_fusion=True), p, 1.0)[0])
    assert (unfused - fused) * 8.0e12 * 0.80 == pytest.approx(38_400, rel=1e-9)


@pytest.mark.parametrize("path", sorted(RUNS.glob("primus-2512-dsv2-*.yaml")), ids=lambda p: p.stem)
def test_primus_dsv2_runs_state_unfused_rope(path):
    """AMD-AGI/Primus b3699abf primus/configs/models/megatron/deepseek_v2_base.yaml: 'apply_rope_fusion: false'
    ('multi_latent_attention does not support apply_rope_fusion'); every DeepSeek-V2 / V2-Lite recipe extends it."""
    assert load_run(path).training.rope_fusion is False


def test_default_is_fused():
    """Megatron-LM's --no-rope-fusion is a store_false flag (megatron/training/arguments.py at 847781764f): a run
    that says nothing keeps the fused kernels, so its elementwise time is unchanged."""
    run = load_run(RUNS / "primus-2512-dsv2-mi355x-32-bf16.yaml")
    d = run.training.model_copy(update={"rope_fusion": None})
    assert context(dreplace(run, training=d)).rope_fusion is True


def test_mindspeed_llama31_8b_unfused_rope_bytes_by_hand():
    """MindSpeed-LLM c25982e4 examples/mcore/llama31/pretrain_llama31_8b_8k_ptd.sh passes no
    --use-fused-rotary-pos-emb (the Llama 3 8B script of the same table does), so apply_rotary_pos_emb_bshd
    (modellink/core/models/common/embeddings/rotary_pos_embedding.py) runs (t * cos_) + (_rotate_half(t) * sin_) and
    torch.cat((t, t_pass)): Megatron-Core's unfused ops, 24 bytes per rotated element against 4. LLaMA-3.1-8B rotates
    32 query + 8 key heads of 128: 20 x 40 x 128 = 102,400 bytes per token and layer more in the forward; at tp 8
    (sequence parallel) 12,800 per token a rank holds, over 1.6 TB/s x mem_eff 0.676 on the 910B2 (the measured torch.add rate:
    tests/test_ascend_mem_eff.py)."""
    run = load_run(RUNS / "mindspeed-ascend-llama31-8b-8.yaml")
    ctx = context(run)
    assert ctx.rope_fusion is False
    lk, p = run.arch.layers[0], one_plan(tp=8)
    extra_bytes = 20 * (32 + 8) * 128
    assert extra_bytes == 102_400
    unfused = float(elementwise_fwd(lk, ctx, p, 16384.0)[0])
    fused = float(elementwise_fwd(lk, dreplace(ctx, rope_fusion=True), p, 16384.0)[0])
    assert unfused - fused == pytest.approx(extra_bytes * 16384 / 8 / (1.6e12 * 0.676), rel=1e-9)


def test_mindspeed_llama3_8b_keeps_fused_rope():
    """The Llama 3 8B row of the same table passes --use-fused-rotary-pos-emb (torch_npu.npu_rotary_mul): its spec
    leaves rope_fusion unset and the stack's default (fused) holds."""
    run = load_run(RUNS / "mindspeed-ascend-llama3-8b-8.yaml")
    assert run.training.rope_fusion is None
    assert context(run).rope_fusion is True


def test_mindspeed_llama31_8b_128k_unfused_rope_bytes_by_hand():
    """MindSpeed-LLM c25982e4 examples/mcore/llama31/pretrain_llama31_8b_128k_ptd.sh passes --use-fused-rmsnorm,
    --use-fused-swiglu and --use-rotary-position-embeddings but, like the 8K script, no --use-fused-rotary-pos-emb,
    so apply_rotary_pos_emb_bshd takes the same unfused branch (--use-rotary-position-embeddings is Megatron-LM
    core_r0.6.0's deprecated alias of --position-embedding-type rope, arguments.py validate_args: it selects RoPE,
    not a kernel). Per token and layer 20 x (32 + 8) x 128 =
    102,400 bytes more in the forward. CP 4 gives each rank 131,072 / 4 = 32,768 tokens of a sequence, which the
    sequence-parallel tp 8 splits again: 4,096 tokens a rank, 419.4 MB more per layer forward, 0.388 ms at
    1.6 TB/s x 0.676."""
    run = load_run(RUNS / "mindspeed-ascend-llama31-8b-128k-32.yaml")
    ctx = context(run)
    assert ctx.rope_fusion is False
    lk, p = run.arch.layers[0], one_plan(tp=8, cp=4)
    tokens = 131072 / 4
    unfused = float(elementwise_fwd(lk, ctx, p, tokens)[0])
    fused = float(elementwise_fwd(lk, dreplace(ctx, rope_fusion=True), p, tokens)[0])
    assert unfused - fused == pytest.approx(102_400 * 4096 / (1.6e12 * 0.676), rel=1e-9)
    assert unfused - fused == pytest.approx(0.388e-3, rel=2e-3)
