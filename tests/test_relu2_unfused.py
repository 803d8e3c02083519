"""Squared ReLU as two eager PyTorch ops (NeMo 1.x / 2.x, Megatron-Bridge 2025) against Megatron-LM's fused one.

Sources (stated in trainsim/catalog/data/framework_schedules.yaml and trainsim/perf/compute.py act_fn_bytes_per_f):
NVIDIA/NeMo nemo/collections/llm/fn/activation.py squared_relu at v2.2.0 / v2.3.0 (``torch.pow(F.relu(x), 2)``, its
``@torch.jit.script`` commented out); NeMo r2.0.0rc1 nemo/collections/nlp/modules/common/megatron/utils.py; NVIDIA
Megatron-LM megatron/training/activations.py at core_r0.8.0 (``@jit_fuser`` squared_relu)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from trainsim.frameworks import profile, stack_flags
from trainsim.model.inline import InlineModel, build_inline
from trainsim.parallel.plan import Plans
from trainsim.perf.compute import act_fn_bytes_per_f, elementwise_bytes_per_token, elementwise_fwd
from trainsim.perf.recompute import selective_recompute_fwd

from conftest import ctx_for, make_system


@pytest.fixture(scope="module")
def nemotron15b():
    # Nemotron-4 15B's layer (NeMo Nemotron4Config15B): hidden 6144, 48 / 8 heads, ffn 24576, squared ReLU
    return build_inline(InlineModel(name="n15-2", layers=2, hidden=6144, heads=48, kv_heads=8, ffn=24576,
                                    vocab=256000, ffn_act="relu2"))


def test_bytes_per_f_by_op_count():
    # fused: one kernel reads and writes each BF16 element, 2 + 2 = 4; relu then pow as two ops: 2 x 4 = 8
    assert act_fn_bytes_per_f("relu2") == 4.0
    assert act_fn_bytes_per_f("relu2", relu2_unfused=True) == 8.0
    assert act_fn_bytes_per_f("relu2", eager=True) == 8.0      # any stack without a fuser (torchtitan eager)
    # the flag is about squared ReLU only: SwiGLU and GELU keep their fused / eager counts
    assert act_fn_bytes_per_f("swiglu", relu2_unfused=True) == 6.0
    assert act_fn_bytes_per_f("gelu", relu2_unfused=True) == 4.0


def test_profiles_state_which_stacks_leave_it_unfused():
    assert stack_flags("nemo-2024")["relu2_unfused"]
    assert stack_flags("megatron-bridge-2025")["relu2_unfused"]
    # Megatron-LM's own training loop wraps squared_relu in @jit_fuser (fused)
    assert not stack_flags("megatron-core-2024")["relu2_unfused"]
    for fw in ("nemo-2024", "megatron-bridge-2025"):
        assert "torch.pow" in profile(fw)["relu2_unfused_source"]


def test_layer_bytes_grow_by_four_per_ffn_element(nemotron15b):
    # per token and layer: the extra relu pass reads and writes the 24,576-wide intermediate once more,
    # 4 x 24,576 = 98,304 bytes, whatever the FP8 casts (3 bytes per element for delayed scaling on Blackwell)
    lk = nemotron15b.layers[0]
    for cast in (0.0, 3.0):
        fused = elementwise_bytes_per_token(lk, 6144, cast)
        unfused = elementwise_bytes_per_token(lk, 6144, cast, relu2_unfused=True)
        assert unfused - fused == 98_304


def test_step_and_recompute_charge_it(nemotron15b):
    # 8,192 tokens of one layer at 8 TB/s x mem_eff: the difference is 98,304 x 8,192 B / (8e12 x mem_eff)
    sysm = make_system(bf16=2.25e15, hbm=180e9, up=900e9, out=50e9, hbm_bw=8e12)
    ctx = ctx_for(nemotron15b, sysm, chips=8, seq=4096, gbs=16)
    p = Plans.from_columns(tp=1, pp=1, vpp=1, ep=1, etp=1, cp=1, dp=8, zero=1, recompute=0, mb=2, schedule=0,
                           node_limit=0)
    lk = nemotron15b.layers[0]
    rate = 8e12 * ctx.calib.mem_eff
    base = float(elementwise_fwd(lk, ctx, p, 8192)[0])
    extra = float(elementwise_fwd(lk, replace(ctx, relu2_unfused=True), p, 8192)[0]) - base
    assert extra == pytest.approx(98_304 * 8192 / rate, rel=1e-9)
    # selective recompute of the MLP reruns the activation: 8 bytes per f unfused against 4
    r0 = float(selective_recompute_fwd(lk, ctx, p, 8192, ("mlp",))[0])
    r1 = float(selective_recompute_fwd(lk, replace(ctx, relu2_unfused=True), p, 8192, ("mlp",))[0])
    assert r1 - r0 == pytest.approx(4 * 24576 * 8192 / rate, rel=1e-9)


def test_unknown_profile_flag_lookup_is_an_error():
    with pytest.raises(Exception, match="framework"):
        stack_flags("nemo-2099")
