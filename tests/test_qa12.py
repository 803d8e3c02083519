"""qa12: a first-use QA pass's defects (S6's peak column in two number styles, a dense model's zero expert entries
in `infer`, ...). Each test failed before the fix it names; expected values come from the inputs, the catalog or
hand derivations, never from the engine."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import SMALL_RUN as SMALL
from conftest import run_main
from conftest import write_spec as _spec

ROOT = Path(__file__).resolve().parents[1]
SERVE_DENSE = ROOT / "examples/serving-llama-3.1-8b-h800.yaml"


# ---------------------------------------------------------------- 1. S6: one unit in the effective-peak column

def test_s6_effective_peak_column_is_one_style_in_tflops(capsys):
    """`scenario S6`'s sizing_over_precision_inputs table printed '836T' above '1.41e+15' in one column (raw SI
    through the count formatter, which switches to e-notation at 1e15) under the header '(FLOP)' for a rate.
    Fix: report.fmt.catalog_input reads a ``*_peak_flops`` column as a chip's peak rate (TFLOP/s, as
    numfmt.axis_value does) and the label of such a key says FLOP/s. Each cell equals the --json value / 1e12."""
    code, out, err = run_main(capsys, "scenario", ROOT / "scenarios/S6.yaml", "--json")
    assert code == 0, err
    res = json.loads(out)
    res = res[0] if isinstance(res, list) else res
    rows = res["numbers"]["sizing_over_precision_inputs"]
    code, out, err = run_main(capsys, "scenario", ROOT / "scenarios/S6.yaml")
    assert code == 0, err
    assert "effective fp8 peak (FLOP/s)" in out
    table = out[out.index("sizing_over_precision_inputs"):]
    cells = re.findall(r"│ (fp8_efficiency|fp4)\s+│ (low|high)\s+│ ([^│]+?)\s+│", table)
    assert len(cells) == len(rows) == 4
    for (name, end, cell), row in zip(cells, rows):
        assert (name, end) == (row["input"], row["end"])
        assert "e+" not in cell and cell.endswith(" TFLOP/s")
        assert float(cell.split()[0].replace(",", "")) == pytest.approx(row["effective_fp8_peak_flops"] / 1e12, rel=5e-4)


def test_peak_flops_formatting_in_one_place():
    from trainsim.numfmt import label
    from trainsim.report.fmt import catalog_input
    assert catalog_input({"effective_fp8_peak_flops": 1.41e15}, "effective_fp8_peak_flops") == "1,410 TFLOP/s"
    assert catalog_input({"training_flops": 2.1e26}, "training_flops") is None      # a FLOP count, not a rate
    assert label("effective_fp8_peak_flops") == "effective fp8 peak (FLOP/s)"
    assert label("training_flops") == "training (FLOP)"


# ---------------------------------------------------------------- 2. infer: no expert entries for a dense model

EXPERT_ENTRY = re.compile(r"(^|\.)(experts|ep_comm|expert_imbalance|a2a_eff|expert_precision|ep|etp)$")


def _keys(d, prefix=""):
    for k, v in d.items():
        yield f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _keys(v, f"{prefix}{k}.")


def test_infer_of_a_dense_model_lists_no_expert_entries(capsys):
    """`infer --json` / `--csv` of Llama 3.1 8B (dense) listed breakdown_s.experts = 0 and ep_comm = 0 in prefill
    and decode, and the expert-only constants (expert_imbalance, a2a_eff) with their sources. Fix:
    inference.serve._drop_expert_fields drops them with the plans' ep / etp."""
    code, out, err = run_main(capsys, "infer", SERVE_DENSE, "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["moe"] is False
    assert [k for k in _keys(res) if EXPERT_ENTRY.search(k)] == []
    assert {"gemm", "attention", "tp_comm"} <= set(res["decode"]["breakdown_s"])
    code, out, err = run_main(capsys, "infer", SERVE_DENSE, "--csv")
    assert code == 0, err
    header = out.splitlines()[0].split(",")
    assert [k for k in header if EXPERT_ENTRY.search(k)] == []


def test_infer_of_a_moe_model_keeps_its_expert_entries(capsys, tmp_path):
    spec = _spec(tmp_path, "name: m\nmodel: mixtral-8x7b\nsystem: dgx-h100\nchips: 8\n"
                           "serving: {input_len: 1024, output_len: 256, precision: bf16}\n", "moe.yaml")
    code, out, err = run_main(capsys, "infer", spec, "--json")
    assert code == 0, err
    res = json.loads(out)
    for phase in ("prefill", "decode"):
        assert {"experts", "ep_comm"} <= set(res[phase]["breakdown_s"])
        assert res[phase]["breakdown_s"]["experts"] > 0          # Mixtral's FFNs are all routed experts
    assert {"expert_imbalance", "a2a_eff"} <= set(res["constants"])


# ---------------------------------------------------------------- 3. serving spec: expert inputs on a dense model

@pytest.mark.parametrize("edit, field", [
    (("latency:", "plan: {ep: 4}\nlatency:"), "plan.ep"),
    (("kv_precision: bf16", "kv_precision: bf16\n  expert_precision: fp4"), "serving.expert_precision"),
    (("kv_precision: bf16", "kv_precision: bf16\n  expert_imbalance: 1.18"), "serving.expert_imbalance"),
    (("latency:", "uncertain: {expert_imbalance: [1.0, 1.2]}\nlatency:"), "uncertain.expert_imbalance"),
])
@pytest.mark.parametrize("command", ["infer", "check"])
def test_expert_inputs_on_a_dense_serving_spec_are_refused(tmp_path, capsys, edit, field, command):
    """A serving spec for Llama 3.1 8B (dense) with plan.ep 4, serving.expert_precision fp4 or
    serving.expert_imbalance 1.18 was answered exactly as without them (exit 0: accepted and silently ignored).
    Fix: inference.spec._check_dense refuses them with one line naming the field, exit 2, as the run spec does
    for ep / etp (spec.check_expert_fields)."""
    text = SERVE_DENSE.read_text()
    assert edit[0] in text
    code, out, err = run_main(capsys, command, _spec(tmp_path, text.replace(edit[0], edit[1], 1), "serve.yaml"))
    assert code == 2
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and field in lines[0] and "dense" in lines[0] and "serve.yaml" in lines[0]


@pytest.mark.parametrize("edit", [("latency:", "plan: {ep: 1}\nlatency:"),
                                  ("kv_precision: bf16", "kv_precision: bf16\n  expert_precision: fp8"),
                                  ("kv_precision: bf16", "kv_precision: bf16\n  expert_imbalance: 1.0")])
def test_a_dense_serving_spec_may_state_the_neutral_expert_values(tmp_path, capsys, edit):
    """ep 1, expert_precision equal to the weights' precision (fp8 in this spec) and imbalance 1 change nothing."""
    text = SERVE_DENSE.read_text().replace(edit[0], edit[1], 1)
    code, out, err = run_main(capsys, "infer", _spec(tmp_path, text, "serve.yaml"), "--json")
    assert code == 0, err


def test_moe_serving_spec_keeps_its_expert_inputs(tmp_path, capsys):
    spec = _spec(tmp_path, "name: m\nmodel: mixtral-8x7b\nsystem: dgx-h100\nchips: 8\nplan: {ep: 8}\n"
                           "serving: {input_len: 1024, output_len: 256, precision: bf16, expert_imbalance: 1.18}\n")
    code, out, err = run_main(capsys, "infer", spec, "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["decode"]["plan"]["ep"] == 8 and res["constants"]["expert_imbalance"] == 1.18


# ---------------------------------------------------------------- 4. --emit torchtitan: keys of one torchtitan

# Every field of the sections written, transcribed from pytorch/torchtitan torchtitan/config/job_config.py at
# 24e91056a (26 Sep 2025), whose config/manager.py _dict_to_dataclass raises 'Invalid field names' for any other
# key of a TOML section; the float8 converter is registered there as "float8" (components/quantization/float8.py).
TT_FIELDS = {
    "parallelism": {"data_parallel_replicate_degree", "enable_compiled_autograd", "data_parallel_shard_degree",
                    "fsdp_reshard_after_forward", "tensor_parallel_degree", "disable_loss_parallel",
                    "enable_async_tensor_parallel", "pipeline_parallel_degree", "pipeline_parallel_split_points",
                    "module_fqns_per_model_part", "pipeline_parallel_first_stage_less_layers",
                    "pipeline_parallel_last_stage_less_layers", "pipeline_parallel_layers_per_stage",
                    "pipeline_parallel_schedule", "pipeline_parallel_schedule_csv",
                    "pipeline_parallel_microbatch_size", "context_parallel_degree", "context_parallel_rotate_method",
                    "expert_parallel_degree", "expert_tensor_parallel_degree"},
    "training": {"dataset", "dataset_path", "local_batch_size", "global_batch_size", "seq_len", "max_norm", "steps",
                 "enable_cpu_offload", "dtype", "mixed_precision_param", "mixed_precision_reduce", "gc_freq",
                 "gc_debug", "seed", "deterministic"},
    "activation_checkpoint": {"mode", "selective_ac_option", "per_op_sac_force_recompute_mm_shapes_by_fqns",
                              "early_stop"},
    "model": {"name", "flavor", "hf_assets_path", "tokenizer_path", "converters", "print_after_conversion"},
}

TT_RUN = """
name: tt
model: llama-3.1-70b
system: dgx-h100
chips: 256
framework: torchtitan-2024
training: {tokens: 1T, seq_len: 8192, global_batch_seqs: 512, precision: PREC}
plan: {tp: 8, pp: 4, cp: 1, zero: 3, micro_batch: 2, schedule: 1f1b, recompute: full}
"""


@pytest.mark.parametrize("precision", ["bf16", "fp8"])
def test_emit_torchtitan_writes_only_keys_that_torchtitan_reads(tmp_path, capsys, precision):
    """`plan --emit torchtitan` wrote `enable_sequence_parallel` and `num_pp_microbatches`, keys of the 2026
    Python-config torchtitan (torchtitan/config/configs.py), beside `[training] local_batch_size` and
    `[model] converters = ["float8"]` of the 2025 TOML one: no torchtitan reads that file (the TOML loader refuses
    unknown fields; the later one reads no TOML). Fix: the keys of job_config.py at 24e91056a, the pipeline's
    micro-batches as pipeline_parallel_microbatch_size (torchtitan: local_batch_size / microbatch size = the
    plan's micro-batches), sequence parallelism implied by tp > 1 there."""
    import tomllib
    p = _spec(tmp_path, TT_RUN.replace("PREC", precision))
    code, out, err = run_main(capsys, "plan", p, "--fix", "tp=8,pp=4,cp=1,zero=3,micro_batch=2,recompute=full",
                              "--emit", "torchtitan")
    assert code == 0, err
    doc = tomllib.loads(out)
    for section, keys in doc.items():
        assert section in TT_FIELDS and set(keys) <= TT_FIELDS[section], (section, set(keys) - TT_FIELDS[section])
    par, tr = doc["parallelism"], doc["training"]
    assert par["tensor_parallel_degree"] == 8 and par["pipeline_parallel_degree"] == 4
    assert par["pipeline_parallel_microbatch_size"] == 2
    # 256 chips / (tp 8 x pp 4) = dp 8; 512 sequences / dp 8 = 64 per rank = 32 micro-batches of 2
    assert tr["global_batch_size"] == 512 and tr["local_batch_size"] == 64
    assert tr["local_batch_size"] // par["pipeline_parallel_microbatch_size"] == 32
    assert ("model" in doc) == (precision == "fp8")
    if precision == "fp8":
        assert doc["model"]["converters"] == ["float8"]
    assert "24e91056a" in out.splitlines()[0]


def test_torchtitan_profile_names_the_commit_of_the_emitted_keys():
    """The torchtitan-2024 profile cited 9dec370 (Dec 2024) and a config/parallelism.py for the keys; the pipeline
    keys --emit torchtitan writes came later (layers_per_stage 8b737fe3c, Apr 2025; first/last_stage_less_layers
    3c84ce095, Jul 2025). Fix: the source names the commit the keys are read at and the emitter uses that one."""
    from trainsim.emit import TORCHTITAN_COMMIT
    from trainsim.frameworks import frameworks
    src = frameworks()["torchtitan-2024"]["source"]
    assert TORCHTITAN_COMMIT == "24e91056a" and "job_config.py at 24e91056a" in src and "9dec370" in src
    assert "config/parallelism.py" not in src


# ---------------------------------------------------------------- 5. scenario files: typos refused, the file named

def _scenario(tmp_path, name, old, new):
    text = (ROOT / "scenarios" / name).read_text()
    assert old in text
    p = tmp_path / f"edited-{name}"
    p.write_text(text.replace(old, new, 1))
    return p


@pytest.mark.parametrize("name, old, new, field, meant", [
    ("S1.yaml", "size_for_days: 90", "size_for_day: 90", "size_for_day", "size_for_days"),
    ("S6.yaml", "\ndays:", "\ndeadline_days:", "deadline_days", "days"),
    ("S7.yaml", "  tolerance:", "  tolerence:", "inputs.tolerence", "tolerance"),
])
def test_a_misspelt_scenario_key_is_refused(tmp_path, capsys, name, old, new, field, meant):
    """`scenario` with `size_for_day: 90` in S1 (for size_for_days) answered as if the key were absent, exit 0: a
    kind kept every undeclared key (extra="allow"), and S7's inputs were read by name. Fix: errors.
    refuse_unknown_keys over a kind's declared keys and those the shared helpers read (base.DOC_KEYS), notes and
    sources free; S7's top-level and inputs keys alike."""
    p = _scenario(tmp_path, name, old, new)
    code, out, err = run_main(capsys, "scenario", p)
    assert code == 2
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and str(p) in lines[0] and f"{field}: unknown key" in lines[0] and meant in lines[0]


def test_scenario_notes_and_sources_stay_free(tmp_path, capsys):
    p = _scenario(tmp_path, "S9.yaml", "\nchips:", "\nreviewer_note: checked twice\nchips_source: the seed\nchips:")
    from trainsim.scenario.run import run_file
    assert run_file(p)["id"] == "S9"


def test_a_scenario_value_error_names_the_file_not_the_scenario_id(tmp_path, capsys):
    """A bad value in a scenario's training block read 'error: S1: training.seq_len: ...' (the run's name), a bad
    chips 'error: scenario S1: chips: ...': neither named the file. Fix: scenario.run.run_file names it."""
    for old, new, field in (("seq_len: 4096", "seq_len: 4kb", "training.seq_len"), ("chips: 9216", "chips: -3", "chips")):
        p = _scenario(tmp_path, "S1.yaml", old, new)
        code, out, err = run_main(capsys, "scenario", p)
        assert code == 2
        assert err.strip().startswith(f"error: {p}: {field}:"), err


@pytest.mark.parametrize("name, old, new, field", [
    ("S1.yaml", "size_for_days: 90", "size_for_days: -3", "size_for_days"),
    ("S6.yaml", "\ndays: 90", "\ndays: 0", "days"),
    ("S6.yaml", "\ndays: 90", "\ndays: .nan", "days"),
])
def test_scenario_days_must_be_positive_and_finite(tmp_path, capsys, name, old, new, field):
    """S1 with `size_for_days: -3` answered (exit 0) 'no count up to 2,604 systems finishes in -3 days'; the
    kinds' days, factors, ratios and chip counts took any number. Fix: PosFloat / PosInt / Chips
    (types_checked) on them, and the kind's validation error through errors.from_validation (one line, no
    pydantic union path)."""
    p = _scenario(tmp_path, name, old, new)
    code, out, err = run_main(capsys, "scenario", p)
    assert code == 2
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {p}: {field}:") and "function-after" not in lines[0]


# ---------------------------------------------------------------- 6. sweep --summary: chip counts as everywhere

def test_sweep_summary_prints_chip_counts_with_separators(tmp_path, capsys):
    """`sweep --summary` printed the frontier's chips as '24960' (str of a numpy integer) beside '16.8M'
    chip-hours, where every other table prints 24,960. Fix: report.sweep._fmt writes an integer with separators."""
    base = _spec(tmp_path, SMALL.replace("global_batch_seqs: 512", "global_batch_seqs: 2048"), "base.yaml")
    sweep = _spec(tmp_path, f"name: s\nbase: {base}\naxes:\n  chips: [1024, 2048]\nrecord: [inputs, time, plan]\n",
                  "sweep.yaml")
    out_file = tmp_path / "s.parquet"
    code, out, err = run_main(capsys, "sweep", sweep, "-o", out_file, "--quiet")
    assert code == 0, err
    code, out, err = run_main(capsys, "sweep", "--summary", out_file)
    assert code == 0, err
    frontier = out.split("frontier", 1)[1].split("\n  point", 1)[0]
    assert re.search(r"│\s+[01]\s+│\s+(1,024|2,048)\s+│", frontier), frontier
    assert not re.search(r"│\s+(1024|2048)\s+│", frontier)


# ---------------------------------------------------------------- 7. size: HBM with its unit, goodput in percent

def test_size_prints_hbm_with_its_unit_and_goodput_as_the_message_does(tmp_path, capsys):
    """`size` printed 'memory 70.1 GiB of 80.0' (no unit on the HBM) and the probes' goodput as 0.999 under a
    message saying 'goodput 99.9%'. Fix: report.fmt.gib and pct in cli/size_cmd.py. The H100's HBM is 80 GiB
    (catalog: '80 GB' read as GiB)."""
    code, out, err = run_main(capsys, "size", _spec(tmp_path), "--days", "5")
    assert code == 0, err
    assert re.search(r"memory \d+\.\d GiB of 80\.0 GiB", out.replace("\n", " ")), out
    said = re.search(r"\((\d+) chips\) finish in .*?goodput (\d+\.\d)%\)", out.replace("\n", " "))
    chips, goodput = said.group(1), said.group(2)
    row = re.search(rf"│\s+\d+\s+│\s+{chips}\s+│[^│]+│[^│]+│[^│]+│\s+([^│]+?)\s+│", out)
    assert row and row.group(1) == f"{goodput}%"


# ---------------------------------------------------------------- 8. infer: decode memory in GiB against the HBM

def test_infer_decode_memory_is_in_gib_against_the_hbm(capsys):
    """`infer` printed 'decode memory per chip 25.6 GB' (decimal) where estimate, plan and the catalog print
    memory and HBM in GiB (an H800's '80 GB' is 80 GiB), with no capacity to compare against. Fix: report/
    inference.py prints GiB and the chip's HBM: 25,598,052,352 B / 2^30 = 23.8 GiB of 80.0 GiB."""
    spec = ROOT / "examples/serving-llama-3.1-8b-h800.yaml"
    code, out, err = run_main(capsys, "infer", spec, "--json")
    assert code == 0, err
    res = json.loads(out)
    total = res["decode"]["memory_per_chip_bytes"]["total"]
    code, out, err = run_main(capsys, "infer", spec)
    row = " ".join(" ".join(x.strip("│ ") for x in out.splitlines() if "decode memory" in x or "buffers" in x).split())
    assert f"{total / 2**30:.1f} GiB of 80.0 GiB (" in row and " GB" not in row


# ---------------------------------------------------------------- 9. an empty spec file says so

@pytest.mark.parametrize("command", ["check", "estimate", "infer", "posttrain", "scenario"])
@pytest.mark.parametrize("text, shape", [("", "an empty file"), ("- a\n- b\n", "a list"), ("3\n", "a number")])
def test_a_spec_that_is_not_a_mapping_says_what_it_holds(tmp_path, capsys, command, text, shape):
    """`check` of an empty file said 'expected a mapping of spec keys, got NoneType' (a Python type name),
    `scenario` of one 'kind: missing key', estimate / infer / posttrain only 'expected a mapping'. Fix:
    io.specfile.yaml_shape, the one wording, in every spec parser."""
    p = _spec(tmp_path, text, "spec.yaml")
    code, out, err = run_main(capsys, command, p)
    assert code == 2
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and str(p) in lines[0] and lines[0].endswith(f"keys, got {shape}"), lines


# ---------------------------------------------------------------- 10. a zero price prints as $0

def test_a_zero_price_prints_as_zero_dollars(tmp_path, capsys):
    """`estimate --price-per-chip-hour 0` printed 'cost, rental $0.00e+00 at $0.00e+00/chip-hour' (the count
    formatter sent 0 to e-notation, as for values below 1e-3). Fix: numfmt.count writes 0 as '0'."""
    from trainsim.numfmt import count, money
    assert (count(0), count(0.0), money(0.0), count(0.0, "chip-hours")) == ("0", "0", "$0", "0 chip-hours")
    assert count(0.0004) == "4.00e-04"          # a small non-zero value keeps its digits
    code, out, err = run_main(capsys, "estimate", _spec(tmp_path), "--price-per-chip-hour", "0", "--electricity", "0")
    assert code == 0, err
    assert "$0 at $0/chip-hour" in out and "e+00" not in out


# ---------------------------------------------------------------- 11. validate: the whole-run table's unit

def test_validate_whole_run_table_names_its_unit(capsys):
    """`validate`'s whole-run table was titled '(chip-hours; ...)' over columns 'whole-run' and 'predicted steady'
    holding tokens/s per chip (243 for BloombergGPT): read as chip-hours. Fix: the columns say tokens/s/chip as
    the --markdown table does. BloombergGPT: 569e9 tokens / (651,264 GPU-hours x 3600) = 242.7 -> 243."""
    code, out, err = run_main(capsys, "validate", ROOT / "validation/runs/bloomberggpt-50b-512.yaml")
    assert code == 0, err
    part = out.split("whole-run averages", 1)[1]
    assert "whole-run tokens/s/chip" in part and "predicted steady tokens/s/chip" in part
    row = next(x for x in part.splitlines() if "bloomberggpt-50b-512" in x)
    assert re.search(r"│\s+512\s+│\s+243\s+│", row), row


def test_validate_summary_says_one_run_not_one_runs(capsys):
    """`validate` of one run printed 'nvidia-ampere: 1 runs, ...' and 'overall: 1 runs'. Fix: numfmt.counted."""
    code, out, err = run_main(capsys, "validate", ROOT / "validation/runs/bloomberggpt-50b-512.yaml")
    assert code == 0, err
    assert "overall: 1 run, median" in out and "nvidia-ampere: 1 run, median" in out and "1 runs" not in out


# ---------------------------------------------------------------- 12. --json with --csv

@pytest.mark.parametrize("args", [["estimate", "RUN"], ["plan", "RUN"], ["model", "llama-3.1-8b"], ["check", "RUN"],
                                  ["catalog", "chips"]])
def test_json_and_csv_together_is_a_usage_error(tmp_path, capsys, args):
    """`estimate RUN --json --csv` (and every command with both) printed CSV and dropped --json without a word.
    Fix: cli.handler.format_conflict, before any work: exit 2, one line naming both and the command's help."""
    args = [str(_spec(tmp_path)) if a == "RUN" else a for a in args]
    code, out, err = run_main(capsys, *args, "--json", "--csv")
    assert code == 2 and out == ""
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "--json and --csv" in lines[0] and f"trainsim {args[0]} --help" in lines[0]
    code, out, err = run_main(capsys, *args, "--csv")
    assert code == 0 and out.count("\n") >= 2, err


@pytest.mark.parametrize("name, old, new, field", [
    ("S1.yaml", "size_for_days: 90", "size_for_day: 90", "size_for_day: unknown key"),
    ("S1.yaml", "size_for_days: 90", "size_for_days: -3", "size_for_days: Input should be greater than 0"),
    ("S7.yaml", "  tolerance:", "  tolerence:", "inputs.tolerence: unknown key"),
])
def test_check_refuses_what_scenario_refuses(tmp_path, capsys, name, old, new, field):
    """`check` said 'valid scenario spec' for S1 with size_for_day (a typo) or size_for_days -3, which
    `scenario` refuses. Fix: api.checks runs the kind's input validation (the handler's ``validate``)."""
    p = _scenario(tmp_path, name, old, new)
    code, out, err = run_main(capsys, "check", p)
    assert code == 2 and err.strip().startswith(f"error: {p}: {field}"), err
    for seed in ("S1.yaml", "S7.yaml"):
        code, out, err = run_main(capsys, "check", ROOT / "scenarios" / seed)
        assert code == 0 and "valid scenario spec" in out, err


# ---------------------------------------------------------------- 13. compare of identical inputs

def test_compare_of_identical_inputs_says_none_differ(tmp_path, capsys):
    """`compare a.yaml a.yaml` printed an 'inputs that differ' table with a header and no rows. Fix: one line
    saying none differ; a real difference (64 vs 128 chips) still gets its table."""
    a = _spec(tmp_path)
    code, out, err = run_main(capsys, "compare", a, a)
    assert code == 0, err
    assert "inputs that differ: none" in out and "┃ input" not in out
    b = _spec(tmp_path, SMALL.replace("chips: 64", "chips: 128"), "b.yaml")
    code, out, err = run_main(capsys, "compare", a, b)
    assert code == 0, err
    assert re.search(r"│ chips\s+│\s+64\s+│\s+128\s+│", out)


# ---------------------------------------------------------------- 14. no '-0%' for a change that rounds to zero

def test_a_change_that_rounds_to_zero_is_not_negative(tmp_path, capsys):
    """`sensitivity` printed '18.7 (-0%)' for scale-out x1.5 and the report's ranges chart 'low -0.0%' (a
    -0.001% change rounded). Fix: report.fmt.signed_pct (digits, +0 for a zero) in the chart and the table."""
    from trainsim.report.fmt import signed_pct
    assert (signed_pct(-0.004), signed_pct(-0.3, 0), signed_pct(3.0), signed_pct(-0.06)) == (
        "+0.0%", "+0%", "+3.0%", "-0.1%")
    code, out, err = run_main(capsys, "sensitivity", _spec(tmp_path), "--vary", "scale_out", "--factors", "1.5,2")
    assert code == 0, err
    assert "(-0%)" not in out and re.search(r"\(\+\d+%\)", out)


# ---------------------------------------------------------------- 15. infer / posttrain --validate of a spec without figures

@pytest.mark.parametrize("command, spec", [("infer", "examples/serving-llama-3.1-8b-h800.yaml"),
                                           ("posttrain", "examples/posttrain-opd-two-clusters.yaml")])
@pytest.mark.parametrize("fmt", [[], ["--json"]])
def test_validate_of_a_spec_without_reported_figures_is_no_answer(capsys, command, spec, fmt):
    """`infer SPEC --validate` (and posttrain) on a spec without `reported:` printed an empty error table, exit 0,
    so a script could not tell it compared nothing. Fix: exit 1 with one stderr line, as `validate` (qa10)."""
    code, out, err = run_main(capsys, command, ROOT / spec, "--validate", *fmt)
    assert code == 1 and "nothing was compared" in err and "no reported: figures" in err


def test_validate_of_a_published_serving_point_still_answers(capsys):
    code, out, err = run_main(capsys, "infer", ROOT / "validation/inference/cloudmatrix-decode-b112-2k256.yaml",
                              "--validate", "--json")
    assert code == 0 and len(json.loads(out)["rows"]) >= 1, err


# ---------------------------------------------------------------- 16. plan --emit with --json / --csv / --against

@pytest.mark.parametrize("extra, named", [(["--json"], "--json"), (["--csv"], "--csv"),
                                          (["--against", "tp=2"], "--against")])
def test_emit_with_another_output_is_a_usage_error(tmp_path, capsys, extra, named):
    """`plan --emit megatron --json` (or --csv, or --against tp=2) printed the flags and dropped the other option
    without a word (the --against comparison was even computed). Fix: cli/plan_cmd.py refuses the combination,
    exit 2, one line naming both."""
    code, out, err = run_main(capsys, "plan", _spec(tmp_path), "--emit", "megatron", *extra)
    assert code == 2 and out == ""
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --emit:") and named in lines[0]
    code, out, err = run_main(capsys, "plan", _spec(tmp_path), "--emit", "megatron")
    assert code == 0 and "TRAINSIM_ARGS=(" in out, err


# ---------------------------------------------------------------- 17. labels of byte and FLOP-rate keys

def test_scenario_labels_name_byte_and_rate_units(capsys):
    """`scenario S5` labelled hbm_bandwidth_pb_s 'HBM bandwidth pb (s)' (seconds: the trailing _s read alone),
    hbm_pb 'HBM pb' and peak_eflops 'peak eflops'. Fix: numfmt.label reads a byte unit (+ _s: per second) and a
    FLOP unit after peak_ as the rates they are."""
    from trainsim.numfmt import label
    assert label("hbm_bandwidth_pb_s") == "HBM bandwidth (PB/s)" and label("hbm_tb_s") == "HBM (TB/s)"
    assert label("hbm_pb") == "HBM (PB)" and label("peak_eflops") == "peak (EFLOP/s)"
    assert label("step_time_s") == "step time (s)" and label("training_flops") == "training (FLOP)"
    code, out, err = run_main(capsys, "scenario", ROOT / "scenarios/S5.yaml")
    assert code == 0, err
    assert "HBM bandwidth (PB/s)" in out and "a / HBM (PB)" in out and "peak (EFLOP/s) / bf16" in out
    assert "pb (s)" not in out


# ---------------------------------------------------------------- 18. scenario tables: MFU and goodput in percent

def test_scenario_tables_print_mfu_and_goodput_as_percentages(capsys):
    """`scenario S5` printed the runs' MFU as 0.343 and goodput as '0.942 (0.771-0.981)' under a verdict saying
    'MFU 34%', S3 'MFU 0.148' beside the best plan's 'MFU 23.7%'. Fix: report.fmt.value_of_key prints
    FRACTION_KEYS as percentages (terminal and HTML share it). Each cell is the --json fraction x 100."""
    code, out, err = run_main(capsys, "scenario", ROOT / "scenarios/S5.yaml", "--json")
    assert code == 0, err
    res = json.loads(out)
    res = res[0] if isinstance(res, list) else res
    rows = res["numbers"]["a"]["runs"]
    code, out, err = run_main(capsys, "scenario", ROOT / "scenarios/S5.yaml")
    assert code == 0, err
    table = out.split("S5: a.runs", 1)[1].split("└", 1)[0]
    for r in rows:
        assert f"{r['mfu']:.1%}" in table
        g = r["goodput"]
        assert f"{g['nominal']:.1%}" in table and f"({g['low']:.1%}-" in table.replace("\n", " ").replace("│", "")
    assert not re.search(r"│ 0\.\d{3}\s+│", table)
