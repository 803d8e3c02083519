"""The command line as a person uses it: JSON keys, one-line errors with exit code 2, framework flags."""
from __future__ import annotations

import json
import textwrap

import pytest

from conftest import trainsim_cli, write_spec

RUN = textwrap.dedent("""
    name: gpt-7b test
    model: {name: t7b, layers: 32, hidden: 4096, heads: 32, ffn: 11008, ffn_act: swiglu, vocab: 32000}
    system: dgx-h100
    chips: 64
    training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 256, precision: bf16}
    plan: {tp: 2, pp: 2, vpp: 1, ep: 1, cp: 1, zero: 1, recompute: none, micro_batch: 1, schedule: 1f1b}
""")


@pytest.fixture
def run_file(tmp_path):
    return write_spec(tmp_path, RUN)


def test_estimate_json_has_the_documented_keys(run_file):
    r = trainsim_cli("estimate", str(run_file), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for key in ("step_time_s", "tokens_per_s_per_chip", "mfu", "hfu", "memory_per_chip_bytes", "fits", "plan",
                "breakdown", "days", "chip_hours"):
        assert key in d
    assert d["plan"]["dp"] == 16 and "placement" in d["plan"]
    assert d["plan"]["placement"]["tp"]["levels"] == ["scale-up"]
    assert sum(d["breakdown"].values()) == pytest.approx(d["step_time_s"], rel=1e-9)
    # days = tokens / (tokens/s/chip x chips) / 86400
    assert d["days"] == pytest.approx(1e12 / (d["tokens_per_s_per_chip"] * 64) / 86400, rel=1e-9)


@pytest.mark.parametrize("edit,needle", [
    (("tp: 2, pp: 2", "tp: 64, pp: 1"), "plan.tp"),
    (("chips: 64", "chips: 60"), "chips"),
    (("seq_len: 4096", "seq_lenn: 4096"), "unknown key"),
    (("system: dgx-h100", "system: h100"), "did you mean"),
    (("precision: bf16", "precision: fp6"), "training.precision"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, edit, needle):
    p = tmp_path / "bad.yaml"
    p.write_text(RUN.replace(*edit))
    r = trainsim_cli("estimate", str(p))
    assert r.returncode == 2
    assert needle in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_bad_unit_names_the_field(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(RUN.replace("system: dgx-h100",
                             "system: {base: dgx-h100, scale_out: {bandwidth: '400 furlongs'}}"))
    r = trainsim_cli("estimate", str(p))
    assert r.returncode == 2 and "scale_out" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_plan_emits_megatron_flags(run_file):
    r = trainsim_cli("plan", str(run_file), "--fix", "tp=2,pp=2", "--emit", "megatron")
    assert r.returncode == 0, r.stderr
    assert "--tensor-model-parallel-size 2" in r.stdout and "--pipeline-model-parallel-size 2" in r.stdout


def test_plan_json_reports_search_stats(tmp_path):
    p = tmp_path / "free.yaml"
    p.write_text(RUN.split("plan:")[0])
    r = trainsim_cli("plan", str(p), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["plans_evaluated"] >= d["plans_feasible"] > 0
    assert "search_seconds" in d and isinstance(d["runners_up"], list)


def test_missing_file_exit_2():
    r = trainsim_cli("estimate", "no-such-run.yaml")
    assert r.returncode == 2 and "no such file" in r.stderr
