"""FP8 scaling recipe (run spec training.fp8_recipe): validation, the stack's default, the quantisation bytes per
recipe and the GEMM efficiency that block-scaled recipes use. Expected numbers are derived by hand below."""
from dataclasses import replace as dreplace
from pathlib import Path

import pytest
import yaml

from conftest import spec_with_training
from trainsim.errors import TrainsimError
from trainsim.estimate import context, estimate
from trainsim.frameworks import runtime_settings
from trainsim.model.load import resolve_model
from trainsim.perf.compute import (elementwise_bytes_per_token, fp8_cast_bytes_per_elem, fp8_cast_elems_per_token,
                                   training_fp8_cast_bytes)
from trainsim.spec import parse_run
from trainsim.validate.calibrate import CalRun

RUNS = Path(__file__).resolve().parents[1] / "validation" / "runs"
CS_B200 = RUNS / "megatron-bridge-2511-llama3-8b-b200-8-fp8cs.yaml"
CS_H100 = RUNS / "megatron-bridge-2511-llama3-8b-h100-8-fp8cs-fsdp.yaml"


def _spec(path=CS_B200, **training):
    return spec_with_training(path, **training)


@pytest.mark.parametrize("recipe, columnwise, hand", [
    ("delayed", False, 2 + 1),                 # read BF16, write FP8; amax recorded by the cast kernel
    ("delayed", True, 2 + 1 + 1),              # + the transposed copy (Hopper)
    ("current", False, 2 + 2 + 1),             # + the amax pass reading the input once more
    ("current", True, 2 + 2 + 1 + 1),
    ("mxfp8", False, 2 + 2 * (1 + 1 / 32)),    # rowwise and columnwise copies, one E8M0 byte per 32 elements each
    ("mxfp8", True, 2 + 2 * (1 + 1 / 32)),
    ("blockwise", False, 2 + 2 * (1 + 4 / 128)),  # both directions, one fp32 scale per 128 elements each
])
def test_cast_bytes_per_recipe(recipe, columnwise, hand):
    assert fp8_cast_bytes_per_elem(recipe, columnwise) == pytest.approx(hand)


def test_unknown_recipe_is_refused():
    with pytest.raises(ValueError, match="expected an FP8 recipe"):
        fp8_cast_bytes_per_elem("hybrid", False)


# Llama 3.1 8B, per token and layer. Forward casts, one per distinct GEMM input: qkv (hidden 4096), o (4096),
# fc1 = gate + up (4096), down (ffn 14336): 26,624. Backward casts, one per output gradient: qkv 4096 + 1024 +
# 1024, o 4096, fc1 2 x 14336, down 4096: 43,008. Together 69,632 elements.
LLAMA8_FWD, LLAMA8_BWD = 4096 + 4096 + 4096 + 14336, 4096 + 1024 + 1024 + 4096 + 2 * 14336 + 4096


def test_cast_elements_count_shared_inputs_once():
    lk = resolve_model("llama-3.1-8b").layers[0]
    assert fp8_cast_elems_per_token(lk) == (LLAMA8_FWD, LLAMA8_BWD) == (26_624, 43_008)
    # routed experts count x top-k, the router not at all (Mixtral: 2 of 8 experts, hidden 4096, ffn 14336)
    mx = resolve_model("mixtral-8x7b").layers[0]
    assert fp8_cast_elems_per_token(mx) == (4096 + 4096 + 2 * (4096 + 14336),
                                            4096 + 1024 + 1024 + 4096 + 2 * (2 * 14336 + 4096))


def test_layer_bytes_grow_by_the_recipe_difference_times_the_cast_elements():
    # training: forward + 2 x backward of these kernels carry all 69,632 casts, a third in the forward figure;
    # current - delayed on Blackwell = 2 bytes each (the amax pass); serving: forward inputs only, 3 bytes each
    a = resolve_model("llama-3.1-8b")
    lk = a.layers[0]
    cur = elementwise_bytes_per_token(lk, a.hidden, fp8_cast_bytes_per_elem("current", False))
    dly = elementwise_bytes_per_token(lk, a.hidden, fp8_cast_bytes_per_elem("delayed", False))
    bf16 = elementwise_bytes_per_token(lk, a.hidden, 0.0)
    assert 3 * (cur - dly) == pytest.approx(2 * (LLAMA8_FWD + LLAMA8_BWD))
    assert 3 * (dly - bf16) == pytest.approx(3 * (LLAMA8_FWD + LLAMA8_BWD))
    serve = elementwise_bytes_per_token(lk, a.hidden, 3.0, backward_casts=False)
    assert serve - bf16 == pytest.approx(3 * LLAMA8_FWD)


def test_step_memory_bound_time_follows_the_recipe():
    # 8 B200, tp 1 pp 1, micro-batch 2 x 8192 tokens, 128 / (2 x 8) = 8 micro-batches, 32 layers; current
    # scaling reads every cast element once more: 8 x 32 x 2 B x 69,632 x 16,384 / (HBM bw x mem_eff) more
    cur = estimate(parse_run(_spec(fp8_recipe="current")))
    dly = estimate(parse_run(_spec(fp8_recipe="delayed")))
    ctx = context(parse_run(_spec(fp8_recipe="current")))
    hand = 8 * 32 * 2 * (LLAMA8_FWD + LLAMA8_BWD) * 16_384 / (ctx.chip.hbm_bw * ctx.calib.mem_eff)
    assert cur.breakdown["memory_bound"] - dly.breakdown["memory_bound"] == pytest.approx(hand, rel=1e-9)
    assert cur.breakdown["compute_gemm"] == pytest.approx(dly.breakdown["compute_gemm"])   # both per-tensor


def test_hopper_per_tensor_casts_write_the_transpose():
    ctx = context(parse_run(_spec(CS_H100)))
    assert ctx.fp8_recipe == "current" and ctx.fp8_transposed_copy
    assert training_fp8_cast_bytes(ctx) == 6.0
    ctx_b = context(parse_run(_spec()))
    assert not ctx_b.fp8_transposed_copy and training_fp8_cast_bytes(ctx_b) == 5.0
    assert training_fp8_cast_bytes(context(parse_run(_spec(precision="bf16", fp8_recipe=None)))) == 0.0


def test_block_scaled_recipes_use_their_own_gemm_efficiency():
    ctx = context(parse_run(_spec(fp8_recipe="mxfp8")))
    c = dreplace(ctx, calib=ctx.calib.with_(gemm_eff=0.7, gemm_eff_fp8=0.6, gemm_eff_fp8_block_ratio=0.9))
    assert c.gemm_eff == pytest.approx(0.54)        # 0.6 x 0.9
    assert dreplace(c, fp8_recipe="current").gemm_eff == 0.6
    assert dreplace(c, fp8_recipe="delayed").gemm_eff == 0.6
    assert dreplace(c, fp8_recipe="blockwise").gemm_eff == pytest.approx(0.54)
    assert dreplace(c, precision="bf16").gemm_eff == 0.7


def test_unstated_recipe_is_the_stacks():
    spec = _spec()
    del spec["training"]["fp8_recipe"]
    assert runtime_settings(parse_run(spec).training, "megatron-bridge-2025")["fp8_recipe"] == "current"
    assert runtime_settings(parse_run(spec).training, "nemo-2024")["fp8_recipe"] == "delayed"
    assert runtime_settings(parse_run(spec).training, "torchtitan-2024")["fp8_recipe"] == "current"
    assert runtime_settings(parse_run(spec).training, "deepseek-hai-llm")["fp8_recipe"] == "blockwise"
    # a stack without a stated recipe: Megatron-Core's TransformerConfig.fp8_recipe default, 'delayed'
    assert runtime_settings(parse_run(spec).training, "megatron-core-2024")["fp8_recipe"] == "delayed"
    assert context(parse_run(spec)).fp8_recipe == "current"   # the run's own stack, megatron-bridge-2025


def test_recipe_without_fp8_is_an_error():
    with pytest.raises(TrainsimError) as e:
        parse_run(_spec(precision="bf16"))
    assert "fp8_recipe" in str(e.value) and "\n" not in str(e.value)


def test_unknown_recipe_name_is_an_error():
    with pytest.raises(TrainsimError) as e:
        parse_run(_spec(fp8_recipe="tensorwise"))
    assert "fp8_recipe" in str(e.value)


def test_mxfp8_on_hopper_is_an_error():
    with pytest.raises(TrainsimError) as e:
        parse_run(_spec(CS_H100, fp8_recipe="mxfp8"))
    assert "mxfp8" in str(e.value) and "nvidia-hopper" in str(e.value)


def test_calibration_groups_block_scaled_runs_apart():
    mx = parse_run(yaml.safe_load((RUNS / "megatron-bridge-2511-llama3-8b-b200-8-fp8mx.yaml").read_text()))
    cs = parse_run(_spec())
    bf = parse_run(_spec(precision="bf16", fp8_recipe=None))
    cal = [CalRun(r.name, r, r.system.chip.family, 1.0, None) for r in (mx, cs, bf)]
    assert [c.precision for c in cal] == ["fp8", "fp8", "bf16"]
    assert [c.block_scaled for c in cal] == [True, False, False]


def test_every_fp8_validation_run_names_its_recipe():
    for f in sorted(RUNS.glob("*.yaml")):
        tr = yaml.safe_load(f.read_text())["training"]
        if tr.get("precision") == "fp8":
            assert tr.get("fp8_recipe") in ("delayed", "current", "mxfp8", "blockwise"), f.name


def test_emit_writes_the_runs_recipe_in_megatron_spelling():
    from trainsim.emit import megatron_args
    for recipe, flag in (("current", "tensorwise"), ("delayed", "delayed"), ("mxfp8", "mxfp8")):
        args, _ = megatron_args(estimate(parse_run(_spec(fp8_recipe=recipe))))
        assert f"--fp8-recipe {flag}" in args
