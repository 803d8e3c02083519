"""qa7: a first-use pass over the day's features (sweep chips in pods, no-fit answers, training.fp8_recipe, the RL
trainer's keys). Each test failed before the fix it names; expected values come from the inputs."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import run_main as _main

from trainsim.errors import TrainsimError
from trainsim.posttrain.spec import parse_posttrain

ROOT = Path(__file__).resolve().parents[1]
FP8_RL = ROOT / "validation/rl/nemo-rl-h100-dsv3-512-async-fp8.yaml"   # student precision fp8, H100 cluster


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


SWEEP_BASE = """model: llama-3.1-8b
system: dgx-h100
chips: 64
training: {tokens: 1e11, seq_len: 4096, global_batch_seqs: 256, precision: bf16}
"""


@pytest.mark.parametrize("value, shown", [("0 pods", "'0 pods'"), (-8, "-8"), (0, "0"), ("0", "'0'")])
def test_sweep_non_positive_chips_refused_with_the_spec(tmp_path, capsys, value, shown):
    """A chips axis of '0 pods' or -8 passed `trainsim check` as a valid sweep and the sweep exited 0 with every
    point an error; every other numeric axis refuses a non-positive value when the spec is read. Fix:
    sweep/targets.py refuses it there (0 domains or chips have no plan on any system)."""
    (tmp_path / "run.yaml").write_text(SWEEP_BASE)
    p = tmp_path / "sweep.yaml"
    p.write_text(yaml.safe_dump({"name": "x", "base": "run.yaml", "axes": {"chips": ["2 pods", value]}}))
    for cmd in (("check", p), ("sweep", p, "-o", tmp_path / "o.parquet")):
        code, out, err = _main(capsys, *cmd)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "Traceback" not in err
        assert "sweep.yaml" in lines[0] and "axes.chips[1]" in lines[0] and shown in lines[0]
        assert "positive" in lines[0]
    assert not (tmp_path / "o.parquet").exists()


def test_sweep_chips_in_pods_still_resolved_per_system(tmp_path, capsys):
    """The fix above keeps '2 pods' read with each point's system: 2 x 8 (dgx-h100) and 2 x 72 (gb200-nvl72)."""
    pd = pytest.importorskip("pandas")
    (tmp_path / "run.yaml").write_text(SWEEP_BASE)
    p = tmp_path / "sweep.yaml"
    p.write_text(yaml.safe_dump({"name": "x", "base": "run.yaml",
                                 "axes": {"system": ["dgx-h100", "gb200-nvl72"], "chips": ["2 pods"]},
                                 "record": ["inputs", "time"]}))
    code, _, err = _main(capsys, "sweep", p, "-o", tmp_path / "o.parquet")
    assert code == 0, err
    d = pd.read_parquet(tmp_path / "o.parquet").set_index("system")
    assert d.loc["dgx-h100", "chips"] == 2 * 8 and d.loc["gb200-nvl72", "chips"] == 2 * 72
    assert list(d["axis.chips"]) == ["2 pods", "2 pods"]


# 8B on one 8-GPU H100 server, every plan field stated and far from fitting: ZeRO 0 keeps 18 B/parameter of
# weights, FP32 grads and Adam states (8.03e9 x 18 B = 135 GiB) before activations, so no single stated field
# freed (nor the batch, nor a chip count with dp 8 and tp x pp = 1 held) has a plan; tp 2 with ZeRO 1 does.
STATED_NO_FIT = """model: llama-3.1-8b
system: dgx-h100
chips: 8
training: {tokens: 1e10, seq_len: 8192, global_batch_seqs: 64, precision: bf16}
plan: {tp: 1, pp: 1, dp: 8, zero: 0, micro_batch: 4, recompute: none}
"""
H100_HBM_BYTES = 80 * 2**30   # catalog nvidia-h100-sxm5: 80 GiB


@pytest.mark.parametrize("cmd", ["estimate", "plan"])
def test_stated_plan_several_changes_from_fitting_still_gets_an_alternative(tmp_path, capsys, cmd):
    """A stated plan no single change makes fit exited 1 with no alternative at all ('no answer' with nothing to
    try). Fix: alternatives.py then offers the whole plan searched."""
    import json
    p = tmp_path / "run.yaml"
    p.write_text(STATED_NO_FIT)
    code, out, err = _main(capsys, cmd, p, "--json")
    assert code == 1
    alts = json.loads(out)["alternatives"]
    assert alts, "no alternative offered"
    for a in alts:
        assert 0 < a["memory_per_chip_bytes"] <= H100_HBM_BYTES
        assert a["chips_used"] <= 8 and 0 < a["mfu"] < 1 and a["step_time_s"] > 0


def test_plan_csv_with_no_plan_prints_the_alternatives(tmp_path, capsys):
    """`trainsim plan --csv` with no plan printed one empty line and exit 1: no message, no alternatives (--json
    lists them). Fix: the alternatives as CSV rows and the one error line on stderr, as estimate --csv."""
    import csv
    import io
    import json
    p = tmp_path / "run.yaml"
    p.write_text(STATED_NO_FIT)
    code, out, err = _main(capsys, "plan", p, "--json")
    texts = [a["text"] for a in json.loads(out)["alternatives"]]
    for cmd in ("plan", "estimate"):
        code, out, err = _main(capsys, cmd, p, "--csv")
        assert code == 1
        rows = list(csv.DictReader(io.StringIO(out)))
        assert [r["text"] for r in rows] == texts
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "run.yaml" in lines[0] and "no plan fits" in lines[0]


def test_report_of_a_run_no_plan_fits_exits_1(tmp_path, capsys):
    """`trainsim report` of a run no plan fits wrote its page and exited 0, where estimate and plan exit 1 (the
    README's exit codes: 1 no answer, no plan fits). Fix: the page is still written (it says why and what would
    fit), then one error line naming the file and exit 1."""
    p = tmp_path / "run.yaml"
    p.write_text(STATED_NO_FIT)
    out_html = tmp_path / "r.html"
    code, out, err = _main(capsys, "report", p, "-o", out_html, "--no-sweeps")
    assert code == 1 and out_html.exists() and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "run.yaml" in lines[0] and "no plan fits" in lines[0]


def test_plan_field_the_stack_lacks_is_refused_with_the_spec(tmp_path, capsys):
    """A stated plan field the run's framework does not offer (ZeRO 3 on megatron-core-2024, whose profile offers
    0 and 1: catalog/data/framework_schedules.yaml) passed `trainsim check` as valid, and estimate / plan refused
    it without the file name ('error: plan.zero: ...'). Fix: parse_run applies the stack's plan limits, so every
    command gives the one line with file, field, value and what the stack offers."""
    p = tmp_path / "run.yaml"
    p.write_text("""model: llama-3.1-70b
system: dgx-h100
chips: 64
framework: megatron-core-2024
training: {tokens: 1e11, seq_len: 8192, global_batch_seqs: 64, precision: bf16}
plan: {tp: 8, pp: 1, zero: 3, micro_batch: 1, recompute: full}
""")
    for cmd in ("check", "estimate", "plan"):
        code, out, err = _main(capsys, cmd, p)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, (cmd, err)
        assert "run.yaml" in lines[0] and "plan.zero" in lines[0] and "3" in lines[0] and "0, 1" in lines[0]


def test_check_knows_every_seed_scenario_kind_in_a_fresh_process():
    """`trainsim check scenarios/S7.yaml` (the README: check validates any spec, scenarios too) exited 2 with
    'unknown scenario kind posttrain_multicluster' and no file name: check imported the kinds of
    trainsim.scenario.kinds but not trainsim.posttrain.scenario, which registers S7's. A fresh process, since an
    earlier test in this one may have registered it. Fix: check imports scenario.run (every KIND_MODULES)."""
    import subprocess
    import sys
    # one fresh process per scenario, all started at once: `check` runs the scenario it checks, and the nine runs
    # are independent, so they share the CPUs instead of waiting for each other
    procs = {f.name: subprocess.Popen([sys.executable, "-m", "trainsim", "check", str(f)], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for f in sorted((ROOT / "scenarios").glob("S*.yaml"))}
    try:
        for name, proc in procs.items():
            out, err = proc.communicate()
            assert proc.returncode == 0 and "valid scenario spec" in out, (name, err)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_check_unknown_scenario_kind_names_the_file(tmp_path, capsys):
    text = (ROOT / "scenarios/S7.yaml").read_text().replace("kind: posttrain_multicluster", "kind: posttrain_multi")
    p = tmp_path / "s.yaml"
    p.write_text(text)
    code, out, err = _main(capsys, "check", p)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert "s.yaml" in lines[0] and "kind" in lines[0] and "'posttrain_multi'" in lines[0]
    assert "posttrain_multicluster" in lines[0]


def test_posttrain_validate_piped_shows_whole_run_names(capsys):
    """`trainsim posttrain --validate | less` cut every run name to 'nemo…' (an 80-column console when piped), so
    the 17 rows could not be told apart. Fix: the wide console (160 columns when piped). Each name is the file's."""
    code, out, err = _main(capsys, "posttrain", "--validate")
    assert code == 0, err
    files = sorted((ROOT / "validation/rl").glob("*.yaml"))
    names = [yaml.safe_load(f.read_text()).get("name") or f.stem for f in files]
    assert names and all(n in out for n in names)
    assert "…" not in out


def test_fp8_recipe_with_bf16_names_the_field(tmp_path, capsys):
    """'training: fp8_recipe delayed applies only to precision fp8, not bf16' named the section, not the field
    (a model-level check). Fix: a field check on fp8_recipe, so the line names training.fp8_recipe and its line."""
    p = tmp_path / "run.yaml"
    p.write_text(SWEEP_BASE.replace("precision: bf16}", "precision: bf16, fp8_recipe: delayed}"))
    code, out, err = _main(capsys, "estimate", p)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert "run.yaml: training.fp8_recipe:" in lines[0] and "delayed" in lines[0] and "bf16" in lines[0]


def test_posttrain_says_one_step_not_one_steps():
    """A spec of one RL step printed '1 steps'; the count agrees with its noun (and takes separators)."""
    import subprocess
    import sys
    from pathlib import Path
    spec = Path(__file__).resolve().parent.parent / "validation" / "rl" / "nemo-rl-h100-q30-32-sync.yaml"
    out = subprocess.run([sys.executable, "-m", "trainsim", "posttrain", str(spec)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())          # the console may wrap the line
    assert "1 step ->" in text and "1 steps" not in text


def test_torchtitan_emit_of_an_fp8_run_turns_float8_on():
    """qa7 noticed `plan --emit torchtitan` of an FP8 run wrote no float8 setting, so the emitted config trained in
    BF16 while the estimate assumed FP8 GEMMs. torchtitan's TOML of 2025 turns them on with
    [model] converters = ["float8"] (docs/float8.md at 57387af0e); a BF16 run gets no such section."""
    import tomllib
    from pathlib import Path

    from trainsim.emit import emit_args
    from trainsim.estimate import estimate
    from trainsim.spec import load_run
    runs = Path(__file__).resolve().parent.parent / "validation" / "runs"
    fp8 = tomllib.loads(emit_args(estimate(load_run(runs / "torchtitan-llama31-h100-8b-8gpu-fsdp-fp8-compile.yaml")),
                                  "torchtitan"))
    assert fp8["model"]["converters"] == ["float8"]
    bf16 = tomllib.loads(emit_args(estimate(load_run(runs / "torchtitan-llama31-h100-8b-8gpu-fsdp-bf16-compile.yaml")),
                                   "torchtitan"))
    assert "model" not in bf16


def test_estimate_says_which_fp8_recipe_it_priced():
    """qa7 noticed the resolved FP8 recipe was invisible. A NeMo 25.02 FP8 run that names none takes NeMo 2024's
    delayed scaling (its launcher configs: amax history 1024); a BF16 run has no recipe."""
    from pathlib import Path

    from trainsim.estimate import estimate
    from trainsim.spec import load_run
    runs = Path(__file__).resolve().parent.parent / "validation" / "runs"
    d = estimate(load_run(runs / "nemo-2502-llama3-8b-b200-8-fp8.yaml")).to_dict()
    assert d["precision"] == "fp8" and d["fp8_recipe"] == "delayed"
    assert "fp8_recipe" not in estimate(load_run(runs / "torchtitan-llama31-h100-8b-8gpu-fsdp-bf16-compile.yaml")).to_dict()
