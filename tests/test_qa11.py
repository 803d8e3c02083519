"""qa11: a first-use QA pass's defects (a batch of "1K" sequences refused, sensitivity refusing a run without
tokens, mixed number styles in a scenario cell, ...). Each test failed before the fix it names; expected values
come from the inputs, the catalog or hand derivations, never from the engine."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SMALL_RUN as SMALL
from conftest import run_main
from conftest import write_spec as _spec

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- 1. global_batch_seqs with a suffix

@pytest.mark.parametrize("stated, seqs", [('"1K"', 1000), ('"2k"', 2000), ('"1,024"', 1024), ('"1.5K"', 1500),
                                          ("1024", 1024)])
def test_global_batch_seqs_takes_the_count_suffixes(tmp_path, capsys, stated, seqs):
    """`global_batch_seqs: "1K"` was refused ('Input should be a valid integer') while chips and tokens take the
    same suffixes. Fix: units.parse_int_count, the one integer-count parser (K = 10^3 as for chips and tokens)."""
    from trainsim.spec import load_run
    p = _spec(tmp_path, SMALL.replace("global_batch_seqs: 512", f"global_batch_seqs: {stated}"))
    assert load_run(p).training.global_batch_seqs == seqs
    code, out, err = run_main(capsys, "check", p)
    assert code == 0, err
    assert f"batch {seqs:,} sequences" in out


@pytest.mark.parametrize("stated", ['"0.3"', '"1.0005K"'])
def test_global_batch_seqs_not_a_whole_number_is_one_error_line(tmp_path, capsys, stated):
    """A fractional count is not a batch of sequences: one line naming the field, exit 2."""
    p = _spec(tmp_path, SMALL.replace("global_batch_seqs: 512", f"global_batch_seqs: {stated}"))
    code, out, err = run_main(capsys, "check", p)
    assert code == 2
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "training.global_batch_seqs" in lines[0] and "whole number" in lines[0]


def test_chips_and_batch_share_one_integer_parser():
    """chips ('25K', '1,000') and global_batch_seqs go through the same parser: same value for the same text."""
    from trainsim.errors import TrainsimError
    from trainsim.spec import chips_as_stated
    from trainsim.units import parse_int_count
    assert parse_int_count("25K", "x") == 25_000 == chips_as_stated("25K", "dgx-h100", None, "w")
    assert parse_int_count("1,024", "x") == 1024 == chips_as_stated("1,024", "dgx-h100", None, "w")
    with pytest.raises(TrainsimError, match="whole number"):
        parse_int_count("0.3", "x")


# ---------------------------------------------------------------- 2. sensitivity without training.tokens

NO_TOKENS = SMALL.replace("tokens: 1T, ", "")


def test_sensitivity_without_tokens_reports_per_token_figures(tmp_path, capsys):
    """`trainsim sensitivity` refused a run without training.tokens ('the run needs training.tokens') although
    the question (how much a parameter moves the run) is per token. Fix: tokens/s per chip, step time and MFU,
    the change being that of time per token; with tokens the change is that of days, the same ratio
    (days = tokens / (tokens/s per chip x chips) / 86400)."""
    args = ("--vary", "peak_flops", "--factors", "0.5,2", "--json")
    code, out, err = run_main(capsys, "sensitivity", _spec(tmp_path, NO_TOKENS), *args)
    assert code == 0, err
    per_tok = json.loads(out)
    assert per_tok["nominal_days"] is None
    tps = per_tok["nominal_tokens_per_s_per_chip"]
    assert tps > 0 and per_tok["nominal_step_time_s"] > 0 and 0 < per_tok["nominal_mfu"] < 1
    # step time x tokens/s per chip x chips = tokens per step = 512 sequences x 4096 (every chip used: 64 = 8 x 8)
    assert per_tok["nominal_step_time_s"] * tps * 64 == pytest.approx(512 * 4096, rel=1e-6)
    rows = per_tok["params"]["peak_flops"]["rows"]
    for row in rows:   # change of time per token = tokens/s ratio inverted
        assert row["days"] is None
        assert row["change_pct"] == pytest.approx((tps / row["tokens_per_s_per_chip"] - 1) * 100, rel=1e-9)
    code, out, err = run_main(capsys, "sensitivity", _spec(tmp_path, SMALL, "tok.yaml"), *args)
    assert code == 0, err
    with_tok = json.loads(out)
    assert with_tok["nominal_days"] == pytest.approx(1e12 / (tps * 64) / 86400, rel=1e-9)
    for a, b in zip(rows, with_tok["params"]["peak_flops"]["rows"]):
        assert a["change_pct"] == pytest.approx(b["change_pct"], rel=1e-9)
    assert per_tok["elasticity"]["peak_flops"] == pytest.approx(with_tok["elasticity"]["peak_flops"], rel=1e-9)


def test_sensitivity_without_tokens_table_says_per_token(tmp_path, capsys):
    code, out, err = run_main(capsys, "sensitivity", _spec(tmp_path, NO_TOKENS), "--vary", "hbm_bw",
                              "--factors", "0.5", "-q", "--threshold", "10%")
    assert code == 0, err
    assert "tokens/s per chip" in out and "days" not in out.split("\n")[0]


# ---------------------------------------------------------------- 3. one formatter for catalog quantities

def test_a_catalog_quantity_range_is_one_style_in_its_unit():
    """S5's 'effective fp8 peak' cell read 'low=845T, high=1.41e+15' (two number styles, no unit). Fix: the
    scenario names the catalog field of the range (fp8_flops) and fmt.value_of_key prints it with the catalog's
    formatter: 845e12 FLOP/s = 845 TFLOP/s, 1.41e15 FLOP/s = 1,410 TFLOP/s."""
    from trainsim.report.fmt import value_of_key
    cell = value_of_key("a.fp8_efficiency_range.effective_fp8_peak",
                        {"name": "fp8_flops", "low": 845e12, "high": 1.41e15})
    assert cell == "845-1,410 TFLOP/s"
    assert value_of_key("x", {"name": "fp8_flops", "nominal": 989e12, "low": 845e12, "high": 1.41e15}) \
        == "989 TFLOP/s (845-1,410 TFLOP/s)"
    # a mapping naming no catalog field is left to the general formatter
    assert value_of_key("x", {"name": "not_a_field", "low": 1.0, "high": 2.0}) != ""


def test_s5_effective_fp8_peak_cell_is_in_tflops(capsys):
    code, out, err = run_main(capsys, "scenario", ROOT / "scenarios/S5.yaml")
    assert code == 0, err
    line = next(x for x in out.splitlines() if "effective fp8 peak" in x)
    assert "TFLOP/s" in line and "e+" not in line and "low=" not in line


# ---------------------------------------------------------------- 4. catalog show's title

def test_catalog_show_title_names_display_units(capsys):
    """`catalog show` titled its table 'catalog values (SI, as the engine uses them)' above '989 TFLOP/s' and
    '80 GiB' (display units; the SI value of 989 TFLOP/s is 9.89e14). Fix: the title says display units."""
    code, out, err = run_main(capsys, "catalog", "show", "nvidia-h100-sxm5")
    assert code == 0, err
    title = next(x for x in out.splitlines() if "catalog values" in x)
    assert "(SI," not in title and "display units" in title
    assert "989 TFLOP/s" in out


# ---------------------------------------------------------------- 5. infer --json of a dense model

def test_infer_json_has_no_expert_fields_for_a_dense_model(capsys):
    """`infer --json` of Llama 3.1 8B (dense: no routed experts) showed plans with ep and a derived etp (etp = stage
    chips / ep, so 'etp': 4 beside 'tp': 4 and 'etp': 8 in a tp=4 runner-up). Fix: a dense model's plans carry
    no ep / etp and the answer no expert_precision, as the terminal table already omitted them."""
    code, out, err = run_main(capsys, "infer", ROOT / "examples/serving-llama-3.1-8b-h800.yaml", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["moe"] is False and "expert_precision" not in res
    plans = [res[k]["plan"] for k in ("prefill", "decode") if k in res] + res["decode"]["runners_up"]
    assert plans
    for p in plans:
        assert not {"ep", "etp"} & set(p)
        assert p["chips"] == p["tp"] * p["pp"] * p["dp"]


def test_infer_json_keeps_expert_fields_for_a_moe_model(capsys, tmp_path):
    spec = tmp_path / "moe.yaml"
    spec.write_text("name: m\nmodel: mixtral-8x7b\nsystem: dgx-h100\nchips: 8\n"
                    "serving: {input_len: 1024, output_len: 256, precision: bf16}\n")
    code, out, err = run_main(capsys, "infer", spec, "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["moe"] is True and "expert_precision" in res
    p = res["decode"]["plan"]
    assert {"ep", "etp"} <= set(p) and p["ep"] * p["etp"] == p["chips"] // p["pp"]


# ---------------------------------------------------------------- 6. --emit torchtitan with stated stage sizes

def _titan_layers_per_rank(n_layers, pp, vpp, layers_per_stage, input_weight, output_weight):
    """torchtitan's split transcribed from pytorch/torchtitan torchtitan/distributed/pipeline_parallel.py
    (b5bcd76c6): _get_pipeline_metadata's stage count and _generate_llm_fqn_per_model_part's module lists, then
    stage s on rank s % pp (looped layout); counts 'layers.i' per rank."""
    import math
    num_stages = math.ceil((n_layers + input_weight + output_weight) / layers_per_stage)
    assert num_stages % pp == 0 and num_stages == pp * vpp
    eff_total = n_layers + input_weight + output_weight
    per, extra = eff_total // num_stages, eff_total % num_stages
    assert per > 0 and input_weight <= per and output_weight <= per
    parts, cur = [], 0
    for i in range(num_stages):
        eff = per + (1 if i < extra else 0)
        take = eff - input_weight if i == 0 else eff - output_weight if i == num_stages - 1 else eff
        names = []
        for _ in range(take):
            if cur < n_layers:
                names.append(f"layers.{cur}")
                cur += 1
        parts.append(names)
    assert cur == n_layers
    return [sum(len(parts[s]) for s in range(r, num_stages, pp)) for r in range(pp)]


def _est(n_layers, pp, vpp, first, last, schedule="1f1b"):
    from types import SimpleNamespace
    plan = {"tp": 1, "pp": pp, "vpp": vpp, "dp": 2, "ep": 1, "etp": 1, "cp": 1, "zero": 0, "recompute": "none",
            "micro_batch": 1, "schedule": schedule, "node_limit": 0}
    run = SimpleNamespace(arch=SimpleNamespace(n_layers=n_layers, is_moe=False, name="m"),
                          training=SimpleNamespace(batch_seqs=64, seq_len=4096, precision="bf16"), chips=2 * pp,
                          plan=SimpleNamespace(first_stage_layers=first, last_stage_layers=last))
    return SimpleNamespace(plan=plan, run=run, step_time_s=1.0)


@pytest.mark.parametrize("n_layers, pp, vpp, first, last, want", [
    # Llama 3 405B (sec. 3.3.2): one layer off the first and the last stage, 126 = 7 + 14 x 8 + 7
    (126, 16, 1, 7, 7, [7] + [8] * 14 + [7]),
    # 32 layers, first 6 and last 8: the middle ranks take (32 - 14) / 2 = 9 each
    (32, 4, 1, 6, 8, [6, 9, 9, 8]),
    # only the first stated: 32 - 5 = 27 over the three others, 9 each
    (32, 4, 1, 5, None, [5, 9, 9, 9]),
])
def test_torchtitan_emit_reproduces_a_stated_stage_split(n_layers, pp, vpp, first, last, want):
    """`--emit torchtitan` ignored first/last_stage_layers: it always wrote ceil(L / S) layers per stage with the
    spare layers off the ends (32 layers, pp 4, stated 6 / 8 ran 8,8,8,8; Llama 3's 7 / 7 over 126 matched only
    because it is also that default). Fix: the
    *_stage_less_layers weights (and layers_per_stage) that make torchtitan's own split the stated one."""
    import tomllib
    from trainsim.emit import emit_args, emit_notes
    est = _est(n_layers, pp, vpp, first, last)
    p = tomllib.loads(emit_args(est, "torchtitan"))["parallelism"]
    got = _titan_layers_per_rank(n_layers, pp, vpp, p["pipeline_parallel_layers_per_stage"],
                                 p["pipeline_parallel_first_stage_less_layers"],
                                 p["pipeline_parallel_last_stage_less_layers"])
    assert got == want
    assert emit_notes(est, "torchtitan") == []


def test_torchtitan_emit_says_when_a_stated_split_cannot_be_expressed(tmp_path, capsys):
    """A first/last stage heavier than the others (32 layers, pp 4, last 9 > middle 8) needs a negative weight,
    which torchtitan's 'layers to reduce' cannot be: one stderr line saying so and what runs instead (the even
    split 8,8,8,8), the TOML still emitted; exit 0."""
    spec = _spec(tmp_path, """
model: llama-3.1-8b
system: dgx-h100
chips: 64
framework: torchtitan-2024
training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 512}
plan: {tp: 2, pp: 4, zero: 0, schedule: 1f1b, first_stage_layers: 7, last_stage_layers: 9}
""")
    code, out, err = run_main(capsys, "plan", spec, "--emit", "torchtitan")
    assert code == 0, err
    lines = [x for x in err.splitlines() if "cannot express" in x]
    assert len(lines) == 1 and "first stage 7" in lines[0] and "last stage 9" in lines[0]
    assert "8,8,8,8" in lines[0]
    import tomllib
    p = tomllib.loads(out)["parallelism"]
    assert _titan_layers_per_rank(32, 4, 1, p["pipeline_parallel_layers_per_stage"],
                                  p["pipeline_parallel_first_stage_less_layers"],
                                  p["pipeline_parallel_last_stage_less_layers"]) == [8, 8, 8, 8]


# ---------------------------------------------------------------- 7. scripts parse their arguments

SCRIPTS = ("readme_scenarios", "search_vs_recipes", "sibling_ratios", "megatron_arg_names", "explorer_screenshots")


def _snapshot():
    import hashlib
    files = [ROOT / "README.md", *sorted((ROOT / "docs" / "figures").glob("*"))]
    return {str(f): (hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else None) for f in files}


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_help_and_a_mistyped_flag_do_no_work(script):
    """scripts read sys.argv by hand: `readme_scenarios.py --help` rewrote the README (and ran every scenario),
    `search_vs_recipes.py --jsn` ran every search and printed text, `sibling_ratios.py --help` predicted every
    run, `megatron_arg_names.py --help` asked git for a repository named '--help', `explorer_screenshots.py
    --help` started the explorer to write PNGs into a folder named '--help'. Fix: argparse, as
    scripts/calibrate.py: --help prints usage (exit 0), an unknown flag is one usage error (exit 2), nothing
    written either way."""
    import subprocess
    import sys
    before = _snapshot()
    ok = subprocess.run([sys.executable, str(ROOT / "scripts" / f"{script}.py"), "--help"], cwd=ROOT,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "usage:" in ok.stdout, ok.stderr
    extra = ["x.git"] if script == "megatron_arg_names" else []   # its one required argument, given
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / f"{script}.py"), *extra, "--no-such-flag"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unrecognized arguments: --no-such-flag" in bad.stderr, bad.stderr
    assert _snapshot() == before
    assert not (ROOT / "--help").exists()
