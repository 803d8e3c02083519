"""Validation against published runs: the reported reference (conventions, step time, whole-run), the runner and
the ``trainsim validate`` command. No accuracy bounds here (they belong to the calibration)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import trainsim
from trainsim.errors import TrainsimError
from trainsim.validate import reported_tokens_per_s_per_chip, validate
from trainsim.validate.reference import (flops_per_token, megatron_recompute_flops_per_token, reference,
                                         tokens_from_mfu)
from trainsim.validate.runner import default_runs_dir, expand_paths

RUNS = Path(__file__).resolve().parents[1] / "validation" / "runs"


def test_mfu_to_tokens_megatron_convention_by_hand():
    """Megatron-Core GPT 462B on 6144 H100: 459.9 TFLOP/s per GPU (MFU 459.9 / 989 = 0.46502; the table's MFU
    column rounds it to 0.47), Megatron FLOP count.

    Per iteration 72 B s l h^2 (1 + s/6h + V/12lh), so per token 72 l h^2 (1 + s/6h + V/12lh) with
    l = 112, h = 18432, s = 4096, V = 131072:
      72 x 112 x 18432^2              = 8064 x 339,738,624       = 2.739652e12
      1 + 4096 / 110592 + 131072 / (12 x 112 x 18432) = 1 + 0.0370370 + 0.0052910 = 1.0423280
      FLOPs per token                 = 2.739652e12 x 1.0423280  = 2.855614e12
      tokens/s per chip               = 0.46502 x 989e12 / 2.855614e12 = 161.05 (459.9e12 / 2.855614e12 = 161.05)
    """
    run = trainsim.load_run(RUNS / "megatron-core-h100-2024-462b-6144.yaml")
    assert run.reported.mfu == 0.46502 and run.reported.mfu_convention == "megatron"
    value, how = reported_tokens_per_s_per_chip(run)
    assert how == "from MFU (megatron convention)"
    per_token = 72 * 112 * 18432**2 * (1 + 4096 / (6 * 18432) + 131072 / (12 * 112 * 18432))
    assert per_token == pytest.approx(2.855614e12, rel=1e-6)
    assert value == pytest.approx(0.46502 * 989e12 / per_token, rel=1e-9)
    assert value == pytest.approx(161.05, abs=0.01)
    # the table's own 459.9 TFLOP/s per GPU, to the 5 digits of the spec's MFU
    assert value == pytest.approx(459.9e12 / per_token, rel=1e-4)


def test_megatron_convention_reproduces_a_paper_that_prints_both():
    """Korthikanti et al. Table 5, GPT 175B: MFU 0.514 and 13.75 s per iteration (148.95 tokens/s/chip)."""
    run = trainsim.load_run(RUNS / "megatron-selective-recompute-a100-175b.yaml")
    implied, _ = tokens_from_mfu(run, run.reported.mfu, "megatron")
    assert implied == pytest.approx(run.reported.tokens_per_s_per_chip, rel=0.005)
    # tokens/s is preferred when given
    assert reported_tokens_per_s_per_chip(run) == (148.95, "reported")


def test_sc21_equation_3():
    """SC21 1.7B: the file's note inverts eq. 3, 96 l h^2 (1 + s/6h + V/16lh) = 1.475e10 FLOP per token."""
    run = trainsim.load_run(RUNS / "megatron-sc21-a100-1p7b.yaml")
    by_hand = 96 * 24 * 2304**2 * (1 + 2048 / (6 * 2304) + 51200 / (16 * 24 * 2304))
    assert megatron_recompute_flops_per_token(run.arch, 2048) == pytest.approx(by_hand, rel=1e-12)
    assert by_hand == pytest.approx(1.475e10, rel=1e-3)
    assert flops_per_token(run.arch, 2048, "megatron-recompute") == pytest.approx(by_hand)


def test_gpt_neox_2022_convention_by_hand():
    """GPT-NeoX-20B: 117 TFLOP/s per GPU as GPT-NeoX logged it in 2022 (megatron/logging.py get_flops before
    5f364017): 6 N + 60 s h l per token with N = 20,554,567,680 (the paper's parameter count):
      6 x 20,554,567,680 = 123,327,406,080;  60 x 2048 x 6144 x 44 = 33,218,887,680;  sum 156,546,293,760
      tokens/s per GPU = 117e12 / 156,546,293,760 = 747.4
    trainsim's count of the spec's model (vocab 50,257, not padded to 50,432) is 0.02% smaller."""
    run = trainsim.load_run(RUNS / "gpt-neox-20b-96.yaml")
    assert run.reported.mfu_convention == "gpt-neox-2022"
    by_hand = 6 * 20_554_567_680 + 60 * 2048 * 6144 * 44
    assert by_hand == 156_546_293_760
    assert flops_per_token(run.arch, 2048, "gpt-neox-2022") == pytest.approx(by_hand, rel=5e-4)
    value, how = reported_tokens_per_s_per_chip(run)
    assert how == "from MFU (gpt-neox-2022 convention)"
    assert value == pytest.approx(117e12 / by_hand, rel=5e-4)
    assert value == pytest.approx(747.4, abs=0.5)


def test_palm_convention_counts_nonembedding_params():
    run = trainsim.load_run(RUNS / "megatron-core-h100-2024-1p7b-48.yaml")
    a, s = run.arch, run.training.seq_len
    from trainsim.model.counts import count

    c = count(a, s)
    n = c.active_params - a.head_params
    # 24 layers, 16 heads of 2048 / 16 = 128
    assert flops_per_token(a, s, "palm") == pytest.approx(6 * n + 12 * 24 * 16 * 128 * s, rel=1e-12)
    assert flops_per_token(a, s, "6n") == pytest.approx(6 * c.total_params)
    assert flops_per_token(a, s, "trainsim") == pytest.approx(c.flops_per_token)
    with pytest.raises(TrainsimError):
        flops_per_token(a, s, "palmm")


def _doc(name: str) -> dict:
    return yaml.safe_load((RUNS / name).read_text())


def test_step_time_and_missing_convention(tmp_path):
    doc = _doc("megatron-sc21-a100-1p7b.yaml")
    doc["reported"] = {"step_time_s": 3.53, "source": "test"}
    run = trainsim.parse_run(doc)
    value, how = reported_tokens_per_s_per_chip(run)
    assert how == "from step time"
    assert value == pytest.approx(512 * 2048 / 3.53 / 32)

    doc["reported"] = {"mfu": 0.4, "source": "test"}
    with pytest.raises(TrainsimError, match="mfu_convention"):
        reported_tokens_per_s_per_chip(trainsim.parse_run(doc))


def test_whole_run_only_is_reported_apart(tmp_path):
    doc = _doc("megatron-sc21-a100-1p7b.yaml")
    doc["training"]["tokens"] = 1.0e11
    doc["reported"] = {"chip_hours": 1.0e5, "source": "test"}
    f = tmp_path / "whole.yaml"
    f.write_text(yaml.safe_dump(doc))
    ref = reference(trainsim.load_run(f))
    assert ref.kind == "whole-run" and ref.value == pytest.approx(1.0e11 / 3.6e8)
    res = validate([f])
    assert [r.kind for r in res.rows] == ["whole-run"]
    assert res.rows[0].predicted > 0 and "whole-run" in res.rows[0].note
    assert res.summary["count"] == 0 and res.to_dict()["whole_run"]["count"] == 1


def test_validate_smoke_two_small_runs():
    files = [RUNS / "megatron-sc21-a100-1p7b.yaml", RUNS / "megatron-core-h100-2024-1p7b-48.yaml"]
    res = validate(files)
    assert [r.run for r in res.rows] == [f.stem for f in files]
    for r in res.rows:
        assert r.kind == "steady", r.note
        assert r.predicted > 0 and r.reported > 0
        assert math.isfinite(r.error)
        assert r.error == pytest.approx((r.predicted - r.reported) / r.reported)
        assert r.plan and r.predicted_mfu > 0
    assert res.rows[1].how == "from MFU (megatron convention)" and res.rows[1].mfu_convention == "megatron"
    d = res.to_dict()
    assert {"runs", "median_abs_error", "max_abs_error", "bias", "by_family"} <= set(d)
    assert set(d["by_family"]) == {"nvidia-ampere", "nvidia-hopper"}
    assert d["median_abs_error"] == pytest.approx(sorted(abs(r.error) for r in res.rows)[0] / 2
                                                  + sorted(abs(r.error) for r in res.rows)[1] / 2)
    json.dumps(d)  # plain data
    assert "| run |" in res.to_markdown()


def test_bad_file_is_an_error_row(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: no-such-model\nsystem: dgx-h100\nchips: 8\ntraining: {global_batch_seqs: 8}\n")
    res = validate([bad, RUNS / "megatron-sc21-a100-1p7b.yaml"])
    assert [r.kind for r in res.rows] == ["error", "steady"]
    assert res.summary["count"] == 1


def test_repository_runs_are_found():
    assert default_runs_dir() == RUNS
    files = expand_paths(None)
    # 47 files from the research training-runs file + 106 plan-exact files of issue #13 (validation/runs/README.md;
    # 6 of them AMD Instinct, issue 14 item 4) + 1 found for issue 14 (smp-sdp-gpt2-30b-256, SMP sharded data
    # parallelism on p4d)
    assert len(files) == 47 + 106 + 1 and all(f.suffix == ".yaml" for f in files)
    with pytest.raises(TrainsimError, match="no such file"):
        expand_paths([RUNS / "missing.yaml"])


def test_every_repository_run_gives_a_row():
    res = validate()
    assert len({r.run for r in res.rows}) == 47 + 106 + 1
    assert all(r.kind in ("steady", "whole-run", "error") for r in res.rows)


def test_to_frame():
    pytest.importorskip("pandas")
    df = validate([RUNS / "megatron-sc21-a100-1p7b.yaml"]).to_frame()
    assert list(df["run"]) == ["megatron-sc21-a100-1p7b"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainsim", "validate", *args], capture_output=True, text=True,
                          timeout=120)


def test_cli_missing_file_exits_2(tmp_path):
    p = _cli(str(tmp_path / "missing.yaml"))
    assert p.returncode == 2
    assert "no such file" in p.stderr


def test_cli_json_and_markdown():
    f = str(RUNS / "megatron-sc21-a100-1p7b.yaml")
    p = _cli(f, "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["runs"][0]["run"] == "megatron-sc21-a100-1p7b" and d["count"] == 1
    p = _cli(f, "--markdown")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("| run | chip | chips |")
    p = _cli(f)
    assert p.returncode == 0, p.stderr
    assert "megatron-sc21-a100-1p7b" in p.stdout and "overall" in p.stdout
