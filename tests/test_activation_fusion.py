"""activation_fusion false (Megatron-Core's MLP.forward glu as two eager ops): the HBM bytes it adds, counted by
hand, and where the run specs state it (the MindSpeed-LLM Gemma rows: --geglu with --disable-bias-linear)."""
from __future__ import annotations

from dataclasses import replace as dreplace
from pathlib import Path

import pytest

from trainsim.estimate import context
from trainsim.perf.compute import act_fn_bytes_per_f, elementwise_fwd
from trainsim.spec import load_run
from tests.conftest import one_plan

RUNS = Path(__file__).resolve().parents[1] / "validation" / "runs"


def test_unfused_glu_bytes_per_f_by_hand():
    """Megatron-LM core_r0.6.0 megatron/core/transformer/mlp.py: ``x = torch.chunk(x, 2, dim=-1);
    activation_func(x[0]) * x[1]``. BF16: the activation reads x[0] and writes its output (2 + 2), the product reads
    it and x[1] and writes the result (2 + 2 + 2): 10 bytes per intermediate element, against the fused kernel's
    read 2f + write f = 6."""
    assert act_fn_bytes_per_f("swiglu", eager=True) == 2 + 2 + 2 + 2 + 2
    assert act_fn_bytes_per_f("swiglu") == 2 + 2 + 2


def test_gemma_2b_unfused_geglu_time_by_hand():
    """MindSpeed-LLM Gemma-2B (ffn 16,384, --geglu, --disable-bias-linear; tp 1): 4 more bytes per intermediate
    element, 4 x 16,384 = 65,536 bytes per token and layer in the forward; over 8,192 tokens on a 910B2
    (1.6 TB/s x mem_eff 0.676, the measured torch.add rate: tests/test_ascend_mem_eff.py) 0.4964 ms more per
    layer forward."""
    run = load_run(RUNS / "mindspeed-ascend-gemma-2b-8.yaml")
    ctx = context(run)
    assert ctx.activation_fusion is False
    lk, p = run.arch.layers[0], one_plan(pp=2, dp=4)
    unfused = float(elementwise_fwd(lk, ctx, p, 8192.0)[0])
    fused = float(elementwise_fwd(lk, dreplace(ctx, activation_fusion=True), p, 8192.0)[0])
    assert unfused - fused == pytest.approx(4 * 16384 * 8192 / (1.6e12 * 0.676), rel=1e-9)
    assert unfused - fused == pytest.approx(0.4964e-3, rel=1e-3)


@pytest.mark.parametrize("stem", ["mindspeed-ascend-gemma-2b-8", "mindspeed-ascend-gemma-7b-8"])
def test_mindspeed_gemma_rows_state_unfused_glu(stem):
    """Both Gemma scripts at c25982e4 pass --geglu and --disable-bias-linear, which turns bias_gelu_fusion off
    (Megatron-LM core_r0.6.0 megatron/training/arguments.py), and --use-fused-swiglu needs --swiglu
    (MindSpeed e6ea2117 mindspeed/arguments.py)."""
    assert load_run(RUNS / f"{stem}.yaml").training.activation_fusion is False


def test_default_is_fused():
    """A run that says nothing keeps the fused gated activation (Megatron-LM's --no-bias-swiglu-fusion is a
    store_false flag)."""
    run = load_run(RUNS / "mindspeed-ascend-qwen2-1.5b-8.yaml")
    assert run.training.activation_fusion is None
    assert context(run).activation_fusion is True
