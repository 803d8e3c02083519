"""qa21b: four "sane-looking but wrong" outputs a QA pass found and left. Each regression test failed before its fix
(the defect named in its docstring); expected values are hand derivations or published figures written here, never
the engine's own output."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import one_line, run_main, write_spec

ROOT = Path(__file__).resolve().parents[1]
Q30 = ROOT / "validation" / "rl" / "nemo-rl-gb200-q30-16-sync.yaml"
DSV3_H100 = ROOT / "validation" / "rl" / "nemo-rl-h100-dsv3-256-sync.yaml"


def _variant(tmp_path, src: Path, name: str, **student) -> Path:
    doc = yaml.safe_load(src.read_text())
    doc["student"].update(student)
    return write_spec(tmp_path, yaml.safe_dump(doc, sort_keys=False), name)


# ---------------------------------------------------------------- 1. utilisation was busy time over step time


def test_posttrain_utilisation_is_chip_time_working_over_chip_time(tmp_path, capsys):
    """`trainsim posttrain` printed 'utilisation: main 100%' for the NeMo RL Qwen3-30B-A3B recipe on 1,000,000
    chips, with its own line above saying '997,952 of 1,000,000 chips idle': it was the time the cluster was held
    by a phase over the step. Utilisation is chip-time working over chip-time available. Hand derivation from the
    phase table: a sync step is the chain of its phases, every phase but the rollout runs on all the chips, the
    rollout on chips - idle, so utilisation = 1 - (rollout seconds / step) x (idle / chips); the rollout is about
    half the step here, so the cluster is about half used, not 100%."""
    doc = yaml.safe_load(Q30.read_text())
    doc["clusters"]["main"]["chips"] = 100_000
    # qa22: 100,000 chips (not 1,000,000) and the trainer's tp / cp / pp left to the search: the recipe's tp 1, cp 1,
    # pp 1 would be dp 1,000,000 over a 512-sequence global batch, which NeMo RL refuses, and no plan whose dp
    # divides 512 keeps 75% of 1,000,000 chips busy
    doc["student"]["train_plan"] = {"ep": 16}
    p = write_spec(tmp_path, yaml.safe_dump(doc, sort_keys=False), "rl.yaml")
    code, out, err = run_main(capsys, "posttrain", p, "--json")
    assert code == 0, err
    res = json.loads(out)
    ro = next(ph for ph in res["phases"] if ph["stage"] == "rollout")
    idle, chips = ro["detail"]["idle_chips"], ro["chips"]
    assert chips == 100_000 and idle > 0.97 * chips
    assert all(ph["chips"] == chips for ph in res["phases"] if ph.get("cluster"))   # colocated: one chip group
    assert res["step_time_s"] == pytest.approx(sum(ph["seconds"] for ph in res["phases"]), rel=1e-9)   # sync chain
    want = 1.0 - ro["seconds"] / res["step_time_s"] * idle / chips
    assert res["utilisation"]["main"] == pytest.approx(want, rel=1e-9)
    assert res["utilisation"]["main"] < 0.6
    assert "chip" in res["utilisation_definition"]
    # the table says what the JSON says
    code, out, err = run_main(capsys, "posttrain", p)
    assert code == 0, err
    assert f"main {want:.0%}" in " ".join(out.split()) and "main 100%" not in out


def test_posttrain_utilisation_without_idle_chips_stays_whole(capsys):
    """The recipe as published (16 GPUs, 2,048 samples: every rollout server busy, every phase on all 16 chips,
    steps in sequence) keeps every chip working for the whole step: 100%, as before."""
    code, out, err = run_main(capsys, "posttrain", Q30, "--json")
    assert code == 0, err
    res = json.loads(out)
    assert all(not (ph.get("detail") or {}).get("idle_chips") for ph in res["phases"])
    assert res["utilisation"]["main"] == pytest.approx(1.0, rel=1e-9)


# ---------------------------------------------------------------- 2. duplicate sweep values


def _sweep(tmp_path, axes: dict) -> Path:
    base = write_spec(tmp_path)
    return write_spec(tmp_path, yaml.safe_dump({"base": str(base), "axes": axes}, sort_keys=False), "sweep.yaml")


@pytest.mark.parametrize("axes, field, what", [
    ({"plan.tp": [8, 8, 16]}, "axes.plan.tp", "value 8"),
    # one value written two ways: 3.35 TB/s (decimal) is 3.35e12 B/s
    ({"system.chip.hbm_bw": ["3.35 TB/s", 3.35e12]}, "axes.system.chip.hbm_bw", "given twice"),
    ({"pair": {"zip": {"plan.tp": [2, 2], "plan.pp": [1, 1]}}}, "axes.pair.zip", "row plan.tp 2, plan.pp 1"),
])
def test_sweep_refuses_a_value_given_twice(tmp_path, capsys, axes, field, what):
    """`plan.tp: [8, 8, 16]` made 3 points, two of them the same run: refused with the spec, one line naming the
    axis and the value (exit 2), as an empty value list or one target on two axes is."""
    code, out, err = run_main(capsys, "sweep", _sweep(tmp_path, axes), "-o", tmp_path / "out.parquet")
    line = one_line(code, err, 2)
    assert field in line and what in line and "twice" in line
    assert not (tmp_path / "out.parquet").exists()


def test_sweep_zip_may_repeat_a_value_in_one_column(tmp_path):
    """A zip repeats a value in one column where the rows differ (tp 2 at pp 1 and pp 2): two distinct points."""
    from trainsim.sweep.spec import load_sweep
    sp = load_sweep(_sweep(tmp_path, {"pair": {"zip": {"plan.tp": [2, 2], "plan.pp": [1, 2]}}}))
    assert sp.n_points == 2


# ---------------------------------------------------------------- 3. explorer edits without an upper bound


def test_explorer_refuses_absurd_system_edits():
    """The explorer took `hbm_bw` 1e300 B/s (finite, positive) and ran it. Each numeric edit now has an upper bound
    of 100 x the catalog's largest value of that field: the fastest HBM shipping is 8 TB/s (B200, MI355X), so
    100 TB/s (a what-if) passes and 10 PB/s (over 1,000 x) does not; prices above $10M per chip (the B200 system
    lists ~$40k) neither."""
    from trainsim.errors import TrainsimError
    from trainsim.serve.inputs import Edits, RunRequest, validate
    assert validate(Edits, {"hbm_bw": 100e12}).hbm_bw == 100e12
    for field, v in (("hbm_bw", 1e300), ("hbm_bw", 10e15), ("price_per_chip_usd", 1e7 * 10),
                     ("bf16_flops", 1e300), ("scale_out_bw", 1e300), ("hbm_bytes", 1e300)):
        with pytest.raises(TrainsimError) as e:
            validate(RunRequest, {"spec": {}, "edits": {field: v}})
        assert f"edits.{field}" in str(e.value) and "at most" in str(e.value) and "\n" not in str(e.value)


def test_explorer_answers_400_naming_the_field():
    """Over HTTP: a 400 whose one-line error names the edit."""
    from test_serve import SPEC, call
    from trainsim.serve import app as serve_app
    with serve_app.background() as u:
        status, text = call(u, "/api/plan", {"spec": SPEC, "edits": {"hbm_bw": 1e300}})
    assert status == 400
    msg = json.loads(text)["error"]
    assert "edits.hbm_bw" in msg and "\n" not in msg


# ---------------------------------------------------------------- 4. fp4 rollouts on a chip without fp4


def test_posttrain_fp4_rollouts_on_h100_say_their_rate(tmp_path, capsys):
    """FP4 rollouts on H100 (no FP4 tensor cores) ran at the FP8 rate without saying so; `trainsim infer` has said
    it since qa19 (gemm_peak_basis). H100 SXM dense FP8: 1,979 TFLOP/s (NVIDIA H100 datasheet, 3,958 with
    sparsity). The note is infer's own, word for word."""
    p = _variant(tmp_path, DSV3_H100, "rl.yaml", rollout_precision="fp4")
    code, out, err = run_main(capsys, "posttrain", p, "--json")
    assert code == 0, err
    ro = next(ph for ph in json.loads(out)["phases"] if ph["stage"] == "rollout")["detail"]
    assert ro["gemm_peak_flops"] == pytest.approx(1979e12, rel=0.01)
    assert "no FP4" in ro["gemm_peak_basis"] and "FP8" in ro["gemm_peak_basis"]
    serving = write_spec(tmp_path, yaml.safe_dump({
        "name": "s", "model": "llama-3.1-8b", "system": "dgx-h100",
        "serving": {"input_len": 1024, "output_len": 256, "precision": "fp4"}}), "serve.yaml")
    code, out_i, err_i = run_main(capsys, "infer", serving, "--json")
    assert code == 0, err_i
    assert json.loads(out_i)["gemm_peak_basis"] == ro["gemm_peak_basis"]
    code, out, err = run_main(capsys, "posttrain", p)
    assert code == 0, err
    assert "GEMM peak used 1,979 TFLOP/s (chip has no FP4 rate" in " ".join(out.split())

