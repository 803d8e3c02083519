"""qa9: a QA pass's defects (FP8 on pre-FP8 stacks, impossible sweep values, --emit under another stack, the
expert groups of a dense model, the offload phase's bytes). Each test failed before the fix it names; expected
values come from the inputs, the sources cited in the profiles or hand derivations, never from the engine."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_main as _main

from trainsim.errors import TrainsimError

ROOT = Path(__file__).resolve().parents[1]
SC21 = ROOT / "validation/runs/megatron-sc21-a100-7p5b.yaml"   # framework: megatron-lm-2021, precision: bf16

DENSE = """
name: dense 7b
model: {name: t7b, layers: 32, hidden: 4096, heads: 32, ffn: 11008, ffn_act: swiglu, vocab: 32000}
system: dgx-h100
chips: 64
framework: FW
training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 256, precision: PREC}
"""


def _dense(tmp_path, fw="megatron-bridge-2026", prec="bf16"):
    p = tmp_path / "run.yaml"
    p.write_text(DENSE.replace("FW", fw).replace("PREC", prec))
    return p


# ---------------------------------------------------------------- 1. FP8 only on stacks that had it

@pytest.mark.parametrize("fw", ["megatron-lm-2021", "megatron-lm-2022", "deepspeed-megatron", "mindspeed-2024"])
def test_fp8_on_a_pre_fp8_stack_is_an_input_error(capsys, tmp_path, fw):
    """FP8 training reached Megatron-LM with Transformer Engine in Dec 2022 (NVIDIA/Megatron-LM 3499542,
    '--fp8-e4m3 / --fp8-hybrid'), after the 2021 (v2.5) and 2022 (v3.0, d63c254) stacks; MindSpeed's FP8 came in
    2025. Such a run spec was accepted and costed in FP8. Fix: each profile states its `precisions`; a run spec
    outside them is one line naming the file, field, value and the profiles that offer it, exit 2."""
    f = _dense(tmp_path, fw, "fp8")
    code, out, err = _main(capsys, "check", f)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    line = lines[0]
    assert str(f) in line and "training.precision" in line and "fp8" in line and fw in line
    # the profiles that had FP8 training by their sources are named as the ones that offer it
    for other in ("megatron-core-2024", "torchtitan-2024", "nemo-2024", "deepseek-hai-llm"):
        assert other in line


def test_fp8_on_the_sc21_validation_run_is_refused_and_its_bf16_is_not(capsys, tmp_path):
    """The SC21 validation run (megatron-lm-2021, bf16) still loads; the same spec stating fp8 is refused."""
    code, _, _ = _main(capsys, "check", SC21)
    assert code == 0
    bad = tmp_path / "sc21-fp8.yaml"
    bad.write_text(SC21.read_text().replace("precision: bf16", "precision: fp8"))
    code, _, err = _main(capsys, "check", bad)
    assert code == 2 and "megatron-lm-2021 offers precision bf16, not fp8" in err


@pytest.mark.parametrize("fw", ["megatron-core-2024", "torchtitan-2024", "nemo-2024", "megatron-bridge-2026"])
def test_fp8_on_an_fp8_stack_still_loads(capsys, tmp_path, fw):
    """Transformer Engine (Megatron-Core 0.8's --fp8-format, NeMo 24.07's fp8 configs) and torchao's float8
    (torchtitan docs/float8.md, Dec 2024) offer FP8: not refused."""
    code, _, err = _main(capsys, "check", _dense(tmp_path, fw, "fp8"))
    assert code == 0, err


def test_every_profile_states_its_precisions_with_a_source():
    """No profile leaves its precisions to a default: each lists bf16 and cites where its FP8 came (or not)."""
    from trainsim.frameworks import check_precision, frameworks, offering_precision

    for fw, prof in frameworks().items():
        assert "bf16" in prof["precisions"], fw
        assert len(prof.get("precisions_source", "")) > 20, fw
    assert "megatron-lm-2021" not in offering_precision("fp8")
    with pytest.raises(TrainsimError, match="metaseq offers precision bf16, not fp8"):
        check_precision("fp8", "metaseq")


def test_plan_framework_without_fp8_refuses_an_fp8_run(capsys, tmp_path):
    """`plan --framework megatron-lm-2022` on an FP8 run searched plans of a stack that could not run it."""
    code, _, err = _main(capsys, "plan", _dense(tmp_path, prec="fp8"), "--framework", "megatron-lm-2022", "-q")
    assert code == 2 and "--framework" in err and "not fp8" in err


def test_posttrain_trainer_fp8_on_a_pre_fp8_stack_is_an_input_error(capsys, tmp_path):
    """The post-training trainer (`student.train_framework`, `student.precision`) follows the same rule."""
    src = (ROOT / "validation/rl/nemo-rl-h100-dsv3-256-sync.yaml").read_text()
    assert "train_framework: megatron-bridge-2026" in src and "\n  precision: bf16" in src
    bad = tmp_path / "rl.yaml"
    bad.write_text(src.replace("train_framework: megatron-bridge-2026", "train_framework: megatron-lm-2022")
                   .replace("\n  precision: bf16", "\n  precision: fp8"))
    code, _, err = _main(capsys, "check", bad)
    assert code == 2 and "student.precision" in err and "megatron-lm-2022 offers precision bf16, not fp8" in err


# ---------------------------------------------------------------- 2. impossible sweep values refused up front

def test_sweep_value_outside_a_literal_field_is_refused_by_check(capsys, tmp_path):
    """`training.fp8_recipe: [foo]` passed `check` and the sweep exited 0 with every point an input error.
    Fix: a value outside the field's choices (TrainingSpec.fp8_recipe: delayed, current, mxfp8, blockwise) is
    one line at check and at sweep start, exit 2."""
    spec = tmp_path / "sweep.yaml"
    spec.write_text(f"name: bad\nbase: {SC21}\naxes:\n  training.fp8_recipe: [delayed, foo]\n")
    code, out, err = _main(capsys, "check", spec)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "axes.training.fp8_recipe[1]" in err and "'foo'" in err
    for choice in ("delayed", "current", "mxfp8", "blockwise"):
        assert choice in err
    code, _, err = _main(capsys, "sweep", spec, "-o", tmp_path / "out.parquet")
    assert code == 2 and "'foo'" in err
    assert not (tmp_path / "out.parquet").exists()


def test_sweep_plan_list_value_and_null_are_checked_item_by_item(capsys, tmp_path):
    """A plan field's list form is checked per item (`sel` is no recompute mode); null (the stack's default)
    and valid values pass."""
    spec = tmp_path / "sweep.yaml"
    spec.write_text(f"name: bad\nbase: {SC21}\naxes:\n  plan.recompute: [[full, sel]]\n")
    code, _, err = _main(capsys, "check", spec)
    assert code == 2 and "'sel'" in err and "selective" in err
    spec.write_text(f"name: ok\nbase: {SC21}\naxes:\n  training.attention: [flash, null]\n")
    code, _, err = _main(capsys, "check", spec)
    assert code == 0, err


# ---------------------------------------------------------------- 3. --emit under another stack says so

def test_emit_under_another_stack_says_which_on_stderr(capsys, tmp_path):
    """`plan --emit torchtitan` on a mindspeed-2025 run searched under torchtitan-2024's offer without a word.
    Fix: one stderr line naming the stack the emitted plan was searched under, and the run's."""
    code, out, err = _main(capsys, "plan", _dense(tmp_path, "mindspeed-2025"), "--emit", "torchtitan")
    assert code == 0 and "[parallelism]" in out
    notes = [ln for ln in err.splitlines() if "--emit torchtitan" in ln]
    assert len(notes) == 1 and "torchtitan-2024" in notes[0] and "mindspeed-2025" in notes[0]


def test_emit_under_the_runs_own_stack_says_nothing(capsys, tmp_path):
    """mindspeed-2026 is --emit mindspeed's own stack: no note."""
    code, _, err = _main(capsys, "plan", _dense(tmp_path, "mindspeed-2026"), "--emit", "mindspeed")
    assert code == 0 and "searched under" not in err


# ---------------------------------------------------------------- 4. no expert groups for a dense model

def test_dense_model_placement_has_no_expert_groups(capsys, tmp_path):
    """The placement listed `edp` (tp x cp x dp ranks) for a model with no routed experts. Fix: ep / etp / edp
    only where the model has routed experts."""
    code, out, _ = _main(capsys, "estimate", _dense(tmp_path), "--json")
    assert code == 0
    placement = json.loads(out)["plan"]["placement"]
    assert {"tp", "pp", "dp", "cp"} <= set(placement)
    assert not {"ep", "etp", "edp"} & set(placement)
    code, out, _ = _main(capsys, "estimate", _dense(tmp_path))
    assert code == 0 and "edp" not in out


def test_moe_model_placement_keeps_its_expert_groups(capsys):
    """DeepSeek-V3 (256 routed experts) still lists its expert data-parallel group."""
    code, out, err = _main(capsys, "estimate", ROOT / "examples/pretrain-deepseek-v3-h800.yaml", "--json")
    assert code == 0, err
    assert {"ep", "edp"} <= set(json.loads(out)["plan"]["placement"])


# ---------------------------------------------------------------- 5. the offload phase's bytes in the table

def test_posttrain_offload_row_shows_its_bytes_per_chip(capsys):
    """The `posttrain` table's bytes column was empty for the host offload although the state it moves per chip
    is known. Offload then reload moves each byte of the trainer's weights and optimizer state twice:
    2 x (weights + optimizer) per chip, from the phase's own detail."""
    spec = ROOT / "validation/rl/nemo-rl-h100-dsv3-256-sync.yaml"
    code, out, _ = _main(capsys, "posttrain", spec, "--json")
    assert code == 0
    ph, = [p for p in json.loads(out)["phases"] if p["stage"] == "offload"]
    want = 2 * (ph["detail"]["weights_bytes_per_chip"] + ph["detail"]["optimizer_bytes_per_chip"])
    assert ph["bytes_per_chip"] == pytest.approx(want)
    code, out, _ = _main(capsys, "posttrain", spec)
    assert code == 0
    assert f"{want / 1e9:.2f} GB per chip" in out
