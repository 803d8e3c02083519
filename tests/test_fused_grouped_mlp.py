"""Transformer Engine's fused grouped MLP (run setting ``moe_fused_grouped_mlp``; NVTE_CUTEDSL_FUSED_GROUPED_MLP=1,
TransformerEngine d0067d0 pytorch/ops/fused/grouped_mlp.py): the routed experts' SwiGLU, its backward and the MXFP8
casts of fc2's input and fc1's output gradient run in the grouped GEMMs' epilogues, which move their own bytes
instead (perf/compute.py fused_grouped_mlp_cast_elems_per_token / fused_grouped_mlp_epilogue_bytes_per_token)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import spec_with_training
from trainsim.errors import TrainsimError
from trainsim.estimate import estimate
from trainsim.model.load import resolve_model
from trainsim.perf.compute import (elementwise_bytes_per_token, fused_grouped_mlp_cast_elems_per_token,
                                   fused_grouped_mlp_epilogue_bytes_per_token)
from trainsim.plan_estimate import context
from trainsim.spec import parse_run

RUNS = Path(__file__).resolve().parents[1] / "validation" / "runs"
DSV4_GB300 = RUNS / "megatron-bridge-2608-dsv4-flash-gb300-128-mxfp8.yaml"
MXFP8 = 4.0625   # read 2 + rowwise and columnwise copies of 1 + 1/32 (E8M0 scale per 32 elements)
H, F, K = 4096, 2048, 6   # DeepSeek-V4-Flash hidden, expert ffn, top-k


def _moe_layer(arch):
    return next(lk for lk in arch.layers if lk.moe is not None)


def test_cast_elements_by_hand():
    lk = _moe_layer(resolve_model("deepseek-v4-flash"))
    assert (lk.moe.expert_ffn, lk.moe.active_experts) == (F, K)
    # forward: fc2's input, K x F = 12,288; backward: fc1's (gate and up) output gradient, K x 2F = 24,576
    assert fused_grouped_mlp_cast_elems_per_token(lk) == (12_288.0, 24_576.0)
    dense = next(x for x in resolve_model("llama-3.1-8b").layers)
    assert fused_grouped_mlp_cast_elems_per_token(dense) == (0.0, 0.0)


def test_epilogue_bytes_by_hand():
    lk = _moe_layer(resolve_model("deepseek-v4-flash"))
    # fc1 epilogue writes fc2's input as MXFP8: 12,288 x 2.0625; fc2's dgrad epilogue reads the BF16 fc1 output
    # (24,576 x 2), writes fc1's gradient as MXFP8 (24,576 x 2.0625), and not the BF16 dgrad output (12,288 x 2)
    by_hand = 12_288 * 2.0625 + 24_576 * 2 + 24_576 * 2.0625 - 12_288 * 2
    assert by_hand == 100_608
    assert fused_grouped_mlp_epilogue_bytes_per_token(lk, MXFP8) == pytest.approx(by_hand)


def test_layer_bytes_saved_by_hand():
    lk = _moe_layer(resolve_model("deepseek-v4-flash"))
    unfused = elementwise_bytes_per_token(lk, H, MXFP8)
    fused = elementwise_bytes_per_token(lk, H, MXFP8, fused_grouped_mlp=True)
    # the forward figure the engine charges once forward and twice backward (a third of the casts and epilogues):
    # SwiGLU 6 B per f x 12,288 = 73,728; casts (12,288 + 24,576) x 4.0625 / 3 = 49,920; epilogues 100,608 / 3
    assert unfused - fused == pytest.approx(73_728 + 49_920 - 100_608 / 3)
    # per routed copy and ffn element, all three passes: 6 + 12 + 4.0625 x 3 - 8.1875 = 22 bytes
    assert 3 * (unfused - fused) == pytest.approx(22.0 * K * F)
    # forward-only bytes (backward_casts False; no code path sets the flag there, serving has no such setting):
    # only the routed SwiGLU's forward, 6 B per routed copy and f element, leaves the count
    assert elementwise_bytes_per_token(lk, H, MXFP8, backward_casts=False, fused_grouped_mlp=True) == \
        pytest.approx(elementwise_bytes_per_token(lk, H, MXFP8, backward_casts=False) - 6 * K * F)


def test_dsv4_step_shortens_by_the_bytes_at_the_hbm_rate():
    spec = yaml.safe_load(DSV4_GB300.read_text())
    assert spec["training"]["moe_fused_grouped_mlp"] is True
    fused_run = parse_run(spec)
    spec["training"]["moe_fused_grouped_mlp"] = False
    plain_run = parse_run(spec)
    ctx = context(fused_run)
    saved_s = estimate(plain_run).step_time_s - estimate(fused_run).step_time_s
    # 43 layers + 1 MTP layer, all MoE; 2,048 / 128 = 16 micro-batches of 4,096 tokens; pp 1, tp 1;
    # 22 B per routed copy and f element: 44 x 16 x 4,096 x 22 x 6 x 2,048 bytes
    bytes_ = 44 * 16 * 4096 * 22.0 * K * F
    assert saved_s == pytest.approx(bytes_ / (ctx.chip.hbm_bw * ctx.calib.mem_eff), rel=0.02)


def _training(**kw):
    return spec_with_training(DSV4_GB300, **kw)


def test_needs_mxfp8():
    for kw in ({"fp8_recipe": "current"}, {"precision": "bf16", "fp8_recipe": None}):
        with pytest.raises(TrainsimError) as e:
            parse_run(_training(**kw))
        assert "moe_fused_grouped_mlp" in str(e.value) and "\n" not in str(e.value)


def test_dense_model_refuses_it():
    spec = yaml.safe_load((RUNS / "megatron-bridge-2511-llama3-8b-b200-8-fp8mx.yaml").read_text())
    spec["training"]["moe_fused_grouped_mlp"] = True
    with pytest.raises(TrainsimError) as e:
        parse_run(spec)
    assert "moe_fused_grouped_mlp" in str(e.value) and "dense" in str(e.value)


def test_gelu_experts_refuse_it():
    # Transformer Engine d0067d0 ops/fused/grouped_mlp.py validate_grouped_mlp_dims: a GLU or ScaledSReLU (squared
    # ReLU) activation, any other a TypeError; a GELU-expert model is an input error, squared ReLU is accepted
    spec = _training()
    spec["model"] = dict(name="moe-gelu", layers=8, hidden=2048, heads=16, ffn_act="gelu", vocab=32000,
                         moe=dict(experts=64, top_k=2, expert_ffn=1024))
    with pytest.raises(TrainsimError) as e:
        parse_run(spec)
    assert "moe_fused_grouped_mlp" in str(e.value) and "gelu" in str(e.value) and "\n" not in str(e.value)
    spec["model"]["ffn_act"] = "relu2"
    assert parse_run(spec).training.moe_fused_grouped_mlp is True
