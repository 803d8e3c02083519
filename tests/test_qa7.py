"""qa7: a first-use pass over the day's features (sweep chips in pods, no-fit answers, training.fp8_recipe, the RL
trainer's keys). Each test failed before the fix it names; expected values come from the inputs."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trainsim.cli import main
from trainsim.errors import TrainsimError
from trainsim.posttrain.spec import parse_posttrain

ROOT = Path(__file__).resolve().parents[1]
FP8_RL = ROOT / "validation/rl/nemo-rl-h100-dsv3-512-async-fp8.yaml"   # student precision fp8, H100 cluster


def _main(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def _fp8_rl(recipe: str) -> dict:
    doc = yaml.safe_load(FP8_RL.read_text())
    assert doc["student"]["precision"] == "fp8"
    doc["student"]["train_options"]["fp8_recipe"] = recipe
    return doc


def test_rl_trainer_fp8_recipe_checked_at_the_student_precision():
    """student.train_options.fp8_recipe was validated as if the trainer trained in BF16 (the options alone), so an
    FP8 student could never state its recipe ('applies only to precision fp8, not bf16'). Fix: checked at the
    student's precision, which the step gives the trainer."""
    pt = parse_posttrain(_fp8_rl("blockwise"), base_dir=FP8_RL.parent)
    assert pt.student.train_options["fp8_recipe"] == "blockwise"


def test_rl_trainer_fp8_recipe_in_a_bf16_student_still_refused():
    doc = yaml.safe_load(FP8_RL.read_text())
    doc["student"]["precision"] = "bf16"
    doc["student"]["train_options"]["fp8_recipe"] = "delayed"
    with pytest.raises(TrainsimError, match="applies only to precision fp8, not bf16"):
        parse_posttrain(doc, base_dir=FP8_RL.parent)


def test_rl_trainer_mxfp8_on_hopper_exits_2(tmp_path, capsys):
    """mxfp8 before Blackwell was refused in run specs only; the RL trainer on an H100 cluster took it. Fix: the
    one check (spec.check_fp8_recipe) also reads the trainer's recipe with the student cluster's chip."""
    p = tmp_path / "rl.yaml"
    p.write_text(yaml.safe_dump(_fp8_rl("mxfp8"), sort_keys=False))
    code, out, err = _main(capsys, "posttrain", p)
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "rl.yaml" in lines[0] and "student.train_options.fp8_recipe" in lines[0] and "mxfp8" in lines[0]
    assert "nvidia-hopper" in lines[0]
