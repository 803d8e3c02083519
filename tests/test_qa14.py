"""First-use quality pass, round 3: each test failed before its fix (see the commit that adds it)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import run_main, SMALL_RUN

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path, text, name="run.yaml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_report_scaling_batch_is_the_plans_batch():
    """The report's scaling table printed the stated batch (2,000,000 tokens / 4,096 = 488 sequences; a number, as
    "2M" of 4,096 reads as 2^21 = 512 sequences since qa20) beside a plan that
    runs another one. Hand derivation: 64 H100 at dp=64, micro-batch 1, need a multiple of 64 within 5% of 488:
    448 is -8.2%, 512 is +4.9% -> 512; 96 chips at dp=96: 480 (-1.6%)."""
    from trainsim.api import as_run
    from trainsim.report.collect import scaling
    run = as_run({"name": "s", "model": "llama-3.1-8b", "system": "dgx-h100", "chips": 64,
                  "training": {"tokens": "1T", "seq_len": 4096, "global_batch_tokens": 2_000_000, "precision": "bf16"}})
    assert run.training.batch_seqs == 488
    rows = {r["chips"]: r for r in scaling(run, counts=[64, 96])}
    for n, want in ((64, 512), (96, 480)):
        assert rows[n]["plan"]["dp"] * rows[n]["plan"]["micro_batch"] in (64, 96)
        assert rows[n]["global_batch_seqs"] == want
        assert rows[n]["batch_adjusted"] is True


@pytest.mark.parametrize("factors, msg", [
    ("1e300", "from 1e-06 to 1e+06"),     # 1e300 x 752 TFLOP/s overflowed to inf: exit 3 (a 'bug')
    ("1e-300", "from 1e-06 to 1e+06"),    # 1e-300 x the peak: an astronomical step, MFU 0: exit 3
    ("1e400", "from 1e-06 to 1e+06"),     # inf was accepted and printed as 'xinf'
    (",,", "at least one factor"),        # no factor at all printed an empty table, exit 0
])
def test_sensitivity_factors_out_of_range_are_bad_input(tmp_path, capsys, factors, msg):
    run = _write(tmp_path, SMALL_RUN)
    code, out, err = run_main(capsys, "sensitivity", run, "--vary", "peak_flops", "--factors", factors)
    assert code == 2, (out, err)
    assert err.startswith("error: --factors:") and msg in err and len(err.strip().splitlines()) == 1
    assert out == ""


def test_sweep_scale_factor_out_of_range_is_bad_input(tmp_path, capsys):
    """A sweep's scale axis took 1e-300 and recorded the point as an engine exception (InvariantViolation)."""
    _write(tmp_path, SMALL_RUN, "base.yaml")
    spec = _write(tmp_path, "name: s\nbase: base.yaml\naxes:\n  system.chip.hbm_bw: {scale: [0.5, 1.0e-300]}\n",
                  "sweep.yaml")
    code, out, err = run_main(capsys, "sweep", spec, "-o", tmp_path / "r.parquet")
    assert code == 2
    assert "axes.system.chip.hbm_bw[1]" in err and "from 1e-06 to 1e+06" in err
    assert not (tmp_path / "r.parquet").exists()


def test_sensitivity_factor_at_the_bound_still_answers(tmp_path, capsys):
    """10^6 either way is accepted: peak x 1e-6 makes the GEMMs ~10^6 times slower, so days grow by orders."""
    run = _write(tmp_path, SMALL_RUN)
    code, out, err = run_main(capsys, "sensitivity", run, "--vary", "peak_flops", "--factors", "1e-6,1e6", "--json")
    assert code == 0, err
    rows = json.loads(out)["params"]["peak_flops"]["rows"]
    d = json.loads(out)["nominal_days"]
    assert rows[0]["days"] > 1e4 * d and 0 < rows[1]["days"] < d


_INLINE = """
model: llama-3.1-8b
system: {{base: dgx-h100, chip: {{name: x, hbm: "80 GB", bf16_tflops: {tf}, hbm_bandwidth: {bw},
          scale_up_bandwidth: "450 GB/s", scale_out_bandwidth: "400 Gb/s"}}}}
chips: 64
training: {{tokens: 1T, seq_len: 4096, global_batch_seqs: 512}}
"""


@pytest.mark.parametrize("tf, bw", [
    ("989", "3e12"),          # PyYAML (YAML 1.1) reads 3e12 as the string '3e12': refused as 'expected a bandwidth'
    ("9.89e2", "3.0e12"),     # ... and 9.89e2 / 3.0e12 too (YAML 1.1 floats need a signed exponent)
    ("989.0", "3.0e+12"),     # the YAML 1.1 float spelling, as before
])
def test_inline_chip_plain_numbers_in_exponent_form(tmp_path, capsys, tf, bw):
    """docs/run-spec.md: bandwidths 'in bytes/s or strings', peaks 'dense TFLOPS (a plain number)'. Every spelling
    above is 989 TFLOPS and 3 TB/s, so all give the same estimate."""
    run = _write(tmp_path, _INLINE.format(tf=tf, bw=bw))
    code, out, err = run_main(capsys, "estimate", run, "--json")
    assert code == 0, err
    d = json.loads(out)
    ref = _write(tmp_path, _INLINE.format(tf="989", bw='"3 TB/s"'), "ref.yaml")
    code, out, err = run_main(capsys, "estimate", ref, "--json")
    assert d["step_time_s"] == json.loads(out)["step_time_s"]


@pytest.mark.parametrize("tf", [".inf", "1e308", "1.0e+400"])
def test_inline_chip_peak_overflow_is_bad_input(tmp_path, capsys, tf):
    """.inf (a YAML float) and 1e308 TFLOPS (inf in FLOP/s) went through to the search: 'bug: unexpected
    ValueError' and exit 3."""
    run = _write(tmp_path, _INLINE.format(tf=tf, bw='"3 TB/s"'))
    code, out, err = run_main(capsys, "estimate", run)
    assert code == 2, (out, err)
    assert "system.chip.bf16_tflops" in err and "TFLOPS" in err and len(err.strip().splitlines()) == 1


def test_infer_kv_cache_in_binary_units_like_the_memory_row(capsys):
    """The KV rows were in decimal kB / MB beside the memory row's GiB. Llama 3.1 8B, BF16 KV: 32 layers x 8 KV
    heads x 128 x (K, V) x 2 bytes = 131,072 B = 128.0 KiB per token; 2,048 + 512 / 2 = 2,304 tokens of mean decode
    context -> 288.0 MiB per sequence."""
    code, out, err = run_main(capsys, "infer", ROOT / "examples/serving-llama-3.1-8b-h800.yaml")
    assert code == 0, err
    assert "128.0 KiB (bf16)" in out and "288.0 MiB" in out
    assert " kB" not in out and " MB" not in out


_DSV3_PP2 = """
name: small
model: deepseek-v3
system: dgx-h100
chips: 256
training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 512, precision: bf16}
plan: {pp: 2, ep: 8, PLAN}
"""


@pytest.mark.parametrize("plan, flags, missing, note, layer_list", [
    # at pp=2 the note said '..., 0 on each middle rank': there is no middle rank
    ("first_stage_layers: 31, last_stage_layers: 30",
     ["--decoder-first-pipeline-num-layers 31", "--decoder-last-pipeline-num-layers 30"], [],
     "31 layers on the first, 30 on the last pipeline rank\n", "31,30"),
    # a first stage alone wrote '--decoder-last-pipeline-num-layers None' (and mindspeed exited 3): the last rank
    # takes the rest, 61 - 31 = 30, as Megatron-Core's get_num_layers_to_build splits it
    ("first_stage_layers: 31", ["--decoder-first-pipeline-num-layers 31"], ["--decoder-last-pipeline-num-layers"],
     "31 layers on the first pipeline rank, 30 on each other rank", "31,30"),
    # a last stage alone was dropped from the flags (no --decoder-last-pipeline-num-layers): 61 - 29 = 32 first
    ("last_stage_layers: 29", ["--decoder-last-pipeline-num-layers 29"], ["--decoder-first-pipeline-num-layers"],
     "29 layers on the last pipeline rank, 32 on each other rank", "32,29"),
])
def test_emit_stated_uneven_stages(tmp_path, capsys, plan, flags, missing, note, layer_list):
    run = _write(tmp_path, _DSV3_PP2.replace("PLAN", plan))
    # vpp 1: the first/last flags write any count; with virtual stages a count that is not a multiple of vpp is a
    # --pipeline-model-parallel-layout instead (stage32, tests/test_stage_flags.py)
    code, out, err = run_main(capsys, "plan", run, "--fix", "vpp=1", "--emit", "megatron")
    assert code == 0, err
    assert "None" not in out and "middle" not in out
    assert all(f in out for f in flags) and not any(m in out for m in missing)
    assert note in out
    # MindSpeed-LLM refuses --num-layer-list beside virtual stages and dualpipev (num_layer_list.py validate_args):
    # the stated stages are its layer list at vpp 1, and the search of --emit mindspeed keeps to vpp 1 and other
    # schedules (frameworks.restrict_plan, rule 24; it picked vpp 8 and the emitter refused it, qa31); a stated vpp
    # above 1 is refused with one line
    code, out, err = run_main(capsys, "plan", run, "--emit", "mindspeed")
    assert code == 0, err
    assert f"--num-layer-list {layer_list}\n" in out and "--schedules-method" not in out
    code, out, err = run_main(capsys, "plan", run, "--fix", "vpp=2", "--emit", "mindspeed")
    assert code == 2 and "plan.vpp" in err and "num-layer-list" in err and len(err.strip().splitlines()) == 1, err
    code, out, err = run_main(capsys, "plan", run, "--fix", "vpp=1", "--emit", "mindspeed")
    assert code == 0, err
    assert f"--num-layer-list {layer_list}\n" in out


def test_size_without_an_answer_costs_the_fastest_count_with_its_failures(tmp_path, capsys):
    """'no count ... finishes; fastest: 0.5 days on 3,968 (goodput 90%)' was followed by 'cost basis: without
    failures' and chip-hours of the ideal days. Chip-hours are chips x wall-clock days x 24 (the answered case's
    rule): the fastest probe's effective days."""
    run = _write(tmp_path, SMALL_RUN)
    code, out, err = run_main(capsys, "size", run, "--days", "0.05", "--json")
    assert code == 1, err
    d = json.loads(out)
    assert d["feasible"] is False
    finite = [p for p in d["probes"] if p["goodput"]]
    fastest = min(finite, key=lambda p: p["effective_days"])
    assert d["cost"]["basis"].startswith("with failures")
    assert d["cost"]["chip_hours"] == pytest.approx(fastest["chips"] * fastest["effective_days"] * 24, rel=1e-9)
    assert 0 < fastest["goodput"] < 1


def test_capacity_too_many_units_names_units(capsys):
    """--units 2000 of 8,192-chip Atlas 950 SuperPoDs (16,384,000 chips) was refused as '--chips: ...', an option
    not given. 10,000,000 // 8,192 = 1,220 SuperPoDs at most."""
    code, out, err = run_main(capsys, "capacity", "--system", "atlas-950-superpod", "--units", "2000", "--days", "90")
    assert code == 2
    assert err.startswith("error: --units:") and "1,220" in err and "16,384,000" in err
    code, out, err = run_main(capsys, "capacity", "--system", "atlas-950-superpod", "--chips", "20000000",
                              "--days", "90")
    assert code == 2 and err.startswith("error: --chips:")


def test_model_seq_len_takes_a_run_specs_spelling(capsys):
    """training.seq_len takes '4K' (K = 1,024); `model --seq-len 4k` was a usage error. Llama 3.1 8B's FLOPs per
    token at 4K must equal those at 4096."""
    code, out_k, err = run_main(capsys, "model", "llama-3.1-8b", "--seq-len", "4K", "--json")
    assert code == 0, err
    code, out_n, err = run_main(capsys, "model", "llama-3.1-8b", "--seq-len", "4096", "--json")
    assert json.loads(out_k)["flops_per_token"] == json.loads(out_n)["flops_per_token"]
    assert json.loads(out_k)["seq_len"] == 4096


@pytest.mark.parametrize("bad", ["0", "abc", "200M", "4096.5"])
def test_model_seq_len_bad_is_one_line(capsys, bad):
    code, out, err = run_main(capsys, "model", "llama-3.1-8b", "--seq-len", bad)
    assert code == 2 and err.startswith("error: --seq-len:") and len(err.strip().splitlines()) == 1


def test_posttrain_lengths_take_binary_k(tmp_path, capsys):
    """training.seq_len and serving.input_len take '16K' (K = 1,024); step.rollout_len and prompt_len were plain
    integers ('16K': 'Input should be a valid integer'). '16K' / '1,024' must give the example's own step."""
    src = (ROOT / "examples/posttrain-opd-two-clusters.yaml").read_text(encoding="utf-8")
    code, out, err = run_main(capsys, "posttrain", ROOT / "examples/posttrain-opd-two-clusters.yaml", "--json")
    assert code == 0, err
    want = json.loads(out)["step_time_s"]
    spec = _write(tmp_path, src.replace("rollout_len: 16384", "rollout_len: 16K")
                  .replace("prompt_len: 1024", 'prompt_len: "1,024"'), "pt.yaml")
    code, out, err = run_main(capsys, "posttrain", spec, "--json")
    assert code == 0, err
    assert json.loads(out)["step_time_s"] == want
    spec = _write(tmp_path, src.replace("rollout_len: 16384", "rollout_len: 16.5"), "bad.yaml")
    code, out, err = run_main(capsys, "posttrain", spec)
    assert code == 2 and "step.rollout_len" in err


def test_scenario_vs_claim_and_time_shares_are_percentages(capsys):
    """S2's numbers table printed 'total vs claim 0.013' and 'where time goes compute_gemm 0.444, ...' beside
    'goodput 87.0%'. S2.yaml's model_source states the model is +1.3% / -1.1% against the claim."""
    code, out, err = run_main(capsys, "scenario", ROOT / "scenarios/S2.yaml")
    assert code == 0, err
    rows = {ln.split("│")[1].strip(): ln.split("│")[2].strip() for ln in out.splitlines() if ln.count("│") == 3}
    assert rows["params / total vs claim"] == "+1.3%"
    assert rows["params / active vs claim"] == "-1.1%"
    shares = rows["where time goes"]
    assert shares.startswith("compute_gemm ") and "%" in shares and " 0." not in shares


def test_value_of_key_signed_fraction_and_shares():
    from trainsim.report.fmt import value_of_key
    assert value_of_key("params.total_vs_claim", 0.0134) == "+1.3%"
    assert value_of_key("active_vs_claim", -0.011) == "-1.1%"
    assert value_of_key("where_time_goes", [["compute_gemm", 0.444], ["attention", 0.0994]]) == \
        "compute_gemm 44.4%, attention 9.9%"


def test_capacity_sentence_sizes_as_the_table_prints_them(capsys):
    """The answer said '1,101B-total ... on 32.0T tokens' above a table saying '1.1T' (and '0.5T tokens' above
    '519B'): the same numbers now print the same way (numfmt.count)."""
    code, out, err = run_main(capsys, "capacity", "--system", "atlas-950-superpod", "--units", "1", "--days", "90",
                              "--json")
    assert code == 0, err
    d = json.loads(out)
    from trainsim.numfmt import count
    assert f"a {count(d['total_params'])}-total / {count(d['active_params'])}-active" in d["message"]
    assert f"on {count(d['tokens'])} tokens" in d["message"]
    assert not re.search(r"\d,\d{3}B-total", d["message"])


@pytest.mark.parametrize("framework, emit, note", [
    # a torchtitan-2024 plan (its flash2 attention, eager kernels, FSDP) written as Megatron-LM flags, silently
    ("torchtitan-2024", "megatron", "whose own flags --emit torchtitan writes"),
    ("meta-llama3", "megatron", "a stack trainsim has no emitter for"),
    ("megatron-core-2024", "megatron", None),       # Megatron-Core reads Megatron-LM's argument names: no note
])
def test_emit_under_another_framework_says_so(tmp_path, capsys, framework, emit, note):
    run = _write(tmp_path, SMALL_RUN)
    code, out, err = run_main(capsys, "plan", run, "--framework", framework, "--emit", emit)
    assert code == 0, err
    assert out.startswith("# trainsim plan for Megatron-LM")
    if note is None:
        assert "note:" not in err
    else:
        assert f"note: --emit {emit} writes Megatron-LM's flags for a plan searched under {framework}" in err
        assert note in err


def test_report_png_folder_that_is_a_file_is_refused_before_the_work(tmp_path, capsys):
    """`report -o r.html --png FILE` wrote r.html, then failed with 'File exists; expected a readable file or a
    writable path' (an OSError's text) and exit 2: half an answer written, the option not named."""
    run = _write(tmp_path, SMALL_RUN)
    code, out, err = run_main(capsys, "report", run, "-o", tmp_path / "r.html", "--png", run, "--no-sweeps")
    assert code == 2
    assert "--png" in err and "not a folder" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


def test_sweep_plots_folder_that_is_a_file_is_refused(tmp_path, capsys):
    res = tmp_path / "r.parquet"
    _write(tmp_path, SMALL_RUN, "base.yaml")
    spec = _write(tmp_path, "name: s\nbase: base.yaml\naxes:\n  chips: [64, 128]\n", "sweep.yaml")
    code, out, err = run_main(capsys, "sweep", spec, "-o", res, "-q")
    assert code == 0, err
    code, out, err = run_main(capsys, "sweep", "--summary", res, "--plots", spec)
    assert code == 2
    assert err.startswith(f"error: {spec}: --plots:") and "not a folder" in err


def test_serve_bad_host_or_busy_port_is_bad_input(capsys):
    """uvicorn logs a bind failure and exits with its STARTUP_FAILURE code, 3: trainsim's code for a bug, after
    printing the explorer's address as if it had started."""
    import socket
    code, out, err = run_main(capsys, "serve", "--host", "no such host", "-q")
    assert code == 2 and err.startswith("error: --host:") and out == ""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = run_main(capsys, "serve", "--port", port, "-q")
    assert code == 2 and err.startswith("error: --port:") and f"127.0.0.1:{port}" in err and out == ""


@pytest.mark.parametrize("option", ["--price-per-chip-hour", "--pue", "--electricity"])
def test_cost_options_refuse_infinity(tmp_path, capsys, option):
    """--price-per-chip-hour inf printed 'cost, rental: inf at inf/chip-hour'; --pue inf 'inf MWh'."""
    run = _write(tmp_path, SMALL_RUN)
    code, out, err = run_main(capsys, "estimate", run, option, "inf")
    # --pue has one check, assumptions.check_pue, whose line states its range (qa31)
    want = "expected a PUE between 1 and 3" if option == "--pue" else "expected a finite number"
    assert code == 2 and err.startswith(f"error: {option}: {want}") and out == ""


@pytest.mark.parametrize("option", ["--against", "--fix", "--emit", "--framework"])
def test_plan_empty_option_value_is_not_silently_ignored(tmp_path, capsys, option):
    """`plan --against ""` (a shell variable left empty) printed the plain search as if the option were absent."""
    run = _write(tmp_path, SMALL_RUN)
    code, out, err = run_main(capsys, "plan", run, f"{option}=")
    assert code == 2 and err.startswith(f"error: {option}: expected a value") and out == ""


@pytest.mark.parametrize("args, what", [
    (["check", "{d}"], "spec"),
    (["report", "{d}"], "run spec or scenario"),
    (["sweep", "{d}", "-o", "{d}/r.parquet"], "sweep spec"),
    (["sweep", "--summary", "{d}"], "Parquet sweep result"),
])
def test_a_folder_is_not_called_missing(tmp_path, capsys, args, what):
    """`check DIR`, `report DIR`, `sweep DIR` and `sweep --summary DIR` said 'no such file: DIR' of a folder that
    exists; `estimate DIR` already said 'expected a run spec, got a folder'."""
    code, out, err = run_main(capsys, *[a.format(d=tmp_path) for a in args])
    assert code == 2
    assert err.strip() == f"error: {tmp_path}: expected a {what}, got a folder or special file"
    code, out, err = run_main(capsys, *[a.format(d=tmp_path / "missing.yaml") for a in args])
    assert code == 2 and "no such file" in err


@pytest.mark.parametrize("pods, msg", [
    ("abc", "pods: expected a number"),          # exit 3: 'bug: unexpected ValueError: invalid literal for int()'
    ("[1]", "pods: expected a number"),          # exit 3: TypeError
    ("true", "pods: expected a number"),         # read as 1 pod: '384 Ascend 910C train it in 1562 days'
    ("65.5", "pods: expected a whole number"),   # read as 65 pods
    ("0", "pods: expected a positive whole number"),
])
def test_scenario_pods_is_a_whole_count(tmp_path, capsys, pods, msg):
    src = (ROOT / "scenarios/S2.yaml").read_text(encoding="utf-8")
    assert "\npods: 65\n" in src
    src = src.replace("\npods: 65\n", f"\npods: {pods}\n").replace("compare_to: S1.yaml",
                                                                    f"compare_to: {ROOT / 'scenarios/S1.yaml'}")
    spec = _write(tmp_path, src, "S2.yaml")
    code, out, err = run_main(capsys, "scenario", spec)
    assert code == 2, (out[-300:], err)
    assert msg in err and len(err.strip().splitlines()) == 1


def _scenario_numbers(tmp_path, capsys, name, edits):
    src = (ROOT / f"scenarios/{name}.yaml").read_text(encoding="utf-8")
    for old, new in edits:
        assert old in src
        src = src.replace(old, new)
    src = src.replace("compare_to: S1.yaml", f"compare_to: {ROOT / 'scenarios/S1.yaml'}")
    code, out, err = run_main(capsys, "scenario", _write(tmp_path, src, f"{name}.yaml"), "--json")
    assert code == 0, err
    d = json.loads(out)
    return (d[0] if isinstance(d, list) else d)["numbers"]


def test_scenario_counts_take_a_run_specs_spelling(tmp_path, capsys):
    """A run spec takes tokens: "35T"; S2 with training.tokens "35T" exited 3 ('could not convert string to
    float'), and so did claimed: {total_params: "1.6T", ...}. The same numbers as S2's 35e12 / 1.6e12 forms."""
    want = _scenario_numbers(tmp_path, capsys, "S2", [])
    got = _scenario_numbers(tmp_path, capsys, "S2", [
        ("  tokens: 35e12", '  tokens: "35T"'),
        ("claimed: {total_params: 1.6e12, active_params: 48e9, tokens: 35e12}",
         'claimed: {total_params: "1.6T", active_params: "48B", tokens: "35,000,000,000,000"}')])
    assert got == want
    assert want["params"]["total_vs_claim"] == pytest.approx(0.013, abs=0.001)   # S2.yaml: '1,621B total (+1.3%)'
    got = _scenario_numbers(tmp_path, capsys, "S1", [("  tokens: 28e12", '  tokens: "28T"')])
    assert got["training_flops_6na"] == _scenario_numbers(tmp_path, capsys, "S1", [])["training_flops_6na"]


@pytest.mark.parametrize("serving", [
    "{phase: decode, input_len: 2048, output_len: 512, batch: 4}",
    "{phase: prefill, input_len: 2048, output_len: 512, prefill_tokens_per_chip: 0.001}",
])
def test_infer_batch_too_small_for_the_plan_is_no_answer(tmp_path, capsys, serving):
    """8 H800 at tp=1 are 8 data-parallel replicas; a batch of 4 sequences per instance (or a thousandth of a
    prompt token per chip) leaves some without work, so no plan runs it. With no latency bound stated this was
    'bug: unexpected TypeError' (the message assumed a latency bound), exit 3."""
    spec = _write(tmp_path, f"name: s\nmodel: llama-3.1-8b\nsystem: hgx-h800\nchips: 8\nplan: {{tp: 1, pp: 1}}\n"
                            f"serving: {serving}\n", "serve.yaml")
    code, out, err = run_main(capsys, "infer", spec)
    assert code == 1, err
    assert "has work for each data-parallel replica and pipeline stage" in err
    assert len(err.strip().splitlines()) == 1


def _scenario_edit(tmp_path, capsys, name, path, value):
    """Run scenario NAME with the value at ``path`` (keys / indices) replaced; (code, stderr)."""
    import shutil
    import yaml
    for f in (ROOT / "scenarios").glob("S*.yaml"):   # the siblings a scenario names (job:, compare_to:)
        shutil.copy(f, tmp_path / f.name)
    doc = yaml.safe_load((ROOT / f"scenarios/{name}.yaml").read_text(encoding="utf-8"))
    x = doc
    for k in path[:-1]:
        x = x[k]
    x[path[-1]] = value
    spec = tmp_path / f"edited_{name}.yaml"
    spec.write_text(yaml.safe_dump(doc), encoding="utf-8")
    code, out, err = run_main(capsys, "scenario", spec)
    return code, err


@pytest.mark.parametrize("name, path, value, field", [
    # each exited 3 ('bug: unexpected ValueError' from int() / float(), or -1 chips in the plan search)
    ("S3", ("compare", 0, "chips"), "abc", "chips"),
    ("S7", ("inputs", "domains", "value"), "abc", "inputs.domains.value"),
    ("S7", ("inputs", "domains", "value"), 5.5, "inputs.domains.value"),
    ("S7", ("inputs", "cluster", "chips"), -1, "inputs.cluster.chips"),
    ("S7", ("inputs", "tolerance", "value"), "abc", "inputs.tolerance.value"),
    ("S8", ("threshold", "slowdown"), "abc", "threshold.slowdown"),
    ("S8", ("threshold", "slowdown"), 1.5, "threshold.slowdown"),     # (1 - 1.5) x nominal throughput
    ("S3", ("claimed", "cluster_usd"), "abc", "claimed.cluster_usd"),       # TypeError in a ratio: exit 3
    ("S3", ("claimed", "meituan_ai_capex_2026_usd"), "", "claimed.meituan_ai_capex_2026_usd"),
    ("S7", ("inputs", "precision", "value"), "abc", "inputs.precision.value"),   # a pydantic ValidationError
    ("S7", ("inputs", "rollout_precision", "value"), "fp16", "inputs.rollout_precision.value"),
])
def test_scenario_numeric_and_text_inputs_are_checked(tmp_path, capsys, name, path, value, field):
    code, err = _scenario_edit(tmp_path, capsys, name, path, value)
    assert code == 2, err
    assert f": {field}: expected" in err and len(err.strip().splitlines()) == 1


def test_scenario_fraction_in_percent(tmp_path, capsys):
    """threshold.slowdown '10%' is S8's own 0.10 (units.parse_fraction, as sensitivity --threshold reads it)."""
    code, err = _scenario_edit(tmp_path, capsys, "S8", ("threshold", "slowdown"), "10%")
    assert code == 0, err


@pytest.mark.parametrize("value", [-1, 0, "abc"])
def test_s6_claimed_units_positive(tmp_path, capsys, value):
    """S6 claimed_units [-1, 20] exited 3 ('math domain error'); 'abc' went through int()."""
    code, err = _scenario_edit(tmp_path, capsys, "S6", ("claimed_units", 0), value)
    assert code == 2 and ": claimed_units: expected" in err


def test_sweep_sampled_scale_factors_are_bounded_too(tmp_path, capsys):
    """{samples: ... {scale: {low: 1e-300, high: 1e-299}}} drew factors the scale: axis refuses; each point became
    an 'exception' row (InvariantViolation) with numpy overflow warnings."""
    _write(tmp_path, SMALL_RUN, "base.yaml")
    spec = _write(tmp_path, "name: s\nbase: base.yaml\naxes:\n  u: {samples: {n: 3, seed: 0, inputs: "
                            "{system.chip.hbm_bw: {scale: {low: 1.0e-300, high: 1.0e-299}}}}}\n", "sweep.yaml")
    code, out, err = run_main(capsys, "sweep", spec, "-o", tmp_path / "r.parquet")
    assert code == 2 and "hbm_bw.scale.low" in err and "from 1e-06 to 1e+06" in err


def test_s3_claimed_money_as_written(tmp_path, capsys):
    """'$533M' is S3's own 533e6."""
    code, err = _scenario_edit(tmp_path, capsys, "S3", ("claimed", "cluster_usd"), "$533M")
    assert code == 0, err


def test_compare_names_the_spec_without_an_answer(tmp_path, capsys):
    """`compare ok.yaml tp3.yaml` said 'error: plan: no valid plan ...' without naming tp3.yaml (tp=3 does not
    divide 64 chips). Since qa16 tp 3 of Llama 3.1 8B's 32 heads is bad input (exit 2); the spec without an answer
    is now tp 8 x pp 16 = 128 chips of 64."""
    ok = _write(tmp_path, SMALL_RUN, "ok.yaml")
    bad = _write(tmp_path, SMALL_RUN.rstrip() + "\nplan: {tp: 8, pp: 16}\n", "tp3.yaml")
    code, out, err = run_main(capsys, "compare", ok, bad)
    assert code == 1
    assert err.startswith(f"error: {bad}: plan: no valid plan") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name, path, value, field", [
    ("S6", ("failure_handling", 0), "abc", "failure_handling[0]"),          # KeyError: exit 3
    ("S6", ("reference_runs", 0, "flops"), "abc", "reference_runs[0].flops"),  # float('abc'): exit 3
])
def test_s4_s6_inputs_are_checked(tmp_path, capsys, name, path, value, field):
    code, err = _scenario_edit(tmp_path, capsys, name, path, value)
    assert code == 2, err
    assert f"{field}: " in err and len(err.strip().splitlines()) == 1


def test_size_in_chips_does_not_repeat_the_count(tmp_path, capsys):
    """`size --unit chip` said '124 chips (124 chips) finish ...' and 'fastest: 0.6 days on 77,824 (77,824 chips,
    goodput 77%)'; a system count still gives its chips in parentheses."""
    run = _write(tmp_path, SMALL_RUN)
    code, out, err = run_main(capsys, "size", run, "--days", "10", "--unit", "chip", "--json")
    assert code == 0, err
    msg = json.loads(out)["message"]
    n = json.loads(out)["chips"]
    assert msg.startswith(f"{n:,} chips finish") and msg.count("chips") == 1
    code, out, err = run_main(capsys, "size", run, "--days", "10", "--json")
    d = json.loads(out)
    assert d["message"].startswith(f"{d['units']:,} systems ({d['chips']:,} chips) finish")
