"""qa13: a first-use QA pass, round 2 (lengths stated as "4K", precision in upper case, ...). Each test failed
before the fix it names; expected values come from the inputs, the catalog or hand derivations, never from the
engine."""
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


# ---------------------------------------------------------------- 1. lengths as "4K", precision in any case

@pytest.mark.parametrize("text,tokens", [("4k", 4096), ("4K", 4096), ("128K", 131072), ("1M", 1048576),
                                         ("4,096", 4096), ("2.5K", 2560)])
def test_length_binary_suffixes(text, tokens):
    """Sequence lengths are powers of two in every source ("4K context" = 4,096 tokens), so a length's K is 1,024:
    4 x 1,024 = 4,096; 128 x 1,024 = 131,072; 1,024^2 = 1,048,576; 2.5 x 1,024 = 2,560."""
    from trainsim.units import parse_length
    assert parse_length(text, "seq_len") == tokens


@pytest.mark.parametrize("text", ["4kb", "4.1K", "abc", "4T"])
def test_length_refused(text):
    from trainsim.errors import TrainsimError
    from trainsim.units import parse_length
    with pytest.raises(TrainsimError, match="length in tokens"):
        parse_length(text, "seq_len")


def test_as_field_error_is_the_one_validator_wrapper():
    """The helper both field validators (types_checked SeqLen, posttrain links' bandwidth / latency) go through: a
    parsed value passes, a TrainsimError becomes the ValueError pydantic puts the field path on, same text."""
    from trainsim.types_checked import as_field_error
    from trainsim.units import parse_length, parse_quantity
    assert as_field_error(parse_length, "4K", None) == 4096
    assert as_field_error(parse_quantity, "30 ms", "seconds", "") == pytest.approx(0.030)
    with pytest.raises(ValueError, match="length in tokens") as e:
        as_field_error(parse_length, "4kb", None)
    assert e.value.__cause__ is None and type(e.value) is ValueError


def test_run_spec_seq_len_4k_and_upper_case_precision(tmp_path):
    """`seq_len: 4k` and `precision: BF16` were refused by strict parsing; both now read as 4096 and bf16."""
    from trainsim.spec import load_run
    spec = load_run(_spec(tmp_path, SMALL.replace("seq_len: 4096", "seq_len: 4k")
                               .replace("precision: bf16", "precision: BF16")))
    assert spec.training.seq_len == 4096
    assert spec.training.precision == "bf16"


def test_run_spec_bad_length_one_line(tmp_path, capsys):
    code, out, err = run_main(capsys, "estimate", _spec(tmp_path, SMALL.replace("seq_len: 4096", "seq_len: 4kb")))
    assert code == 2
    assert "training.seq_len" in err and "'4kb'" in err and len(err.strip().splitlines()) == 1


def test_serving_input_len_2k_and_upper_case_precision(tmp_path):
    """`input_len: 2k` (= 2,048) and `precision: FP8` in a serving spec."""
    from trainsim.inference.spec import load_serving
    text = SERVE_DENSE.read_text().replace("input_len: 2048", "input_len: 2k").replace("precision: fp8",
                                                                                       "precision: FP8")
    spec = load_serving(_spec(tmp_path, text, "serve.yaml"))
    assert spec.serving.input_len == 2048
    assert spec.serving.precision == "fp8"


# ---------------------------------------------------------------- 2. scenario chips: the run spec's parser

def test_scenario_chips_in_pods_like_a_run_spec():
    """A scenario's `chips: "24 pods"` was refused (int("24 pods")) while a run spec accepts it: both now go through
    spec.chips_as_stated. 24 CloudMatrix 384 pods = 24 x 384 = 9,216 chips; "2 systems" of dgx-h100 = 2 x 8 = 16;
    "25K" = 25,000."""
    from trainsim.catalog.resolve import resolve_system
    from trainsim.scenario.common import make_run
    from trainsim.scenario.kinds.base import _chips
    cm = resolve_system("cloudmatrix-384")
    assert _chips({"id": "t", "chips": "24 pods"}, cm) == 9216
    tr = {"tokens": 1e12, "seq_len": 4096, "global_batch_seqs": 512}
    assert make_run("llama-3.1-8b", "dgx-h100", "2 systems", tr).chips == 16
    assert make_run("llama-3.1-8b", resolve_system("dgx-h100"), "2 systems", tr).chips == 16
    assert make_run("llama-3.1-8b", "dgx-h100", "25K", tr).chips == 25_000


def test_scenario_inputs_take_chips_in_pods_and_refuse_nonsense():
    from trainsim.errors import TrainsimError
    from trainsim.scenario.kinds import pretrain_compare
    from trainsim.scenario.kinds.base import _chips, parse_inputs
    from trainsim.catalog.resolve import resolve_system
    assert parse_inputs(pretrain_compare.Inputs, {"kind": "pretrain-compare", "model": "glm-5", "chips": "24 pods",
                                                  "training": {"tokens": 1e12},
                                                  "systems": [{"system": "cloudmatrix-384"}]}).chips == "24 pods"
    with pytest.raises(TrainsimError, match="scale-up domains"):
        _chips({"id": "t", "chips": "24 potatoes"}, resolve_system("cloudmatrix-384"))


# ---------------------------------------------------------------- 3./4. sensitivity: units and the name 'hbm'

def test_sensitivity_scale_out_in_gbit_like_the_catalog(tmp_path, capsys):
    """`sensitivity` printed scale-out bandwidth in GB/s (50 GB/s for a DGX H100) while `catalog systems` prints
    Gb/s (400 Gb/s: one ConnectX-7 400 Gb/s NIC per GPU). Now both say 400 Gb/s (50e9 B/s x 8 bit / 1e9)."""
    code, out, err = run_main(capsys, "catalog", "systems")
    assert code == 0 and re.search(r"dgx-h100 .*400 Gb/s", out)
    code, out, err = run_main(capsys, "sensitivity", _spec(tmp_path), "--vary", "scale_out_bandwidth",
                              "--factors", "2", "-q", "--json")
    assert code == 0
    p = json.loads(out)["params"]["scale_out_bandwidth"]
    assert p["unit"] == "Gb/s" and p["nominal"] == pytest.approx(400.0)


@pytest.mark.parametrize("name", ["hbm", " hbm"])
def test_sensitivity_hbm_alone_is_refused(tmp_path, capsys, name):
    """`--vary hbm` silently meant HBM capacity; it now names both parameters."""
    code, out, err = run_main(capsys, "sensitivity", _spec(tmp_path), "--vary", name)
    assert code == 2 and "hbm_capacity" in err and "hbm_bandwidth" in err and "ambiguous" in err
    assert len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- 5. sweep axis values refused up front

@pytest.mark.parametrize("axis,bad", [("training.seq_len", "0"), ("training.global_batch_seqs", "-4"),
                                      ("training.tokens", "0")])
def test_sweep_bad_training_axis_value_refused_up_front(tmp_path, capsys, axis, bad):
    """`seq_len: 0` on a sweep axis was a per-point error with exit 0, while a bad `chips` is refused with the spec:
    now exit 2, one line naming the file, the field and the value."""
    base = _spec(tmp_path)
    sweep = _spec(tmp_path, f"name: s\nbase: {base}\naxes:\n  {axis}: [2048, {bad}]\n", "sweep.yaml")
    code, out, err = run_main(capsys, "sweep", sweep, "-o", tmp_path / "o.parquet")
    assert code == 2
    line = err.strip()
    assert len(line.splitlines()) == 1
    assert "sweep.yaml" in line and f"axes.{axis}[1]" in line and f"got {bad}" in line


def test_sweep_seq_len_axis_takes_binary_k(tmp_path):
    """A sweep's `training.seq_len: [2k, 8K]` is 2,048 and 8,192 tokens, as in a run spec (2 x 1,024, 8 x 1,024)."""
    from trainsim.sweep.targets import parse_number
    assert parse_number("training.seq_len", "2k", "axes.training.seq_len[0]", "s.yaml") == 2048
    assert parse_number("training.seq_len", "8K", "axes.training.seq_len[1]", "s.yaml") == 8192


# ---------------------------------------------------------------- 6. `model`: no zero rows for absent parts

def test_model_without_mtp_has_no_mtp_row(capsys):
    """`trainsim model llama-3.1-8b` showed 'MTP modules 0.000 B' and 'total parameters (MTP excluded)' for a model
    without MTP (Llama 3.1 has none: its config.json has no num_nextn_predict_layers). DeepSeek-V3 has one MTP
    module (arXiv 2412.19437 sec. 2.2), so its rows stay."""
    code, out, err = run_main(capsys, "model", "llama-3.1-8b")
    assert code == 0 and "MTP" not in out
    code, out, err = run_main(capsys, "model", "deepseek-v3")
    assert code == 0 and "MTP modules" in out and "(MTP excluded)" in out


# ---------------------------------------------------------------- 7. labels of per-unit keys

@pytest.mark.parametrize("key,text", [("tokens_per_s", "tokens/s"), ("tokens_per_s_per_chip", "tokens/s per chip"),
                                      ("decode_tokens_per_s_per_chip", "decode tokens/s per chip"),
                                      ("samples_per_h", "samples/h"), ("step_time_s", "step time (s)")])
def test_label_of_per_unit_keys(key, text):
    """`numfmt.label("tokens_per_s")` gave 'tokens per (s)': a rate's "per s" now joins the word it divides."""
    from trainsim.numfmt import label
    assert label(key) == text


# ---------------------------------------------------------------- 8. "did you mean" for every misspelt key

POSTTRAIN = ROOT / "examples/posttrain-opd-two-clusters.yaml"


@pytest.mark.parametrize("command,src,old,new,field,near", [
    ("estimate", None, "seq_len: 4096", "seq_lenn: 4096", "training.seq_lenn", "seq_len"),
    ("posttrain", POSTTRAIN, "  mode: async", "  mod: async", "step.mod", "mode"),
    ("posttrain", POSTTRAIN, "  logprobs: sampled", "  logprob: sampled", "step.logprob", "logprobs"),
    ("posttrain", POSTTRAIN, "main: {system: cloudmatrix-384, chips: 384}",
     "main: {system: cloudmatrix-384, chips: 384, systm: 8}", "clusters.main.systm", "system"),
    ("infer", SERVE_DENSE, "kv_precision: bf16", "kv_precison: bf16", "serving.kv_precison", "kv_precision"),
])
def test_misspelt_optional_key_gets_did_you_mean(tmp_path, capsys, command, src, old, new, field, near):
    """A misspelt key got 'did you mean' only when the key it misspells is required (`step.prompt_lenn` -> prompt_len)
    and a bare 'unknown key (typo?)' when that key has a default (`training.seq_lenn`, `step.mod`). errors.
    from_validation now also looks among every key the validated model takes at that place."""
    text = SMALL if src is None else src.read_text()
    assert old in text
    code, out, err = run_main(capsys, command, _spec(tmp_path, text.replace(old, new)))
    assert code == 2
    assert f"{field}: unknown key (typo? did you mean {near}?)" in err


def test_misspelt_key_with_no_near_key_stays_plain(tmp_path, capsys):
    code, out, err = run_main(capsys, "estimate", _spec(tmp_path, SMALL.replace("seq_len: 4096", "zzz: 4096")))
    assert code == 2 and "training.zzz: unknown key (typo?)" in err and "did you mean" not in err


# ---------------------------------------------------------------- 9. small formats

def test_s3_pods_is_a_count(capsys):
    """S3 printed 'pods 65.0': 24,960 chips / 384 per CloudMatrix 384 pod = 65 whole pods, a count."""
    code, out, err = run_main(capsys, "scenario", ROOT / "scenarios/S3.yaml", "--json")
    assert code == 0
    n = json.loads(out)[0]["numbers"]
    assert n["pods"] == 65 and isinstance(n["pods"], int) and n["chips"] == 65 * 384
    code, out, err = run_main(capsys, "scenario", ROOT / "scenarios/S3.yaml")
    assert re.search(r"│ pods +│ 65 +│", out)


def test_percent_and_fraction_cells():
    """S8 printed 'change pct 18.7' (no %) and 'slowdown 0.100' (a fraction): a *_pct value is a change already in
    percent (+18.7%), a slowdown a fraction (0.1 = 10.0%)."""
    from trainsim.report.fmt import value_of_key
    assert value_of_key("change_pct", 18.7) == "+18.7%"
    assert value_of_key("rows[0].change_pct", -1.92) == "-1.9%"
    assert value_of_key("threshold.slowdown", 0.1) == "10.0%"


def test_catalog_systems_headers_and_counts(capsys):
    """`catalog systems` put '$/chip' over '33,625 USD' cells and printed the Atlas 950 SuperPoD's domain as 8192
    (8,192 Ascend 950DT per SuperPoD, Huawei Connect 2025)."""
    code, out, err = run_main(capsys, "catalog", "systems")
    assert code == 0 and "$/chip" not in out and "price/chip" in out
    assert re.search(r"atlas-950-superpod .*│ 8,192 +│", out)


def test_emit_header_chip_count_with_separator(tmp_path, capsys):
    """The `plan --emit` header read 'on 2048 x nvidia-h100-sxm5'."""
    code, out, err = run_main(capsys, "plan", _spec(tmp_path, SMALL.replace("chips: 64", "chips: 2048")),
                              "--emit", "megatron")
    assert code == 0 and "on 2,048 x nvidia-h100-sxm5" in out.splitlines()[0]
